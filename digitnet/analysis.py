"""The ``data show`` step: figures and a table that explain a dataset before anything is trained.

Sample grid, one row per class, class counts per split, augmentation and normalisation on real digits.
The function returns what it wrote so the CLI (or the docs report) can list it.

```python
written, notes = draw_data_figures(DataConfig(dataset="sample"), Path("figures/data"))
```
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from digitnet.configs import DataConfig
from digitnet.data import augment_batch, image_grid_rows, load_split
from digitnet.plotting import (
    IMAGE_FORMATS,
    plot_class_counts,
    plot_class_rows,
    plot_digit_grid,
    plot_normalization,
    save_figure,
)
from digitnet.runtime import (
    atomic_write_text,
    seed_everything,
)


def draw_data_figures(
    config: DataConfig, out_dir: Path, seed: int = 0, tables_dir: Path | None = None
) -> tuple[list[Path], tuple[str, ...]]:
    """Sample grid, one row per class, class counts per split, and augmentation on real digits.

    The class-count table (``class_counts.md``) goes to ``tables_dir``, by default beside the figures.
    """
    split = load_split(config)
    generator = seed_everything(seed)
    written: list[Path] = []
    chosen = torch.randperm(len(split.train), generator=generator)[:64]
    figure = plot_digit_grid(
        split.train.images[chosen].numpy(),
        [str(int(v)) for v in split.train.labels[chosen]],
        f"64 random training digits ({split.name}) with their labels",
    )
    written += save_figure(figure, out_dir / "samples", IMAGE_FORMATS)
    rows = image_grid_rows(split.train, per_class=10, generator=generator)
    figure = plot_class_rows(rows.numpy(), "ten training examples of each digit")
    written += save_figure(figure, out_dir / "classes", IMAGE_FORMATS)
    counts = {name: getattr(split, name).class_counts() for name in ("train", "val", "test")}
    figure = plot_class_counts(
        {"train": counts["train"], "validation": counts["val"], "test": counts["test"]},
        # three bars, so the title says where each comes from, not only the 80/20 of the first two
        f"digits per class in each split ({split.name})\n"
        f"train / validation: the training digits 80/20, stratified; test: {split.test_set}",
    )
    written += save_figure(figure, out_dir / "class_counts")
    # Augmentation: each row is one digit, first the original, then seven random draws.
    originals = split.train.images[chosen[:6]].to(torch.float32).unsqueeze(1)  # (6, 1, 28, 28)
    repeated = originals.repeat_interleave(7, dim=0)
    augmented = augment_batch(repeated, generator).clamp(0, 255).reshape(6, 7, 28, 28)
    panel = torch.cat([originals.reshape(6, 1, 28, 28), augmented], dim=1).reshape(-1, 28, 28)
    captions = ["original" if i % 8 == 0 else "augmented" for i in range(len(panel))]
    figure = plot_digit_grid(
        np.asarray(panel.round().to(torch.uint8)),
        captions,
        "--augment: random rotation ±10° and shift ≤2 px, drawn fresh every epoch",
    )
    written += save_figure(figure, out_dir / "augmentation", IMAGE_FORMATS)
    written += save_figure(plot_normalization(split.train.images), out_dir / "normalization", IMAGE_FORMATS)
    table = (tables_dir or out_dir) / "class_counts.md"
    atomic_write_text(table, class_counts_markdown(counts))
    written.append(table)
    return written, split.notes


def class_counts_markdown(counts: dict[str, list[int]]) -> str:
    """Digits per class in each part of the split, as a markdown table: one row per digit, one column
    per part, each count with its share of that part. Narrow enough to read on a phone, and the
    stratification shows: train and validation give every digit the same share."""
    names = list(counts)
    lines = [
        "| digit | " + " | ".join(names) + " |",
        "|---" + "|---:" * len(names) + "|",
    ]
    totals = [sum(v) for v in counts.values()]
    for digit in range(10):
        cells = [
            f"{v[digit]:,} ({v[digit] / total:.1%})" if total else "0"
            for v, total in zip(counts.values(), totals, strict=True)
        ]
        lines.append(f"| {digit} | " + " | ".join(cells) + " |")
    lines.append("| total | " + " | ".join(f"{total:,}" for total in totals) + " |")
    return "\n".join(lines) + "\n"


__all__ = ["class_counts_markdown", "draw_data_figures"]
