"""Figures, drawn headless with matplotlib and written atomically as PNG (and SVG where asked).

Each function takes measured values (a :class:`~digitnet.trainer.History`, images, counts) and a path stem,
and returns the files it wrote. Nothing here trains or evaluates: figures show what was measured.

>>> moving_average([1.0, 2.0, 3.0, 4.0], window=2)
[1.0, 1.5, 2.5, 3.5]
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers, CI, or the docs build

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from digitnet.runtime import atomic_write_bytes
from digitnet.trainer import History

plt.rcParams["svg.hashsalt"] = "digitnet"  # stable SVG ids: unchanged data, unchanged file

FORMATS = ("png", "svg")


def moving_average(values: Sequence[float], window: int = 10) -> list[float]:
    """Trailing mean over ``window`` values; the first points average what exists so far.

    Smooths the noisy per-iteration loss without shifting it forward in time or dropping the start.
    """
    if window < 1:
        raise ValueError(f"window must be ≥ 1, got {window}")
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return []
    cumulative = np.concatenate([[0.0], np.cumsum(array)])
    ends = np.arange(1, array.size + 1)
    starts = np.maximum(0, ends - window)
    return list((cumulative[ends] - cumulative[starts]) / (ends - starts))


def save_figure(figure: Figure, stem: Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write ``figure`` as ``stem.png`` (and ``stem.svg``), each atomically, then close it."""
    written = []
    try:
        for fmt in formats:
            buffer = io.BytesIO()
            # A fixed SVG hash salt and no date keep re-renders byte-identical for unchanged data.
            metadata: dict[str, Any] = {"Date": None} if fmt == "svg" else {}
            figure.savefig(buffer, format=fmt, dpi=120, bbox_inches="tight", metadata=metadata)
            path = stem.with_suffix(f".{fmt}")
            atomic_write_bytes(path, buffer.getvalue())
            written.append(path)
    finally:
        plt.close(figure)
    return written


def plot_loss(history: History, title: str, stem: Path, window: int = 10) -> list[Path]:
    """Per-iteration training loss, its moving average, and per-epoch train/validation loss.

    The x axis is in epochs (iteration i of an epoch of S steps sits at epoch + i/S), so the per-epoch
    points land where the epoch ended.
    """
    figure, axes = plt.subplots(figsize=(7.5, 4.2))
    losses = np.asarray(history.iteration_loss, dtype=np.float64)
    n_epochs = max(len(history.epochs), 1)
    steps_per_epoch = max(1, len(losses) // n_epochs) if history.epochs else max(1, len(losses))
    x = (np.arange(losses.size) + 1) / steps_per_epoch
    if losses.size:
        axes.plot(x, losses, color="tab:blue", alpha=0.25, linewidth=0.6, label="train loss per iteration")
        axes.plot(
            x,
            moving_average(losses.tolist(), window),
            color="tab:blue",
            linewidth=1.2,
            label=f"moving average ({window} iterations)",
        )
    epochs = [r.epoch for r in history.epochs]
    # The epoch's train loss is a mean over its batches, so it is drawn mid-epoch, where it was measured.
    axes.plot(
        [e - 0.5 for e in epochs],
        [r.train_loss for r in history.epochs],
        "o-",
        color="tab:orange",
        label="train loss (epoch mean)",
    )
    axes.plot(
        epochs, [r.val_loss for r in history.epochs], "s-", color="tab:green", label="validation loss (epoch)"
    )
    if history.diverged_at:
        axes.axvline(history.diverged_at["epoch"], color="tab:red", linestyle="--", label="diverged")
    finite = losses[np.isfinite(losses)]
    if finite.size:
        axes.set_ylim(0, min(float(np.percentile(finite, 99.5)) * 1.1, float(finite.max()) * 1.05))
    axes.set_xlabel("epoch")
    axes.set_ylabel("cross-entropy loss")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return save_figure(figure, stem)


def plot_accuracy(history: History, title: str, stem: Path) -> list[Path]:
    """Train and validation accuracy per epoch, in percent."""
    figure, axes = plt.subplots(figsize=(7.5, 4.2))
    epochs = [r.epoch for r in history.epochs]
    axes.plot(
        epochs, [100 * r.train_accuracy for r in history.epochs], "o-", color="tab:orange", label="train"
    )
    axes.plot(
        epochs, [100 * r.val_accuracy for r in history.epochs], "s-", color="tab:green", label="validation"
    )
    if history.test_accuracy is not None:
        axes.axhline(
            100 * history.test_accuracy,
            color="tab:purple",
            linestyle=":",
            label=f"test (final) {100 * history.test_accuracy:.2f}%",
        )
    axes.set_xlabel("epoch")
    axes.set_ylabel("accuracy (%)")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return save_figure(figure, stem)


def plot_digit_grid(
    images: np.ndarray,
    captions: Sequence[str],
    stem: Path,
    title: str,
    columns: int = 8,
    caption_colors: Sequence[str] | None = None,
) -> list[Path]:
    """A grid of 28×28 digits with a caption above each (labels, or ``true → predicted``)."""
    count = len(images)
    rows = max(1, -(-count // columns))
    figure, axes_grid = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.25), squeeze=False)
    for index, axes in enumerate(axes_grid.flat):
        axes.axis("off")
        if index < count:
            axes.imshow(images[index], cmap="gray_r", vmin=0, vmax=255)
            color = caption_colors[index] if caption_colors else "black"
            axes.set_title(captions[index], fontsize=8, color=color)
    figure.suptitle(title, fontsize=10)
    return save_figure(figure, stem, ("png",))


def plot_class_rows(rows: np.ndarray, stem: Path, title: str) -> list[Path]:
    """One row of examples per digit class: ``rows`` is (10, per_class, 28, 28)."""
    classes, per_class = rows.shape[:2]
    figure, axes_grid = plt.subplots(
        classes, per_class, figsize=(per_class * 0.8, classes * 0.85), squeeze=False
    )
    for digit in range(classes):
        for column in range(per_class):
            axes = axes_grid[digit, column]
            axes.imshow(rows[digit, column], cmap="gray_r", vmin=0, vmax=255)
            axes.set_xticks([])
            axes.set_yticks([])
            if column == 0:
                axes.set_ylabel(str(digit), rotation=0, labelpad=10, fontsize=10)
    figure.suptitle(title, fontsize=10)
    return save_figure(figure, stem, ("png",))


def plot_class_counts(counts: dict[str, Sequence[int]], stem: Path, title: str) -> list[Path]:
    """Grouped bars of digits per class for each part of the split (train / validation / test)."""
    figure, axes = plt.subplots(figsize=(7.5, 3.8))
    width = 0.8 / max(len(counts), 1)
    classes = np.arange(10)
    for offset, (name, values) in enumerate(counts.items()):
        axes.bar(classes + (offset - (len(counts) - 1) / 2) * width, values, width, label=name)
    axes.set_xticks(classes)
    axes.set_xlabel("digit")
    axes.set_ylabel("images")
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8)
    axes.grid(axis="y", alpha=0.3)
    return save_figure(figure, stem)


__all__ = [
    "moving_average",
    "plot_accuracy",
    "plot_class_counts",
    "plot_class_rows",
    "plot_digit_grid",
    "plot_loss",
    "save_figure",
]
