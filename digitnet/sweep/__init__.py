"""One-factor-at-a-time sweeps: every value trained from scratch, over several seeds, cached and parallel.

A sweep is a list of *cells* (one per value of the factor, or per model × value in a grid), each trained
with ``seeds`` different seeds. Every run is keyed by the hash of its full config and written to
``<out>/runs/<key>/``; a run whose directory holds a finished ``summary.json`` is never trained again, so
Ctrl-C then rerun loses nothing, and a second identical call only re-draws the tables and figures.

The package has one module per step: [plan][digitnet.sweep.plan] (values → cells × seeds),
[execution][digitnet.sweep.execution] (train what is missing, locally or on Ray) and
[aggregate][digitnet.sweep.aggregate] (statistics and tables); [run_sweep][digitnet.sweep.run_sweep]
does all three and draws the figures.

```python
result = run_sweep(SweepSpec("lr", ("0.1", "0.01"), seeds=3), Path("sweeps/lr"))
print(result.summary)
```
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digitnet.data import describe_split
from digitnet.run import FINISHED
from digitnet.runtime import atomic_write_text, claim_output, mark_output, output_marker
from digitnet.sweep.aggregate import (
    CellResult,
    Stat,
    aggregate,
    describe_result,
    mean_std,
    results_csv,
    results_markdown,
    results_table_rows,
    runs_csv,
    sweep_series,
    time_metric,
    verdicts,
    verdicts_csv,
    verdicts_markdown,
)
from digitnet.sweep.execution import (
    BACKENDS,
    METRICS,
    RunCallback,
    RunRecord,
    default_jobs,
    execute,
    finished_summary,
    shared_split,
)
from digitnet.sweep.plan import (
    FACTORS,
    MODEL_VARIANTS,
    SWEEP_THREADS,
    Cell,
    SweepSpec,
    plan_sweep,
    run_configs,
)


@dataclass
class SweepResult:
    spec: SweepSpec
    out_dir: Path
    cells: list[CellResult]
    trained: int
    reused: int
    summary: str
    files: list[Path]
    data: str = ""  # which digits, how many in each part: "MNIST: 48,000 train / …"
    data_notes: tuple[str, ...] = ()  # what loading said (the sample's notice), and a replaced sweep's


def run_sweep(
    spec: SweepSpec,
    out_dir: Path,
    jobs: int = 1,
    on_run: RunCallback | None = None,
    runs_dir: Path | None = None,
    backend: str = "local",
    ray_address: str | None = None,
    on_data: Callable[[str, tuple[str, ...]], None] | None = None,
) -> SweepResult:
    """Plan, train what is missing, aggregate, and write tables and figures to ``out_dir``.

    Runs live in ``runs_dir`` (default ``out_dir/runs``); sweeps that share one reuse each other's
    identical runs, since a run's directory is named by its config hash alone. ``on_data`` hears which
    digits the sweep uses (and the notes their loading gave) before anything trains.
    """
    from digitnet.plotting import plot_heatmap, plot_sweep, save_figure

    cells = plan_sweep(spec)
    planned = run_configs(spec, cells)
    claim_output(out_dir, "sweep")  # before any training: never write over a student's own folder
    descriptions: list[str] = []
    notes: list[str] = []
    for data in dict.fromkeys(config.data for _, _, config in planned):
        split = shared_split(data)  # a broken data file fails here, before any output
        descriptions.append(describe_split(split))
        notes += [note for note in split.notes if note not in notes]
    data_text = "; ".join(dict.fromkeys(descriptions))
    previous = output_marker(out_dir) if out_dir.is_dir() else None
    spec_key = hashlib.sha256(repr(spec).encode()).hexdigest()[:12]
    if previous is not None and previous.get("key") not in (None, spec_key):  # said before training
        notes.append(
            f"{out_dir} holds the tables and figures of a different sweep: this one's replace them when it "
            "ends (that sweep's runs stay cached, so its own command writes them again in seconds; --out "
            "keeps sweeps apart)"
        )
    if on_data is not None:
        on_data(data_text, tuple(notes))
    out_dir.mkdir(parents=True, exist_ok=True)
    # A new folder is claimed at once; one holding an earlier sweep keeps that sweep's label until its
    # tables are replaced (below), so a stopped sweep leaves the label and the tables agreeing.
    if previous is None:
        mark_output(out_dir, "sweep", spec_key)
    records = execute(planned, runs_dir or out_dir / "runs", jobs, on_run, backend, ray_address)
    results = aggregate(cells, records)
    summary = describe_result(spec, results)
    found = verdicts(spec, results)
    tables = {
        "results.csv": results_csv(results),
        "results.md": results_markdown(spec, results, summary, data_text),
        "runs.csv": runs_csv(records),
        "verdicts.md": verdicts_markdown(found),
        "verdicts.csv": verdicts_csv(found),
    }
    files = []
    for name, text in tables.items():
        atomic_write_text(out_dir / name, text)
        files.append(out_dir / name)
    seconds = time_metric(results)
    series = [sweep_series(result, seconds) for result in results]
    for name, figure in plot_sweep(spec.factor, series, data_text, spec.by).items():
        files += save_figure(figure, out_dir / name)
    if spec.by:
        files += save_figure(plot_heatmap(*heatmap_grid(spec, results), data=data_text), out_dir / "heatmap")
    mark_output(out_dir, "sweep", spec_key)
    trained = sum(1 for r in records if not r.cached)
    return SweepResult(
        spec,
        out_dir,
        results,
        trained,
        len(records) - trained,
        summary,
        files,
        data_text,
        tuple(notes),
    )


def heatmap_grid(
    spec: SweepSpec, cells: list[CellResult]
) -> tuple[str, str, list[str], list[str], np.ndarray, np.ndarray]:
    """A two-factor grid's validation accuracy as matrices (rows: ``by``'s values, columns: the
    factor's), in points, in the order the values were given."""
    columns = list(dict.fromkeys(c.cell.value for c in cells))
    rows = list(dict.fromkeys(c.cell.by_value for c in cells))
    mean = np.full((len(rows), len(columns)), np.nan)
    std = np.full_like(mean, np.nan)
    for result in cells:
        i, j = rows.index(result.cell.by_value), columns.index(result.cell.value)
        stat = result.stats["val_accuracy"]
        mean[i, j], std[i, j] = 100 * stat.mean, 100 * stat.std
    return spec.factor, spec.by, columns, rows, mean, std


__all__ = [
    "BACKENDS",
    "FACTORS",
    "FINISHED",
    "METRICS",
    "MODEL_VARIANTS",
    "SWEEP_THREADS",
    "Cell",
    "CellResult",
    "RunRecord",
    "Stat",
    "SweepResult",
    "SweepSpec",
    "aggregate",
    "default_jobs",
    "describe_result",
    "execute",
    "finished_summary",
    "heatmap_grid",
    "mean_std",
    "plan_sweep",
    "results_csv",
    "results_markdown",
    "results_table_rows",
    "run_configs",
    "run_sweep",
    "runs_csv",
    "sweep_series",
    "time_metric",
    "verdicts",
]
