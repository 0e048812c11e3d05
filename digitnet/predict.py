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
from digitnet.images import load_image, save_png, to_mnist
from digitnet.trainer import predict_logits


@dataclass(frozen=True)
class Prediction:
    """Top classes for one image, most probable first."""

    path: Path
    top: list[tuple[int, float]]
    preprocessed: Path | None


def predict_files(
    run_dir: Path, paths: Sequence[Path], show: bool = False, top_k: int = 3
) -> list[Prediction]:
    """Classify the user's own images, prepared the way MNIST digits were (see [digitnet.images][])."""
    checkpoint = load_checkpoint(run_dir)
    prepared = [(path, to_mnist(load_image(path))) for path in paths]  # every file checked before writing
    stats = checkpoint.normalization
    batch = (
        torch.from_numpy(np.stack([digit for _, digit in prepared])).float().unsqueeze(1)
    )  # (N, 1, 28, 28)
    logits = predict_logits(checkpoint.model, stats.apply(batch))
    probabilities = torch.softmax(logits.float(), dim=1)
    values, classes = probabilities.topk(top_k, dim=1)
    predictions = []
    for index, (path, digit) in enumerate(prepared):
        shown = None
        if show:
            shown = path.with_name(f"{path.stem}.mnist.png")
            save_png(digit, shown)
        top = [(int(c), float(v)) for c, v in zip(classes[index], values[index], strict=True)]
        predictions.append(Prediction(path, top, shown))
    return predictions


__all__ = ["Prediction", "predict_files"]
