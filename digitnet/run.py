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
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from digitnet.data import NormStats, Split, describe_split, load_split, to_tensors
from digitnet.errors import CheckpointError, ConfigError, DigitnetError
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
from digitnet.settings import RunConfig, resolve_run_config, run_config_from_dict
from digitnet.trainer import EpochCallback, EpochRecord, History, evaluate, fit

CHECKPOINT_FORMAT = 1


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


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def save_checkpoint_bytes(
    config: RunConfig, state: dict[str, torch.Tensor], stats: NormStats, history: History
) -> bytes:
    """``model.pt`` contents: the state dict beside the config that rebuilds the model and the pixel
    normalisation it was trained with (so ``predict`` needs no training data), and the run's status,
    so a diverged model is refused rather than used."""
    buffer = io.BytesIO()
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": asdict(config),
        "normalization": asdict(stats),
        "state_dict": state,
        "status": history.status,
        "diverged_at": history.diverged_at,
    }
    torch.save(payload, buffer)
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


def resume_path(run_dir: Path) -> Path:
    """Where a run's per-epoch resumable checkpoint lives: a hidden file beside its directory, so the
    directory itself still appears whole or not at all."""
    return run_dir.parent / f".{run_dir.name}.resume.pt"


RESUME_FORMAT = 1


@dataclass
class _Resumable:
    """The live objects of a run whose state a resumable checkpoint captures."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    generator: torch.Generator

    def snapshot(self, key: str, history: History) -> dict[str, Any]:
        """Everything the next epoch depends on: weights, optimizer moments, schedule position, and the
        random states that drive shuffling, augmentation and dropout."""
        return {
            "format": RESUME_FORMAT,
            "key": key,
            "history": history.to_dict(),
            "model": _cpu_state(self.model),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "generator": self.generator.get_state(),
            },
        }

    def restore(self, state: dict[str, Any]) -> History:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"]:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.generator.set_state(state["rng"]["generator"])
        return History.from_dict(state["history"])


def load_resume(path: Path, key: str) -> dict[str, Any] | None:
    """The resumable checkpoint at ``path`` for config ``key``; None if there is none or it is unreadable
    (killed while it was being replaced cannot happen, it is written atomically, but a damaged disk can).

    One of another config is refused: resuming it would be wrong, overwriting it would lose its epochs.
    """
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # damaged: start over rather than crash; it is replaced after the first epoch
        return None
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT:
        return None
    if state.get("key") != key:
        raise ConfigError(
            f"{path}: an interrupted run of another config (key {state.get('key')}) is saved here; "
            "rerun that config to finish it, or pass --restart to discard it"
        )
    return state


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
        live = _Resumable(model, optimizer, scheduler, generator)
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
        weights = last_finished if history.status == "interrupted" and last_finished else _cpu_state(model)
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


# ------------------------------------------------------------------------------------------ loading


def read_json(path: Path) -> Any:
    """JSON from a file digitnet wrote, with a one-line error for missing or corrupt files."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: not valid JSON ({error})") from None


def _refuse_diverged(path: Path, payload: dict[str, Any]) -> None:
    """A diverged run's weights are NaN or meaningless: predicting with them would print garbage."""
    at = payload.get("diverged_at")
    if payload.get("status") == "diverged" and isinstance(at, dict):
        raise CheckpointError(
            f"{path}: this run diverged at epoch {at.get('epoch')}, step {at.get('step')}; its weights are "
            "not usable (retrain with a smaller --lr)"
        )
    state = payload["state_dict"]
    if isinstance(state, dict) and any(
        isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())
        for v in state.values()
    ):
        raise CheckpointError(f"{path}: the weights hold NaN or infinity (the run diverged); retrain it")


def _normalization(data: Any, path: Path) -> NormStats:
    """The pixel normalisation saved beside the weights: two finite numbers, or the checkpoint is refused."""
    names = {f.name for f in fields(NormStats)}
    if not isinstance(data, dict) or set(data) != names:
        raise CheckpointError(f"{path.name} normalization: expected {', '.join(sorted(names))}, got {data!r}")
    values = {k: data[k] for k in names}
    if not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values.values()
    ):
        raise CheckpointError(f"{path.name} normalization: expected finite numbers, got {data!r}")
    return NormStats(**{k: float(v) for k, v in values.items()})


@dataclass(frozen=True)
class Checkpoint:
    """A trained model rebuilt from ``model.pt``, with what is needed to feed it new digits."""

    config: RunConfig
    model: nn.Module
    normalization: NormStats


def load_checkpoint(run_dir: Path, device: torch.device | None = None) -> Checkpoint:
    """Rebuild a run's model from ``model.pt`` with ``weights_only=True``: no pickled code ever runs."""
    path = run_dir / "model.pt" if run_dir.is_dir() else run_dir
    if not path.is_file():
        raise CheckpointError(
            f"{run_dir}: no checkpoint (model.pt); is this a run directory from 'digitnet train'?"
        )
    try:
        payload = torch.load(path, map_location=device or "cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"{path}: refused to load: not a safe digitnet checkpoint ({first_line[:160]})"
        ) from None
    if not isinstance(payload, dict) or "config" not in payload or "state_dict" not in payload:
        raise CheckpointError(f"{path}: not a digitnet checkpoint (expected config and state_dict)")
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint format {payload.get('format')!r}, this digitnet reads {CHECKPOINT_FORMAT}"
        )
    _refuse_diverged(path, payload)
    config = run_config_from_dict(payload["config"], where=f"{path.name} config")
    check_memory(planned_parameters(config.model) * 4 * 2, f"{path}: a {describe_model(config.model)}")
    model = build_model(config.model)
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as error:
        detail = str(error).splitlines()[0][:160]
        raise CheckpointError(
            f"{path}: weights do not fit a {describe_model(config.model)} ({detail})"
        ) from None
    stats = _normalization(payload.get("normalization"), path)
    if device is not None:
        model = model.to(device)
    model.eval()
    return Checkpoint(config, model, stats)


__all__ = [
    "CHECKPOINT_FORMAT",
    "Checkpoint",
    "RunResult",
    "RunStart",
    "load_checkpoint",
    "read_json",
    "resume_path",
    "run_experiment",
    "summarize",
    "write_run_dir",
]
