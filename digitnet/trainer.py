"""The training loop and evaluation, written out so students can read every step.

[train_one_epoch][digitnet.trainer.train_one_epoch] is the loop every tutorial writes (forward, loss,
backward, step) and returns the epoch's [EpochStats][digitnet.trainer.EpochStats]; [fit][digitnet.trainer.fit]
repeats it for the configured epochs, validating after each, and returns a typed
[History][digitnet.history.History]. Both receive already-built objects (model, optimizer, optional scheduler,
tensors) and never print. [evaluate][digitnet.trainer.evaluate] runs under ``torch.inference_mode()`` in
``model.eval()`` and returns a typed [EvalResult][digitnet.trainer.EvalResult].

Speed without obscurity: the loop keeps each batch loss as a tensor and reads them all once per epoch
(no ``.item()`` per step, which would stall a GPU), checks for divergence every few steps rather than every
step, and the optimizer is fused where PyTorch offers it (see [digitnet.optim][]).

```python
history = fit(model, optimizer, tensors, TrainConfig(epochs=5), generator)
print(history.epochs[-1].val_accuracy)
```
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from digitnet.configs import Precision, TrainConfig
from digitnet.data import NUM_CLASSES, TensorSplit, batch_loader
from digitnet.diagnostics import TrainingMonitor
from digitnet.history import EpochRecord, History
from digitnet.models import fixed_stage
from digitnet.runtime import autocast

DIVERGENCE_CHECK_EVERY = 25  # steps between finiteness checks: each check is a device sync
# The most memory a fixed first stage's outputs may take (training and validation digits together); past it,
# the stage runs on every batch instead (still without a backward pass).
FIXED_STAGE_BYTES = 2**30


@dataclass(frozen=True)
class EvalResult:
    """Loss (mean cross-entropy per sample), accuracy, and per-class counts on one set of digits."""

    loss: float
    accuracy: float
    correct: int
    total: int
    per_class_correct: list[int]
    per_class_total: list[int]


EpochCallback = Callable[[EpochRecord], None]


def predict_logits(
    model: nn.Module, images: Tensor, batch_size: int = 2048, precision: Precision = "float32"
) -> Tensor:
    """(N, 10) logits for ``images`` in eval mode, in order, with no autograd bookkeeping; at the
    ``precision`` the model was trained at (see [autocast][digitnet.runtime.autocast])."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), autocast(precision, images.device):
            chunks = [model(batch) for batch in torch.split(images, batch_size)]
    finally:
        model.train(was_training)
    if not chunks:
        return torch.empty(0, NUM_CLASSES, device=images.device)
    return torch.cat(chunks)


def evaluate(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    batch_size: int = 2048,
    precision: Precision = "float32",
) -> EvalResult:
    """Mean cross-entropy and accuracy of ``model`` on ``images``; never shuffles, never updates."""
    return score_logits(predict_logits(model, images, batch_size, precision), labels)


def score_logits(logits: Tensor, labels: Tensor) -> EvalResult:
    """Loss, accuracy and per-class counts of (N, 10) ``logits`` against ``labels``: the one place they are
    computed, for validation, the test set and ``digitnet evaluate`` alike."""
    total = int(labels.shape[0])
    if total == 0:
        return EvalResult(math.nan, math.nan, 0, 0, [0] * NUM_CLASSES, [0] * NUM_CLASSES)
    loss = float(F.cross_entropy(logits.float(), labels, reduction="sum")) / total
    hits = logits.argmax(dim=1) == labels
    per_class_total = torch.bincount(labels, minlength=NUM_CLASSES)
    per_class_correct = torch.bincount(labels[hits], minlength=NUM_CLASSES)
    correct = int(hits.sum())
    return EvalResult(
        loss=loss,
        accuracy=correct / total,
        correct=correct,
        total=total,
        per_class_correct=[int(c) for c in per_class_correct.cpu()],
        per_class_total=[int(c) for c in per_class_total.cpu()],
    )


@dataclass(frozen=True)
class EpochStats:
    """What one pass over the training batches measured."""

    loss: float
    """Mean cross-entropy per training sample (batch losses weighted by batch size)"""
    accuracy: float
    """Share of training samples the model got right while it was learning them"""
    samples: int
    seconds: float
    cpu_seconds: float
    """CPU time of this process over the same pass (see ``EpochRecord.train_cpu_seconds``)"""
    step_losses: list[float]
    """One per optimizer step, in order; a NaN or inf one means divergence"""

    @property
    def diverged_step(self) -> int | None:
        """The first step (from 1) whose loss was not finite, or None."""
        return next((i for i, v in enumerate(self.step_losses, start=1) if not math.isfinite(v)), None)


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    optimizer: Optimizer,
    scheduler: LRScheduler | None = None,
    precision: Precision = "float32",
) -> EpochStats:
    """One pass over ``batches``: forward, loss, backward, step, the loop every tutorial writes.

    At ``precision="bfloat16"`` the forward pass and the loss run under autocast (see
    [autocast][digitnet.runtime.autocast]); backward follows the forward's types, and the step updates
    float32 weights.

    Each step's loss and predicted digits stay tensors and are read once at the end: reading a number
    each step would make the CPU wait for the GPU every step, and comparing the predictions with the
    labels once per epoch is two operations instead of two per step. A loss that is no longer finite
    stops the epoch at the next check (one sync every ``DIVERGENCE_CHECK_EVERY`` steps).
    """
    model.train()
    started, cpu_started = time.perf_counter(), time.process_time()
    losses: list[Tensor] = []
    predicted: list[Tensor] = []
    labels: list[Tensor] = []
    sizes: list[int] = []
    for x, y in batches:
        with autocast(precision, x.device):
            logits = model(x)
            loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(loss.detach())
        predicted.append(logits.detach().argmax(dim=1))
        labels.append(y)
        sizes.append(len(y))
        if len(losses) % DIVERGENCE_CHECK_EVERY == 0 and not bool(torch.isfinite(loss)):
            break
    step_losses = torch.stack(losses).double().cpu()
    weights = torch.tensor(sizes, dtype=torch.float64)
    samples = int(weights.sum())
    return EpochStats(
        loss=float((step_losses * weights).sum() / samples),
        accuracy=int((torch.cat(predicted) == torch.cat(labels)).sum()) / samples,
        samples=samples,
        seconds=time.perf_counter() - started,
        cpu_seconds=time.process_time() - cpu_started,
        step_losses=step_losses.tolist(),
    )


def past_fixed_stage(
    model: nn.Module, data: TensorSplit, config: TrainConfig
) -> tuple[nn.Module, TensorSplit]:
    """The part of ``model`` that learns, and ``data``'s training and validation digits as it receives them.

    A model whose first stage is fixed (``--first-layer pca``, see
    [LeNet.fixed_stage][digitnet.models.LeNet.fixed_stage]) gives the same output for a digit every
    epoch, so that output is computed once here and every epoch trains the rest on it: no first
    convolution forward or backward per step. Everything else gets ``(model, data)`` back unchanged: models
    that learn every layer, augmented digits (a digit differs every epoch), ``--diagnostics`` (its hooks
    watch the whole model), outputs larger than ``FIXED_STAGE_BYTES``, and a run of one epoch: it runs the
    stage once per digit anyway, so storing its outputs would only add their copy. (The run's epochs, not
    those left to a resumed process, decide: a resumed run takes the path an uninterrupted one took, so
    its numbers stay the same bit for bit.)
    """
    stages = fixed_stage(model)
    if stages is None or data.augment or config.diagnostics or config.epochs < 2:
        return model, data
    first, rest = stages
    with torch.no_grad():
        probe = first(data.val_x[:1])
        shape = probe.shape[1:]
        if (len(data.train_x) + len(data.val_x)) * shape.numel() * 4 > FIXED_STAGE_BYTES:
            return model, data

        def through(images: Tensor) -> Tensor:
            # Each chunk's output is copied into its place in one tensor made up front (torch.split gives
            # views of it): about half the preparation's time of concatenating the outputs at the end,
            # which copies all of them (376 MB for MNIST) once more.
            out = torch.empty(
                (len(images), *shape),
                dtype=probe.dtype,
                device=images.device,
                memory_format=torch.channels_last,
            )
            size = config.eval_batch_size
            for part, chunk in zip(torch.split(out, size), torch.split(images, size), strict=True):
                part.copy_(first(chunk))
            return out

        return rest, replace(data, train_x=through(data.train_x), val_x=through(data.val_x))


def fit(
    model: nn.Module,
    optimizer: Optimizer,
    data: TensorSplit,
    config: TrainConfig,
    generator: torch.Generator,
    scheduler: LRScheduler | None = None,
    on_epoch: EpochCallback | None = None,
    history: History | None = None,
) -> History:
    """Train for ``config.epochs`` on ``data``'s training split, validating after every epoch.

    Stops early, without raising, when the loss stops being finite (``status="diverged"``) or on Ctrl-C
    (``status="interrupted"``, keeping only the epochs that finished). The test set is not touched here:
    it is measured once, by whoever owns the run (see [run_experiment][digitnet.run.run_experiment]).

    With ``config.diagnostics`` a ``digitnet.diagnostics.TrainingMonitor`` records each
    layer's health per epoch into ``history.diagnostics``; without it none is created, and the loop runs
    exactly as it would without this feature.

    To resume, pass the ``history`` of the finished epochs with the model, optimizer, scheduler and
    random states restored as they were at the end of the last one: training continues with the next
    epoch, and the result is the same, bit for bit, as a run that was never stopped.
    """
    history = history if history is not None else History()
    started, cpu_started = time.perf_counter(), time.process_time()
    whole = model
    model, data = past_fixed_stage(model, data, config)
    # counted in this process's first epoch, and recorded there: its samples per second include it
    prepared = time.perf_counter() - started if model is not whole else None
    prepared_cpu = time.process_time() - cpu_started if model is not whole else 0.0
    # CPU time stands for the training's cost only where one thread did all of it on the CPU: more
    # threads add their waiting (OpenMP spins), and a GPU's work is not this process's CPU time
    one_cpu_thread = data.train_x.device.type == "cpu" and torch.get_num_threads() == 1
    batches = batch_loader(
        data.train_x,
        data.train_y,
        config.batch_size,
        shuffle=True,
        generator=generator,
        augment=data.augment,
        background=data.background,
    )
    monitor = TrainingMonitor(model, optimizer) if config.diagnostics else None
    try:
        for epoch in range(len(history.epochs) + 1, config.epochs + 1):
            stats = train_one_epoch(model, batches, optimizer, scheduler, config.precision)
            seconds = stats.seconds + (prepared or 0.0)
            if stats.diverged_step is not None:
                if monitor is not None:  # the diverging epoch is the one whose health explains it
                    history.diagnostics = [*(history.diagnostics or []), monitor.epoch_end(epoch)]
                history.diverged_at = {
                    "epoch": epoch,
                    "step": len(history.iteration_loss) + stats.diverged_step,
                    # where that step sits on a plot in epochs, even when no epoch finished
                    "steps_per_epoch": len(batches),
                }
                # up to the first loss that was not finite: the steps after it, until the check noticed,
                # only carried the NaN on
                history.iteration_loss.extend(stats.step_losses[: stats.diverged_step])
                history.status = "diverged"
                break
            eval_started = time.perf_counter()
            val = evaluate(model, data.val_x, data.val_y, config.eval_batch_size, config.precision)
            # The running train accuracy mixes every weight of the epoch, with dropout on; measured
            # after the epoch in eval mode, train and validation are compared like for like.
            train = (
                evaluate(model, data.train_x, data.train_y, config.eval_batch_size, config.precision)
                if config.eval_train
                else None
            )
            record = EpochRecord(
                epoch=epoch,
                train_loss=stats.loss,
                train_accuracy=stats.accuracy,
                val_loss=val.loss,
                val_accuracy=val.accuracy,
                lr=float(optimizer.param_groups[0]["lr"]),
                train_seconds=seconds,
                train_cpu_seconds=stats.cpu_seconds + prepared_cpu if one_cpu_thread else None,
                eval_seconds=time.perf_counter() - eval_started,
                samples_per_second=stats.samples / seconds if seconds > 0 else math.inf,
                train_eval_loss=train.loss if train else None,
                train_eval_accuracy=train.accuracy if train else None,
                prepared_seconds=prepared,
            )
            prepared, prepared_cpu = None, 0.0
            history.iteration_loss.extend(stats.step_losses)
            history.epochs.append(record)
            if monitor is not None:
                history.diagnostics = [*(history.diagnostics or []), monitor.epoch_end(epoch)]
            if on_epoch is not None:
                on_epoch(record)
    except KeyboardInterrupt:
        history.status = "interrupted"
        history.iteration_loss = history.iteration_loss[: len(history.epochs) * len(batches)]
    finally:
        if monitor is not None:
            monitor.close()
    return history


__all__ = [
    "EpochRecord",
    "EpochStats",
    "EvalResult",
    "History",
    "evaluate",
    "fit",
    "past_fixed_stage",
    "predict_logits",
    "score_logits",
    "train_one_epoch",
]
