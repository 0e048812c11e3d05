"""Sweeps: planning, cache keys, resume, statistics against numpy, parallel = serial, divergence."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from digitnet.cli import app
from digitnet.errors import ConfigError
from digitnet.sweep import SweepSpec, mean_std, plan_sweep, run_configs, run_sweep

FAST = (("batch-size", 256), ("dataset", "sample"), ("epochs", 1))


def _runs(path: Path) -> list[dict[str, str]]:
    with (path / "runs.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_default_values_and_overrides() -> None:
    assert [c.label for c in plan_sweep(SweepSpec("lr"))] == [
        "0.1",
        "0.03",
        "0.01",
        "0.003",
        "0.001",
        "0.0003",
    ]
    assert len(plan_sweep(SweepSpec("batch-size"))) >= 5
    assert [c.overrides for c in plan_sweep(SweepSpec("hidden", ("100,50", "30,5")))] == [
        {"hidden": (100, 50)},
        {"hidden": (30, 5)},
    ]
    norm = {c.label: c.overrides for c in plan_sweep(SweepSpec("norm"))}
    assert norm["layer"] == {"model": "nmlp", "dropout": 0.0} and norm["batch"]["model"] == "bn"


def test_grid_and_variants() -> None:
    grid = plan_sweep(SweepSpec("optimizer", models=("mlp", "bn", "bn-dropout")))
    assert len(grid) == 3 * 4
    assert {c.group for c in grid} == {"mlp", "bn", "bn-dropout"}
    bn_dropout = next(c for c in grid if c.group == "bn-dropout")
    assert bn_dropout.overrides["model"] == "bn" and bn_dropout.overrides["dropout"] == 0.2
    variants = plan_sweep(SweepSpec("variants", variants=("lr=0.001 dropout=0.2", "lr=0.0005 dropout=0.4")))
    assert [c.label for c in variants] == ["baseline", "lr=0.001 dropout=0.2", "lr=0.0005 dropout=0.4"]
    assert variants[2].overrides == {"lr": 0.0005, "dropout": 0.4}


@pytest.mark.parametrize(
    "spec_kwargs",
    [
        {"factor": "learning-rate"},
        {"factor": "lr", "seeds": 0},
        {"factor": "variants"},
        {"factor": "lr", "models": ("resnet",)},
        {"factor": "lr", "values": ("fast",)},
    ],
)
def test_bad_sweeps_fail_before_training(spec_kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        plan_sweep(SweepSpec(**spec_kwargs))  # type: ignore[arg-type]


def test_a_value_outside_the_choices_is_named_as_typed() -> None:
    """'compare optimizer sgd adm' blamed '--optimizer:', an option the student never typed; 'lr abc'
    already said 'lr=abc'."""
    with pytest.raises(ConfigError, match=r"^optimizer=adm: expected one of sgd, momentum, rmsprop, adam"):
        plan_sweep(SweepSpec("optimizer", ("sgd", "adm")))


def test_cache_keys_are_stable_and_distinct() -> None:
    spec = SweepSpec("lr", ("0.1", "0.01"), base=FAST, seeds=2)
    keys = [c.key() for _, _, c in run_configs(spec, plan_sweep(spec))]
    assert len(set(keys)) == 4
    assert keys == [c.key() for _, _, c in run_configs(spec, plan_sweep(spec))]
    seeds = [seed for _, seed, _ in run_configs(spec, plan_sweep(spec))]
    assert seeds == [0, 1, 0, 1]


def test_mean_std_matches_numpy() -> None:
    values = [0.91, 0.93, 0.95, 0.9]
    stat = mean_std(values)
    assert stat.mean == pytest.approx(np.mean(values)) and stat.std == pytest.approx(np.std(values, ddof=1))
    single = mean_std([0.5])
    assert single.n == 1 and math.isnan(single.std) and single.text() == "50.00"
    assert mean_std([]).n == 0 and mean_std([float("nan"), 1.0]).n == 1


def test_sweep_writes_tables_figures_and_resumes(tmp_path: Path) -> None:
    spec = SweepSpec("lr", ("0.1", "0.01", "10000"), base=FAST, seeds=2)
    first = run_sweep(spec, tmp_path / "sweep")
    assert (first.trained, first.reused) == (6, 0)
    names = {p.name for p in first.files}
    assert {
        "results.csv",
        "results.md",
        "runs.csv",
        "verdicts.md",
        "verdicts.csv",
        "val_loss.png",
        "val_accuracy.png",
        "final.png",
    } <= names
    by_value = {c.cell.label: c for c in first.cells}
    assert by_value["10000"].diverged == 2  # reported, not crashed
    assert "Diverged: lr 10000 (2 of 2 seeds)" in first.summary
    # The table's mean ± std are the numpy statistics of the per-run summaries.
    accuracies = [
        json.loads((r.run_dir / "summary.json").read_text())["val_accuracy"] for r in by_value["0.1"].runs
    ]
    assert by_value["0.1"].stats["val_accuracy"].mean == pytest.approx(np.mean(accuracies))
    assert by_value["0.1"].stats["val_accuracy"].std == pytest.approx(np.std(accuracies, ddof=1))
    markdown = (tmp_path / "sweep" / "results.md").read_text()
    assert by_value["0.1"].stats["val_accuracy"].text() in markdown
    # one epoch of the sample takes a fraction of a second: its time in hundredths, not "0.0 ± 0.0"
    table = [line.strip("|").split(" | ") for line in markdown.splitlines() if line.startswith("| ")]
    # every sweep run trains on one thread, so the times are the training's CPU time, said as such
    column = [cell.strip() for cell in table[0]].index("CPU time (s)")
    times = {row[0].strip(): row[column].strip() for row in table[1:]}
    for value in ("0.1", "0.01"):
        cpu = [
            json.loads((r.run_dir / "summary.json").read_text())["train_cpu_seconds"]
            for r in by_value[value].runs
        ]
        assert times[value] == f"{np.mean(cpu):.2f} ± {np.std(cpu, ddof=1):.2f}" and min(cpu) > 0
    # each seed's best epoch, as a list ("2 / 6" read as "epoch 2 of 6"), and what that column means
    column = [cell.strip() for cell in table[0]].index("best epoch")
    best = [json.loads((r.run_dir / "summary.json").read_text())["best_epoch"] for r in by_value["0.1"].runs]
    assert {row[0].strip(): row[column].strip() for row in table[1:]}["0.1"] == ", ".join(map(str, best))
    assert "Train acc is the running accuracy" in markdown and "best epoch is each seed's epoch" in markdown

    first_runs = _runs(tmp_path / "sweep")
    again = run_sweep(spec, tmp_path / "sweep")
    assert (again.trained, again.reused) == (0, 6)
    assert _runs(tmp_path / "sweep") == first_runs  # a rerun from the cache reports the same runs

    shutil.rmtree(first.cells[1].runs[0].run_dir)  # lost one run: only it is trained again
    summary_path = first.cells[0].runs[1].run_dir / "summary.json"
    interrupted = json.loads(summary_path.read_text()) | {"status": "interrupted"}
    summary_path.write_text(json.dumps(interrupted))  # an interrupted run is not a finished one
    resumed = run_sweep(spec, tmp_path / "sweep")
    assert (resumed.trained, resumed.reused) == (2, 4)
    (first.cells[2].runs[0].run_dir / "summary.json").write_text("{not json")  # corrupt: trained again
    assert run_sweep(spec, tmp_path / "sweep").trained == 1


def test_parallel_gives_the_same_numbers_as_serial(tmp_path: Path) -> None:
    spec = SweepSpec("optimizer", ("sgd", "adam"), base=FAST, seeds=2)
    serial = run_sweep(spec, tmp_path / "serial", jobs=1)
    parallel = run_sweep(spec, tmp_path / "parallel", jobs=2)
    assert parallel.trained == 4
    columns = ("value", "seed", "key", "status", "train_loss", "val_accuracy", "test_accuracy")
    assert [{k: r[k] for k in columns} for r in _runs(tmp_path / "serial")] == [
        {k: r[k] for k in columns} for r in _runs(tmp_path / "parallel")
    ]
    for a, b in zip(serial.cells, parallel.cells, strict=True):
        for run_a, run_b in zip(a.runs, b.runs, strict=True):
            history_a = json.loads((run_a.run_dir / "history.json").read_text())
            history_b = json.loads((run_b.run_dir / "history.json").read_text())
            assert history_a["iteration_loss"] == history_b["iteration_loss"]


def test_cli_compare_end_to_end(tmp_path: Path) -> None:
    args = [
        "compare",
        "batch-size",
        "128",
        "512",
        "--seeds",
        "2",
        "--epochs",
        "1",
        "--dataset",
        "sample",
        "--out",
        str(tmp_path / "bs"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "4 run(s) trained, 0 reused" in result.output and "Best batch-size" in result.output
    again = CliRunner().invoke(app, args)
    assert "0 run(s) trained, 4 reused" in again.output
    bad = CliRunner().invoke(app, ["compare", "colour", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "FACTOR" in bad.output and not (tmp_path / "x").exists()


def test_optimizers_run_at_their_conventional_rate_unless_lr_is_given() -> None:
    cells = {c.value: c for c in plan_sweep(SweepSpec("optimizer"))}
    assert (
        cells["adam"].overrides == {"optimizer": "adam", "lr": 0.001}
        and cells["adam"].label == "adam (lr 0.001)"
    )
    assert cells["sgd"].overrides["lr"] == 0.01
    fixed = plan_sweep(SweepSpec("optimizer", base=(("lr", 0.05),)))
    assert all("lr" not in c.overrides and c.label == c.value for c in fixed)


def test_a_sweeps_runs_share_one_copy_of_the_tensors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs of one data config in one process normalise the digits once (a sweep's worker keeps them),
    and a run trained on the kept tensors is the same, to the last digit, as one that made its own."""
    from digitnet.run import run_experiment
    from digitnet.sweep import execution

    made: list[object] = []

    def counting(*args: object) -> object:
        made.append(args)
        return execution_to_tensors(*args)

    execution_to_tensors = execution.to_tensors
    monkeypatch.setattr(execution, "_WORKER_TENSORS", {})
    monkeypatch.setattr(execution, "to_tensors", counting)
    spec = SweepSpec("lr", ("0.1", "0.01"), base=FAST, seeds=2)
    result = run_sweep(spec, tmp_path / "sweep", jobs=1)
    assert result.trained == 4 and len(made) == 1

    config = run_configs(spec, plan_sweep(spec))[-1][2]
    alone = run_experiment(config, tmp_path / "alone").summary
    kept = json.loads((result.cells[-1].runs[-1].run_dir / "summary.json").read_text())
    assert kept["key"] == alone.key
    assert (kept["train_loss"], kept["val_accuracy"]) == (alone.train_loss, alone.val_accuracy)
