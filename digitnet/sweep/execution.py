"""Running a sweep's missing runs: in this process, in worker processes, or as Ray tasks.

Every run is keyed by the hash of its full config and written to ``<runs>/<key>/``; a run whose
directory holds a finished, intact ``summary.json`` is never trained again, so Ctrl-C (or SIGTERM) then
rerun loses nothing. Workers stop with their parent and exit if it dies.

```python
records = execute(run_configs(spec, plan_sweep(spec)), Path("sweeps/lr/runs"), jobs=2)
```
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, as_completed, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from digitnet.checkpoint import read_json
from digitnet.configs import DataConfig
from digitnet.data import Split, TensorSplit, load_split, to_tensors
from digitnet.errors import CheckpointError, ConfigError
from digitnet.run import FINISHED, RunSummary, run_experiment
from digitnet.runtime import configure_threads
from digitnet.settings import RunConfig
from digitnet.sweep.plan import SWEEP_THREADS, Cell

METRICS = ("train_accuracy", "val_accuracy", "test_accuracy", "train_loss", "val_loss", "test_loss")


@dataclass
class RunRecord:
    """One finished (or failed) training run of a cell."""

    cell: Cell
    seed: int
    key: str
    run_dir: Path
    summary: RunSummary
    cached: bool


# ---------------------------------------------------------------------------------------- execution

_WORKER_SPLITS: dict[str, Split] = {}


def shared_split(data: DataConfig) -> Split:
    """Load each data source once per process: every run of a sweep shares it."""
    key = repr(data)
    if key not in _WORKER_SPLITS:
        _WORKER_SPLITS[key] = load_split(data)
    return _WORKER_SPLITS[key]


_WORKER_TENSORS: dict[tuple[int, str, str], TensorSplit] = {}


def shared_tensors(split: Split, data: DataConfig, device: torch.device) -> TensorSplit:
    """The normalised tensors of ``split`` for the last data config a run of this process used: a sweep's
    runs mostly share one, and making them takes about 0.15 s of a core for MNIST. One is kept at a time,
    so a worker holds one float copy of the digits, never one per configuration it met."""
    key = (id(split), repr(data), str(device))
    if key not in _WORKER_TENSORS:
        _WORKER_TENSORS.clear()
        _WORKER_TENSORS[key] = to_tensors(split, data, device)
    return _WORKER_TENSORS[key]


def _stop_worker(signum: int, frame: object) -> None:
    """SIGTERM from the parent (or from ``kill``) stops the worker's run the way Ctrl-C stops ``train``:
    the run's finished epochs are saved and it resumes on the next sweep. Ignored from then on, so a
    second signal cannot cut that saving short. A worker waiting for its next run has nothing to save and
    leaves quietly (a KeyboardInterrupt there would print the pool's traceback)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _WORKER_STOPPING.set()
    if not _WORKER_TRAINING.is_set():
        raise SystemExit(0)
    raise KeyboardInterrupt


_WORKER_STOPPING = threading.Event()  # set once a worker was told to stop: it starts no further run
_WORKER_TRAINING = threading.Event()  # set while a worker is inside train_one


def _exit_with_parent(parent: int) -> None:
    """Poll for the parent's death (``kill -9`` of ``compare`` cannot tell its workers) and then exit, so
    no orphan goes on training queued runs. The last finished epoch of the current run is on disk.

    Also exit once this worker was told to stop and its interrupted run is saved: from then on it ignores
    SIGTERM (see _stop_worker), and a pool whose shutdown was itself cut short would leave it waiting
    for work for ever, and the parent waiting for it at exit."""
    idle_polls = 0
    while os.getppid() == parent:
        stopped_and_idle = _WORKER_STOPPING.is_set() and not _WORKER_TRAINING.is_set()
        idle_polls = idle_polls + 1 if stopped_and_idle else 0
        if idle_polls >= 2:  # a whole poll after its run ended, so the run's result has been sent back
            os._exit(EXIT_ORPHANED)
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


def _stop_workers(pool: ProcessPoolExecutor, futures: Collection[Future[Any]]) -> None:
    """Stop every worker and wait for it: each saves its run's finished epochs (SIGTERM → saved,
    resumable), then exits (see _exit_with_parent).

    A worker still alive after [STOP_GRACE_SECONDS][digitnet.sweep.execution.STOP_GRACE_SECONDS] is
    killed: its finished epochs are in its resume checkpoint already, and a run directory is replaced
    whole or not at all, so killing it loses nothing a rerun needs, where waiting could mean waiting for
    ever. Ctrl-C and SIGTERM are held off meanwhile (a terminal's Ctrl-C pressed twice, or ``timeout``,
    which signals the command and then its whole process group, would otherwise cut this short and leave
    the workers to Python's exit, which waits for them)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # no public handle on them
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while True:
        try:
            with held_signals():
                for future in futures:  # queued runs are dropped; running ones save what they finished
                    future.cancel()
                for process in processes:
                    with contextlib.suppress(ProcessLookupError, OSError):
                        if process.is_alive() and process.pid is not None:
                            os.kill(process.pid, signal.SIGTERM)
                pool.shutdown(wait=False, cancel_futures=True)
                for process in processes:
                    process.join(max(0.0, deadline - time.monotonic()))
                for process in processes:
                    if process.is_alive():
                        process.kill()
                        process.join()
            return
        except KeyboardInterrupt:  # a second signal, before they were held: every step above may repeat
            continue


STOP_GRACE_SECONDS = 30.0  # saving an interrupted run takes a second or two; this only bounds a stuck one


@contextlib.contextmanager
def held_signals() -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM for the block (in the main thread; other threads receive neither)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def train_one(config: RunConfig, run_dir: Path) -> RunSummary:
    """Train one config into ``run_dir`` (in this process or a worker) and return its summary.

    A lock per config makes a second ``compare`` on the same cache wait for the first's run and reuse
    it, instead of training the same configuration twice at once.
    """
    _WORKER_TRAINING.set()
    try:
        if _WORKER_STOPPING.is_set():  # a run the pool had already queued when the sweep was stopped
            raise KeyboardInterrupt
        from filelock import FileLock

        run_dir.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(run_dir.parent / f".{run_dir.name}.lock"):
            done = finished_summary(run_dir)
            if done is not None:
                return done
            split = shared_split(config.data)
            return run_experiment(config, run_dir, split=split, prepare=shared_tensors).summary
    finally:
        _WORKER_TRAINING.clear()


def finished_summary(run_dir: Path) -> RunSummary | None:
    """The summary of a finished run in ``run_dir``, or None if it must be (re)trained.

    A cached run is used only if everything the sweep reads of it is intact: a summary whose every field
    has its type (see [RunSummary.from_dict][digitnet.run.RunSummary.from_dict]), numeric metrics for a
    completed run, and a readable history. Anything damaged (a truncated file, a hand-edited value) is
    trained again, like a missing run, rather than trusted or crashed on.
    """
    try:
        summary = RunSummary.from_dict(read_json(run_dir / "summary.json"))
        history = read_json(run_dir / "history.json")
    except CheckpointError:
        return None
    if summary.status not in FINISHED:
        return None
    if summary.status == "completed" and any(summary.metric(m) is None for m in METRICS):
        return None
    if not isinstance(history, dict) or not isinstance(history.get("epochs"), list):
        return None
    return summary


RunCallback = Callable[[RunRecord, int, int], None]


def _completed(futures: Collection[Future[Any]], stop: threading.Event | None) -> Iterator[Future[Any]]:
    """``as_completed(futures)``, raising KeyboardInterrupt once ``stop`` is set."""
    if stop is None:
        yield from as_completed(futures)
        return
    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
        yield from done
        if stop.is_set():
            raise KeyboardInterrupt


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
    stop: threading.Event | None = None,
) -> list[RunRecord]:
    """Train what is missing from ``runs_dir`` and return every run's record.

    ``backend="local"`` trains in ``jobs`` processes on this machine; ``"ray"`` as Ray tasks (see
    [digitnet.sweep.on_ray][]). Either way each run lands in ``runs_dir/<key>`` through the same
    atomic write, so caching and resume do not depend on the backend.

    ``stop``: when called from a thread other than the main one (which alone receives Ctrl-C), setting
    this event stops the workers as Ctrl-C would (local backend, ``jobs`` > 1), within half a second.
    """
    if jobs < 1:
        raise ConfigError(f"--jobs: expected a whole number ≥ 1, got {jobs}")
    if backend not in BACKENDS:
        raise ConfigError(f"--backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    keys = [config.key() for _, _, config in planned]  # hashing a config is not free: once each
    records: dict[str, RunRecord] = {}
    total = len(planned)

    def record(cell: Cell, seed: int, key: str, summary: RunSummary, cached: bool) -> None:
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

    def finish(cell: Cell, seed: int, config: RunConfig, summary: RunSummary) -> None:
        if summary.status == "interrupted":
            # The trainer turned Ctrl-C into a saved partial run; the sweep itself must stop here.
            raise KeyboardInterrupt
        record(cell, seed, config.key(), summary, cached=False)

    def fail(cell: Cell, seed: int, config: RunConfig, error: str) -> None:
        """A run that could not be trained (after the backend's retries): recorded, not written."""
        record(cell, seed, config.key(), RunSummary.failed(config.key(), error), cached=False)

    if backend == "ray":
        from digitnet.sweep.on_ray import run_on_ray

        if todo:
            run_on_ray(todo, runs_dir, finish, fail, ray_address)
    elif jobs == 1 or (len(todo) <= 1 and stop is None):  # a stoppable run needs a worker
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
            for future in _completed(futures, stop):
                cell, seed, config = futures[future]
                finish(cell, seed, config, future.result())
        except BaseException:
            # Ctrl-C, SIGTERM or a failed run: drop queued runs, stop running ones (they save what they
            # finished, see _worker_init); finished runs are on disk.
            _stop_workers(pool, futures)
            raise
        pool.shutdown(wait=True)
    return [records[key] for key in keys]
