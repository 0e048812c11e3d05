"""Figures and tables that explain a dataset or a trained model (the ``data show`` and ``evaluate`` steps).

These functions compose the data, trainer and plotting modules; they return what they wrote so the CLI
(or the docs report) can list it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from digitnet.data import DataConfig, augment_batch, image_grid_rows, load_split
from digitnet.plotting import plot_class_counts, plot_class_rows, plot_digit_grid
from digitnet.runtime import seed_everything


def draw_data_figures(config: DataConfig, out_dir: Path, seed: int = 0) -> tuple[list[Path], tuple[str, ...]]:
    """Sample grid, one row per class, class counts per split, and augmentation on real digits."""
    split = load_split(config)
    generator = seed_everything(seed)
    written: list[Path] = []
    chosen = torch.randperm(len(split.train), generator=generator)[:64]
    written += plot_digit_grid(
        split.train.images[chosen].numpy(),
        [str(int(v)) for v in split.train.labels[chosen]],
        out_dir / "samples",
        f"64 random training digits ({split.source}) with their labels",
    )
    rows = image_grid_rows(split.train, per_class=10, generator=generator)
    written += plot_class_rows(rows.numpy(), out_dir / "classes", "ten training examples of each digit")
    counts = {name: getattr(split, name).class_counts() for name in ("train", "val", "test")}
    written += plot_class_counts(
        {"train": counts["train"], "validation": counts["val"], "test": counts["test"]},
        out_dir / "class_counts",
        f"digits per class in each split ({split.source}, stratified 80/20)",
    )
    # Augmentation: each row is one digit, first the original, then seven random draws.
    originals = split.train.images[chosen[:6]].to(torch.float32).unsqueeze(1)  # (6, 1, 28, 28)
    repeated = originals.repeat_interleave(7, dim=0)
    augmented = augment_batch(repeated, generator).clamp(0, 255).reshape(6, 7, 28, 28)
    panel = torch.cat([originals.reshape(6, 1, 28, 28), augmented], dim=1).reshape(-1, 28, 28)
    captions = ["original" if i % 8 == 0 else "augmented" for i in range(len(panel))]
    written += plot_digit_grid(
        np.asarray(panel.round().to(torch.uint8)),
        captions,
        out_dir / "augmentation",
        "--augment: random rotation ±10° and shift ≤2 px, drawn fresh every epoch",
    )
    return written, split.notes
