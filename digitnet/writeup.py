"""The student's own lab report: run and sweep directories in, ``report.md``, ``report.html`` and
``report.pdf`` out.

A lab report has two kinds of text: what the experiments measured, and what the student makes of it.
This module writes only the first kind, from the files ``digitnet train`` and ``digitnet compare``
left behind: the setup (data and split sizes, model and parameter count, optimizer, epochs, batch size,
seeds, library versions, each read from the runs' ``config.json`` and ``summary.json``), the figures,
the results as mean ± std with 95% intervals, the sweep's own generated verdicts
([Verdict.sentence][digitnet.sweep.aggregate.Verdict.sentence], rebuilt from ``verdicts.csv``) and the
warnings its numbers call for. Every place that needs the second kind is a marked
"**Your interpretation:**" box: the report never says what an effect *means*, because the numbers
alone cannot.

``report.md`` links the figures copied into ``figures/`` beside it, so a student can edit it and keep
the images; ``report.html`` embeds them as data URIs, so the one file can be uploaded or mailed and still
shows every figure; ``report.pdf`` is that HTML printed by headless Chromium, when it is installed.

```python
result = write_report([Path("sweeps/lr"), Path("runs/adam")], Path("lab-report"))
print(result.files, result.pdf_note)
```
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import math
import mimetypes
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from digitnet.checkpoint import read_json
from digitnet.configs import AT_OWN_RATE
from digitnet.errors import CheckpointError, ConfigError
from digitnet.run import RunSummary
from digitnet.runtime import atomic_directory, atomic_write_text, mark_output, output_marker
from digitnet.settings import RunConfig, run_config_from_dict
from digitnet.sweep.aggregate import CONFIDENCE, Stat, Verdict, verdicts_markdown

# The box a student fills in; tests and teachers can count them.
INTERPRETATION = "**Your interpretation:**"


@dataclass(frozen=True)
class WriteupConfig:
    """How the report is written (what goes in it comes from the directories)."""

    title: str = "Lab report"
    pdf: bool = True  # print report.pdf with headless Chromium when one is installed
    pdf_timeout: float = 120.0  # seconds Chromium may take to print before the PDF is given up


@dataclass(frozen=True)
class ReportFigure:
    """A figure a command drew, and a caption saying what it plots (never what it means)."""

    path: Path
    caption: str


@dataclass(frozen=True)
class RunSource:
    """A run directory written by ``digitnet train`` (or one run of a sweep)."""

    path: Path
    config: RunConfig
    summary: RunSummary
    environment: dict[str, Any]
    figures: tuple[ReportFigure, ...] = ()


@dataclass(frozen=True)
class CellRow:
    """One row of a sweep's ``results.csv``: a value (or grid cell) and its statistics over seeds."""

    label: str
    runs: int
    diverged: int
    failed: int
    stats: dict[str, Stat]
    parameters: int | None


@dataclass(frozen=True)
class SweepSource:
    """A sweep directory written by ``digitnet compare``."""

    path: Path
    data: str  # the "Data: ..." line of results.md
    summary: str  # the generated summary sentence(s) of results.md
    cells: tuple[CellRow, ...]
    verdicts: tuple[Verdict, ...]
    runs: tuple[RunSource, ...]  # the run directories found under runs/ (for the setup)
    seeds: tuple[int, ...]
    statuses: dict[str, int]  # runs per status ("completed", "diverged", ...), from runs.csv
    datasets: tuple[str, ...]  # the data each run trained on ("sample", "mnist", ...), from runs.csv
    missing_runs: int  # runs listed in runs.csv whose directory is not under runs/
    figures: tuple[ReportFigure, ...] = ()


Source = RunSource | SweepSource


@dataclass
class WriteupResult:
    out_dir: Path
    files: list[Path]
    pdf: Path | None
    pdf_note: str | None  # why there is no PDF, and how to get one
    interpretation_boxes: int = 0
    sources: list[Source] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ reading


def _run_figures(path: Path) -> tuple[ReportFigure, ...]:
    """The figures ``digitnet train`` (and ``digitnet evaluate``, when it was run) drew for a run."""
    candidates = [
        (
            path / "accuracy.png",
            "Train accuracy (mean over each epoch's batches, drawn mid-epoch) and validation accuracy "
            "(measured at the end of each epoch), in percent.",
        ),
        (
            path / "loss.png",
            "Training loss per iteration (faint), its moving average, and train and validation loss per "
            "epoch.",
        ),
        (
            path / "diagnostics.png",
            "Training health per layer and epoch, from '--diagnostics': gradient norm, update-to-weight "
            "ratio per step, and the fraction of ReLUs that gave zero for every digit of the epoch.",
        ),
        (
            path / "evaluation" / "confusion_matrix.png",
            "Confusion matrix on the test set, from 'digitnet evaluate': true digit (rows) × predicted "
            "digit (columns), in counts.",
        ),
        (
            path / "evaluation" / "misclassified.png",
            "Misclassified test digits, from 'digitnet evaluate', spread over the true classes; caption: "
            "true → predicted (the model's probability for its prediction).",
        ),
    ]
    return tuple(ReportFigure(p, caption) for p, caption in candidates if p.is_file())


def read_run(path: Path) -> RunSource:
    """A run directory's config, environment, summary and figures, each checked as it is read."""
    saved = read_json(path / "config.json")
    if not isinstance(saved, dict) or "config" not in saved:
        raise CheckpointError(f"{path / 'config.json'}: not a run's config (no 'config' entry)")
    config = run_config_from_dict(saved["config"], where=str(path / "config.json"))
    environment = saved.get("environment")
    summary = RunSummary.from_dict(read_json(path / "summary.json"), where=str(path / "summary.json"))
    return RunSource(
        path, config, summary, environment if isinstance(environment, dict) else {}, _run_figures(path)
    )


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise CheckpointError(f"{path}: not a CSV table ({error})") from None


def _number(row: dict[str, str], column: str, where: Path) -> float:
    try:
        return float(row[column])
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{where}: column {column!r} is missing or not a number") from None


def _whole(row: dict[str, str], column: str, where: Path) -> int:
    value = _number(row, column, where)
    if not value.is_integer():
        raise CheckpointError(f"{where}: column {column!r} should be a whole number, got {row[column]!r}")
    return int(value)


# How compare's curves show the seeds: a value trained for one epoch is a single point, whose spread a
# band one point wide could not show (see plot_sweep)
SPREAD = "mean over seeds (line) ± std (band); a value of one epoch is a ring, its ± std an error bar"


def _sweep_figures(path: Path) -> tuple[ReportFigure, ...]:
    """The figures ``digitnet compare`` drew, in the order a reader needs them."""
    candidates = [
        (
            "heatmap.png",
            "Mean validation accuracy (%) of every cell of the two-factor grid, with the standard deviation "
            "over seeds: along a row only the first factor changes, along a column only the second.",
        ),
        (
            "final.png",
            "Final validation and test accuracy (mean ± std over seeds) and training time per run, for "
            "each value tried.",
        ),
        *(
            (f"{metric}.png", f"{what} per epoch: {SPREAD}.")
            for metric, what in (
                ("val_accuracy", "Validation accuracy"),
                ("val_loss", "Validation loss"),
                ("train_loss", "Training loss"),
            )
        ),
    ]
    return tuple(
        ReportFigure(path / name, caption) for name, caption in candidates if (path / name).is_file()
    )


def _results_md_parts(path: Path) -> tuple[str, str]:
    """The data line and the generated summary (the last paragraph) of a sweep's ``results.md``."""
    try:
        text = (path / "results.md").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CheckpointError(f"{path / 'results.md'}: missing") from None
    except UnicodeDecodeError as error:
        raise CheckpointError(f"{path / 'results.md'}: not text ({error})") from None
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    data = next((p[len("Data: ") :].rstrip(".") for p in paragraphs if p.startswith("Data: ")), "")
    summary = paragraphs[-1] if paragraphs and not paragraphs[-1].startswith("|") else ""
    return data, summary


def read_sweep(path: Path) -> SweepSource:
    """A sweep directory's tables (``results.csv``, ``runs.csv``, ``verdicts.csv``, ``results.md``),
    the run directories under ``runs/`` for the setup, and its figures."""
    results_path, runs_path, verdicts_path = path / "results.csv", path / "runs.csv", path / "verdicts.csv"
    if not results_path.is_file():  # the tables are written once every run has finished
        raise CheckpointError(
            f"{path}: this sweep has no results.csv yet (was it stopped?); the same 'digitnet compare' "
            "command finishes it"
        )
    run_rows = _read_csv(runs_path)
    completed: dict[str, int] = {}
    statuses: dict[str, int] = {}
    for row in run_rows:
        statuses[row.get("status", "")] = statuses.get(row.get("status", ""), 0) + 1
        if row.get("status") == "completed":
            completed[row.get("value", "")] = completed.get(row.get("value", ""), 0) + 1
    runs: list[RunSource] = []
    parameters: dict[str, int] = {}
    missing = 0
    for row in run_rows:
        run_dir = path / "runs" / row.get("key", "")
        if not row.get("key") or not (run_dir / "summary.json").is_file():
            missing += row.get("status") != "failed"  # a failed run never has a directory
            continue
        run = read_run(run_dir)
        runs.append(run)
        if run.summary.parameters is not None:
            parameters.setdefault(row.get("value", ""), run.summary.parameters)
    cells = []
    for row in _read_csv(results_path):
        label = row.get("value", "")
        n = completed.get(label, 0)
        stats = {
            metric: Stat(
                _number(row, f"{metric}_mean", results_path), _number(row, f"{metric}_std", results_path), n
            )
            for metric in ("train_accuracy", "val_accuracy", "test_accuracy", "train_loss", "val_loss")
        }
        cells.append(
            CellRow(
                label,
                _whole(row, "seeds", results_path),
                _whole(row, "diverged", results_path),
                _whole(row, "failed", results_path),
                stats,
                parameters.get(label),
            )
        )
    found = []
    for row in _read_csv(verdicts_path) if verdicts_path.is_file() else []:
        low = row.get("low", "")
        high = row.get("high", "")
        found.append(
            Verdict(
                row.get("ahead", ""),
                row.get("behind", ""),
                _number(row, "points", verdicts_path),
                float(low) if low else math.nan,
                float(high) if high else math.nan,
                (_whole(row, "seeds_ahead", verdicts_path), _whole(row, "seeds_behind", verdicts_path)),
                row.get("within", ""),  # what the comparison held fixed (a grid's row or column)
            )
        )
    data, summary = _results_md_parts(path)
    seeds = tuple(sorted({int(r["seed"]) for r in run_rows if r.get("seed", "").isdigit()}))
    return SweepSource(
        path,
        data,
        summary,
        tuple(cells),
        tuple(found),
        tuple(runs),
        seeds,
        statuses,
        tuple(dict.fromkeys(r.get("dataset", "") for r in run_rows)),
        missing,
        _sweep_figures(path),
    )


def read_source(path: Path) -> Source:
    """A run or sweep directory, recognised by the marker digitnet leaves in each directory it writes."""
    if not path.exists():
        raise ConfigError(f"{path}: no such directory")
    if not path.is_dir():
        raise ConfigError(f"{path}: a file, not a directory; give a run or sweep directory")
    marker = output_marker(path)
    kind = marker["kind"] if marker else None
    if kind == "run":
        return read_run(path)
    if kind == "sweep":
        return read_sweep(path)
    if kind == "evaluation":
        raise ConfigError(f"{path}: an evaluation directory; give the run directory it belongs to")
    what = f"a digitnet {kind} directory" if kind else "not written by digitnet"
    raise ConfigError(
        f"{path}: {what}; writeup takes run directories ('digitnet train') and sweep directories "
        "('digitnet compare')"
    )


# ----------------------------------------------------------------------------------------- the setup


def mean_interval(stat: Stat, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The ``confidence`` interval of the mean (Student's t, n − 1 degrees of freedom) from mean, sample
    std and count; (NaN, NaN) below two values, where the spread between seeds is unknown."""
    if stat.n < 2 or math.isnan(stat.std):
        return math.nan, math.nan
    from scipy import stats

    half = float(stats.t.ppf(0.5 + confidence / 2, stat.n - 1)) * stat.std / math.sqrt(stat.n)
    return stat.mean - half, stat.mean + half


def _interval_text(stat: Stat) -> str:
    """The interval of a mean accuracy in percent, cut at 0 and 100 (where no accuracy lies: with two
    seeds, t is 12.7 and an interval easily reaches past them)."""
    low, high = mean_interval(stat)
    if math.isnan(low):
        return "—"
    return f"{max(0.0, 100 * low):.2f} to {min(100.0, 100 * high):.2f}"


def _setting_values(run: RunSource) -> dict[str, str]:
    """The settings a reader needs to repeat a run, as text, in the order a report lists them."""
    from digitnet.models import describe_model

    config, summary = run.config, run.summary
    data, optim, train = config.data, config.optim, config.train
    sizes = summary.sizes or {}
    values = {
        "dataset": data.dataset
        + (f" ({data.data_dir})" if data.data_dir else "")
        + (f" ({data.csv})" if data.csv else ""),
        "split sizes": (
            f"{sizes.get('train', 0):,} train / {sizes.get('val', 0):,} validation / "
            f"{sizes.get('test', 0):,} test digits"
            if sizes
            else "—"
        ),
        "test set": summary.test_set or "—",
        "pixel normalisation": data.normalize,
        "augmentation": "yes" if data.augment else "no",
        # Dropout on its own row: a sweep over it must say "dropout varied", not "model varied".
        "model": describe_model(replace(config.model, dropout=0.0)),
        "dropout": f"{config.model.dropout or 0:g}",
        "parameters": f"{summary.parameters:,}" if summary.parameters is not None else "—",
        "optimizer": optim.name,
        "learning rate": f"{optim.lr:g}",
        "momentum": "—" if optim.momentum is None else f"{optim.momentum:g}",
        "weight decay": f"{optim.weight_decay:g}",
        "lr schedule": optim.schedule,
        "epochs": str(train.epochs),
        "batch size": str(train.batch_size),
        "precision": train.precision,  # bfloat16 changes the arithmetic, so a reader must know it
    }
    environment = run.environment
    versions = [
        f"{name.replace('_', '-')} {environment[name]}"
        for name in ("digitnet", "python", "torch", "torchvision", "numpy", "scikit_learn")
        if name in environment
    ]
    values["library versions"] = " · ".join(versions) or "—"
    device = str(environment.get("device", ""))
    shown = ("device_name", "cpu_capability") if device == "cpu" else ("device_name",)  # who did the math
    if details := [str(environment[name]) for name in shown if environment.get(name)]:
        device += f" ({', '.join(details)})"
    values["device"] = device or "—"
    return values


def _varied_names(runs: Sequence[RunSource]) -> list[str]:
    """The settings whose value differs between the runs (what the sweep varied), in report order."""
    table = [_setting_values(run) for run in runs]
    if not table:
        return []
    hidden = {"parameters", "library versions", "device", "split sizes", "test set"}
    return [name for name in table[0] if name not in hidden and len({row[name] for row in table}) > 1]


def setup_rows(runs: Sequence[RunSource], seeds: Sequence[int]) -> list[tuple[str, str]]:
    """(setting, value) rows for ``runs``: one value where every run agrees, else the values in the
    order they first appear, marked as varied: the setup states what was held fixed and what was not."""
    table = [_setting_values(run) for run in runs]
    rows = []
    for name in table[0]:
        values = list(dict.fromkeys(row[name] for row in table))
        rows.append((name, values[0] if len(values) == 1 else "**varied:** " + " / ".join(values)))
    count = len(seeds)
    rows.insert(
        rows.index(next(r for r in rows if r[0] == "batch size")) + 1,
        ("seeds", f"{count} ({', '.join(str(s) for s in seeds)})" if count else "—"),
    )
    return rows


# ---------------------------------------------------------------------------------------- markdown


def _cell(text: object) -> str:
    """Text for a Markdown table cell: a ``|`` would end the cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _box(prompt: str) -> str:
    """A marked place for the student's own text, with a question to start from."""
    return f"> {INTERPRETATION} *{prompt}*\n"


@dataclass
class _Writer:
    """Builds the Markdown text, numbering figures and collecting the image files to copy."""

    parts: list[str] = field(default_factory=list)
    figures: list[tuple[Path, str]] = field(default_factory=list)  # (source file, name under figures/)
    boxes: int = 0

    def add(self, text: str) -> None:
        self.parts.append(text.rstrip("\n") + "\n")

    def box(self, prompt: str) -> None:
        self.boxes += 1
        self.add(_box(prompt))

    def figure(self, figure: ReportFigure, prefix: str) -> None:
        name = f"{prefix}-{figure.path.parent.name if figure.path.parent.name == 'evaluation' else ''}"
        name = f"{name.rstrip('-')}-{figure.path.name}"
        self.figures.append((figure.path, name))
        number = len(self.figures)
        # One paragraph: the caption is never printed on the page after its figure.
        self.add(f"![Figure {number}](figures/{name})\n*Figure {number}. {figure.caption}*")
        self.box("what does this figure show, and what can it not show?")

    def text(self) -> str:
        return "\n".join(self.parts)


def _warnings_for_runs(statuses: dict[str, int], datasets: Iterable[str]) -> list[str]:
    """Facts a reader must know before trusting the numbers: runs that diverged, stopped or failed
    (``statuses``: runs per status), and runs on the 5,000-digit sample rather than full MNIST."""
    found = []
    total = sum(statuses.values())
    for status, what in (
        ("diverged", "diverged (the loss became NaN or infinite)"),
        ("interrupted", "stopped before the last epoch (the same command finishes it)"),
        ("failed", "failed to train"),
    ):
        count = statuses.get(status, 0)
        if count and total == 1:
            found.append(f"This run {what}: its numbers are not a finished model's.")
        elif count:
            found.append(f"{count} of {total} runs {what}; the means leave them out.")
    if "sample" in datasets:
        found.append(
            f"{'These runs' if total > 1 else 'This run'} used the bundled 5,000-digit sample, not the "
            "full 70,000-digit MNIST: the accuracies are not MNIST's."
        )
    return found


_EDGE = re.compile(r"(\S+ is at the edge of the grid .*?before concluding\.)")


def _sweep_section(writer: _Writer, index: int, sweep: SweepSource) -> None:
    varied = _varied_names(sweep.runs)
    what = f"varies {' and '.join(varied)}" if varied else "a sweep"
    writer.add(f"## {index}. Sweep `{sweep.path.name}`: {what}")
    writer.add(f"Directory: `{sweep.path}` (made by `digitnet compare`).")
    writer.add("### Setup")
    if sweep.runs:
        writer.add(_table(["setting", "value"], setup_rows(sweep.runs, sweep.seeds)))
    else:
        writer.add(f"Data: {sweep.data}.\n\nSeeds: {', '.join(str(s) for s in sweep.seeds) or '—'}.")
    if sweep.missing_runs:
        writer.add(
            f"{sweep.missing_runs} of the sweep's runs are not under `{sweep.path / 'runs'}` (a shared "
            "cache?), so the setup lists only the runs found there."
        )
    writer.add("### Results")
    writer.add(
        (f"Data: {sweep.data}. " if sweep.data else "")
        + "Final epoch; mean ± standard deviation over the seeds that finished, accuracies in percent. "
        f"The interval is the {CONFIDENCE:.0%} confidence interval of the mean validation accuracy "
        "(Student's t, n − 1 degrees of freedom), cut at 0 and 100; whether two rows differ is for the "
        "verdicts below to say, not for overlapping intervals."
    )
    rows = [
        (
            c.label,
            c.runs,
            c.diverged + c.failed,
            f"{c.parameters:,}" if c.parameters is not None else "—",
            c.stats["train_accuracy"].text(),
            c.stats["val_accuracy"].text(),
            _interval_text(c.stats["val_accuracy"]),
            c.stats["test_accuracy"].text(),
            c.stats["val_loss"].text(1, 4),
        )
        for c in sweep.cells
    ]
    header = ["value", "runs", "diverged / failed", "parameters", "train acc", "val acc",
              "val acc 95% interval", "test acc", "val loss"]  # fmt: skip
    writer.add(_table(header, rows))
    writer.box("which differences in this table are larger than the spread between seeds?")
    writer.add("### Figures")
    for figure in sweep.figures:
        writer.figure(figure, f"{index}")
    writer.add("### Generated verdicts")
    writer.add(
        "Written by digitnet from the numbers above (`results.md`, `verdicts.csv`), the same sentences "
        "as on the command line. They say which differences the seeds can tell apart, not why."
    )
    sentences = [sweep.summary] if sweep.summary else []
    # The summary already quotes the verdict of the best over the runner-up; each sentence once.
    sentences += [v.sentence() + "." for v in sweep.verdicts if v.sentence() not in sweep.summary]
    writer.add("\n".join(f"- {s}" for s in sentences) or "No verdicts: fewer than two values finished.")
    if sweep.verdicts:
        writer.add(verdicts_markdown(sweep.verdicts))
    writer.box("what do you conclude, and does it hold for the values you did not try?")
    warnings = _EDGE.findall(sweep.summary)
    warnings += _warnings_for_runs(sweep.statuses, sweep.datasets)
    if "learning rate" in varied and any(AT_OWN_RATE.search(c.label) for c in sweep.cells):
        warnings.append(
            'Each optimizer ran at its own conventional learning rate (the labels\' "(lr …)"), so the '
            "verdicts compare optimizer-and-rate pairs, not the optimizers alone: give one `--lr` for "
            "all, or cross them with `--by lr …`, to tell the two apart."
        )
    untested = [v for v in sweep.verdicts if not v.tested]
    if untested or (sweep.seeds and len(sweep.seeds) < 2):
        warnings.append(
            "With one seed per value the spread between seeds is unknown, so no difference is tested: "
            "rerun `digitnet compare` with `--seeds 3` or more."
        )
    _warnings(writer, warnings)


def _warnings(writer: _Writer, warnings: Sequence[str]) -> None:
    writer.add("### Warnings")
    writer.add("\n".join(f"- {w}" for w in warnings) if warnings else "None from the numbers.")


def _run_section(writer: _Writer, index: int, run: RunSource) -> None:
    summary = run.summary
    writer.add(f"## {index}. Run `{run.path.name}`: {run.config.title()}")
    writer.add(f"Directory: `{run.path}` (made by `digitnet train`).")
    writer.add("### Setup")
    writer.add(_table(["setting", "value"], setup_rows([run], [run.config.train.seed])))
    writer.add("### Results")
    epochs = f"{summary.epochs_completed} of {run.config.train.epochs}"
    if summary.test_accuracy is not None:
        test = "the test set was measured once, after training."
    elif summary.status == "interrupted":  # the test set is measured only once training has ended
        test = "training was stopped, so the test set was not measured (`digitnet evaluate` measures it)."
    else:
        test = "this run had no test set."
    status = f"Status: {summary.status}, {epochs} epochs."
    writer.add(f"{status} Last epoch's numbers, accuracies in percent; {test}")

    def percent(value: float | None) -> str:
        return "—" if value is None else f"{100 * value:.2f}"

    def loss(value: float | None) -> str:
        return "—" if value is None else f"{value:.4f}"

    writer.add(
        _table(
            ["", "train", "validation", "test"],
            [
                (
                    "accuracy (%)",
                    *(
                        percent(v)
                        for v in (summary.train_accuracy, summary.val_accuracy, summary.test_accuracy)
                    ),
                ),
                ("loss", *(loss(v) for v in (summary.train_loss, summary.val_loss, summary.test_loss))),
            ],
        )
    )
    if summary.best_epoch is not None and summary.best_val_accuracy is not None:
        writer.add(
            f"Best validation accuracy: {percent(summary.best_val_accuracy)}% at epoch {summary.best_epoch}."
        )
    writer.box("how well does the model fit the training data, and how well does it generalise?")
    writer.add("### Figures")
    for figure in run.figures:
        writer.figure(figure, f"{index}")
    warnings = _warnings_for_runs({summary.status: 1}, [summary.dataset or ""])
    if summary.status == "diverged" and summary.diverged_at:  # say where
        warnings[0] = (
            f"This run diverged at epoch {summary.diverged_at.get('epoch')}, step "
            f"{summary.diverged_at.get('step')}: its numbers are not a finished model's."
        )
    warnings.append(
        "One run is one seed: how much these numbers move with another seed is unknown, so they cannot "
        "be compared with another run's. `digitnet compare` trains several seeds and tests differences."
    )
    _warnings(writer, warnings)


def report_markdown(
    sources: Sequence[Source], config: WriteupConfig
) -> tuple[str, list[tuple[Path, str]], int]:
    """The report's Markdown text, the figures it links (source file, name under ``figures/``) and the
    number of interpretation boxes."""
    from digitnet import __version__

    writer = _Writer()
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    names = ", ".join(f"`{s.path}`" for s in sources)
    writer.add(f"# {config.title}")
    writer.add(
        f"*Written by digitnet {__version__} on {today} from {names}. The setup, tables, figures, "
        f"verdicts and warnings come from those directories; the boxes marked {INTERPRETATION} are "
        "yours to write.*"
    )
    writer.add("## Question")
    writer.box("what did you want to find out, and what did you expect to see before you ran it? Why?")
    for index, source in enumerate(sources, start=1):
        if isinstance(source, SweepSource):
            _sweep_section(writer, index, source)
        else:
            _run_section(writer, index, source)
    writer.add("## Discussion")
    writer.box(
        "what do the results say about your question, what do they not say, and what would you run next?"
    )
    writer.add("## Conclusion")
    writer.box("your answer to the question, in two or three sentences, with the numbers behind it.")
    return writer.text(), writer.figures, writer.boxes


# -------------------------------------------------------------------------------------------- HTML

_STYLESHEET = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       font-size: 15px; line-height: 1.5; color: #1d1d1f; max-width: 52rem; margin: 2rem auto;
       padding: 0 1.2rem; }
h1 { font-size: 1.8rem; margin-bottom: 0.3rem; }
h2 { font-size: 1.35rem; border-bottom: 1px solid #d0d0d8; padding-bottom: 0.2rem; margin-top: 2.2rem; }
h3 { font-size: 1.1rem; margin-top: 1.5rem; }
code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.88em;
       background: #f2f2f5; padding: 0 0.2em; border-radius: 3px; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; font-size: 0.82rem; margin: 0.8rem 0;
        font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d0d0d8; padding: 0.25rem 0.4rem; text-align: left; vertical-align: top; }
td { overflow-wrap: break-word; }  /* breaks a word only where it cannot fit whole: "0.001" stays one */
th { background: #f2f2f5; }
img { max-width: 100%; height: auto; display: block; margin: 1rem auto 0.3rem; }
/* on a wide screen a two-panel figure may leave the text column, centred, so its labels keep their size */
@media screen and (min-width: 60rem) {
  img { max-width: min(100vw - 3rem, 72rem); position: relative; left: 50%; transform: translateX(-50%);
        margin-left: 0; margin-right: 0; }
}
p > em:only-child { color: #444; }
blockquote { margin: 0.8rem 0 1.2rem; padding: 0.5rem 0.8rem; border: 2px dashed #3f6fb5;
             border-radius: 6px; background: #f4f8ff; min-height: 3.5rem; }
blockquote p { margin: 0; }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { max-width: none; margin: 0; padding: 0; font-size: 11pt; }
  h2, h3 { break-after: avoid; }
  p, img, blockquote, tr { break-inside: avoid; }  /* a long table may break, between rows */
  img { max-height: 100mm; width: auto; }
  blockquote { min-height: 30mm; }
}
"""


def _data_uri(path: Path) -> str:
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{kind};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def report_html(markdown_text: str, title: str, figures_dir: Path) -> str:
    """``markdown_text`` as one self-contained HTML page: every image under ``figures/`` embedded as a
    data URI (so the file alone shows them), with a stylesheet that prints on A4."""
    import markdown
    from markdown.extensions import Extension
    from markdown.treeprocessors import Treeprocessor

    class EmbedImages(Treeprocessor):
        def run(self, root: Any) -> None:
            for image in root.iter("img"):
                source = image.get("src", "")
                if source.startswith("figures/"):
                    image.set("src", _data_uri(figures_dir / source[len("figures/") :]))

    class Embed(Extension):
        def extendMarkdown(self, md: Any) -> None:  # noqa: N802 (Markdown's API)
            md.treeprocessors.register(EmbedImages(md), "digitnet-embed-images", 0)

    body = markdown.markdown(
        markdown_text, extensions=["tables", "sane_lists", Embed()], output_format="html"
    )
    body = body.replace(" ± ", "\u00a0±\u00a0")  # a narrow cell broke "88.54 ± 0.37" after the ±
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLESHEET}</style>\n</head>\n<body>\n"
        f"{body}\n</body>\n</html>\n"
    )


# --------------------------------------------------------------------------------------------- PDF


def find_chromium() -> str | None:
    """A Chromium or Chrome on the PATH (or in macOS's Applications), or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    for app in ("Google Chrome", "Chromium"):  # macOS installs apps outside the PATH
        binary = Path("/Applications") / f"{app}.app" / "Contents" / "MacOS" / app
        if binary.is_file():
            return str(binary)
    return None


PDF_HOW_TO = (
    "open report.html in a browser and print it to PDF (Ctrl+P, 'Save as PDF'), or install Chromium "
    "(Debian/Ubuntu: sudo apt install chromium) and run writeup again"
)


def print_pdf(html_path: Path, pdf_path: Path, timeout: float = 120.0) -> str | None:
    """Print ``html_path`` to ``pdf_path`` with headless Chromium; None when it worked, else one line
    saying why not and how to get the PDF another way."""
    chromium = find_chromium()
    if chromium is None:
        return f"no Chromium found to print report.pdf: {PDF_HOW_TO}"
    with tempfile.TemporaryDirectory(prefix="digitnet-chromium-") as profile:
        command = [
            chromium,
            "--headless",
            # The page is digitnet's own static file (no scripts, images embedded), and Chromium's
            # sandbox fails in containers and as root.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={pdf_path}",
            html_path.resolve().as_uri(),
        ]
        try:
            subprocess.run(
                command, capture_output=True, timeout=timeout, check=False, env=os.environ | {"HOME": profile}
            )
        except subprocess.TimeoutExpired:
            pdf_path.unlink(missing_ok=True)
            return f"Chromium took over {timeout:.0f} s to print report.pdf: {PDF_HOW_TO}"
        except OSError as error:
            return f"cannot start {chromium} ({error.strerror}): {PDF_HOW_TO}"
    try:
        with pdf_path.open("rb") as handle:
            printed = handle.read(5) == b"%PDF-"
    except OSError:
        printed = False
    if not printed:
        pdf_path.unlink(missing_ok=True)
        return f"{chromium} did not print report.pdf: {PDF_HOW_TO}"
    return None


# ------------------------------------------------------------------------------------------ writing


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def check_paths(sources: Sequence[Path], out_dir: Path) -> None:
    """Refuse, before anything is read or written, an OUT that would land inside an input (or hold
    one: replacing OUT would move it), an input given twice, and a report the student has edited."""
    out = out_dir.resolve()
    seen: dict[Path, Path] = {}
    for source in sources:
        resolved = source.resolve()
        if resolved in seen:
            raise ConfigError(f"{source}: given twice (as {seen[resolved]}); give each directory once")
        seen[resolved] = source
        if out == resolved or resolved in out.parents:
            raise ConfigError(
                f"--out {out_dir}: it is inside the input {source}; choose a directory outside it"
            )
        if out in resolved.parents:
            raise ConfigError(f"--out {out_dir}: it holds the input {source}; choose a new directory")
    marker = output_marker(out_dir) if out_dir.is_dir() else None
    report = out_dir / "report.md"
    edited = report.is_file() and _digest(report.read_text("utf-8", "replace")) != (marker or {}).get("key")
    if marker and marker.get("kind") == "writeup" and edited:
        raise ConfigError(
            f"--out {out_dir}: report.md there has been edited since digitnet wrote it; writing again "
            f"would lose your text. To turn it into report.html and report.pdf: digitnet writeup --render "
            f"--out {out_dir}"
        )


def write_report(
    sources: Sequence[Path], out_dir: Path, config: WriteupConfig = WriteupConfig()
) -> WriteupResult:
    """Read every run and sweep directory in ``sources`` and write the report into ``out_dir``.

    ``out_dir`` is claimed like every digitnet output (see [claim_output][digitnet.runtime.claim_output]):
    a folder of the student's own files is refused, and the report appears whole or not at all. A
    report.md the student has edited since is never overwritten.
    """
    if not sources:
        raise ConfigError("give at least one run or sweep directory")
    check_paths(sources, out_dir)
    read = [read_source(path) for path in sources]
    text, figures, boxes = report_markdown(read, config)
    pdf_note: str | None = "not asked for (--no-pdf)" if not config.pdf else None
    with atomic_directory(out_dir, "writeup") as staging:
        figures_dir = staging / "figures"
        figures_dir.mkdir()
        for source, name in figures:
            shutil.copyfile(source, figures_dir / name)
        atomic_write_text(staging / "report.md", text)
        atomic_write_text(staging / "report.html", report_html(text, config.title, figures_dir))
        if config.pdf:
            pdf_note = print_pdf(staging / "report.html", staging / "report.pdf", config.pdf_timeout)
        # The key is report.md's digest: a later writeup into the same folder can tell an edited one.
        mark_output(staging, "writeup", _digest(text))
    pdf = out_dir / "report.pdf"
    if pdf_note is not None:
        pdf.unlink(missing_ok=True)  # an earlier report's PDF, carried over, would not match this one
    files = [out_dir / "report.md", out_dir / "report.html"]
    files += [out_dir / "figures" / name for _, name in figures]
    if pdf_note is None:
        files.insert(2, pdf)
    return WriteupResult(out_dir, files, pdf if pdf_note is None else None, pdf_note, boxes, list(read))


def render_report(out_dir: Path, config: WriteupConfig = WriteupConfig()) -> tuple[list[Path], str | None]:
    """Turn the report.md a student has filled in back into report.html and report.pdf, so the boxes
    they wrote reach the files they hand in. Only a folder ``digitnet writeup`` made is touched; report.md
    itself is only read, and its marker is kept, so a later ``writeup`` into the folder still refuses to
    overwrite it. Returns the files written and, when no PDF was printed, the line saying why."""
    marker = output_marker(out_dir) if out_dir.is_dir() else None
    report = out_dir / "report.md"
    if not marker or marker.get("kind") != "writeup" or not report.is_file():
        raise ConfigError(
            f"--out {out_dir}: no report that 'digitnet writeup' wrote is there; write one first "
            "(digitnet writeup RUN_OR_SWEEP_DIR… --out DIR)"
        )
    text = report.read_text("utf-8")
    heading = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), config.title)
    atomic_write_text(out_dir / "report.html", report_html(text, heading, out_dir / "figures"))
    files = [out_dir / "report.html"]
    if not config.pdf:
        return files, "not asked for (--no-pdf)"
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".pdf-") as staging:
        printed = Path(staging) / "report.pdf"
        note = print_pdf(out_dir / "report.html", printed, config.pdf_timeout)
        if note is None:
            printed.replace(out_dir / "report.pdf")  # whole or not at all, like every output
            files.append(out_dir / "report.pdf")
    return files, note


__all__ = [
    "INTERPRETATION",
    "CellRow",
    "ReportFigure",
    "RunSource",
    "SweepSource",
    "WriteupConfig",
    "WriteupResult",
    "mean_interval",
    "print_pdf",
    "read_source",
    "render_report",
    "report_html",
    "report_markdown",
    "setup_rows",
    "write_report",
]
