"""From runs to results: mean ± std per cell, the summary sentence, and the tables (Markdown and CSV).

```pycon
>>> mean_std([0.97, 0.98, 0.99]).text()
'98.00 ± 1.00'

```
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from digitnet.checkpoint import read_json
from digitnet.plotting import SweepSeries
from digitnet.sweep.execution import FINISHED, METRICS, RunRecord
from digitnet.sweep.plan import Cell, SweepSpec


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation (ddof=1; NaN with one value) over the finished seeds."""

    mean: float
    std: float
    n: int

    def text(self, scale: float = 100.0, digits: int = 2) -> str:
        if self.n == 0 or math.isnan(self.mean):
            return "—"
        if self.n == 1 or math.isnan(self.std):
            return f"{self.mean * scale:.{digits}f}"
        return f"{self.mean * scale:.{digits}f} ± {self.std * scale:.{digits}f}"


def mean_std(values: Sequence[float | None]) -> Stat:
    """Mean ± sample standard deviation of ``values`` (the spread between seeds); None is left out."""
    array = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if array.size == 0:
        return Stat(math.nan, math.nan, 0)
    std = float(array.std(ddof=1)) if array.size > 1 else math.nan
    return Stat(float(array.mean()), std, int(array.size))


@dataclass
class CellResult:
    """A cell's runs and their statistics."""

    cell: Cell
    runs: list[RunRecord]
    stats: dict[str, Stat] = field(default_factory=dict)

    @property
    def diverged(self) -> int:
        return sum(1 for r in self.runs if r.summary.status == "diverged")

    @property
    def failed(self) -> int:
        return sum(1 for r in self.runs if r.summary.status == "failed")


# -------------------------------------------------------------------------------------- aggregation


def aggregate(cells: Sequence[Cell], records: Sequence[RunRecord]) -> list[CellResult]:
    """Group runs by cell and compute mean ± std of each metric over the seeds that did not diverge."""
    results = []
    for cell in cells:
        runs = [r for r in records if r.cell == cell]
        finished = [r.summary for r in runs if r.summary.status == "completed"]
        stats = {metric: mean_std([s.metric(metric) for s in finished]) for metric in METRICS}
        stats["best_epoch"] = mean_std([s.metric("best_epoch") for s in finished])
        ran = [r.summary for r in runs if r.summary.status in FINISHED]
        stats["train_seconds"] = mean_std([s.metric("train_seconds") for s in ran])
        stats["parameters"] = mean_std([s.metric("parameters") for s in ran])
        results.append(CellResult(cell, runs, stats))
    return results


def describe_result(spec: SweepSpec, cells: Sequence[CellResult]) -> str:
    """One or two sentences: the best cell by mean *validation* accuracy, and whether its lead over the
    runner-up is larger than the seed-to-seed spread (|Δ| > 2 × the standard error of the difference)."""
    ranked = sorted(
        (c for c in cells if c.stats["val_accuracy"].n > 0), key=lambda c: -c.stats["val_accuracy"].mean
    )
    name = spec.factor if spec.factor != "variants" else "variant"
    diverged = [c.cell.label for c in cells if c.diverged]
    failed = [c.cell.label for c in cells if c.failed]
    tail = f" Diverged: {', '.join(diverged)}." if diverged else ""
    if failed:
        tail += f" Failed to train (a rerun retries them): {', '.join(failed)}."
    if not ranked:
        return f"No {name} finished training.{tail}"
    best = ranked[0]
    text = f"Best {name}: {best.cell.label} (validation {best.stats['val_accuracy'].text()}%)."
    tail = edge_of_grid(spec, cells, best) + tail
    if len(ranked) == 1:
        return text + tail
    second = ranked[1]
    a, b = best.stats["val_accuracy"], second.stats["val_accuracy"]
    gap = 100 * (a.mean - b.mean)
    if round(gap, 2) == 0:
        verdict = f"{second.cell.label} has the same mean validation accuracy: the two are tied"
    elif a.n < 2 or b.n < 2:
        verdict = "with one seed per value the spread between seeds is unknown, so this ranking is not tested"
    else:
        standard_error = math.sqrt(a.std**2 / a.n + b.std**2 / b.n)
        if gap / 100 > 2 * standard_error:
            verdict = f"its lead of {gap:.2f} points over {second.cell.label} exceeds the seed-to-seed spread"
        else:
            verdict = (
                f"its lead of {gap:.2f} points over {second.cell.label} is within the seed-to-seed "
                "spread: the two are not distinguishable with these seeds"
            )
    return f"{text} {verdict[0].upper()}{verdict[1:]}.{tail}"


def edge_of_grid(spec: SweepSpec, cells: Sequence[CellResult], best: CellResult) -> str:
    """A warning sentence when the best value of a numeric factor is the smallest or largest tried (in
    its model group): the best may lie beyond the grid, so the grid should be extended. Else ""."""
    try:
        tried = sorted(
            {float(c.cell.value) for c in cells if c.cell.group == best.cell.group and c.cell.value != ""}
        )
        value = float(best.cell.value)
    except ValueError:  # optimizer names, models, variants: no order, no edge
        return ""
    if len(tried) < 3 or spec.factor == "variants":
        return ""
    if value == tried[-1]:
        side, beyond = "largest", "larger"
    elif value == tried[0] and value > 0:  # nothing lies below 0 (no dropout)
        side, beyond = "smallest", "smaller"
    else:
        return ""
    return (
        f" {best.cell.value} is at the edge of the grid (the {side} value tried): the best {spec.factor} "
        f"may lie beyond it, so extend the grid with {beyond} values before concluding."
    )


def results_table_rows(cells: Sequence[CellResult]) -> list[dict[str, str]]:
    """The rows of ``results.csv``/``results.md``: mean ± std per metric, as text."""
    rows = []
    for result in cells:
        s = result.stats
        rows.append(
            {
                "value": result.cell.label,
                "parameters": f"{s['parameters'].mean:,.0f}" if s["parameters"].n else "—",
                "seeds": str(len(result.runs)),
                "diverged": str(result.diverged),
                **({"failed": str(result.failed)} if any(c.failed for c in cells) else {}),
                "train acc (%)": s["train_accuracy"].text(),
                "val acc (%)": s["val_accuracy"].text(),
                "test acc (%)": s["test_accuracy"].text(),
                "train loss": s["train_loss"].text(1, 4),
                "val loss": s["val_loss"].text(1, 4),
                "test loss": s["test_loss"].text(1, 4),
                "best epoch": _best_epochs(result),
                "time (s)": s["train_seconds"].text(1, 1),
            }
        )
    return rows


def _best_epochs(result: CellResult) -> str:
    """Each finished seed's best epoch, ``"9 / 10 / 8"``: whole epochs a student can look up in the
    curves, where a mean of epochs (9.0 ± 1.0) would name an epoch that does not exist."""
    epochs = [r.summary.best_epoch for r in result.runs if r.summary.status == "completed"]
    return " / ".join(str(e) for e in epochs if e is not None) or "—"


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A CSV table as text, quoted by the ``csv`` module (labels like ``100,50`` contain commas)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def results_csv(cells: Sequence[CellResult]) -> str:
    """Machine-readable results: one row per cell, mean and std columns per metric."""
    header = ["value", "group", "dataset", "seeds", "diverged", "failed"]
    for metric in (*METRICS, "best_epoch", "train_seconds"):
        header += [f"{metric}_mean", f"{metric}_std"]
    rows = []
    for result in cells:
        row: list[object] = [
            result.cell.label,
            result.cell.group,
            next((r.summary.dataset for r in result.runs if r.summary.dataset), ""),
            len(result.runs),
            result.diverged,
            result.failed,
        ]
        for metric in (*METRICS, "best_epoch", "train_seconds"):
            stat = result.stats[metric]
            row += [f"{stat.mean:.6g}", f"{stat.std:.6g}"]
        rows.append(row)
    return _csv_text(header, rows)


def results_markdown(
    spec: SweepSpec,
    cells: Sequence[CellResult],
    summary: str,
    data: str = "",
    columns: Sequence[str] = (),
    everything: str = "",
) -> str:
    """A markdown table (mean ± std over seeds) and the generated summary sentence, under a line naming
    the data (which source, how many digits in each part). ``columns`` picks the columns a page discusses
    (default: all of them); ``everything`` links to the table that has them all."""
    rows = results_table_rows(cells)
    header = list(rows[0]) if rows else ["value"]
    if columns:
        header = [c for c in columns if c in header]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row[h] for h in header) + " |" for row in rows]
    seeds = f"{spec.seeds} seed{'s' if spec.seeds != 1 else ''}"
    link = f" Every column: [{Path(everything).name}]({everything})." if everything else ""
    return (
        (f"Data: {data}.\n\n" if data else "")
        + f"Mean ± standard deviation over {seeds}; accuracies in percent, final epoch.{link}\n\n"
        + "\n".join(lines)
        + f"\n\n{summary}\n"
    )


def runs_csv(records: Sequence[RunRecord]) -> str:
    """One row per run: which cell and seed, its key (its directory under runs/), the data it trained on,
    status and metrics.
    A metric a run does not have (a diverged run's loss) is an empty cell."""

    def number(value: object, spec: str) -> str:
        return f"{value:{spec}}" if isinstance(value, int | float) and math.isfinite(value) else ""

    rows = [
        [
            record.cell.label,
            record.seed,
            record.key,
            record.summary.dataset or "",
            record.summary.status,
            *(number(record.summary.metric(m), ".6g") for m in METRICS),
            number(record.summary.metric("train_seconds"), ".3f"),
        ]
        for record in records
    ]
    return _csv_text(["value", "seed", "key", "dataset", "status", *METRICS, "train_seconds"], rows)


def sweep_series(result: CellResult) -> SweepSeries:
    """What the sweep figures need of a cell: per-seed epoch curves (from each ``history.json``) and
    the final statistics."""
    curves: dict[str, list[list[float]]] = {"val_loss": [], "val_accuracy": [], "train_loss": []}
    for record in result.runs:
        if record.summary.status not in FINISHED:  # a failed run has no history on disk
            continue
        epochs = read_json(record.run_dir / "history.json")["epochs"]
        for name, runs in curves.items():
            runs.append([float(e[name]) for e in epochs])
    return SweepSeries(
        label=result.cell.label,
        value=result.cell.value,
        group=result.cell.group,
        curves=curves,
        final={m: (result.stats[m].mean, result.stats[m].std) for m in ("val_accuracy", "test_accuracy")},
        seconds=(result.stats["train_seconds"].mean, result.stats["train_seconds"].std),
        diverged=result.diverged,
        seeds=len(result.runs),
    )
