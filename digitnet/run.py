"""One reproducible run: config in, run directory out.

[run_experiment][digitnet.run.run_experiment] takes a [RunConfig][digitnet.settings.RunConfig], loads the
data, seeds, builds the model and optimizer, calls [fit][digitnet.trainer.fit], measures the test set
once, and writes a run directory atomically::

    config.json    the full config, its cache key, and the environment (versions, device, threads)
    history.json   per-epoch metrics and per-iteration losses (history.csv: the per-epoch table)
    summary.json   final train/val/test accuracy and loss, status, parameters, time
    model.pt       {"config": ..., "state_dict": ...}: loadable with torch.load(weights_only=True)
    loss.png/.svg, accuracy.png/.svg

The directory appears whole or not at all, so an interrupted write never leaves a half-run behind, and it
replaces only a run directory of the same config (anything else at ``--out`` is refused before training).

While it trains, each finished epoch leaves a resumable checkpoint beside the run directory
(``.NAME.resume.pt``: model, optimizer, scheduler, random states and history). Running the same config
into the same directory again continues from it, with the same bits as a run that was never stopped;
``restart=True`` starts over. It is removed once the run directory is written.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from digitnet.checkpoint import (
    Resumable,
    cpu_state,
    load_resume,
    resume_path,
    save_checkpoint_bytes,
)
from digitnet.data import Split, describe_split, load_split, to_tensors
from digitnet.errors import DigitnetError
from digitnet.models import build_model, count_parameters, describe_model, planned_parameters
from digitnet.optim import build_optimizer, build_scheduler
from digitnet.plotting import plot_accuracy, plot_loss, save_figure
from digitnet.runtime import (
    atomic_directory,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    check_memory,
    claim_output,
    environment_info,
    resolve_device,
    seed_everything,
    using_threads,
)
from digitnet.settings import RunConfig, resolve_run_config
from digitnet.trainer import EpochCallback, EpochRecord, History, evaluate, fit


@dataclass(frozen=True)
class RunStart:
    """What the caller may want to tell the user before the first epoch."""

    notes: tuple[str, ...]
    split: str
    parameters: int
    device: str
    model: str
    resumed_from: int = 0  # epochs already finished by an earlier, interrupted process


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    config: RunConfig
    history: History
    summary: dict[str, Any]


# --------------------------------------------------------------------------------------------- running


def summarize(
    config: RunConfig, history: History, split: Split, parameters: int, seconds: float
) -> dict[str, Any]:
    """The few numbers people compare runs by, plus the facts needed to read them honestly."""
    last = history.epochs[-1] if history.epochs else None
    best = history.best_epoch()
    return {
        "key": config.key(),
        "status": history.status,
        "diverged_at": history.diverged_at,
        "epochs_completed": len(history.epochs),
        "train_accuracy": last.train_accuracy if last else None,
        "val_accuracy": last.val_accuracy if last else None,
        "test_accuracy": history.test_accuracy,
        "train_loss": last.train_loss if last else None,
        "val_loss": last.val_loss if last else None,
        "test_loss": history.test_loss,
        "best_epoch": best,
        "best_val_accuracy": max((r.val_accuracy for r in history.epochs), default=None),
        "parameters": parameters,
        "train_seconds": history.train_seconds,
        "total_seconds": seconds,
        "samples_per_second": (
            sum(r.samples_per_second for r in history.epochs) / len(history.epochs)
            if history.epochs
            else None
        ),
        "dataset": split.source,
        "sizes": {"train": len(split.train), "val": len(split.val), "test": len(split.test)},
        "test_set": "held-out 1/7 of the source (no separate test set)"
        if split.test_is_holdout
        else "MNIST test set",
    }


def history_csv(history: History) -> str:
    """The per-epoch table as CSV, for spreadsheets."""
    buffer = io.StringIO()
    rows = [asdict(record) for record in history.epochs]
    names = list(rows[0]) if rows else ["epoch"]
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_run_dir(
    run_dir: Path,
    config: RunConfig,
    history: History,
    summary: dict[str, Any],
    checkpoint: bytes,
    environment: dict[str, Any],
) -> None:
    """Write every file of a run into ``run_dir``, replacing it whole (see
    [atomic_directory][digitnet.runtime.atomic_directory])."""
    with atomic_directory(run_dir, "run", config.key()) as staging:
        atomic_write_json(
            staging / "config.json",
            {"key": config.key(), "config": asdict(config), "environment": environment},
        )
        atomic_write_json(staging / "history.json", history.to_dict())
        atomic_write_text(staging / "history.csv", history_csv(history))
        atomic_write_json(staging / "summary.json", summary)
        atomic_write_bytes(staging / "model.pt", checkpoint)
        title = config.title()
        save_figure(plot_loss(history, title), staging / "loss")
        save_figure(plot_accuracy(history, title), staging / "accuracy")


def run_experiment(
    config: RunConfig,
    run_dir: Path,
    on_start: Callable[[RunStart], None] | None = None,
    on_epoch: EpochCallback | None = None,
    split: Split | None = None,
    restart: bool = False,
) -> RunResult:
    """Train one model as ``config`` says and write its run directory.

    ``run_dir`` is checked first (see [claim_output][digitnet.runtime.claim_output]), so a bad ``--out`` fails
    before any training. If an earlier process of the same config stopped part-way, training resumes
    from its last finished epoch (``restart=True`` starts over). ``split`` lets a sweep load the data
    once and share it between runs; it must come from ``config.data``. An interrupted run is still
    written (``status="interrupted"``, finished epochs only, their weights).
    """
    started = time.perf_counter()
    config = resolve_run_config(config)
    key = config.key()
    claim_output(run_dir, "run", key)
    resume = resume_path(run_dir)
    if restart:
        resume.unlink(missing_ok=True)
    saved = load_resume(resume, key)
    parameters = planned_parameters(config.model)
    # weights, gradients, two optimizer moments and the epoch checkpoint's copy: 4 bytes each
    check_memory(parameters * 4 * 5, f"--hidden/--channels: a {describe_model(config.model)}")
    device = resolve_device(config.train.device)
    with using_threads(config.train.threads):  # environment_info below records the count in force
        if split is None:
            split = load_split(config.data)
        tensors = to_tensors(split, config.data, device)
        generator = seed_everything(config.train.seed)
        model = build_model(config.model).to(device)
        parameters = count_parameters(model)
        optimizer = build_optimizer(model.parameters(), config.optim)
        steps_per_epoch = math.ceil(len(split.train) / config.train.batch_size)
        scheduler = build_scheduler(optimizer, config.optim, config.train.epochs, steps_per_epoch)
        live = Resumable(model, optimizer, scheduler, generator)
        history = live.restore(saved) if saved is not None else History()
        last_finished: dict[str, torch.Tensor] | None = saved["model"] if saved is not None else None
        if on_start is not None:
            on_start(
                RunStart(
                    split.notes,
                    describe_split(split),
                    parameters,
                    str(device),
                    describe_model(config.model),
                    resumed_from=len(history.epochs),
                )
            )

        def checkpoint_then_report(record: EpochRecord) -> None:
            nonlocal last_finished
            snapshot = live.snapshot(key, history)
            buffer = io.BytesIO()
            torch.save(snapshot, buffer)
            try:
                atomic_write_bytes(resume, buffer.getvalue())
            except OSError as error:
                kept = "earlier epochs are kept there" if record.epoch > 1 else "nothing was saved"
                raise DigitnetError(
                    f"cannot save epoch {record.epoch}'s checkpoint to {resume} ({error.strerror}); "
                    f"training stopped, {kept}"
                ) from None
            last_finished = snapshot["model"]
            if on_epoch is not None:
                on_epoch(record)

        history = fit(
            model, optimizer, tensors, config.train, generator, scheduler, checkpoint_then_report, history
        )
        if history.status != "interrupted":  # the test set is measured once, after training
            test = evaluate(model, tensors.test_x, tensors.test_y, config.train.eval_batch_size)
            history.test_loss, history.test_accuracy = test.loss, test.accuracy
        summary = summarize(config, history, split, parameters, time.perf_counter() - started)
        environment = environment_info(device)
        # An interrupted run keeps the weights of its last finished epoch, which its history describes.
        weights = last_finished if history.status == "interrupted" and last_finished else cpu_state(model)
        checkpoint = save_checkpoint_bytes(config, weights, tensors.stats, history)
        try:
            write_run_dir(run_dir, config, history, summary, checkpoint, environment)
        except OSError as error:
            kept = f"; the finished epochs are kept in {resume}, rerun the same command"
            kept = kept if resume.exists() else ""
            message = f"cannot write the run directory {run_dir} ({error.strerror}){kept}"
            raise DigitnetError(message) from None
        if history.status != "interrupted":
            resume.unlink(missing_ok=True)
    return RunResult(run_dir, config, history, summary)


__all__ = [
    "RunResult",
    "RunStart",
    "run_experiment",
    "summarize",
    "write_run_dir",
]
