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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from digitnet.checkpoint import read_json
from digitnet.data import NUM_CLASSES
from digitnet.plotting import SweepSeries
from digitnet.run import FINISHED
from digitnet.sweep.execution import METRICS, RunRecord
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

    @property
    def at_chance(self) -> int:
        """Seeds that finished no better than guessing: a rate so large the network gave up on the image
        (lr 1 ends at 10% without a NaN) is as much a failure as one that diverged, and must be named."""
        return sum(
            1
            for r in self.runs
            if r.summary.status == "completed" and (r.summary.metric("val_accuracy") or 0.0) < AT_CHANCE
        )

    @property
    def unsteady(self) -> int:
        """Seeds that finished above chance but whose last epoch's training loss was above ln 10, the
        loss of a uniform guess: at lr 1 one seed ends at 28% validation with a loss of 2.68, the steps
        throwing the weights about rather than learning. Its accuracy is luck, not a rate that works."""
        return sum(
            1
            for r in self.runs
            if r.summary.status == "completed"
            and (r.summary.metric("val_accuracy") or 0.0) >= AT_CHANCE
            and (r.summary.metric("train_loss") or 0.0) > UNIFORM_GUESS_LOSS
        )


# Twice what a constant answer scores on ten balanced classes: below it, a run learnt next to nothing.
AT_CHANCE = 0.2
# The cross-entropy of answering 1/10 for every class: a model that has learnt anything does better.
UNIFORM_GUESS_LOSS = math.log(NUM_CLASSES)


# -------------------------------------------------------------------------------------- aggregation


def aggregate(cells: Sequence[Cell], records: Sequence[RunRecord]) -> list[CellResult]:
    """Group runs by cell and compute mean ± std of each metric over the seeds that did not diverge."""
    results = []
    for cell in cells:
        runs = [r for r in records if r.cell == cell]
        finished = [r.summary for r in runs if r.summary.status == "completed"]
        stats = {metric: mean_std([s.metric(metric) for s in finished]) for metric in METRICS}
        stats["best_epoch"] = mean_std([s.metric("best_epoch") for s in finished])
        # a diverged run stopped early: its seconds are those of the epochs it finished, not of a run
        stats["train_seconds"] = mean_std([s.metric("train_seconds") for s in finished])
        stats["train_cpu_seconds"] = mean_std([s.metric("train_cpu_seconds") for s in finished])
        ran = [r.summary for r in runs if r.summary.status in FINISHED]
        stats["parameters"] = mean_std([s.metric("parameters") for s in ran])
        results.append(CellResult(cell, runs, stats))
    return results


CONFIDENCE = 0.95


def welch_interval(a: Stat, b: Stat, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The ``confidence`` interval of ``a.mean - b.mean`` by Welch's t (unequal variances, Welch–
    Satterthwaite degrees of freedom): the interval a student can quote instead of two ± figures.

    Computed from the means, standard deviations and seed counts, so a table of mean ± std is enough
    to check it; scipy.stats gives the t quantile. (NaN, NaN) with fewer than two seeds on a side: one
    run says nothing about the spread between seeds.
    """
    if a.n < 2 or b.n < 2 or math.isnan(a.std) or math.isnan(b.std):
        return math.nan, math.nan
    from scipy import stats

    diff = a.mean - b.mean
    var_a, var_b = a.std**2 / a.n, b.std**2 / b.n
    standard_error = math.sqrt(var_a + var_b)
    if standard_error == 0:  # every seed gave the same number on both sides
        return diff, diff
    dof = (var_a + var_b) ** 2 / (var_a**2 / (a.n - 1) + var_b**2 / (b.n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, dof)) * standard_error
    return diff - half, diff + half


def _bound(points: float, sign: str = "") -> str:
    """An interval's end in points: two decimals, or two significant digits where two decimals would
    round a bound that excludes zero to 0.00 ("+0.00 to +0.41, ahead" reads as a contradiction)."""
    decimals = 2 if points == 0 or abs(points) >= 0.005 else 1 - math.floor(math.log10(abs(points)))
    return f"{points:{sign}.{decimals}f}"


@dataclass(frozen=True)
class Verdict:
    """How far ``ahead`` leads ``behind`` in mean validation accuracy, with its 95% interval, in points."""

    ahead: str
    behind: str
    points: float  # difference of means, ≥ 0
    low: float  # the interval, NaN when untested (one seed)
    high: float
    seeds: tuple[int, int]
    within: str = ""  # what the comparison holds fixed: a model in a grid, a row or column of --by

    @property
    def tested(self) -> bool:
        return not math.isnan(self.low)

    @property
    def clear(self) -> bool:
        """The interval excludes zero: with these seeds, ``ahead`` really is ahead."""
        return self.tested and self.low > 0

    @property
    def _shown(self) -> tuple[float, float, str]:
        """The interval's ends as printed. Two seeds' t of 12.7 can stretch it past ±100 points, further
        than two accuracies can differ: it is cut there, and says so."""
        low, high = max(self.low, -100.0), min(self.high, 100.0)
        cut = (
            " (cut at ±100, the most two accuracies can differ)"
            if (low, high) != (self.low, self.high)
            else ""
        )
        return low, high, cut

    @property
    def interval(self) -> str:
        if not self.tested:
            return "—"
        low, high, cut = self._shown
        return f"{_bound(low, '+')} to {_bound(high, '+')}{cut}"

    def sentence(self) -> str:
        """One plain sentence, the same everywhere a verdict is printed."""
        seeds = _seeds_text(self.seeds, (self.ahead, self.behind))
        if round(self.points, 2) == 0 and not self.clear:
            spread = f" (95% interval of the difference {self.interval})" if self.tested else ""
            apart = f"means {points_text(self.points)} points apart" if self.points else "the same mean"
            return f"{self.ahead} and {self.behind} have {apart}{spread}: a tie"
        if not self.tested:
            return (
                f"{self.ahead} is {self.points:.2f} points ahead of {self.behind}, but with {seeds} the "
                "spread between seeds is unknown, so the difference is not tested"
            )
        if self.clear:
            low, high, cut = self._shown
            return (
                f"{self.ahead} is ahead of {self.behind} by {_bound(low)} to {_bound(high)} points{cut} "
                f"(95% interval, Welch, {seeds})"
            )
        few = (
            "; with two seeds, each value's spread rests on a single difference between two runs, so the "
            "interval is very wide: more seeds, e.g. --seeds 5, narrow it"
            if min(self.seeds) == 2
            else ""
        )
        return (
            f"{self.ahead} and {self.behind} cannot be told apart with {seeds}: the difference of "
            f"{self.points:.2f} points has a 95% interval of {self.interval}, which includes zero{few}"
        )


def points_text(points: float) -> str:
    """A difference of means in points, to the hundredth; one under half a hundredth keeps its first
    digit ("0.003"), since "0.00" beside means printed as 97.72 and 97.71 read as a contradiction."""
    return f"{points:.2f}" if points >= 0.005 or points == 0 else f"{points:.1g}"


def _seeds_text(seeds: tuple[int, int], names: tuple[str, str]) -> str:
    """How many seeds each side has, named where they differ (a diverged seed is left out of a mean):
    "2 and 3 seeds" left a student to guess which had which."""
    ahead, behind = seeds
    if max(seeds) == 1:
        return "one seed each"
    return f"{ahead} seeds" if ahead == behind else f"{ahead} seeds of {names[0]}, {behind} of {names[1]}"


def verdict(ahead: CellResult, behind: CellResult, metric: str = "val_accuracy") -> Verdict:
    """The verdict of ``ahead`` over ``behind`` on ``metric`` (in points: accuracies × 100)."""
    a, b = ahead.stats[metric], behind.stats[metric]
    low, high = welch_interval(a, b)
    return Verdict(
        ahead.cell.label, behind.cell.label, 100 * (a.mean - b.mean), 100 * low, 100 * high, (a.n, b.n)
    )


def _ranked(cells: Sequence[CellResult]) -> list[CellResult]:
    """Cells that finished, best mean validation accuracy first: never ranked on the test set, which
    is kept for the final report of a choice already made."""
    return sorted(
        (c for c in cells if c.stats["val_accuracy"].n > 0), key=lambda c: -c.stats["val_accuracy"].mean
    )


def _aside(label: str, aside: str) -> str:
    """``label (aside)``; a label that ends in brackets of its own takes the aside inside them: "adam (lr
    0.001; validation …)", not "adam (lr 0.001) (validation …)"."""
    return f"{label[:-1]}; {aside})" if label.endswith(")") else f"{label} ({aside})"


def describe_result(spec: SweepSpec, cells: Sequence[CellResult]) -> str:
    """One or two sentences: the best cell by mean *validation* accuracy, and whether the 95% interval
    of its lead over the runner-up (Welch) excludes zero."""
    ranked = _ranked(cells)
    name = spec.factor if spec.factor != "variants" else "variant"
    if spec.by:
        name = f"{spec.factor} × {spec.by}"
    elif spec.models:  # its cells are "bn / momentum": a model and a value, not a value alone
        name = f"model / {name}"
    # a grid's labels say what they are ("lr 0.1 / optimizer adam", "bn / sgd"); a value alone needs its
    # factor's name ("lr 1")
    prefix = "" if spec.by or spec.models else f"{name} "

    def named(count: Callable[[CellResult], int]) -> str:
        """Each cell where ``count`` is not 0, as "lr 1 (1 of 3 seeds)", joined by commas."""
        return ", ".join(
            prefix
            + _aside(c.cell.label, f"{count(c)} of {len(c.runs)} seed{'s' if len(c.runs) != 1 else ''}")
            for c in cells
            if count(c)
        )

    diverged, failed = named(lambda c: c.diverged), named(lambda c: c.failed)
    chance, unsteady = named(lambda c: c.at_chance), named(lambda c: c.unsteady)
    tail = f" Diverged: {diverged}." if diverged else ""
    if chance:
        tail += (
            f" Near chance at the end (validation below {100 * AT_CHANCE:.0f}%; a constant answer scores "
            f"10%): {chance}."
        )
    if unsteady:
        tail += (
            f" Unsteady (the last epoch's training loss above {UNIFORM_GUESS_LOSS:.2f}, a uniform guess's: "
            f"its accuracy is luck, not learning): {unsteady}."
        )
    if failed:
        tail += f" Failed to train (a rerun retries them): {failed}."
    if not ranked:
        return f"No {name} finished training.{tail}"
    best = ranked[0]
    validation = f"validation {best.stats['val_accuracy'].text()}%"
    text = f"Best {name}: {_aside(best.cell.label, validation)}."
    tail = edge_of_grid(spec, cells, best) + tail
    if len(cells) == 1:  # nothing to compare with: no "best"
        accuracy = best.stats["val_accuracy"].text()
        return f"One {name} only, {best.cell.label}: validation {accuracy}%.{tail}"
    if len(ranked) == 1:
        return text + tail
    return f"{text} Against the runner-up: {verdict(best, ranked[1]).sentence()}.{tail}"


def verdicts(spec: SweepSpec, cells: Sequence[CellResult]) -> list[Verdict]:
    """For each comparison the sweep makes, the best cell against every other one.

    A plain sweep is one comparison; a grid (``--models``) compares the values within each model; a
    two-factor grid (``--by``) compares within each row *and* within each column, which is what takes a
    confound apart: the effect of one factor with the other held fixed.
    """
    groups: dict[str, list[CellResult]] = {}
    for result in cells:  # rows first (a model, or a value of --by) ...
        groups.setdefault(result.cell.group, []).append(result)
    if spec.by:  # ... then the columns: each value of the first factor
        for result in cells:
            groups.setdefault(f"{spec.factor} {result.cell.value}", []).append(result)
    found = []
    for within, members in groups.items():
        ranked = _ranked(members)
        found += [replace(verdict(ranked[0], other), within=within) for other in ranked[1:]]
    return found


def verdicts_markdown(found: Sequence[Verdict]) -> str:
    """The verdicts as a table: difference of means, its 95% interval, and the sentence."""
    grouped = any(v.within for v in found)
    # by mean, not "ahead"/"behind": on a row that cannot tell them apart, neither is ahead
    header = ["higher mean", "lower mean", "difference (points)", "95% interval", "verdict"]
    if grouped:
        header.insert(0, "holding fixed")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for v in found:
        word = "ahead" if v.clear else ("not tested" if not v.tested else "cannot tell apart")
        cells = [v.ahead, v.behind, points_text(v.points), v.interval, word]
        lines.append("| " + " | ".join(([v.within] if grouped else []) + cells) + " |")
    scope = "in each comparison, " if grouped else ""
    return (
        f"Validation accuracy: {scope}the best setting against each of the others. The interval is Welch's "
        '95% interval of the difference (it allows unequal spreads); "ahead" means it excludes zero.\n\n'
        + "\n".join(lines)
        + "\n"
    )


def verdicts_csv(found: Sequence[Verdict]) -> str:
    """The verdicts, machine-readable (points; empty interval when untested)."""

    def number(value: float) -> str:
        return "" if math.isnan(value) else f"{value:.4f}"

    rows = [
        [v.within, v.ahead, v.behind, f"{v.points:.4f}", number(v.low), number(v.high), *v.seeds, v.clear]
        for v in found
    ]
    header = ["within", "ahead", "behind", "points", "low", "high", "seeds_ahead", "seeds_behind", "clear"]
    return _csv_text(header, rows)


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


def time_metric(cells: Sequence[CellResult]) -> str:
    """Which time a table and its figure show: the CPU time, where every finished run recorded one (one
    thread each, on the CPU, as ``compare`` and the report train them), else the clock's.

    A run's clock time counts the moments another program held its core: in the report, the figures
    drawn beside the workers made the first learning rates' runs take half as long again as the later
    ones, which computed exactly as much. Their CPU times do not differ; a column that mixed the two
    kinds would compare unlike things, so one run without a CPU time puts the whole table on the clock."""
    every = all(c.stats["train_cpu_seconds"].n == c.stats["train_seconds"].n for c in cells)
    return "train_cpu_seconds" if every else "train_seconds"


TIME_NOTE = (
    "CPU time is the training's, which unlike a clock's leaves out the moments another program held "
    "the run's core, so runs trained beside different work compare fairly"
)


CLOCK_NOTE = (
    "time is the clock's: a run on more than one thread has no CPU time (its threads' waiting for each "
    "other would count as cost), nor has one on a GPU or from before digitnet recorded it; a clock also "
    "counts the moments other programs held the cores"
)


def time_heading(cells: Sequence[CellResult]) -> str:
    """The time column's heading as shown: it says when the seconds are CPU time."""
    return "CPU time (s)" if time_metric(cells) == "train_cpu_seconds" else "time (s)"


def results_table_rows(cells: Sequence[CellResult]) -> list[dict[str, str]]:
    """The rows of ``results.csv``/``results.md``: mean ± std per metric, as text. Times (see
    [time_metric][digitnet.sweep.aggregate.time_metric]) take a tenth of a second, or a hundredth where no
    cell's runs took a second (one epoch of the sample read "0.0 ± 0.0")."""
    rows = []
    seconds = time_metric(cells)
    time_digits = 1 if any(c.stats[seconds].mean >= 1 for c in cells) else 2
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
                "time (s)": s[seconds].text(1, time_digits),
            }
        )
    return rows


def _best_epochs(result: CellResult) -> str:
    """Each finished seed's best epoch, ``"9, 10, 8"``: whole epochs a student can look up in the
    curves, where a mean of epochs (9.0 ± 1.0) would name an epoch that does not exist. Commas, not
    slashes: ``2 / 6`` read as "epoch 2 of 6"."""
    epochs = [r.summary.best_epoch for r in result.runs if r.summary.status == "completed"]
    return ", ".join(str(e) for e in epochs if e is not None) or "—"


# What two columns mean, said under any table that shows them: both puzzled a student.
COLUMN_NOTES = {
    "train acc (%)": "train acc is the running accuracy over the last epoch's batches, taken while the "
    "weights still changed (and with dropout on, in a model that has it), so it can sit below validation",
    "best epoch": "best epoch is each seed's epoch of highest validation accuracy, seed by seed",
}


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
    for metric in (*METRICS, "best_epoch", "train_seconds", "train_cpu_seconds"):
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
        for metric in (*METRICS, "best_epoch", "train_seconds", "train_cpu_seconds"):
            stat = result.stats[metric]
            row += [f"{stat.mean:.6g}", f"{stat.std:.6g}"]
        rows.append(row)
    return _csv_text(header, rows)


def over_seeds(seeds: int, cells: Sequence[CellResult] = (), factor: str = "") -> str:
    """What a table's numbers are: "mean ± standard deviation over 3 seeds", or, for one seed, that
    there is no spread to show (a "± std over 1 seed" would promise one). A row whose mean leaves out
    a diverged or failed seed is named ("over 2 for lr 1"): "over 3 seeds" would claim three numbers
    behind it. A bare value is named with its ``factor``; a grid's label already says what it is."""

    def row(cell: Cell) -> str:
        bare = factor and factor != "variants" and cell.label == cell.value
        return f"{factor} {cell.label}" if bare else cell.label

    left_out = [
        f"over {len(c.runs) - c.diverged - c.failed} for {row(c.cell)}"
        for c in cells
        if c.diverged + c.failed and len(c.runs) > c.diverged + c.failed
    ]
    only = f" ({', '.join(left_out)}: a diverged or failed seed is left out)" if left_out else ""
    if seeds == 1:
        return "one seed each, so no standard deviation (--seeds 2 or more gives mean ± std)"
    return f"mean ± standard deviation over {seeds} seeds{only}"


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
    what = over_seeds(spec.seeds, cells, spec.factor)  # capitalize() would lower a label's capitals too
    header = list(rows[0]) if rows else ["value"]
    if columns:
        header = [c for c in columns if c in header]
    shown = [time_heading(cells) if h == "time (s)" else h for h in header]
    lines = ["| " + " | ".join(shown) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row[h] for h in header) + " |" for row in rows]
    link = f" Every column: [{Path(everything).name}]({everything})." if everything else ""
    notes = "; ".join(
        [note for column, note in COLUMN_NOTES.items() if column in header]
        + [TIME_NOTE] * ("CPU time (s)" in shown)
        + [CLOCK_NOTE] * ("time (s)" in shown)
    )
    notes = f" {notes[0].upper()}{notes[1:]}." if notes else ""
    return (
        (f"Data: {data}.\n\n" if data else "")
        + f"{what[0].upper()}{what[1:]}; accuracies in percent, final epoch.{notes}{link}\n\n"
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
            number(record.summary.metric("train_cpu_seconds"), ".3f"),
        ]
        for record in records
    ]
    header = ["value", "seed", "key", "dataset", "status", *METRICS, "train_seconds", "train_cpu_seconds"]
    return _csv_text(header, rows)


def sweep_series(result: CellResult, seconds: str = "train_seconds") -> SweepSeries:
    """What the sweep figures need of a cell: per-seed epoch curves (from each ``history.json``) and
    the final statistics; ``seconds`` is the sweep's [time_metric][digitnet.sweep.aggregate.time_metric]."""
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
        seconds=(result.stats[seconds].mean, result.stats[seconds].std),
        diverged=result.diverged,
        seeds=len(result.runs),
        cpu_time=seconds == "train_cpu_seconds",
    )
