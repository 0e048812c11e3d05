"""Run a sweep's trainings as Ray tasks, on one machine or a cluster, with the same results as locally.

Each configuration is one task (``num_cpus=1``, the sweep's one thread per run). Workers need no shared
filesystem: a task trains into a temporary directory on its own node and returns the run directory's
files as bytes; the driver writes them through the same atomic run directory as the local backend, so the
cache and resume logic are the same. The split is loaded once on the driver and shipped once per data
source with ``ray.put`` — every worker then reads it from Ray's object store, and no node needs MNIST on
disk. A task whose worker dies is retried (``max_retries``); one that still fails is recorded as failed,
not written, so a rerun retries exactly what is missing.

Ray is an optional extra: ``pip install -e ".[ray]"``.

```bash
digitnet compare lr --backend ray --ray-address auto
```
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from digitnet.data import Split
from digitnet.errors import ConfigError
from digitnet.run import RunSummary, run_experiment
from digitnet.runtime import atomic_directory, atomic_write_bytes
from digitnet.settings import RunConfig, run_config_from_dict
from digitnet.sweep.execution import shared_split

TASK_RETRIES = 2  # a worker killed mid-run (pre-empted node, OOM) gets two more tries
INSTALL_HINT = "--backend ray needs Ray: pip install -e '.[ray]' (or pip install ray)"

Finish = Callable[[Any, int, RunConfig, RunSummary], None]
Fail = Callable[[Any, int, RunConfig, str], None]


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return ray


def train_task(config_data: dict[str, Any], split: Split) -> dict[str, bytes]:
    """Train one run on a worker and return its run directory as ``{file name: bytes}``."""
    config = run_config_from_dict(config_data)
    with tempfile.TemporaryDirectory(prefix="digitnet-task-") as scratch:
        run_dir = Path(scratch) / "run"
        if not run_experiment(config, run_dir, split=split).written:  # stopped inside its first epoch
            raise KeyboardInterrupt
        return {
            path.name: path.read_bytes()
            for path in sorted(run_dir.iterdir())
            if path.is_file() and not path.name.startswith(".")  # the marker is written anew below
        }


def write_artifacts(run_dir: Path, artifacts: dict[str, bytes], key: str) -> None:
    """Write a run directory (of config ``key``) returned by a task, whole or not at all."""
    with atomic_directory(run_dir, "run", key) as staging:
        for name, data in artifacts.items():
            if "/" in name or name.startswith("."):
                raise ValueError(f"unexpected artifact name {name!r}")
            atomic_write_bytes(staging / name, data)


def run_on_ray(
    todo: Sequence[tuple[Any, int, RunConfig]],
    runs_dir: Path,
    finish: Finish,
    fail: Fail,
    address: str | None = None,
) -> None:
    """Train ``todo`` as Ray tasks; ``address`` None starts a local Ray, ``"auto"`` joins a running one."""
    import json

    ray = _import_ray()
    pending: dict[Any, tuple[Any, int, RunConfig]] = {}
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except ConnectionError as error:
            raise ConfigError(f"--ray-address {address}: cannot join a Ray cluster ({error})") from None
    try:
        task = ray.remote(num_cpus=1, max_retries=TASK_RETRIES, retry_exceptions=False)(train_task)
        split_refs: dict[str, Any] = {}
        for cell, seed, config in todo:
            data_key = repr(config.data)
            if data_key not in split_refs:
                split_refs[data_key] = ray.put(shared_split(config.data))  # loaded once, shipped once
            pending[task.remote(asdict(config), split_refs[data_key])] = (cell, seed, config)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            cell, seed, config = pending.pop(ready[0])
            try:
                artifacts = ray.get(ready[0])
            except ray.exceptions.RayError as error:
                cause = getattr(error, "cause", None)  # a task's own exception, as raised on the worker
                text = str(cause) if cause is not None else (str(error).strip().splitlines() or [""])[0]
                fail(cell, seed, config, f"{type(cause or error).__name__}: {text[:200]}")
                continue
            run_dir = runs_dir / config.key()
            write_artifacts(run_dir, artifacts, config.key())
            finish(cell, seed, config, RunSummary.from_dict(json.loads(artifacts["summary.json"])))
    except BaseException:  # Ctrl-C: stop queued and running tasks; finished runs are already written
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started_here:
            ray.shutdown()


__all__ = ["TASK_RETRIES", "run_on_ray", "train_task", "write_artifacts"]
