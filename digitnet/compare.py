"""One-factor-at-a-time sweeps: every value trained from scratch, over several seeds, cached and parallel.

A sweep is a list of *cells* (one per value of the factor, or per model × value in a grid), each trained
with ``seeds`` different seeds. Every run is keyed by the hash of its full config and written to
``<out>/runs/<key>/``; a run whose directory holds a finished ``summary.json`` is never trained again, so
Ctrl-C then rerun loses nothing, and a second identical call only re-draws the tables and figures.

```pycon
>>> [cell.label for cell in plan_sweep(SweepSpec("lr", ("0.1", "0.01")))]
['0.1', '0.01']

```
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from digitnet.data import Split, load_split
from digitnet.errors import CheckpointError, ConfigError
from digitnet.plotting import SweepSeries
from digitnet.run import read_json, run_experiment
from digitnet.runtime import atomic_write_text, claim_output, configure_threads, mark_output
from digitnet.settings import (
    RunConfig,
    make_run_config,
    parse_assignments,
    parse_setting,
    resolve_run_config,
)

FACTORS: dict[str, tuple[str, ...]] = {
    "lr": ("0.1", "0.03", "0.01", "0.003", "0.001", "0.0003"),
    "batch-size": ("16", "32", "64", "128", "256", "512"),
    "optimizer": ("sgd", "momentum", "rmsprop", "adam"),
    "dropout": ("0", "0.1", "0.2", "0.3", "0.5"),
    "norm": ("none", "layer", "batch"),
    "epochs": ("1", "3", "10"),
    "hidden": ("100,50", "30,5"),
    "model": ("mlp", "nmlp", "bn", "cnn"),
    "variants": (),
}
# The model variants a grid (--models) may name: plain, normalised, and BatchNorm + dropout.
MODEL_VARIANTS: dict[str, dict[str, Any]] = {
    "mlp": {"model": "mlp"},
    "nmlp": {"model": "nmlp"},
    "bn": {"model": "bn"},
    "bn-dropout": {"model": "bn", "dropout": 0.2},
    "cnn": {"model": "cnn"},
    "cnn-bn": {"model": "cnn-bn"},
    "vgg": {"model": "vgg"},
}
NORM_MODELS = {"none": "mlp", "layer": "nmlp", "batch": "bn"}
# Comparing optimizers at one shared lr would judge Adam at SGD's rate (or SGD at Adam's), so unless
# --lr is given each optimizer runs at its conventional rate, and its label says which.
CONVENTIONAL_LR = {"sgd": 0.01, "momentum": 0.01, "rmsprop": 0.001, "adam": 0.001, "adamw": 0.001}
# Settings a --variant may not vary: the sweep sets the seeds itself, and these two change how fast, not
# what, a run learns; a variant that set them would be merged with the baseline or mislabelled.
NOT_PER_RUN = frozenset({"seed", "threads", "device"})
FINISHED = ("completed", "diverged")  # an interrupted run is trained again
METRICS = ("train_accuracy", "val_accuracy", "test_accuracy", "train_loss", "val_loss", "test_loss")


@dataclass(frozen=True)
class SweepSpec:
    """What to sweep; ``base`` holds every other setting, exactly as ``digitnet train`` takes them."""

    factor: str
    values: tuple[str, ...] = ()  # as typed after the factor; empty: the factor's defaults
    base: tuple[tuple[str, Any], ...] = ()  # named settings (see digitnet.settings.SETTINGS)
    seeds: int = 3
    models: tuple[str, ...] = ()  # a grid: each model variant × each value
    variants: tuple[str, ...] = ()  # for factor "variants": "lr=0.001 dropout=0.2", ...

    def __post_init__(self) -> None:
        if self.factor not in FACTORS:
            raise ConfigError(f"factor: expected one of {', '.join(FACTORS)}, got {self.factor!r}")
        if self.seeds < 1:
            raise ConfigError(f"--seeds: expected a whole number ≥ 1, got {self.seeds}")
        unknown = [m for m in self.models if m not in MODEL_VARIANTS]
        if unknown:
            raise ConfigError(f"--models: unknown {', '.join(unknown)}; expected {', '.join(MODEL_VARIANTS)}")
        if self.factor == "variants" and not self.variants:
            raise ConfigError("compare variants needs at least one --variant 'name=value ...'")
        if self.factor != "variants" and self.variants:
            raise ConfigError("--variant goes with the factor 'variants'")


@dataclass(frozen=True)
class Cell:
    """One point of the sweep: a label for tables and the settings that differ from the base."""

    label: str
    value: str
    group: str  # the model variant in a grid, else ""
    overrides: dict[str, Any]


@dataclass
class RunRecord:
    """One finished (or failed) training run of a cell."""

    cell: Cell
    seed: int
    key: str
    run_dir: Path
    summary: dict[str, Any]
    cached: bool


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


def mean_std(values: Sequence[float]) -> Stat:
    """Mean ± sample standard deviation of ``values`` (the spread between seeds)."""
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
        return sum(1 for r in self.runs if r.summary.get("status") == "diverged")

    @property
    def failed(self) -> int:
        return sum(1 for r in self.runs if r.summary.get("status") == "failed")


@dataclass
class SweepResult:
    spec: SweepSpec
    out_dir: Path
    cells: list[CellResult]
    trained: int
    reused: int
    summary: str
    files: list[Path]


# ----------------------------------------------------------------------------------------- planning


def plan_sweep(spec: SweepSpec) -> list[Cell]:
    """The cells of ``spec``: values parsed and checked before anything trains."""
    base = dict(spec.base)
    if spec.factor == "variants":
        cells = [Cell("baseline", "baseline", "", {})]
        seen = {repr([]): "the baseline"}
        for text in spec.variants:
            overrides = parse_assignments(text)
            not_per_run = sorted(set(overrides) & NOT_PER_RUN)
            if not_per_run:
                raise ConfigError(
                    f"--variant {text!r}: {', '.join(not_per_run)} is not a per-run setting "
                    "(seeds come from --seed and --seeds; threads and device do not change what is learned)"
                )
            same = seen.setdefault(repr(sorted(overrides.items())), text)
            if same != text:
                raise ConfigError(f"--variant {text!r}: the same settings as {same!r}; give each once")
            cells.append(Cell(" ".join(text.split()), " ".join(text.split()), "", overrides))
        return cells
    values = spec.values or FACTORS[spec.factor]
    cells = []
    seen_values: dict[str, str] = {}
    for value in values:
        overrides = _factor_overrides(spec.factor, value, base)
        same = seen_values.setdefault(repr(sorted(overrides.items())), value)
        if same != value:  # 0.01 and 0.010 would train one config twice and report it as two
            raise ConfigError(f"compare {spec.factor}: {same} and {value} are the same value; give each once")
        label = value
        if spec.factor == "optimizer" and "lr" not in base and value in CONVENTIONAL_LR:
            overrides["lr"] = CONVENTIONAL_LR[value]
            label = f"{value} (lr {CONVENTIONAL_LR[value]:g})"
        cells.append(Cell(label, value, "", overrides))
    if not spec.models:
        return cells
    return [
        Cell(f"{model} / {cell.label}", cell.value, model, MODEL_VARIANTS[model] | cell.overrides)
        for model in spec.models
        for cell in cells
    ]


def _factor_overrides(factor: str, value: str, base: dict[str, Any]) -> dict[str, Any]:
    if factor == "norm":
        if value not in NORM_MODELS:
            raise ConfigError(f"compare norm: expected none, layer or batch, got {value!r}")
        # Normalisation alone: keep the base dropout (default 0) rather than nmlp's default 0.2.
        return {"model": NORM_MODELS[value], "dropout": base.get("dropout", 0.0)}
    return {factor: parse_setting(factor, value)}


SWEEP_THREADS = 1  # per run: jobs, not threads, spread a sweep over the cores (see run_configs)


def run_configs(spec: SweepSpec, cells: Sequence[Cell]) -> list[tuple[Cell, int, RunConfig]]:
    """Every (cell, seed, config) of the sweep, the data source pinned so cache keys mean one dataset.

    Each run gets a fixed thread count (1 unless ``threads`` is in the base settings) whatever
    ``--jobs`` is, so a sweep gives the same bits run serially or in parallel; small models also train
    faster as one process per core than as one process with several threads.
    """
    base = {"threads": SWEEP_THREADS} | dict(spec.base)
    first_seed = int(base.pop("seed", 0))
    planned = []
    for cell in cells:
        for offset in range(spec.seeds):
            seed = first_seed + offset
            config = resolve_run_config(make_run_config(base | cell.overrides | {"seed": seed}))
            planned.append((cell, seed, config))
    return planned


# ---------------------------------------------------------------------------------------- execution

_WORKER_SPLITS: dict[str, Split] = {}


def _split_for(config: RunConfig) -> Split:
    """Load each data source once per process: every run of a sweep shares it."""
    key = repr(config.data)
    if key not in _WORKER_SPLITS:
        _WORKER_SPLITS[key] = load_split(config.data)
    return _WORKER_SPLITS[key]


def _stop_worker(signum: int, frame: object) -> None:
    """SIGTERM from the parent (or from ``kill``) stops the worker's run the way Ctrl-C stops ``train``:
    the run's finished epochs are saved and it resumes on the next sweep. Ignored from then on, so a
    second signal cannot cut that saving short."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _WORKER_STOPPING.set()
    raise KeyboardInterrupt


_WORKER_STOPPING = threading.Event()  # set once a worker was told to stop: it starts no further run


def _exit_with_parent(parent: int) -> None:
    """Poll for the parent's death (``kill -9`` of ``compare`` cannot tell its workers) and then exit, so
    no orphan goes on training queued runs. The last finished epoch of the current run is on disk."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(EXIT_ORPHANED)


PARENT_POLL_SECONDS = 0.5
EXIT_ORPHANED = 143


def _worker_init(parent: int) -> None:
    configure_threads(SWEEP_THREADS)  # each run then sets its own count (RunConfig.train.threads)
    # Ctrl-C in a terminal reaches the whole process group; the parent alone decides and tells its workers
    # with one SIGTERM each (see execute), so no worker is interrupted twice while it saves.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_worker)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Ask every live worker to stop its run (SIGTERM → saved, resumable)."""
    processes = getattr(pool, "_processes", None) or {}  # the executor exposes no public handle on them
    for process in list(processes.values()):
        with contextlib.suppress(ProcessLookupError, OSError):
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)


def train_one(config: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Train one config into ``run_dir`` (in this process or a worker) and return its summary.

    A lock per config makes a second ``compare`` on the same cache wait for the first's run and reuse
    it, instead of training the same configuration twice at once.
    """
    if _WORKER_STOPPING.is_set():  # a run the pool had already queued when the sweep was stopped
        raise KeyboardInterrupt
    from filelock import FileLock

    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(run_dir.parent / f".{run_dir.name}.lock"):
        done = finished_summary(run_dir)
        if done is not None:
            return done
        return run_experiment(config, run_dir, split=_split_for(config)).summary


def finished_summary(run_dir: Path) -> dict[str, Any] | None:
    """The summary of a finished run in ``run_dir``, or None if it must be (re)trained.

    A cached run is used only if everything the sweep reads of it is intact: a summary with numeric
    metrics and a readable history. Anything damaged (a truncated file, a hand-edited value) is trained
    again, like a missing run, rather than trusted or crashed on.
    """
    try:
        summary = read_json(run_dir / "summary.json")
        history = read_json(run_dir / "history.json")
    except CheckpointError:
        return None
    if not isinstance(summary, dict) or summary.get("status") not in FINISHED:
        return None
    numbers = ("train_seconds", *METRICS) if summary["status"] == "completed" else ("train_seconds",)
    if not all(
        isinstance(summary.get(k), int | float) and not isinstance(summary.get(k), bool) for k in numbers
    ):
        return None
    if not isinstance(history, dict) or not isinstance(history.get("epochs"), list):
        return None
    return summary


RunCallback = Callable[[RunRecord, int, int], None]


def default_jobs() -> int:
    """One worker per core: with one thread per run, that fills the machine without oversubscribing."""
    return max(1, os.cpu_count() or 1)


BACKENDS = ("local", "ray")


def execute(
    planned: Sequence[tuple[Cell, int, RunConfig]],
    runs_dir: Path,
    jobs: int = 1,
    on_run: RunCallback | None = None,
    backend: str = "local",
    ray_address: str | None = None,
) -> list[RunRecord]:
    """Train what is missing from ``runs_dir`` and return every run's record.

    ``backend="local"`` trains in ``jobs`` processes on this machine; ``"ray"`` as Ray tasks (see
    ``digitnet.distributed``). Either way each run lands in ``runs_dir/<key>`` through the same
    atomic write, so caching and resume do not depend on the backend.
    """
    if jobs < 1:
        raise ConfigError(f"--jobs: expected a whole number ≥ 1, got {jobs}")
    if backend not in BACKENDS:
        raise ConfigError(f"--backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    keys = [config.key() for _, _, config in planned]  # hashing a config is not free: once each
    records: dict[str, RunRecord] = {}
    total = len(planned)

    def record(cell: Cell, seed: int, key: str, summary: dict[str, Any], cached: bool) -> None:
        records[key] = RunRecord(cell, seed, key, runs_dir / key, summary, cached)
        if on_run:
            on_run(records[key], len(records), total)

    todo: list[tuple[Cell, int, RunConfig]] = []
    queued: set[str] = set()
    for (cell, seed, config), key in zip(planned, keys, strict=True):
        summary = finished_summary(runs_dir / key)
        if summary is not None:
            record(cell, seed, key, summary, cached=True)
        elif key not in queued:
            queued.add(key)
            todo.append((cell, seed, config))

    def finish(cell: Cell, seed: int, config: RunConfig, summary: dict[str, Any]) -> None:
        if summary.get("status") == "interrupted":
            # The trainer turned Ctrl-C into a saved partial run; the sweep itself must stop here.
            raise KeyboardInterrupt
        record(cell, seed, config.key(), summary, cached=False)

    def fail(cell: Cell, seed: int, config: RunConfig, error: str) -> None:
        """A run that could not be trained (after the backend's retries): recorded, not written."""
        record(
            cell, seed, config.key(), {"status": "failed", "error": error, "train_seconds": 0.0}, cached=False
        )

    if backend == "ray":
        from digitnet.distributed import run_on_ray

        if todo:
            run_on_ray(todo, runs_dir, finish, fail, ray_address)
    elif jobs == 1 or len(todo) <= 1:
        for cell, seed, config in todo:
            finish(cell, seed, config, train_one(config, runs_dir / config.key()))
    else:
        context = get_context("spawn")  # fork after torch has started threads can deadlock
        pool = ProcessPoolExecutor(
            jobs, mp_context=context, initializer=_worker_init, initargs=(os.getpid(),)
        )
        futures: dict[Any, tuple[Cell, int, RunConfig]] = {}
        try:
            futures = {
                pool.submit(train_one, config, runs_dir / config.key()): (cell, seed, config)
                for cell, seed, config in todo
            }
            for future in as_completed(futures):
                cell, seed, config = futures[future]
                finish(cell, seed, config, future.result())
        except BaseException:
            # Ctrl-C, SIGTERM or a failed run: drop queued runs, stop running ones (they save what they
            # finished, see _worker_init); finished runs are on disk.
            for future in futures:
                future.cancel()
            _stop_workers(pool)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    return [records[key] for key in keys]


# -------------------------------------------------------------------------------------- aggregation


def aggregate(cells: Sequence[Cell], records: Sequence[RunRecord]) -> list[CellResult]:
    """Group runs by cell and compute mean ± std of each metric over the seeds that did not diverge."""
    results = []
    for cell in cells:
        runs = [r for r in records if r.cell == cell]
        finished = [r.summary for r in runs if r.summary.get("status") == "completed"]
        stats = {metric: mean_std([s[metric] for s in finished]) for metric in METRICS}
        stats["best_epoch"] = mean_std([s["best_epoch"] for s in finished if s.get("best_epoch")])
        ran = [r.summary for r in runs if r.summary.get("status") in FINISHED]
        stats["train_seconds"] = mean_std([s["train_seconds"] for s in ran])
        stats["parameters"] = mean_std([s["parameters"] for s in ran])
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
    if len(ranked) == 1:
        return text + tail
    second = ranked[1]
    a, b = best.stats["val_accuracy"], second.stats["val_accuracy"]
    gap = 100 * (a.mean - b.mean)
    if a.n < 2 or b.n < 2:
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
                "best epoch": s["best_epoch"].text(1, 1),
                "time (s)": s["train_seconds"].text(1, 1),
            }
        )
    return rows


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A CSV table as text, quoted by the ``csv`` module (labels like ``100,50`` contain commas)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def results_csv(cells: Sequence[CellResult]) -> str:
    """Machine-readable results: one row per cell, mean and std columns per metric."""
    header = ["value", "group", "seeds", "diverged", "failed"]
    for metric in (*METRICS, "best_epoch", "train_seconds"):
        header += [f"{metric}_mean", f"{metric}_std"]
    rows = []
    for result in cells:
        row: list[object] = [
            result.cell.label,
            result.cell.group,
            len(result.runs),
            result.diverged,
            result.failed,
        ]
        for metric in (*METRICS, "best_epoch", "train_seconds"):
            stat = result.stats[metric]
            row += [f"{stat.mean:.6g}", f"{stat.std:.6g}"]
        rows.append(row)
    return _csv_text(header, rows)


def results_markdown(spec: SweepSpec, cells: Sequence[CellResult], summary: str) -> str:
    """A markdown table (mean ± std over seeds) and the generated summary sentence."""
    rows = results_table_rows(cells)
    header = list(rows[0]) if rows else ["value"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row[h] for h in header) + " |" for row in rows]
    seeds = f"{spec.seeds} seed{'s' if spec.seeds != 1 else ''}"
    return (
        f"Mean ± standard deviation over {seeds}; accuracies in percent, final epoch.\n\n"
        + "\n".join(lines)
        + f"\n\n{summary}\n"
    )


# ---------------------------------------------------------------------------------------------- run


def run_sweep(
    spec: SweepSpec,
    out_dir: Path,
    jobs: int = 1,
    on_run: RunCallback | None = None,
    runs_dir: Path | None = None,
    backend: str = "local",
    ray_address: str | None = None,
) -> SweepResult:
    """Plan, train what is missing, aggregate, and write tables and figures to ``out_dir``.

    Runs live in ``runs_dir`` (default ``out_dir/runs``); sweeps that share one reuse each other's
    identical runs, since a run's directory is named by its config hash alone.
    """
    from digitnet.plotting import plot_sweep, save_figure

    cells = plan_sweep(spec)
    planned = run_configs(spec, cells)
    claim_output(out_dir, "sweep")  # before any training: never write over a student's own folder
    for data in {config.data for _, _, config in planned}:
        _split_for(replace(planned[0][2], data=data))  # a broken data file fails here, before any output
    out_dir.mkdir(parents=True, exist_ok=True)
    mark_output(out_dir, "sweep")
    records = execute(planned, runs_dir or out_dir / "runs", jobs, on_run, backend, ray_address)
    results = aggregate(cells, records)
    summary = describe_result(spec, results)
    files = [out_dir / "results.csv", out_dir / "results.md", out_dir / "runs.csv"]
    atomic_write_text(files[0], results_csv(results))
    atomic_write_text(files[1], results_markdown(spec, results, summary))
    atomic_write_text(files[2], runs_csv(records))
    for name, figure in plot_sweep(spec.factor, [sweep_series(result) for result in results]).items():
        files += save_figure(figure, out_dir / name)
    trained = sum(1 for r in records if not r.cached)
    return SweepResult(spec, out_dir, results, trained, len(records) - trained, summary, files)


def runs_csv(records: Sequence[RunRecord]) -> str:
    """One row per run: which cell and seed, its key (its directory under runs/), status and metrics.
    A metric a run does not have (a diverged run's loss) is an empty cell."""

    def number(value: object, spec: str) -> str:
        return f"{value:{spec}}" if isinstance(value, int | float) and math.isfinite(value) else ""

    rows = [
        [
            record.cell.label,
            record.seed,
            record.key,
            record.summary["status"],
            *(number(record.summary.get(m), ".6g") for m in METRICS),
            number(record.summary.get("train_seconds"), ".3f"),
        ]
        for record in records
    ]
    return _csv_text(["value", "seed", "key", "status", *METRICS, "train_seconds"], rows)


def sweep_series(result: CellResult) -> SweepSeries:
    """What the sweep figures need of a cell: per-seed epoch curves (from each ``history.json``) and
    the final statistics."""
    curves: dict[str, list[list[float]]] = {"val_loss": [], "val_accuracy": [], "train_loss": []}
    for record in result.runs:
        if record.summary.get("status") not in FINISHED:  # a failed run has no history on disk
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


__all__ = [
    "FACTORS",
    "MODEL_VARIANTS",
    "Cell",
    "CellResult",
    "RunRecord",
    "Stat",
    "SweepResult",
    "SweepSpec",
    "aggregate",
    "describe_result",
    "execute",
    "mean_std",
    "plan_sweep",
    "run_configs",
    "run_sweep",
]
