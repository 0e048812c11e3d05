"""The report's plan (every run once, in one pool, the longest first) and its publishing as runs finish."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from digitnet.configs import DataConfig
from digitnet.report import TRAINED_FIRST, Experiment, ReportPlan, _Publisher, experiments, plan_report
from digitnet.run import RunSummary
from digitnet.sweep import RunRecord, plan_sweep, run_configs


def _keys(plan: ReportPlan) -> list[str]:
    return [config.key() for _, _, config in plan.runs]


def test_the_plan_holds_every_run_of_every_experiment_once_the_longest_first() -> None:
    plan = plan_report(quick=True, data_dir=None)
    keys = _keys(plan)
    assert len(keys) == len(set(keys))
    every = set()
    for experiment in experiments(quick=True, data_dir=None):
        planned = {c.key() for _, _, c in run_configs(experiment.spec, plan_sweep(experiment.spec))}
        assert planned == plan.keys[experiment.name]
        every |= planned
    health = {c.key() for _, _, c in run_configs(plan.health, plan_sweep(plan.health))}
    assert health == plan.keys["health"] and health.isdisjoint(every)  # diagnostics runs are their own
    assert set(keys) == every | health
    # the CNN's runs, then the baseline's, then the health runs, then the rest
    first = [key for name in TRAINED_FIRST for key in plan.keys[name]]
    assert set(keys[: len(first)]) == set(first)
    assert keys[0] in plan.keys["cnn"]
    # each run is counted by the first experiment, in the report's order, that plans it
    assert plan.owner[next(iter(plan.keys["baseline"]))] == "baseline"
    shared = plan.keys["baseline"] & plan.keys["lr"]
    assert shared and all(plan.owner[key] == "baseline" for key in shared)


class _Recorder(_Publisher):
    """The publisher's schedule with the publishing itself replaced by a log of what would be published."""

    log: list[str]

    def data_figures(self) -> None:
        self.log.append("data")

    def experiment(self, experiment: Experiment) -> None:
        name = experiment.name
        self.log.append(f"{name} (trained {self.trained_for(name)})")

    def inside(self) -> None:
        self.log.append("inside")

    def claims_and_playground(self) -> None:
        self.log.append("claims")


def _record(key: str, cached: bool) -> RunRecord:
    summary = RunSummary.failed(key, "stand-in")
    cell = plan_sweep(plan_report(True, None).health)[0]
    return RunRecord(cell, 0, key, Path(key), summary, cached)


def test_each_experiment_is_published_once_its_last_run_is_in(tmp_path: Path) -> None:
    plan = plan_report(quick=True, data_dir=None)
    sample = DataConfig(dataset="sample")
    publisher = _Recorder(plan, tmp_path, tmp_path, sample, {"dataset": "sample"}, True, None)
    publisher.log = []
    # two of the lr sweep's own runs come from an earlier report: reused, not counted as trained
    cached = set(sorted(k for k in plan.keys["lr"] if plan.owner[k] == "lr")[:2])
    finished_after: dict[str, int] = {}
    for count, key in enumerate(_keys(plan), start=1):
        publisher.run_finished(_record(key, cached=key in cached))
        for entry in publisher.log:
            finished_after.setdefault(entry.split(" ")[0], count)
    position = {key: i for i, key in enumerate(_keys(plan), start=1)}
    last = {name: max(position[k] for k in keys) for name, keys in plan.keys.items()}
    assert finished_after["data"] == 1  # drawn at the first run's end, while the workers train on
    for experiment in experiments(quick=True, data_dir=None):
        assert finished_after[experiment.name] == last[experiment.name], experiment.name
    assert finished_after["inside"] == max(last["cnn"], last["baseline"], last["health"])
    assert finished_after["inside"] < len(plan.runs)  # drawn while later experiments still train
    assert publisher.log[-1] == "claims" and len(publisher.log) == len(set(publisher.log))
    # trained counts as in a report that trained the experiments one after another
    assert "baseline (trained 1)" in publisher.log  # quick: one seed
    lr_new = len([k for k in plan.keys["lr"] if plan.owner[k] == "lr" and k not in cached])
    assert f"lr (trained {lr_new})" in publisher.log
    assert lr_new == len(plan.keys["lr"]) - 1 - len(cached)  # the baseline's rate is the baseline's


def _benchmark_script(monkeypatch: pytest.MonkeyPatch) -> Any:
    """scripts/benchmark.py as a module (it is a script, not part of the package)."""
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / "scripts" / "benchmark.py"
    spec = importlib.util.spec_from_file_location("benchmark", path)
    assert spec is not None and spec.loader is not None
    benchmark = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "benchmark", benchmark)  # its dataclasses look their module up
    spec.loader.exec_module(benchmark)
    return benchmark


def test_the_report_timeline_counts_the_seconds_by_runs_training_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import os

    benchmark = _benchmark_script(monkeypatch)
    (tmp_path / "wall.json").write_text(json.dumps({"started": 1000.0, "ended": 1100.0}))
    for name, start, end in (("a", 1010, 1050), ("b", 1020, 1060), ("c", 1070, 1080)):
        summary = tmp_path / "runs" / name / "summary.json"
        summary.parent.mkdir(parents=True)
        times = {"total_seconds": end - start, "train_seconds": end - start - 5, "train_cpu_seconds": 20}
        summary.write_text(json.dumps(times))
        os.utime(summary, (end, end))  # written as the run ends
    text = benchmark.report_timeline(tmp_path)
    assert "3 runs, 100 s" in text and "add up to 90 s, of which 75 s in training epochs" in text
    assert "epochs (the runs' own records), 60 s of them on a core (their CPU time)." in text
    assert "views) | 40 |" in text and "drawing) | 30 |" in text and "| two or more | 30 |" in text


def test_paired_runs_alternate_the_sides_and_say_whether_they_computed_the_same_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--training-against and --denormals: each case's two sides take turns, each side's training seconds
    go to its own median, and a case is "the same run" only when every process's losses agree."""
    benchmark = _benchmark_script(monkeypatch)
    calls: list[tuple[str, str]] = []
    seconds = iter([2.0, 1.0, 4.0, 3.0, 2.2, 1.2, 4.0, 3.0])

    def process(data_dir: Path, flags: list[str], preset: str, before: str = "") -> dict[str, object]:
        calls.append((flags[0], before))
        losses = [0.5, 0.4] if flags[0] == "same" or not before else [0.5, 0.3]
        epoch = {"train_seconds": next(seconds), "train_loss": 0.4, "train_accuracy": 0.9}
        epoch |= {"val_loss": 0.4, "val_accuracy": 0.9}
        return {"history": {"iteration_loss": losses, "epochs": [epoch]}}

    monkeypatch.setattr(benchmark, "fast_process", process)
    cases = {"same": ["same"], "differs": ["differs"]}
    rows = benchmark.paired_runs(tmp_path, cases, {"old": {"before": "x"}, "new": {}}, repeats=2)
    assert calls == [("same", "x"), ("same", ""), ("differs", "x"), ("differs", "")] * 2
    assert rows == ["| same | 2.10 | 1.10 | 0.52 | yes |", "| differs | 4.00 | 3.00 | 0.75 | no |"]


def test_the_idle_cost_pairs_the_arms_in_alternating_order_and_bounds_their_ratio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import math
    import os
    import statistics

    from scipy import stats

    benchmark = _benchmark_script(monkeypatch)
    order: list[bool] = []
    default_seconds = iter([11.0, 9.0, 10.1, 10.1])  # against 10 s for --threads 2 in every pair

    def process(arm: list[str], data_dir: Path, busy: bool) -> tuple[float, int]:
        assert not busy
        order.append(not arm)  # True: the default (no --threads)
        return (next(default_seconds) if not arm else 10.0), 2

    monkeypatch.setattr(benchmark, "train_process_seconds", process)
    monkeypatch.setattr(benchmark, "choice_of_threads_seconds", lambda: (0.0001, 0.0002, 2))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    text = benchmark.idle_cost(tmp_path, pairs=4)
    assert order == [True, False, False, True, True, False, False, True]  # each pair's order flips
    assert "Threads the default trained with: 2 / 2 / 2 / 2" in text
    assert "choosing the threads, 0.200 ms" in text
    logs = [math.log(1.1), math.log(0.9), math.log(1.01), math.log(1.01)]
    mean, half = statistics.fmean(logs), stats.t.ppf(0.975, 3) * statistics.stdev(logs) / 2
    low, high = (100 * (math.exp(mean + sign * half) - 1) for sign in (-1, 1))
    ratio = f"{100 * (math.exp(mean) - 1):+.1f}%"
    assert f"pairs' ratios: {ratio}, 95% interval {low:+.1f}% to {high:+.1f}%" in text


def test_a_stopped_worker_waiting_for_work_leaves_quietly_and_a_training_one_saves() -> None:
    import signal

    from digitnet.sweep import execution

    previous = signal.getsignal(signal.SIGTERM)
    try:
        # waiting for its next run: nothing to save, and a KeyboardInterrupt would print the pool's traceback
        with pytest.raises(SystemExit) as stopped:
            execution._stop_worker(signal.SIGTERM, None)
        assert stopped.value.code == 0
        execution._WORKER_TRAINING.set()  # inside train_one: the run saves its finished epochs
        with pytest.raises(KeyboardInterrupt):
            execution._stop_worker(signal.SIGTERM, None)
    finally:
        execution._WORKER_TRAINING.clear()
        execution._WORKER_STOPPING.clear()
        signal.signal(signal.SIGTERM, previous)


def test_setting_stop_ends_the_wait_for_runs_as_ctrl_c_would() -> None:
    import threading
    from concurrent.futures import Future

    from digitnet.sweep.execution import _completed

    done: Future[int] = Future()
    done.set_result(1)
    running: Future[int] = Future()  # a run still training
    stop = threading.Event()
    waiting = _completed([done, running], stop)
    assert next(waiting) is done
    stop.set()
    with pytest.raises(KeyboardInterrupt):
        next(waiting)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--jobs", "0"], "--jobs: expected a whole number ≥ 1, got 0"),
        (["--docs-dir", "afile"], "--docs-dir afile: a file is there"),
        (["--cache-dir", "mine"], "--cache-dir mine/lr: it holds files digitnet did not write"),
        (
            ["--no-onnx"],
            "digitnet report (it exports the Playground's models) needs the onnx extra: "
            'pip install "digitnet[onnx]"',
        ),
    ],
)
def test_bad_report_options_fail_in_one_line_before_anything_trains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: list[str], message: str
) -> None:
    import sys

    from typer.testing import CliRunner

    from digitnet.cli import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("a student's file\n")
    (tmp_path / "mine" / "lr").mkdir(parents=True)
    (tmp_path / "mine" / "lr" / "notes.txt").write_text("mine\n")
    if options == ["--no-onnx"]:  # as after the README's first install, which leaves the extras out
        monkeypatch.setitem(sys.modules, "onnxruntime", None)  # its import then raises ImportError
        options = []
    defaults = {"--docs-dir": "docs", "--cache-dir": "cache"}
    defaults |= dict(zip(options[::2], options[1::2], strict=True))
    words = [w for pair in defaults.items() for w in pair]
    result = CliRunner().invoke(app, ["report", "--quick", *words])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "mine"]  # nothing trained, nothing written
    assert (tmp_path / "mine" / "lr" / "notes.txt").read_text() == "mine\n"


def test_the_site_names_the_machine_its_runs_trained_on(tmp_path: Path) -> None:
    """The last digits of every number depend on the processor, so the report says where the runs ran,
    and a run reused from another machine is not hidden under this one's name."""
    import json

    import torch

    from digitnet.report import machine_text
    from digitnet.runtime import cpu_name, environment_info, using_threads

    def run(name: str, environment: dict[str, Any]) -> Path:
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps({"environment": environment}))
        return tmp_path / name

    with using_threads(1):
        here = environment_info(torch.device("cpu"))
    same = [run(f"r{i}", here) for i in range(3)]
    kernels = torch.backends.cpu.get_cpu_capability()
    assert machine_text(same) == (
        f"All 3 runs trained on {cpu_name()} (PyTorch's CPU kernels: {kernels}), 1 thread each; "
        f"torch {torch.__version__}, Python {here['python']}.\n"
    )
    older = {key: value for key, value in here.items() if key not in {"device_name", "cpu_capability"}}
    text = machine_text([*same, run("old", older | {"threads": 2})])
    assert text.startswith("The runs trained on more than one machine:")
    assert f"- 3 runs: {cpu_name()}" in text
    assert "- 1 run: a processor not recorded (PyTorch's CPU kernels: not recorded), 2 threads each" in text
