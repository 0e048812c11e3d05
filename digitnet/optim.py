"""The optimizer factory: ``sgd | momentum | rmsprop | adam | adamw``, weight decay, and a schedule.

Every optimizer is a plain ``torch.optim`` class, so its maths is PyTorch's own. Where PyTorch offers a
fused implementation for the parameters' device (SGD, Adam, AdamW), it is used: one kernel updates every
parameter instead of a Python loop over them, which is most of an optimizer step's cost on small models.

```pycon
>>> import torch
>>> model = torch.nn.Linear(2, 1)
>>> type(build_optimizer(model.parameters(), OptimConfig(name="adam", lr=1e-3))).__name__
'Adam'

```
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, OneCycleLR, StepLR

from digitnet.configs import OptimConfig


def _fused_or_plain(
    cls: Callable[..., Optimizer], params: list[torch.nn.Parameter], **options: Any
) -> Optimizer:
    """``cls(params, fused=True, ...)`` where this torch fuses it for the parameters' device, else plain.

    Asking and falling back (rather than consulting a private list of devices) keeps this working across
    the torch versions the package admits.
    """
    if params and "fused" in inspect.signature(cls).parameters:
        try:
            return cls(params, fused=True, **options)
        except (RuntimeError, ValueError):  # this device or dtype has no fused kernel here
            pass
    return cls(params, **options)


def build_optimizer(params: Iterable[torch.nn.Parameter], config: OptimConfig) -> Optimizer:
    """The ``torch.optim`` optimizer for ``config`` over ``params``."""
    trainable = [p for p in params if p.requires_grad]
    lr, wd = config.lr, config.weight_decay
    if config.name == "sgd":
        return _fused_or_plain(torch.optim.SGD, trainable, lr=lr, weight_decay=wd)
    if config.name == "momentum":
        return _fused_or_plain(torch.optim.SGD, trainable, lr=lr, momentum=config.momentum, weight_decay=wd)
    if config.name == "rmsprop":
        return torch.optim.RMSprop(trainable, lr=lr, weight_decay=wd, foreach=True)
    if config.name == "adam":
        return _fused_or_plain(torch.optim.Adam, trainable, lr=lr, weight_decay=wd)
    return _fused_or_plain(torch.optim.AdamW, trainable, lr=lr, weight_decay=wd)


def build_scheduler(
    optimizer: Optimizer, config: OptimConfig, epochs: int, steps_per_epoch: int
) -> LRScheduler | None:
    """A scheduler stepped once per *batch* (so ``step`` and ``onecycle`` share one call site), or None."""
    if config.schedule == "none":
        return None
    total_steps = max(1, epochs * steps_per_epoch)
    if config.schedule == "step":
        return StepLR(optimizer, step_size=max(1, epochs // 3) * steps_per_epoch, gamma=0.1)
    # onecycle: cycle_momentum needs a momentum or betas term; SGD without momentum has neither.
    cycle_momentum = config.name not in ("sgd", "rmsprop")
    return OneCycleLR(optimizer, max_lr=config.lr, total_steps=total_steps, cycle_momentum=cycle_momentum)


__all__ = ["build_optimizer", "build_scheduler"]
