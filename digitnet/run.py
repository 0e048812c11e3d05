"""One reproducible run: config in, run directory out.

[run_experiment][digitnet.run.run_experiment] takes a [RunConfig][digitnet.settings.RunConfig], loads the
data, seeds, builds the model and optimizer, calls [fit][digitnet.trainer.fit], measures the test set
once, and writes a run directory atomically::

    config.json    the full config, its cache key, and the environment (versions, device, threads)
    history.json   per-epoch metrics and per-iteration losses (history.csv: the per-epoch table)
    summary.json   final train/val/test accuracy and loss, status, parameters, time
    model.pt       {"config": ..., "state_dict": ...}: loadable with torch.load(weights_only=True)
    loss.png/.svg, accuracy.png/.svg
    diagnostics.png/.svg  with --diagnostics: per-layer gradient norms, update ratios, dead ReLUs

The directory appears whole or not at all, so an interrupted write never leaves a half-run behind, and it
replaces only a run directory of the same config (anything else at ``--out`` is refused before training).

While it trains, each finished epoch leaves a resumable checkpoint beside the run directory
(``.NAME.resume.pt``: model, optimizer, scheduler, random states and history). Running the same config
into the same directory again continues from it, with the same bits as a run that was never stopped;
``restart=True`` starts over. It is removed once the run directory is written.

```python
result = run_experiment(make_run_config({"optimizer": "adam", "epochs": 3}), Path("runs/adam"))
print(result.summary.test_accuracy)
```
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from digitnet import figure_helper
from digitnet.checkpoint import (
    Resumable,
    cpu_state,
    load_resume,
    resume_path,
    save_checkpoint_bytes,
    save_resume,
)
from digitnet.configs import DataConfig
from digitnet.data import Split, TensorSplit, describe_split, load_split, to_tensors
from digitnet.errors import CheckpointError, DigitnetError
from digitnet.history import EpochRecord, History
from digitnet.memory import check_memory
from digitnet.models import (
    build_model,
    count_parameters,
    describe_model,
    planned_parameters,
    use_pca_filters,
)
from digitnet.optim import build_optimizer, build_scheduler
from digitnet.runtime import (
    atomic_directory,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    choose_threads,
    claim_output,
    environment_info,
    flushing_denormals,
    json_safe,
    output_marker,
    precision_note,
    resolve_device,
    seed_everything,
    training_alone,
    using_threads,
    written_files,
)
from digitnet.settings import RunConfig, config_difference, resolve_run_config
from digitnet.trainer import EpochCallback, evaluate, fit


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
    summary: RunSummary
    written: bool = True
    """False for a run stopped before its first epoch finished: nothing of it is worth keeping, and a
    directory already at ``run_dir`` (an earlier run) is left as it was"""
    removed: tuple[str, ...] = ()
    """What the earlier run's directory held that described its weights (see derived_outputs)"""


# --------------------------------------------------------------------------------------------- running


SummaryStatus = Literal["completed", "diverged", "interrupted", "failed"]
FINISHED: tuple[SummaryStatus, ...] = ("completed", "diverged")  # an interrupted run is trained again


@dataclass(frozen=True)
class RunSummary:
    """The few numbers people compare runs by, plus the facts needed to read them honestly.

    Saved as ``summary.json``, read back by sweeps, the report and ``evaluate``. A number a run does not
    have (the loss of a diverged run, the metrics of a failed one) is None, ``null`` in the file.
    """

    key: str
    status: SummaryStatus
    epochs_completed: int
    train_accuracy: float | None
    val_accuracy: float | None
    test_accuracy: float | None
    train_loss: float | None
    val_loss: float | None
    test_loss: float | None
    best_epoch: int | None
    """The epoch with the highest validation accuracy."""
    best_val_accuracy: float | None
    parameters: int | None
    train_seconds: float
    total_seconds: float | None
    """The whole run: loading, training, evaluating and writing."""
    samples_per_second: float | None
    dataset: str | None
    sizes: dict[str, int] | None
    """Digits in the train, val and test parts."""
    test_set: str | None
    diverged_at: dict[str, int] | None = None
    """``{"epoch": E, "step": S}`` for a diverged run."""
    error: str | None = None
    """Why a failed run could not be trained."""
    train_eval_accuracy: float | None = None
    """With ``--eval-train``: the last epoch's training split measured in eval mode."""
    train_eval_loss: float | None = None
    train_cpu_seconds: float | None = None
    """The training's CPU time, where one thread trained on the CPU (see ``History.train_cpu_seconds``)."""

    def to_dict(self) -> dict[str, Any]:
        return dict(json_safe(asdict(self)))

    @classmethod
    def from_dict(cls, data: Any, where: str = "summary.json") -> RunSummary:
        """A summary read back from JSON, checked field by field (strict types, every field present);
        anything else is a [CheckpointError][digitnet.errors.CheckpointError]."""
        from pydantic import TypeAdapter, ValidationError

        try:
            summary: RunSummary = TypeAdapter(RunSummary).validate_json(json.dumps(data), strict=True)
        except ValidationError as error:
            problem = error.errors()[0]
            place = ".".join(str(part) for part in problem["loc"]) or "summary"
            raise CheckpointError(f"{where}: {place}: {problem['msg']}") from None
        except TypeError as error:  # not JSON at all
            raise CheckpointError(f"{where}: not a run summary ({error})") from None
        return summary

    @classmethod
    def failed(cls, key: str, error: str) -> RunSummary:
        """A run that could not be trained at all (a sweep records it, with no files)."""
        metrics = dict.fromkeys(("train_accuracy", "val_accuracy", "test_accuracy", "train_loss"))
        return cls(
            key=key,
            status="failed",
            epochs_completed=0,
            **metrics,
            val_loss=None,
            test_loss=None,
            best_epoch=None,
            best_val_accuracy=None,
            parameters=None,
            train_seconds=0.0,
            total_seconds=None,
            samples_per_second=None,
            dataset=None,
            sizes=None,
            test_set=None,
            error=error,
        )

    def metric(self, name: str) -> float | None:
        """Metric ``name`` (``val_accuracy``, ``train_seconds``, ...) as a finite number, else None."""
        value = getattr(self, name)
        return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def summarize(
    config: RunConfig, history: History, split: Split, parameters: int, seconds: float
) -> RunSummary:
    """The run's [RunSummary][digitnet.run.RunSummary] from its history and data."""
    last = history.epochs[-1] if history.epochs else None
    return RunSummary(
        key=config.key(),
        status=history.status,
        diverged_at=history.diverged_at,
        epochs_completed=len(history.epochs),
        train_accuracy=_finite(last.train_accuracy) if last else None,
        train_eval_accuracy=_finite(last.train_eval_accuracy) if last else None,
        train_eval_loss=_finite(last.train_eval_loss) if last else None,
        val_accuracy=_finite(last.val_accuracy) if last else None,
        test_accuracy=_finite(history.test_accuracy),
        train_loss=_finite(last.train_loss) if last else None,
        val_loss=_finite(last.val_loss) if last else None,
        test_loss=_finite(history.test_loss),
        best_epoch=history.best_epoch(),
        best_val_accuracy=max((r.val_accuracy for r in history.epochs), default=None),
        parameters=parameters,
        train_seconds=history.train_seconds,
        train_cpu_seconds=history.train_cpu_seconds,
        total_seconds=seconds,
        samples_per_second=(
            sum(r.samples_per_second for r in history.epochs) / len(history.epochs)
            if history.epochs
            else None
        ),
        dataset=split.source,
        sizes={"train": len(split.train), "val": len(split.val), "test": len(split.test)},
        test_set=split.test_set,
    )


def history_csv(history: History) -> str:
    """The per-epoch table as CSV, for spreadsheets."""
    buffer = io.StringIO()
    rows = [asdict(record) for record in history.epochs]
    names = list(rows[0]) if rows else ["epoch"]
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def derived_outputs(run_dir: Path) -> list[str]:
    """The entries of ``run_dir`` that digitnet computed from its weights: ``evaluation/`` (``digitnet
    evaluate``), ``inside/`` (``digitnet inside``) and ``model.onnx`` (``digitnet export``).

    Training the run again (or resuming it) replaces the weights, so these would go on describing a model
    that is gone, say a half-trained one's accuracy beside the finished run: they leave with the old
    directory. Only digitnet's own are named (by their marker, or the export's metadata key); a student's
    folder of the same name is kept.
    """
    from digitnet.export import PRODUCER_KEY  # the key alone: no onnx import

    found = [  # only where digitnet knows its own files there: a student's beside them are kept
        name
        for name, kind in (("evaluation", "evaluation"), ("inside", "figures"))
        if (output_marker(run_dir / name) or {}).get("kind") == kind
        and written_files(run_dir / name) is not None
    ]
    exported = run_dir / "model.onnx"
    with contextlib.suppress(OSError):
        if exported.is_file() and PRODUCER_KEY.encode() in exported.read_bytes():
            found.append(exported.name)
    return found


def _same_checkpoint(run_dir: Path, checkpoint: bytes) -> bool:
    """Whether ``run_dir/model.pt`` holds exactly ``checkpoint`` (weights, config, normalisation, status)."""
    try:
        return (run_dir / "model.pt").read_bytes() == checkpoint
    except OSError:  # none there, or unreadable: nothing computed from it can be trusted to match
        return False


def write_run_dir(
    run_dir: Path,
    config: RunConfig,
    history: History,
    summary: RunSummary,
    checkpoint: bytes,
    environment: dict[str, Any],
) -> list[str]:
    """Write every file of a run into ``run_dir``, replacing it whole (see
    [atomic_directory][digitnet.runtime.atomic_directory]); returns the [derived
    outputs][digitnet.run.derived_outputs] of the previous weights that were removed with it.

    Weights the same to the last bit as the previous ones (a student rerunning a finished command to see it
    again: the same seed on the same threads) leave those outputs describing them, so they stay."""
    stale = derived_outputs(run_dir) if run_dir.is_dir() and not _same_checkpoint(run_dir, checkpoint) else []
    with atomic_directory(run_dir, "run", config.key(), stale=stale) as staging:
        atomic_write_json(
            staging / "config.json",
            {"key": config.key(), "config": asdict(config), "environment": environment},
        )
        atomic_write_json(staging / "history.json", history.to_dict())
        atomic_write_text(staging / "history.csv", history_csv(history))
        atomic_write_json(staging / "summary.json", summary.to_dict())
        atomic_write_bytes(staging / "model.pt", checkpoint)
        for name, data in figure_helper.draw(history, config.title()).items():  # loss, accuracy, …
            atomic_write_bytes(staging / name, data)
    return stale


def saved_config_difference(run_dir: Path, config: RunConfig) -> str:
    """The options in which the run saved in ``run_dir`` differs from ``config`` (see
    [config_difference][digitnet.settings.config_difference]); empty when its config.json is unreadable."""
    try:
        saved = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        return ""
    return config_difference(saved.get("config") if isinstance(saved, dict) else None, config)


def run_experiment(
    config: RunConfig,
    run_dir: Path,
    on_start: Callable[[RunStart], None] | None = None,
    on_epoch: EpochCallback | None = None,
    split: Split | None = None,
    restart: bool = False,
    prepare: Callable[[Split, DataConfig, torch.device], TensorSplit] = to_tensors,
) -> RunResult:
    """Train one model as ``config`` says and write its run directory.

    ``run_dir`` is checked first (see [claim_output][digitnet.runtime.claim_output]), so a bad ``--out``
    fails before any training. If an earlier process of the same config stopped part-way, training resumes
    from its last finished epoch (``restart=True`` starts over). ``split`` lets a sweep load the data
    once and share it between runs; it must come from ``config.data``, and ``prepare``, which turns it into
    normalised tensors on the device, may keep those for the next run too. An interrupted run is still
    written (``status="interrupted"``, finished epochs only, their weights), unless no epoch finished.
    """
    started = time.perf_counter()
    config = resolve_run_config(config)
    key = config.key()
    claim_output(run_dir, "run", key, explain=lambda saved: saved_config_difference(saved, config))
    with training_alone(run_dir):  # a second process into the same --out is refused
        resume = resume_path(run_dir)
        if restart:
            resume.unlink(missing_ok=True)
        saved = load_resume(resume, key)
        # Refused before any data loads: weights, gradients, two optimizer moments and the epoch checkpoint's
        # copy, 4 bytes each.
        check_memory(
            planned_parameters(config.model) * 4 * 5, f"--hidden/--channels: a {describe_model(config.model)}"
        )
        device = resolve_device(config.train.device)
        threads, thread_note = (config.train.threads, None) if config.train.threads else choose_threads()
        # The same command run twice: nothing to resume, so the finished run is trained again and replaced.
        # Said, because a student may have meant to keep it (the same seed gives the same numbers).
        again = (
            f"{run_dir} already holds a finished run of this config: training it again replaces it"
            if saved is None and not restart and _finished_status(run_dir)
            else None
        )
        notes = tuple(
            note for note in (again, thread_note, precision_note(config.train.precision, device)) if note
        )
        # environment_info below records the thread count and the denormals' flushing in force
        with using_threads(threads), flushing_denormals():
            if split is None:
                split = load_split(config.data)
            tensors = prepare(split, config.data, device)
            generator = seed_everything(config.train.seed)
            model = build_model(config.model).to(device)
            if config.model.first_layer == "pca":  # before the optimizer, which takes only what learns
                use_pca_filters(model, tensors.train_x)
            parameters = count_parameters(model)
            optimizer = build_optimizer(model.parameters(), config.optim)
            steps_per_epoch = math.ceil(len(split.train) / config.train.batch_size)
            if config.train.batch_size > len(split.train):  # legal, and a student should know what it means
                notes += (
                    f"--batch-size {config.train.batch_size} is more than the {len(split.train):,} training "
                    "digits: each epoch is one step, on all of them",
                )
            scheduler = build_scheduler(optimizer, config.optim, config.train.epochs, steps_per_epoch)
            live = Resumable(model, optimizer, scheduler, generator)
            history = live.restore(saved) if saved is not None else History()
            # the earlier processes' time, to their last finished epoch: a resumed run's total_seconds is
            # the whole run's, as its train_seconds (summed over every epoch) is
            earlier = float(saved.get("seconds", 0.0)) if saved is not None else 0.0
            last_finished: dict[str, torch.Tensor] | None = saved["model"] if saved is not None else None
            if on_start is not None:
                on_start(
                    RunStart(
                        split.notes + notes,
                        describe_split(split),
                        parameters,
                        str(device),
                        describe_model(config.model),
                        resumed_from=len(history.epochs),
                    )
                )

            def checkpoint_then_report(record: EpochRecord) -> None:
                nonlocal last_finished
                snapshot = live.snapshot(key, history) | {"seconds": earlier + time.perf_counter() - started}
                try:
                    save_resume(resume, snapshot)
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
            if history.status != "interrupted" and len(split.test):  # measured once, after training
                test_started = time.perf_counter()
                test = evaluate(
                    model,
                    tensors.test_x,
                    tensors.test_y,
                    config.train.eval_batch_size,
                    config.train.precision,
                )
                history.test_loss, history.test_accuracy = test.loss, test.accuracy
                history.test_seconds = time.perf_counter() - test_started
            summary = summarize(config, history, split, parameters, earlier + time.perf_counter() - started)
            if history.status == "interrupted" and not history.epochs:
                # Stopped inside epoch 1: its weights are half a pass of training, which evaluate or
                # predict would report as a model of "0 epochs". Nothing is written, nothing replaced.
                return RunResult(run_dir, config, history, summary, written=False)
            environment = environment_info(device)
            # An interrupted run keeps the weights of its last finished epoch, which its history describes.
            weights = last_finished if history.status == "interrupted" and last_finished else cpu_state(model)
            checkpoint = save_checkpoint_bytes(config, weights, tensors.stats, history)
            try:
                removed = write_run_dir(run_dir, config, history, summary, checkpoint, environment)
            except OSError as error:
                kept = f"; the finished epochs are kept in {resume}, rerun the same command"
                kept = kept if resume.exists() else ""
                message = f"cannot write the run directory {run_dir} ({error.strerror}){kept}"
                raise DigitnetError(message) from None
            if history.status != "interrupted":
                resume.unlink(missing_ok=True)
        return RunResult(run_dir, config, history, summary, removed=tuple(removed))


def _finished_status(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a run that ran to its end (an interrupted one is not finished)."""
    try:
        status = json.loads((run_dir / "summary.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return False
    return status in FINISHED


__all__ = [
    "FINISHED",
    "RunResult",
    "RunStart",
    "RunSummary",
    "derived_outputs",
    "run_experiment",
    "summarize",
    "write_run_dir",
]
