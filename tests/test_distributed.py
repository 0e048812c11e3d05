"""The Ray backend, on a real local Ray started by the test (loopback only, 2 CPUs)."""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from digitnet.errors import ConfigError
from digitnet.sweep import SweepSpec, run_sweep

ray = pytest.importorskip("ray")

FAST = (("batch-size", 256), ("dataset", "sample"), ("epochs", 1))


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _table(path: Path) -> list[dict[str, str]]:
    with (path / "runs.csv").open() as handle:
        timings = {"train_seconds", "train_cpu_seconds"}  # how long, not what was computed
        return [{k: v for k, v in row.items() if k not in timings} for row in csv.DictReader(handle)]


@pytest.mark.slow
def test_ray_gives_the_same_results_as_local(local_ray: None, tmp_path: Path) -> None:
    spec = SweepSpec("lr", ("0.1", "0.01"), base=FAST, seeds=2)
    local = run_sweep(spec, tmp_path / "local", jobs=1)
    remote = run_sweep(spec, tmp_path / "ray", backend="ray")
    assert remote.trained == 4 and _table(tmp_path / "ray") == _table(tmp_path / "local")
    for a, b in zip(local.cells, remote.cells, strict=True):
        for run_a, run_b in zip(a.runs, b.runs, strict=True):
            loss_a = json.loads((run_a.run_dir / "history.json").read_text())["iteration_loss"]
            loss_b = json.loads((run_b.run_dir / "history.json").read_text())["iteration_loss"]
            assert loss_a == loss_b
            assert {p.name for p in run_a.run_dir.iterdir()} == {p.name for p in run_b.run_dir.iterdir()}
    assert run_sweep(spec, tmp_path / "ray", backend="ray").trained == 0  # same cache and resume logic


def _task_pids() -> list[int]:
    """Worker processes currently running a digitnet task (Ray titles them ``ray::train_task``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(b"ray::train_task"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_the_sweep_completes(local_ray: None, tmp_path: Path) -> None:
    spec = SweepSpec(
        "lr", ("0.1", "0.01"), base=(("dataset", "sample"), ("epochs", 4), ("model", "cnn")), seeds=1
    )
    outcome: dict[str, object] = {}
    sweep = threading.Thread(
        target=lambda: outcome.update(result=run_sweep(spec, tmp_path / "s", backend="ray"))
    )
    sweep.start()
    deadline = time.monotonic() + 120
    while not _task_pids() and time.monotonic() < deadline:
        time.sleep(0.2)
    victims = _task_pids()
    assert victims, "no Ray task process appeared"
    time.sleep(1.0)  # mid-training
    os.kill(victims[0], signal.SIGKILL)
    sweep.join(timeout=300)
    result = outcome["result"]
    assert all(r.summary.status == "completed" for c in result.cells for r in c.runs)
    assert result.trained == 2  # type: ignore[attr-defined]


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_task_that_cannot_run_is_recorded_as_failed(local_ray: None, tmp_path: Path) -> None:
    spec = SweepSpec("lr", ("0.1",), base=(*FAST, ("device", "cuda")), seeds=2)
    result = run_sweep(spec, tmp_path / "s", backend="ray")
    assert [r.summary.status for r in result.cells[0].runs] == ["failed", "failed"]
    assert "no CUDA device" in (result.cells[0].runs[0].summary.error or "")
    assert "Failed to train" in result.summary
    assert "failed" in (tmp_path / "s" / "results.md").read_text()
    assert not list((tmp_path / "s" / "runs").glob("*/summary.json"))  # nothing written: rerun retries


def test_without_ray_the_error_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_ray(name: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    from digitnet.sweep.on_ray import _import_ray

    with pytest.raises(ConfigError, match=r"pip install -e '\.\[ray\]'"):
        _import_ray()
