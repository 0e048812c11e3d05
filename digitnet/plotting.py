"""Figures as values: each function takes measured numbers and returns a matplotlib ``Figure``.

Nothing here trains, evaluates or writes: a notebook shows the returned figure inline, and the run and report
layers write it with [save_figure][digitnet.plotting.save_figure] (PNG, plus SVG for line plots, each
atomically). No pyplot state is used, so no backend has to be chosen and nothing leaks between figures.

```python
history = History.from_dict(json.load(open(run_dir / "history.json")))
figure = plot_loss(history)  # a Figure; nothing written
```

```pycon
>>> moving_average([1.0, 2.0, 3.0, 4.0], window=2)
[1.0, 1.5, 2.5, 3.5]

```
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

from digitnet.configs import AT_OWN_RATE
from digitnet.history import History

if TYPE_CHECKING:
    from digitnet.inside import FirstLayer, Projection, RangeTest

FORMATS = ("png", "svg")
IMAGE_FORMATS = ("png",)  # grids of digits: an SVG of hundreds of bitmaps is larger and no sharper


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
    averages: list[float] = ((cumulative[ends] - cumulative[starts]) / (ends - starts)).tolist()
    return averages


def render_figure(figure: Figure, formats: Sequence[str] = FORMATS) -> dict[str, bytes]:
    """``figure`` as the bytes of each file format (``{"png": …, "svg": …}``): the one place figures are
    rendered, whether this process writes them or sends them to the one that does."""
    rendered = {}
    for fmt in formats:
        buffer = io.BytesIO()
        # A fixed SVG hash salt and no date keep re-renders byte-identical for unchanged data.
        metadata: dict[str, Any] = {"Date": None} if fmt == "svg" else {}
        with matplotlib.rc_context({"svg.hashsalt": "digitnet"}):
            figure.savefig(buffer, format=fmt, dpi=120, bbox_inches="tight", metadata=metadata)
        rendered[fmt] = buffer.getvalue()
    return rendered


def save_figure(figure: Figure, stem: Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write ``figure`` as ``stem.png`` (and ``stem.svg``), each atomically: the one place figures
    become files."""
    from digitnet.runtime import atomic_write_bytes  # imported here: drawing alone needs no torch

    written = []
    for fmt, data in render_figure(figure, formats).items():
        path = stem.with_suffix(f".{fmt}")
        atomic_write_bytes(path, data)
        written.append(path)
    return written


def run_figures(history: History, title: str = "") -> dict[str, bytes]:
    """A run directory's figures, file name to bytes: ``loss`` and ``accuracy``, and ``diagnostics`` when
    the run measured them (``--diagnostics``), each as PNG and SVG."""
    files: dict[str, bytes] = {}
    for stem in run_figure_stems(history):
        files |= run_figure(history, stem, title)
    return files


def run_figure_stems(history: History) -> tuple[str, ...]:
    """The names of the figures [run_figures][digitnet.plotting.run_figures] draws for ``history``."""
    return ("loss", "accuracy", "diagnostics") if history.diagnostics else ("loss", "accuracy")


def run_figure(history: History, stem: str, title: str = "") -> dict[str, bytes]:
    """One of a run's figures (a name from [run_figure_stems][digitnet.plotting.run_figure_stems]) in
    each format, file name to bytes: each is drawn on its own, so the figure helper can draw them at once
    on separate cores."""
    plot = {"loss": plot_loss, "accuracy": plot_accuracy, "diagnostics": plot_diagnostics}[stem]
    return {f"{stem}.{fmt}": data for fmt, data in render_figure(plot(history, title)).items()}


def _figure(width: float, height: float, constrained: bool = False) -> Figure:
    """A new figure outside pyplot: it is garbage-collected like any object, never shown by accident.
    ``constrained`` lets matplotlib place titles and panels itself (grids of digits under a suptitle)."""
    return Figure(figsize=(width, height), layout="constrained" if constrained else None)


def _epoch_axis(axes: Axes, finished: int, drawn: bool = False) -> None:
    """An x axis of whole epochs from where training started: with one or two epochs, matplotlib would
    otherwise label the few points' span in fractions (0.48, 0.54, …). A run stopped before its first
    epoch ended (Ctrl-C) has nothing to draw, and says so on an axis of one epoch; one that diverged in
    its first epoch has its steps ``drawn``, and keeps its values."""
    axes.set_xlim(left=0)
    if not finished:
        axes.set_xlim(0, 1)
    if not finished and not drawn:
        axes.yaxis.set_major_locator(NullLocator())  # no values: a scale around 0 would only mislead
        axes.text(
            0.5,
            0.5,
            "stopped before the first epoch finished",
            transform=axes.transAxes,
            ha="center",
            color="0.4",
        )
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_loss(history: History, title: str = "", window: int = 10) -> Figure:
    """Per-iteration training loss, its moving average, and per-epoch train/validation loss.

    The x axis is in epochs (iteration i of an epoch of S steps sits at epoch + i/S), so the per-epoch
    points land where the epoch ended.
    """
    figure = _figure(7.5, 4.6, constrained=True)
    axes = figure.subplots()
    losses = np.asarray(history.iteration_loss, dtype=np.float64)
    diverged = history.diverged_at or {}
    n_epochs = max(len(history.epochs), 1)
    # A diverged run records its epoch's length; its losses run past the last finished epoch, so the
    # length cannot be read off them. (Histories from before that record were drawn the old way.)
    steps_per_epoch = diverged.get("steps_per_epoch") or (
        max(1, len(losses) // n_epochs) if history.epochs else max(1, len(losses))
    )
    x = (np.arange(losses.size) + 1) / steps_per_epoch
    smoothed = np.asarray(moving_average(losses.tolist(), window), dtype=np.float64)
    if losses.size:
        axes.plot(x, losses, color="tab:blue", alpha=0.25, linewidth=0.6, label="train loss per iteration")
        axes.plot(
            x,
            smoothed,
            color="tab:blue",
            linewidth=1.2,
            label=f"moving average ({window} iterations)",
        )
    epochs = [r.epoch for r in history.epochs]
    # The epoch's train loss is a mean over its batches, so it is drawn mid-epoch, where it was measured.
    if epochs:  # no finished epoch: no point to draw, so none in the key either
        axes.plot(
            [e - 0.5 for e in epochs],
            [r.train_loss for r in history.epochs],
            "o-",
            color="tab:orange",
            label="train loss (epoch mean)",
        )
    measured = [r for r in history.epochs if r.train_eval_loss is not None]
    if measured:  # --eval-train: the training split measured like validation, at the epoch's end
        axes.plot(
            [r.epoch for r in measured],
            [r.train_eval_loss or 0.0 for r in measured],
            "^--",
            color="tab:red",
            label="train loss (eval mode, epoch end)",
        )
    if epochs:
        axes.plot(
            epochs,
            [r.val_loss for r in history.epochs],
            "s-",
            color="tab:green",
            label="validation loss (epoch)",
        )
    if diverged:
        where = diverged["step"] / steps_per_epoch if "steps_per_epoch" in diverged else diverged["epoch"]
        axes.axvline(where, color="tab:red", linestyle="--", label=f"diverged (step {diverged['step']})")
    finite = losses[np.isfinite(losses)]
    if diverged and finite.size and finite.max() > 100 * finite.min() > 0:
        # A diverging loss grows by orders of magnitude: on a linear scale every step before the last
        # few would lie on zero.
        axes.set_yscale("log")
        axes.set_ylim(finite.min() / 2, finite.max() * 2)
    elif finite.size:
        # A few wild iterations must not flatten the rest, but every per-epoch point stays in view (a
        # first epoch's validation loss can sit above every iteration that followed it).
        top = min(float(np.percentile(finite, 99.5)) * 1.1, float(finite.max()) * 1.05)
        points = [v for r in history.epochs for v in (r.train_loss, r.val_loss, r.train_eval_loss)]
        top = max([top, *(1.05 * v for v in points if v is not None and math.isfinite(v))])
        axes.set_ylim(0, top)
        above = smoothed > top
        if above.any():  # a long run's steep first steps: said, so the curve is not read as starting low
            steps, start = int(above.sum()), float(smoothed[0])
            axes.annotate(
                f"moving average above the frame for {steps} steps (it starts at {start:.2f})",
                xy=(0.01, 0.985),
                xycoords="axes fraction",
                va="top",
                fontsize=8,
                color="0.35",
                backgroundcolor="white",
            )
    axes.set_xlabel("epoch")
    _epoch_axis(axes, len(history.epochs), drawn=bool(finite.size))
    axes.set_ylabel("cross-entropy loss" + (" (log scale)" if axes.get_yscale() == "log" else ""))
    if title:
        axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    _key_under(figure, axes)
    return figure


def _key_under(
    figure: Figure | SubFigure,
    axes: Axes,
    columns: int = 3,
    title: str | None = None,
    fontsize: float = 8,
    by_rows: bool = True,
) -> None:
    """The panel's key under it, in the figure's constrained layout.

    Inside the panel a key covers a line wherever it goes in some run or sweep (a first epoch's loss in
    the top corner, the test line across the panel, a short sweep's dozen curves filling it); under it,
    the layout keeps it clear of the tick labels and the axis name. matplotlib fills a key column by
    column; ``by_rows`` reorders the entries to read row by row in the order drawn, as a list would.
    """
    handles, labels = axes.get_legend_handles_labels()
    if not handles:
        return
    columns = max(1, min(columns, len(labels)))
    rows = -(-len(labels) // columns)
    order: Sequence[int] = range(len(labels))
    if by_rows:
        order = [
            r * columns + c for c in range(columns) for r in range(rows) if r * columns + c < len(labels)
        ]
    figure.legend(
        [handles[i] for i in order],
        [labels[i] for i in order],
        loc="outside lower center",
        ncol=columns,
        fontsize=fontsize,
        title=title,
        title_fontsize=fontsize,
    )


def plot_accuracy(history: History, title: str = "") -> Figure:
    """Train and validation accuracy per epoch, in percent.

    The running train accuracy is a mean over the epoch's batches while the weights changed, so, as in
    [plot_loss][digitnet.plotting.plot_loss], it is drawn mid-epoch; validation (and, with
    ``--eval-train``, the training split measured in eval mode) are measured at the epoch's end.
    """
    figure = _figure(7.5, 4.6, constrained=True)
    axes = figure.subplots()
    epochs = [r.epoch for r in history.epochs]
    if epochs:  # no finished epoch: no point, and no key entry for one
        axes.plot(
            [e - 0.5 for e in epochs],
            [100 * r.train_accuracy for r in history.epochs],
            "o-",
            color="tab:orange",
            label="train (running, mid-epoch)",
        )
    measured = [r for r in history.epochs if r.train_eval_accuracy is not None]
    if measured:
        axes.plot(
            [r.epoch for r in measured],
            [100 * (r.train_eval_accuracy or 0.0) for r in measured],
            "^--",
            color="tab:red",
            label="train (eval mode, epoch end)",
        )
    if epochs:
        axes.plot(
            epochs,
            [100 * r.val_accuracy for r in history.epochs],
            "s-",
            color="tab:green",
            label="validation",
        )
    test = history.test_accuracy
    tested = test is not None
    if test is not None:
        axes.axhline(100 * test, color="tab:purple", linestyle=":", label=f"test (final) {100 * test:.2f}%")
    if tested and not epochs:  # a run that diverged in its first epoch was still tested: say why no curve
        axes.set_ylim(0, 100)
        how = "diverged" if history.status == "diverged" else "stopped"
        axes.text(
            0.5,
            0.55,
            f"{how} before the first epoch finished",
            transform=axes.transAxes,
            ha="center",
            color="0.4",
        )
    axes.set_xlabel("epoch")
    _epoch_axis(axes, len(history.epochs), drawn=tested)
    axes.set_ylabel("accuracy (%)")
    if title:
        axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    _key_under(figure, axes)
    return figure


def plot_digit_grid(
    images: np.ndarray,
    captions: Sequence[str],
    title: str,
    columns: int = 8,
    caption_colors: Sequence[str] | None = None,
) -> Figure:
    """A grid of 28×28 digits with a caption above each (labels, or ``true → predicted``)."""
    count = len(images)
    rows = max(1, math.ceil(count / columns))
    figure = _figure(columns * 1.1, rows * 1.1 + 0.3 * (title.count("\n") + 1), constrained=True)
    axes_grid = figure.subplots(rows, columns, squeeze=False)
    for index, axes in enumerate(axes_grid.flat):
        axes.axis("off")
        if index < count:
            axes.imshow(images[index], cmap="gray_r", vmin=0, vmax=255)
            color = caption_colors[index] if caption_colors else "black"
            axes.set_title(captions[index], fontsize=8, color=color)
    figure.suptitle(title, fontsize=10)
    return figure


def plot_class_rows(rows: np.ndarray, title: str) -> Figure:
    """One row of examples per digit class: ``rows`` is (10, per_class, 28, 28)."""
    classes, per_class = rows.shape[:2]
    figure = _figure(per_class * 0.8, classes * 0.8 + 0.3, constrained=True)
    axes_grid = figure.subplots(classes, per_class, squeeze=False)
    for digit in range(classes):
        for column in range(per_class):
            axes = axes_grid[digit, column]
            axes.imshow(rows[digit, column], cmap="gray_r", vmin=0, vmax=255)
            axes.set_xticks([])
            axes.set_yticks([])
            if column == 0:
                axes.set_ylabel(str(digit), rotation=0, labelpad=10, fontsize=10)
    figure.suptitle(title, fontsize=10)
    return figure


def plot_class_counts(counts: dict[str, Sequence[int]], title: str) -> Figure:
    """Grouped bars of digits per class for each part of the split (train / validation / test)."""
    figure = _figure(7.5, 3.8)
    axes = figure.subplots()
    width = 0.8 / max(len(counts), 1)
    classes = np.arange(10)
    for offset, (name, values) in enumerate(counts.items()):
        axes.bar(classes + (offset - (len(counts) - 1) / 2) * width, values, width, label=name)
    axes.set_xticks(classes)
    axes.set_xlabel("digit")
    axes.set_ylabel("images")
    axes.set_title(title, fontsize=10)
    axes.set_ylim(0, max(max(v) for v in counts.values()) * 1.25)  # headroom: the legend covers no bar
    axes.legend(fontsize=8, loc="upper center", ncol=len(counts))
    axes.grid(axis="y", alpha=0.3)
    return figure


__all__ = [
    "SweepSeries",
    "mean_band",
    "moving_average",
    "plot_accuracy",
    "plot_class_counts",
    "plot_class_rows",
    "plot_confusion_matrix",
    "plot_digit_grid",
    "plot_loss",
    "plot_normalization",
    "plot_sweep",
    "save_figure",
]


# --------------------------------------------------------------------------------------------- sweeps


@dataclass(frozen=True)
class SweepSeries:
    """One cell of a sweep, as the figures need it: per-seed epoch curves and final mean/std."""

    label: str
    value: str
    group: str
    curves: dict[str, list[list[float]]]  # metric -> one list of per-epoch values per seed
    final: dict[str, tuple[float, float]]  # metric -> (mean, std) at the final epoch
    seconds: tuple[float, float]
    diverged: int
    seeds: int
    cpu_time: bool = False
    """``seconds`` is the training's CPU time rather than the clock's (see ``digitnet.sweep.time_metric``)"""


# Line style and marker per value in a grid, where the colour is the model variant.
_VALUE_STYLES: tuple[dict[str, Any], ...] = (
    {"marker": "o", "linestyle": "-"},
    {"marker": "s", "linestyle": "--"},
    {"marker": "^", "linestyle": ":"},
    {"marker": "D", "linestyle": "-."},
    {"marker": "v", "linestyle": (0, (5, 1))},
    {"marker": "P", "linestyle": (0, (1, 1))},
)

CURVE_LABELS = {
    "val_loss": "validation loss",
    "val_accuracy": "validation accuracy (%)",
    "train_loss": "train loss",
}


def mean_band(runs: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epoch numbers, mean and std across runs at each epoch (runs may differ in length)."""
    length = max((len(r) for r in runs), default=0)
    means, stds = [], []
    for epoch in range(length):
        values = np.asarray([r[epoch] for r in runs if len(r) > epoch], dtype=np.float64)
        means.append(values.mean())
        stds.append(values.std(ddof=1) if values.size > 1 else 0.0)
    return np.arange(1, length + 1), np.asarray(means), np.asarray(stds)


def _legend_label(series: SweepSeries) -> str:
    return series.label + (f" (diverged {series.diverged}/{series.seeds})" if series.diverged else "")


def _tick_label(series: SweepSeries) -> str:
    """A value as a tick of the final figure, with the rate it ran at when its label names one (an
    optimizer at its conventional rate: ``adam (lr 0.001)``): the rate changed with the optimizer, and a
    tick that hid it would credit the optimizer alone."""
    found = next((m for m in AT_OWN_RATE.finditer(series.label) if m.group(1) == series.value), None)
    return found.group(0) if found else series.value


def _numeric_axis(factor: str, series: Sequence[SweepSeries]) -> tuple[bool, str | None]:
    """Whether values are plotted on a numeric axis, and its scale (log for lr, base-2 for batch size)."""
    numeric = factor in ("lr", "batch-size", "dropout", "epochs")
    if numeric:
        try:
            [float(s.value) for s in series]
        except ValueError:
            numeric = False
    scale = {"lr": "log", "batch-size": "log2"}.get(factor) if numeric else None
    return numeric, scale


def plot_sweep(factor: str, series: Sequence[SweepSeries], data: str = "", by: str = "") -> dict[str, Figure]:
    """The sweep's figures by file name: an overlay per curve (mean line, ±std band), and ``final``:
    final accuracy and training time against the value, with error bars. ``data`` (which digits, how
    many) goes under every title: a sweep on the 5,000-digit sample must not pass for one on MNIST.

    In a grid (several model variants), the colour is the model and the line style and marker the
    value, so a dozen series stay apart; a one-factor sweep colours its values. ``by`` is a two-factor
    grid's second factor, named beside the first in the curves' titles.
    """
    figures: dict[str, Figure] = {}
    under = f"\n{data}" if data else ""
    # one seed has no spread to show: the title must not promise one
    spread = "mean ± std over seeds" if max((s.seeds for s in series), default=1) > 1 else "one seed each"
    groups = list(dict.fromkeys(s.group for s in series))
    if len(groups) > 1:
        values = list(dict.fromkeys(s.value for s in series))
        tab10 = matplotlib.colormaps["tab10"]
        styles = [
            {
                "color": tab10(groups.index(s.group) % 10),
                **_VALUE_STYLES[values.index(s.value) % len(_VALUE_STYLES)],
            }
            for s in series
        ]
    else:
        colors = matplotlib.colormaps["viridis" if len(series) > 10 else "tab10"]
        styles = [
            {
                "color": colors(i / max(len(series) - 1, 1)) if len(series) > 10 else colors(i),
                "marker": "o",
                "linestyle": "-",
            }
            for i in range(len(series))
        ]
    swept = f"{factor} × {by}" if by else factor  # a grid's curves are its cells: both factors
    columns = max(1, min(len(series), 4))
    key_rows = -(-len(series) // columns)
    for metric, label in CURVE_LABELS.items():
        figure = _figure(7.5, 4.4 + 0.2 * bool(data) + 0.17 * key_rows, constrained=True)
        axes = figure.subplots()
        scale = 100.0 if "accuracy" in metric else 1.0
        last = max((len(run) for s in series for run in s.curves[metric]), default=1)
        bands: list[tuple[Any, np.ndarray, np.ndarray, np.ndarray, Sequence[Sequence[float]], Any]] = []
        for index, (style, s) in enumerate(zip(styles, series, strict=True)):
            epochs, mean, std = mean_band(s.curves[metric])
            if last == 1:  # every series one point at epoch 1: side by side, so their error bars stay apart
                epochs = epochs + (index - (len(series) - 1) / 2) * min(0.06, 0.6 / len(series))
            if epochs.size == 0:
                axes.plot([], [], **style, label=_legend_label(s))
                continue
            # a one-epoch run is one point, often exactly under the first point of a longer run with the
            # same seed: an open ring around it keeps it visible
            ring = {"markersize": 9, "fillstyle": "none", "markeredgewidth": 1.5}
            sized = {"markersize": 3.5} | style | (ring if epochs.size == 1 else {})
            axes.plot(epochs, mean * scale, **sized, label=_legend_label(s))
            if epochs.size == 1 and std[0] > 0:  # a band one point wide has no width: an error bar
                axes.errorbar(epochs, mean * scale, yerr=std * scale, color=style["color"], capsize=4)
            else:
                band = axes.fill_between(
                    epochs, (mean - std) * scale, (mean + std) * scale, color=style["color"], alpha=0.15
                )
                bands.append((band, epochs, mean, std, s.curves[metric], style["color"]))
        if "loss" in metric and _spans_decades(axes):
            # one overshooting rate's loss can be thousands of times the others': on a linear axis every
            # other curve would lie flat on zero
            axes.set_yscale("log")
            label += " (log scale)"
            # Where the seeds differ by more than their mean (an overshooting rate's first epochs),
            # mean - std is below zero, and on a log axis the band would run down off the axes: there it
            # stops at the lowest seed's value, a loss some run did reach.
            for band, epochs, mean, std, runs, color in bands:
                lowest = np.asarray([min(r[i] for r in runs if len(r) > i) for i in range(epochs.size)])
                band.remove()
                low = np.where(mean - std > 0, mean - std, lowest)
                axes.fill_between(epochs, low * scale, (mean + std) * scale, color=color, alpha=0.15)
        axes.set_xlabel("epoch")
        # Whole epochs: around one epoch's single point matplotlib would label 0.95, 1.00, 1.05 (and its
        # integer locator gives up below a span of one)
        axes.set_xlim(0.5, max(last, 1) + 0.5)
        axes.xaxis.set_major_locator(
            FixedLocator(range(1, last + 1)) if last <= 12 else MaxNLocator(integer=True)
        )
        axes.set_ylabel(label)
        axes.set_title(f"{label} per epoch, by {swept} ({spread}){under}", fontsize=10)
        axes.grid(alpha=0.3)
        # a one-factor sweep labels its curves by value alone: the key says which factor; read row by
        # row, in the order drawn (largest rate first), as a list would
        _key_under(
            figure, axes, columns, title=factor if len(groups) == 1 else None, fontsize=7, by_rows=True
        )
        figures[metric] = figure

    numeric, axis_scale = _numeric_axis(factor, series)
    figure = _figure(11, 4.4 + 0.3 * bool(data), constrained=True)
    halves = cast(Sequence[SubFigure], figure.subfigures(1, 2))  # each panel with its key under it
    acc_axes, time_axes = halves[0].subplots(), halves[1].subplots()
    for index, group in enumerate(groups):
        members = [s for s in series if s.group == group]
        positions = [float(s.value) for s in members] if numeric else list(range(len(members)))
        offset = 0.0 if numeric or len(groups) == 1 else (index - (len(groups) - 1) / 2) * 0.08
        prefix = f"{group}: " if group else ""
        color = matplotlib.colormaps["tab10"](index % 10) if len(groups) > 1 else None
        for metric, marker in (("val_accuracy", "o"), ("test_accuracy", "s")):
            means = [100 * s.final[metric][0] for s in members]
            stds = [100 * np.nan_to_num(s.final[metric][1]) for s in members]
            acc_axes.errorbar(
                np.asarray(positions) + offset,
                means,
                yerr=stds,
                marker=marker,
                capsize=3,
                color=color,
                linestyle="-" if metric == "val_accuracy" else ":",
                label=f"{prefix}{metric.split('_')[0]}",
            )
        time_axes.errorbar(
            np.asarray(positions) + offset,
            [s.seconds[0] for s in members],
            yerr=[np.nan_to_num(s.seconds[1]) for s in members],
            marker="o",
            capsize=3,
            color=color,
            label=group or "training time",
        )
    for axes in (acc_axes, time_axes):
        axes.set_xlabel(factor)
        axes.grid(alpha=0.3)
        if axis_scale == "log":
            axes.set_xscale("log")
        elif axis_scale == "log2":
            axes.set_xscale("log", base=2)
        if numeric:  # the values tried are the ticks: no 4×10⁻² that nobody ran, no epoch 1.5
            tried = sorted({float(s.value) for s in series})
            axes.set_xticks(tried, [f"{v:g}" for v in tried], fontsize=8)
            axes.xaxis.set_minor_locator(NullLocator())
        else:
            labels = [_tick_label(s) for s in series if s.group == groups[0]]
            axes.set_xticks(
                range(len(labels)), labels, rotation=20 if max(map(len, labels)) > 8 else 0, fontsize=8
            )
    acc_axes.set_ylabel("final accuracy (%)")
    grid = f", {swept}" if by else ""  # its lines are the second factor's values
    acc_axes.set_title(f"final accuracy{grid} ({spread})", fontsize=10)
    # a grid's key: one column per model, its val above its test
    _key_under(
        halves[0], acc_axes, len(groups) if len(groups) > 1 else 2, fontsize=7, by_rows=len(groups) == 1
    )
    cpu = all(s.cpu_time for s in series)
    time_axes.set_ylabel(f"{'CPU time' if cpu else 'training time'} per run (s)")
    # from zero: run-to-run noise must not look like a peak; headroom, so no error bar's cap is on the frame
    tops = [s.seconds[0] + np.nan_to_num(s.seconds[1]) for s in series]  # NaN where every run failed
    highest = max((top for top in tops if math.isfinite(top)), default=0.0)
    time_axes.set_ylim(0, max(highest * 1.08, time_axes.get_ylim()[1]))
    time_axes.set_title(f"time cost{grid}", fontsize=10)
    if len(groups) > 1:
        _key_under(halves[1], time_axes, len(groups), fontsize=7)
    if data:
        figure.suptitle(data, fontsize=9)
    figures["final"] = figure
    return figures


def _label_short_log_axis(axes: Axes) -> None:
    """On a log axis spanning less than a decade matplotlib labels one or two ticks (``10⁰``, ``9×10⁻¹``);
    label every tick in plain numbers instead, so the values can be read off."""
    low, high = axes.get_ylim()
    if low > 0 and high / low < 10:
        locator = MaxNLocator(5)  # evenly spaced values: within a decade, readable
        axes.yaxis.set_major_locator(locator)
        axes.yaxis.set_minor_locator(NullLocator())
        # as many decimals as the spacing needs: two significant digits turned 1.28, 1.36, 1.44 into
        # "1.3, 1.4, 1.4"
        ticks = locator.tick_values(low, high)
        step = float(np.min(np.diff(ticks))) if len(ticks) > 1 else high
        decimals = next(
            (d for d in range(9) if np.allclose(np.round(ticks, d), ticks, rtol=0, atol=step * 1e-6)), 9
        )
        axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.{decimals}f}"))


def _spans_decades(axes: Any, ratio: float = 100.0) -> bool:
    """Whether the lines drawn on ``axes`` range over more than ``ratio`` (positive values only)."""
    lines = [np.asarray(line.get_ydata(), dtype=float) for line in axes.get_lines()]
    values = np.concatenate(lines) if lines else np.zeros(0)
    values = values[np.isfinite(values) & (values > 0)]
    return bool(values.size) and float(values.max() / values.min()) > ratio


def plot_heatmap(
    factor: str,
    by: str,
    columns: Sequence[str],
    rows: Sequence[str],
    mean: np.ndarray,
    std: np.ndarray,
    data: str = "",
) -> Figure:
    """Mean validation accuracy (%) of a two-factor grid, ``rows`` (the second factor) × ``columns``
    (the first), each cell written as "mean ± std" over seeds; a cell with no finished run is blank
    and says so. One colour per cell makes it plain which of the two factors moves the number: a
    change along a row is the first factor's doing, along a column the second's.
    """
    figure = _figure(1.4 + 1.25 * len(columns), 1.3 + 0.62 * len(rows) + 0.25 * bool(data), constrained=True)
    axes = figure.subplots()
    masked = np.ma.masked_invalid(mean)
    image = axes.imshow(masked, cmap="viridis", aspect="auto")
    finite = mean[np.isfinite(mean)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for i in range(len(rows)):
        for j in range(len(columns)):
            if not np.isfinite(mean[i, j]):
                axes.text(j, i, "no run\nfinished", ha="center", va="center", fontsize=8, color="black")
                continue
            spread = f"\n± {std[i, j]:.2f}" if np.isfinite(std[i, j]) else ""
            colour = "black" if mean[i, j] > middle else "white"  # viridis is light at the top
            axes.text(j, i, f"{mean[i, j]:.2f}{spread}", ha="center", va="center", fontsize=8, color=colour)
    axes.set_xticks(range(len(columns)), list(columns), fontsize=8)
    axes.set_yticks(range(len(rows)), list(rows), fontsize=8)
    axes.set_xlabel(factor)
    axes.set_ylabel(by)
    colorbar = figure.colorbar(image, ax=axes, shrink=0.9)
    colorbar.set_label("validation accuracy (%)", fontsize=8)
    colorbar.ax.tick_params(labelsize=7)
    spread = "mean ± std over seeds" if np.isfinite(std).any() else "one seed each"
    title = f"validation accuracy (%), {factor} × {by}: {spread}"
    axes.set_title(title + (f"\n{data}" if data else ""), fontsize=9)
    return figure


def plot_confusion_matrix(matrix: np.ndarray, title: str) -> Figure:
    """Counts of true (rows) × predicted (columns) digits, drawn by scikit-learn's display."""
    from sklearn.metrics import ConfusionMatrixDisplay

    figure = _figure(6.4, 5.6, constrained=True)  # the layout keeps a long model title inside the figure

    axes = figure.subplots()
    ConfusionMatrixDisplay(matrix, display_labels=list(range(10))).plot(
        ax=axes, cmap="Blues", colorbar=False, values_format="d"
    )
    axes.set_title(textwrap.fill(title, 70), fontsize=9)
    return figure


def plot_normalization(train_images: Any) -> Figure:
    """One real digit under each ``--normalize`` mode, and the training pixels' histogram after
    ``standard``: the same picture, different numbers fed to the first layer."""
    from digitnet.configs import NORMALIZATIONS
    from digitnet.data import normalization_stats

    digit = train_images[0].double()
    figure = Figure(figsize=(13, 3.2), layout="constrained")  # keeps colourbars clear of the histogram
    axes = figure.subplots(1, 4)
    for panel, mode in zip(axes[:3], NORMALIZATIONS, strict=True):
        stats = normalization_stats(train_images, mode)
        shown = stats.apply(digit).numpy()
        image = panel.imshow(shown, cmap="gray")
        figure.colorbar(image, ax=panel, fraction=0.046)
        panel.set_title(f"--normalize {mode}\nrange {shown.min():.2f} … {shown.max():.2f}", fontsize=9)
        panel.axis("off")
    stats = normalization_stats(train_images, "standard")
    pixels = stats.apply(train_images[:2000].double()).flatten().numpy()
    axes[3].hist(pixels, bins=60, color="tab:blue")
    axes[3].set_yscale("log")
    axes[3].set_xlabel("pixel value after standard normalisation")
    axes[3].set_ylabel("pixels (log scale)")
    axes[3].set_title("training pixels after standard\n(mean 0, std 1; most are background)", fontsize=9)
    return figure


# ------------------------------------------------------------------------------- inside the network
# The views of digitnet.inside: each takes the arrays that module returns.

DIVERGING = "RdBu_r"  # red = pushes up, blue = pushes down, white = zero (every panel centred on zero)
CLASS_COLORS = "tab10"


def _symmetric(values: np.ndarray) -> float:
    """The colour limit that centres a diverging map on zero: the largest magnitude (1 for all zeros)."""
    limit = float(np.abs(values).max()) if values.size else 0.0
    return limit if limit > 0 else 1.0


def plot_first_layer(layer: FirstLayer, title: str = "", columns: int = 9) -> Figure:
    """The first layer's weights, one image per unit (MLP) or filter (CNN), each on its own symmetric
    colour scale: red pixels raise the unit's activation, blue ones lower it."""
    count = len(layer.units)
    rows = max(1, math.ceil(count / columns))
    size = 1.2 if layer.kind == "unit" else 1.0
    figure = _figure(columns * size, rows * size + 0.6, constrained=True)
    axes_grid = figure.subplots(rows, columns, squeeze=False)
    for index, axes in enumerate(axes_grid.flat):
        axes.axis("off")
        if index < count:
            image = layer.images[index]
            limit = _symmetric(image)
            axes.imshow(image, cmap=DIVERGING, vmin=-limit, vmax=limit)
            axes.set_title(f"{layer.kind} {layer.units[index]}", fontsize=7)
    what = (
        "first layer: each hidden unit's 784 weights as a 28×28 image"
        if layer.kind == "unit"
        else "first convolution's filters"
    )
    figure.suptitle(f"{what} (red +, blue −, white 0)\n{title}", fontsize=9)
    return figure


def plot_feature_maps(
    digits: np.ndarray, stages: Sequence[np.ndarray], title: str = "", channels: int = 6
) -> Figure:
    """One digit per row, then the first ``channels`` feature maps after each convolution's ReLU
    (``stages[s]`` is (rows, C, H, W); bright = active, black = zero)."""
    rows = len(digits)
    shown = [min(channels, stage.shape[1]) for stage in stages]
    columns = 1 + sum(shown)
    figure = _figure(columns * 0.75 + 0.4, rows * 0.75 + 0.7, constrained=True)
    axes_grid = figure.subplots(rows, columns, squeeze=False)
    for row in range(rows):
        axes_grid[row, 0].imshow(digits[row], cmap="gray_r", vmin=0, vmax=255)
        column = 1
        for number, (stage, count) in enumerate(zip(stages, shown, strict=True), start=1):
            for channel in range(count):
                axes = axes_grid[row, column]
                axes.imshow(
                    stage[row, channel], cmap="magma", vmin=0, vmax=max(float(stage[:, channel].max()), 1e-6)
                )
                if row == 0:
                    axes.set_title(f"conv {number}\nch {channel}", fontsize=7)
                column += 1
    for axes in axes_grid.flat:
        axes.set_xticks([])
        axes.set_yticks([])
    axes_grid[0, 0].set_title("digit", fontsize=7)
    figure.suptitle(f"feature maps after each convolution's ReLU\n{title}", fontsize=9)
    return figure


def _spread_labels(centres: np.ndarray, points: np.ndarray, gap: float = 0.07) -> np.ndarray:
    """Class labels at their clusters' medians, pushed apart until no two are closer than ``gap`` of
    the plot's extent: two clusters with nearby centres must not hide one label under the other."""
    span = np.ptp(points, axis=0)
    span[span == 0] = 1.0
    placed = centres / span  # work in units of the extent, so both axes count alike
    for _ in range(100):
        moved = False
        for i in range(len(placed)):
            for j in range(i + 1, len(placed)):
                offset = placed[j] - placed[i]
                distance = float(np.hypot(*offset))
                if distance < gap:
                    direction = offset / distance if distance > 0 else np.array([1.0, 0.0])
                    push = (gap - distance) / 2 * direction
                    placed[i] -= push
                    placed[j] += push
                    moved = True
        if not moved:
            break
    spread: np.ndarray = placed * span
    return spread


def plot_embedding(
    projection: Projection, labels: np.ndarray, predicted: np.ndarray, title: str = ""
) -> Figure:
    """The last hidden layer's activations in 2-D, PCA beside t-SNE, one colour per true class; black
    crosses mark the misclassified digits. The class digits are written at each cluster's median."""
    figure = _figure(12, 5.6, constrained=True)
    panels = figure.subplots(1, 2)
    colors = matplotlib.colormaps[CLASS_COLORS]
    wrong = labels != predicted
    ratio = projection.pca_explained
    for axes, points, name in (
        (panels[0], projection.pca, f"PCA ({100 * ratio[0]:.0f}% + {100 * ratio[1]:.0f}% of the variance)"),
        (panels[1], projection.tsne, "t-SNE (neighbourhoods kept; distances between clusters are not)"),
    ):
        for digit in range(10):
            members = labels == digit
            axes.scatter(
                points[members, 0], points[members, 1], s=4, color=colors(digit), alpha=0.6, label=str(digit)
            )
        axes.scatter(
            points[wrong, 0], points[wrong, 1], s=18, marker="x", color="black", linewidths=0.8,
            label=f"misclassified ({int(wrong.sum())})",
        )  # fmt: skip
        present = [digit for digit in range(10) if (labels == digit).any()]
        centres = np.array([np.median(points[labels == digit], axis=0) for digit in present])
        box = {"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.75}
        for digit, (x, y) in zip(present, _spread_labels(centres, points), strict=True):
            axes.text(x, y, str(digit), fontsize=10, weight="bold", ha="center", va="center",
                      color=colors(digit), bbox=box)  # fmt: skip
        axes.set_title(name, fontsize=9)
        axes.set_xticks([])
        axes.set_yticks([])
    panels[1].legend(fontsize=7, markerscale=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
    figure.suptitle(f"last hidden layer, {len(labels):,} test digits\n{title}", fontsize=9)
    return figure


def plot_saliency(
    pixels: np.ndarray,
    attributions: np.ndarray,
    labels: np.ndarray,
    top_classes: np.ndarray,
    top_probabilities: np.ndarray,
    title: str = "",
) -> Figure:
    """One digit per row: the digit, its input × gradient attribution for the predicted class (red
    pixels raised that class's logit, blue ones lowered it), and the top-3 probabilities."""
    rows = len(pixels)
    figure = _figure(6.4, rows * 1.25 + 0.7, constrained=True)
    axes_grid = figure.subplots(rows, 3, squeeze=False, width_ratios=[1, 1, 1.6])
    for row in range(rows):
        predicted = int(top_classes[row, 0])
        right = predicted == int(labels[row])
        digit_axes, map_axes, bar_axes = axes_grid[row]
        digit_axes.imshow(pixels[row], cmap="gray_r", vmin=0, vmax=255)
        digit_axes.set_ylabel(f"true {int(labels[row])}", fontsize=8, color="black")
        limit = _symmetric(attributions[row])
        map_axes.imshow(attributions[row], cmap=DIVERGING, vmin=-limit, vmax=limit)
        map_axes.contour(pixels[row], levels=[128], colors="grey", linewidths=0.4)
        for axes in (digit_axes, map_axes):
            axes.set_xticks([])
            axes.set_yticks([])
        bar_axes.barh(
            range(3),
            top_probabilities[row],
            color=["tab:green" if right else "tab:red", "tab:grey", "tab:grey"],
        )
        bar_axes.set_yticks(range(3), [str(int(c)) for c in top_classes[row]], fontsize=8)
        bar_axes.invert_yaxis()
        bar_axes.set_xlim(0, 1)
        bar_axes.tick_params(axis="x", labelsize=7)
        for rank in range(3):
            probability = float(top_probabilities[row, rank])
            bar_axes.text(min(probability + 0.02, 0.85), rank, f"{probability:.2f}", va="center", fontsize=7)
        if row == 0:
            digit_axes.set_title("digit", fontsize=8)
            map_axes.set_title("pixel × gradient\nfor the prediction", fontsize=8)
            bar_axes.set_title("top-3 probabilities", fontsize=8)
    figure.suptitle(
        "what drove the decision (maps: red for the predicted class, blue against; bars: the top class "
        f"green when right, red when wrong)\n{title}",
        fontsize=9,
    )
    return figure


def plot_neighbours(
    queries: np.ndarray,
    labels: np.ndarray,
    predicted: np.ndarray,
    neighbours: np.ndarray,
    neighbour_labels: np.ndarray,
    title: str = "",
) -> Figure:
    """Each mistake (first column, ``true → predicted``) beside its nearest training digits in the last
    hidden layer (their training labels above them): the digits the model thinks it looks like."""
    rows, k = neighbour_labels.shape
    figure = _figure((k + 1) * 1.05 + 0.3, rows * 1.15 + 0.7, constrained=True)
    axes_grid = figure.subplots(rows, k + 1, squeeze=False)
    for row in range(rows):
        axes = axes_grid[row, 0]
        axes.imshow(queries[row], cmap="gray_r", vmin=0, vmax=255)
        axes.set_title(f"{int(labels[row])} → {int(predicted[row])}", fontsize=8, color="tab:red")
        for column in range(k):
            axes = axes_grid[row, column + 1]
            axes.imshow(neighbours[row, column], cmap="gray_r", vmin=0, vmax=255)
            axes.set_title(f"train: {int(neighbour_labels[row, column])}", fontsize=7)
    for axes in axes_grid.flat:
        axes.set_xticks([])
        axes.set_yticks([])
    figure.suptitle(
        f"confident mistakes (true → predicted) and their nearest training digits\n{title}", fontsize=9
    )
    return figure


__all__ += [
    "plot_embedding",
    "plot_feature_maps",
    "plot_first_layer",
    "plot_neighbours",
    "plot_saliency",
]


def plot_lr_find(test: RangeTest, title: str = "") -> Figure:
    """The range test's loss against the learning rate (log scale): every step faint, the smoothed curve
    solid, the steep region shaded and the suggested rate marked. The curve ends where the loss blew up."""
    figure = _figure(7.5, 4.8, constrained=True)
    axes = figure.subplots()
    used = test.used
    rates = np.asarray(test.rates[:used])
    axes.plot(rates, test.losses[:used], color="tab:blue", alpha=0.25, linewidth=0.6, label="loss per step")
    axes.plot(rates, test.smoothed[:used], color="tab:blue", linewidth=1.5, label="smoothed")
    low, high = test.suggested_range
    axes.axvspan(low, high, color="tab:green", alpha=0.15, label=f"steepest descent: {low:.2g} – {high:.2g}")
    axes.axvline(
        test.suggested_lr, color="tab:green", linestyle="--", label=f"suggested lr {test.suggested_lr:.2g}"
    )
    axes.axvline(
        test.min_loss_lr, color="tab:red", linestyle=":", label=f"lowest loss at {test.min_loss_lr:.2g}"
    )
    axes.set_xscale("log")
    finite = np.asarray(test.smoothed[:used])
    finite = finite[np.isfinite(finite)]
    if finite.size:
        axes.set_ylim(0, float(finite.max()) * 1.15)
    axes.set_xlabel("learning rate (rising exponentially over one pass)")
    axes.set_ylabel("training loss")
    axes.set_title(f"learning-rate range test\n{title}", fontsize=9)
    axes.grid(alpha=0.3)
    _key_under(figure, axes, columns=3, fontsize=8)  # inside, any corner covered some run's curve
    return figure


__all__ += ["plot_lr_find"]


def plot_diagnostics(history: History, title: str = "") -> Figure:
    """Training health per layer and epoch (``--diagnostics``): gradient norm, update-to-weight ratio
    (the dotted line is the 1e-3 rule of thumb) and the share of dead ReLU units."""
    figure = _figure(13, 4.2, constrained=True)
    panels = figure.subplots(1, 3)
    epochs_health = history.diagnostics or []
    names = [layer.layer for layer in epochs_health[0].layers] if epochs_health else []
    epochs = [health.epoch for health in epochs_health]
    colors = matplotlib.colormaps["tab10"]
    for index, name in enumerate(names):
        layers = [health.layers[index] for health in epochs_health]
        style = {"color": colors(index % 10), "marker": "o", "markersize": 3, "label": name}
        panels[0].plot(epochs, [layer.grad_norm for layer in layers], **style)
        panels[1].plot(epochs, [layer.update_ratio for layer in layers], **style)
        if layers[0].dead_fraction is not None:
            panels[2].plot(epochs, [100 * (layer.dead_fraction or 0.0) for layer in layers], **style)
    panels[1].axhline(1e-3, color="grey", linestyle=":", linewidth=1)
    panels[1].annotate(
        "1e-3: rule of thumb", (0.02, 1e-3), xycoords=("axes fraction", "data"), xytext=(0, 3),
        textcoords="offset points", fontsize=7, color="grey",
    )  # fmt: skip
    for axes, label in zip(
        panels,
        (
            "gradient norm ‖∂L/∂W‖ (mean per step)",
            "update / weight ‖ΔW‖/‖W‖ (mean per step)",
            "dead ReLU units (%), hidden layers",
        ),
        strict=True,
    ):
        axes.set_xlabel("epoch")
        axes.set_title(label, fontsize=9)
        axes.grid(alpha=0.3)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(set(epochs)) == 1:  # one point: matplotlib would span it with 0.945, 0.960, …
            axes.set_xlim(epochs[0] - 1, epochs[0] + 1)
    for axes in panels[:2]:
        axes.set_yscale("log")
        _label_short_log_axis(axes)
    top = panels[2].get_ylim()[1]
    panels[2].set_ylim(-0.05 * max(top, 5.0), max(top, 5.0))  # a layer at 0% stays visible above the axis
    _key_under(figure, panels[0], 4)
    figure.suptitle(f"training health per layer\n{title}", fontsize=9)
    return figure


__all__ += ["plot_diagnostics", "render_figure", "run_figure", "run_figure_stems", "run_figures"]
