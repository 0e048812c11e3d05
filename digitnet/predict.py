"""The ``predict`` step: a student's own images, prepared the way MNIST was made, through a trained run.

```python
for prediction in predict_files(Path("runs/cnn-adam-1a2b3c4d5e6f"), [Path("my_seven.png")]):
    print(prediction.top)  # [(7, 0.97), (1, 0.02), (2, 0.004)]
```
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from digitnet.checkpoint import load_checkpoint
from digitnet.errors import DataError
from digitnet.images import load_image, save_png, to_mnist
from digitnet.trainer import predict_logits


@dataclass(frozen=True)
class Prediction:
    """Top classes for one image, most probable first; or, for an image that could not be read or holds
    no digit, ``error`` (one line naming the file) and no classes."""

    path: Path
    top: list[tuple[int, float]]
    preprocessed: Path | None
    error: str | None = None


def _prepared(path: Path) -> np.ndarray | str:
    """``path`` as a 28×28 MNIST-style digit, or the one-line reason it cannot be, naming the file."""
    try:
        return to_mnist(load_image(path))
    except DataError as error:
        message = str(error)
        return message if message.startswith(str(path)) else f"{path}: {message.removeprefix('image: ')}"


def predict_files(
    run_dir: Path, paths: Sequence[Path], show: bool = False, top_k: int = 3
) -> list[Prediction]:
    """Classify the user's own images, prepared the way MNIST digits were (see [digitnet.images][]).

    One photo that holds no digit (a blank page, a corrupt file) does not stop the others: it comes back
    with its ``error``, in its place, so a class's twenty photos are not lost to one bad one."""
    checkpoint = load_checkpoint(run_dir)
    prepared = [(path, _prepared(path)) for path in paths]
    digits = [digit for _, digit in prepared if isinstance(digit, np.ndarray)]
    classes = values = torch.empty(0, top_k)
    if digits:
        batch = torch.from_numpy(np.stack(digits)).float().unsqueeze(1)  # (N, 1, 28, 28)
        logits = predict_logits(checkpoint.model, checkpoint.normalization.apply(batch))
        values, classes = torch.softmax(logits.float(), dim=1).topk(top_k, dim=1)
    predictions = []
    row = 0
    for path, digit in prepared:
        if isinstance(digit, str):
            predictions.append(Prediction(path, [], None, error=digit))
            continue
        shown = None
        if show:
            shown = path.with_name(f"{path.stem}.mnist.png")
            save_png(digit, shown)
        top = [(int(c), float(v)) for c, v in zip(classes[row], values[row], strict=True)]
        predictions.append(Prediction(path, top, shown))
        row += 1
    return predictions


__all__ = ["Prediction", "predict_files"]
