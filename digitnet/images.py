"""Turn a user's photo or drawing of a digit into an MNIST-style 28×28 image.

MNIST digits were made in a particular way, and a model only recognises digits made the same way:
light ink on a dark background, the ink's bounding box scaled (aspect kept, anti-aliased) to fit a 20×20
box, then placed in a 28×28 frame so that the centre of mass sits in the middle.
[to_mnist][digitnet.images.to_mnist] repeats those steps for any size of image, dark-on-light or
light-on-dark.

```pycon
>>> import numpy as np
>>> page = np.full((100, 60), 255.0); page[20:80, 25:35] = 0.0   # a black "1" on white paper
>>> digit = to_mnist(page)
>>> digit.shape, int(digit.max()), int(digit[0, 0])
((28, 28), 255, 0)

```
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from digitnet.errors import DataError
from digitnet.runtime import atomic_write_bytes

MNIST_SIZE = 28
BOX = 20  # MNIST fits the ink into 20×20, leaving a 4-pixel margin
INK_THRESHOLD = 0.25  # of the brightest ink value: what counts as part of the digit when cropping
FRAME_SPAN = 0.8  # a page frame's box covers at least this share of the image's height and width
FRAME_EDGE_SHARE = 0.9  # ... and at least this share of its ink lies along the box's edges


def load_image(path: Path) -> np.ndarray:
    """Grayscale pixels 0–255 (float) of any image PIL reads, in any mode or bit depth, turned upright as
    its EXIF orientation says (phones store photos sideways and record the turn); transparency is
    flattened onto white."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # PIL only warns between its pixel limit and twice it; a digit is never that large.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                opened.load()
                image = ImageOps.exif_transpose(opened)
                gray = _gray_pixels(image)
    except FileNotFoundError:
        raise DataError(f"{path}: no such image file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected an image file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(
            f"{path}: image too large to be a digit (over {Image.MAX_IMAGE_PIXELS:,} pixels)"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise DataError(
            f"{path}: its contents are not an image digitnet can read; save it as PNG or JPG"
        ) from None
    if gray.ndim != 2 or min(gray.shape) < 1:
        raise DataError(f"{path}: empty image")
    return gray


def _gray_pixels(image: Any) -> np.ndarray:
    """(H, W) float pixels 0–255 of a PIL image of any mode.

    PIL's own ``convert("L")`` clips 16-bit and 32-bit values at 255 instead of scaling them, which
    turns a 16-bit scan into a white page with a few dark specks; those modes are scaled here.
    """
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        top = float(np.nanmax(pixels)) if pixels.size else 0.0
        if image.mode == "F" and top <= 1.0:
            full_scale = 1.0  # floats in 0..1
        elif top <= 255:
            full_scale = 255.0
        else:
            full_scale = 65535.0 if top <= 65535 else top
        return np.clip(pixels * (255.0 / full_scale), 0, 255)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("L"), dtype=np.float64)
    return np.asarray(image.convert("L"), dtype=np.float64)


def _drop_page_frame(ink: np.ndarray) -> np.ndarray:
    """``ink`` without a frame drawn around the page (a printed box, a scanner's edge).

    A frame is an ink component whose bounding box covers most of the image both ways and whose pixels
    nearly all lie along that box's edges; a digit, even a large 0, has most of its ink away from them.
    """
    from scipy import ndimage

    mask = ink > INK_THRESHOLD * 255
    components, _ = ndimage.label(mask)
    height, width = ink.shape
    band = max(2, round(0.03 * min(height, width)))
    for index, box in enumerate(ndimage.find_objects(components), start=1):
        if box is None:
            continue
        rows, cols = box
        box_height, box_width = rows.stop - rows.start, cols.stop - cols.start
        if box_height < FRAME_SPAN * height or box_width < FRAME_SPAN * width:
            continue
        ys, xs = np.nonzero(components[box] == index)
        near_edge = ((ys < band) | (ys >= box_height - band) | (xs < band) | (xs >= box_width - band)).mean()
        if near_edge >= FRAME_EDGE_SHARE:
            ink = np.where(components == index, 0.0, ink)
    return ink


def to_mnist(gray: np.ndarray) -> np.ndarray:
    """(H, W) grayscale 0–255 → (28, 28) uint8, light ink on black, centred by mass like MNIST.

    Raises [DataError][digitnet.errors.DataError] when no ink stands out from the background.
    """
    from PIL import Image

    pixels = np.asarray(gray, dtype=np.float64)
    if pixels.ndim != 2 or pixels.size == 0 or not np.isfinite(pixels).all():
        raise DataError("image: expected a non-empty 2-D grayscale array")
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = float(np.median(border))
    # The background is whatever the frame mostly is; ink is what differs from it, in either direction.
    ink = pixels - background if background < 128 else background - pixels
    ink = np.clip(ink, 0, None)
    if ink.max() > 0:
        ink = _drop_page_frame(ink * (255.0 / float(ink.max())))
    peak = float(ink.max())
    if peak < 16:  # no stroke stands out by more than ~6% of the range
        raise DataError("image: no digit found (no ink stands out from the background)")
    ink = ink * (255.0 / peak)
    rows = np.flatnonzero((ink > INK_THRESHOLD * 255).any(axis=1))
    cols = np.flatnonzero((ink > INK_THRESHOLD * 255).any(axis=0))
    cropped = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    height, width = cropped.shape
    scale = BOX / max(height, width)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(cropped.astype(np.float32)).resize(new_size, Image.Resampling.LANCZOS)
    small = np.clip(np.asarray(resized, dtype=np.float64), 0, 255)
    frame = np.zeros((MNIST_SIZE, MNIST_SIZE))
    top, left = (MNIST_SIZE - small.shape[0]) // 2, (MNIST_SIZE - small.shape[1]) // 2
    frame[top : top + small.shape[0], left : left + small.shape[1]] = small
    return _centre_by_mass(frame).round().astype(np.uint8)


def _centre_by_mass(frame: np.ndarray) -> np.ndarray:
    """Shift (by whole pixels, never cutting ink) so the centre of mass lands at the frame's centre."""
    total = frame.sum()
    ys, xs = np.indices(frame.shape)
    centre = (frame.shape[0] - 1) / 2
    dy = round(centre - float((ys * frame).sum() / total))
    dx = round(centre - float((xs * frame).sum() / total))
    ink_rows = np.flatnonzero(frame.any(axis=1))
    ink_cols = np.flatnonzero(frame.any(axis=0))
    dy = int(np.clip(dy, -ink_rows[0], frame.shape[0] - 1 - ink_rows[-1]))
    dx = int(np.clip(dx, -ink_cols[0], frame.shape[1] - 1 - ink_cols[-1]))
    return np.roll(frame, (dy, dx), axis=(0, 1))


def save_png(digit: np.ndarray, path: Path) -> None:
    """Write a uint8 grayscale image as PNG, atomically."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(digit, dtype=np.uint8)).save(buffer, format="PNG")
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as error:
        raise DataError(f"{path}: cannot write ({error.strerror or error})") from None


__all__ = ["load_image", "save_png", "to_mnist"]
