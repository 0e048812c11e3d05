"""The optimizer factory: ``sgd | momentum | rmsprop | adam | adamw``, weight decay, and a schedule.

Every optimizer is a plain ``torch.optim`` class, so its maths is PyTorch's own. Where PyTorch offers a
fused implementation for the parameters' device (SGD, Adam, AdamW), it is used: one kernel updates every
parameter instead of a Python loop over them, which is most of an optimizer step's cost on small models.

Each class is used without the guards ``torch.optim`` keeps for ``torch.compile`` (see
[eager][digitnet.optim.eager]): digitnet never compiles, and those guards import PyTorch's whole compiler
stack (about 1.5 s) into every process that builds an optimizer.

```pycon
>>> import torch
>>> model = torch.nn.Linear(2, 1)
>>> type(build_optimizer(model.parameters(), OptimConfig(name="adam", lr=1e-3))).__name__
'Adam'

```
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

import torch
from torch._C._autograd import _profiler_enabled
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, OneCycleLR, StepLR
from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks

from digitnet.configs import OptimConfig

_Opt = TypeVar("_Opt", bound=Optimizer)

# Optimizer methods torch.optim wraps so that torch.compile skips them; each wrapper imports
# torch._dynamo on its first call.
_COMPILER_WRAPPED = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")


def eager(cls: type[_Opt]) -> type[_Opt]:
    """``cls`` with the same maths and state, minus the wrappers ``torch.optim`` adds for ``torch.compile``.

    ``torch.optim`` wraps ``step``, ``zero_grad``, ``add_param_group`` and the state-dict methods so that a
    compiled graph breaks around them, and each wrapper imports ``torch._dynamo``, PyTorch's compiler, on
    first use: about 1.5 s of a 2-core machine's start-up, a fifth of a short run, for code that only
    matters under ``torch.compile``. This subclass calls the functions inside those wrappers. ``step``
    keeps what its wrapper did outside the compiler: it runs without autograd, exactly as
    ``torch.optim``'s does for a non-differentiable optimizer. Hooks, ``isinstance`` and the state dict are
    unchanged (a checkpoint loads into either class).

    ``step`` and ``zero_grad`` also open a profiler range (``Optimizer.step#Adam.step``) only while a
    profiler is recording: ``torch.optim`` opens one on every call, and on a small model those ranges and
    the hook bookkeeping around them cost about 70 µs of a 430 µs step (see the Speed page). Hooks
    registered with ``register_step_pre_hook`` and ``register_step_post_hook`` run as they do there.

    Where this torch's wrappers are not there to unwrap, ``cls`` itself is returned.
    """
    if cls not in _EAGER_CLASSES:  # one subclass per class, so optimizers of one class share a type
        _EAGER_CLASSES[cls] = _without_compiler_wrappers(cls)
    return cast(type[_Opt], _EAGER_CLASSES[cls])


_EAGER_CLASSES: dict[type[Optimizer], type[Optimizer]] = {}


def _without_compiler_wrappers(cls: type[Optimizer]) -> type[Optimizer]:
    step = inspect.unwrap(cls.step)
    methods = {name: inspect.unwrap(getattr(Optimizer, name)) for name in _COMPILER_WRAPPED}
    if step is cls.step or any(method is getattr(Optimizer, name) for name, method in methods.items()):
        return cls

    def no_grad_step(self: Optimizer, closure: Callable[[], float] | None = None) -> float | None:
        with torch.no_grad():
            return step(self, closure)  # type: ignore[no-any-return]

    functools.update_wrapper(no_grad_step, step)
    profiled_step = Optimizer.profile_hook_step(no_grad_step)  # torch.optim's own wrapper, for profiling

    def eager_step(self: Optimizer, closure: Callable[[], float] | None = None) -> float | None:
        if _profiler_enabled():
            return profiled_step(self, closure)
        args: tuple[Any, ...] = (self, closure)
        kwargs: dict[str, Any] = {}
        for pre_hook in (*_global_optimizer_pre_hooks.values(), *self._optimizer_step_pre_hooks.values()):
            changed = pre_hook(self, args, kwargs)
            if changed is not None:
                args, kwargs = changed
        out = no_grad_step(*args, **kwargs)
        for post_hook in (*self._optimizer_step_post_hooks.values(), *_global_optimizer_post_hooks.values()):
            post_hook(self, args, kwargs)
        return out

    def eager_zero_grad(self: Optimizer, set_to_none: bool = True) -> None:
        if not set_to_none or _profiler_enabled():
            methods["zero_grad"](self, set_to_none)
            return
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    functools.update_wrapper(eager_step, step)
    eager_step.hooked = True  # type: ignore[attr-defined]  # tells Optimizer.__init__ not to wrap it again
    functools.update_wrapper(eager_zero_grad, methods["zero_grad"])
    namespace: dict[str, Any] = {**methods, "step": eager_step, "zero_grad": eager_zero_grad}
    namespace["__doc__"] = cls.__doc__
    namespace |= {"__module__": __name__, "__qualname__": cls.__name__}
    return type(cls.__name__, (cls,), namespace)


def _fused_or_plain(cls: type[Optimizer], params: list[torch.nn.Parameter], **options: Any) -> Optimizer:
    """``cls(params, fused=True, ...)`` where this torch fuses it for the parameters' device, else plain.

    Asking and falling back (rather than consulting a private list of devices) keeps this working across
    the torch versions the package admits.
    """
    make: Callable[..., Optimizer] = eager(cls)
    if params and "fused" in inspect.signature(cls).parameters:
        try:
            return make(params, fused=True, **options)
        except (RuntimeError, ValueError):  # this device or dtype has no fused kernel here
            pass
    return make(params, **options)


def build_optimizer(params: Iterable[torch.nn.Parameter], config: OptimConfig) -> Optimizer:
    """The ``torch.optim`` optimizer for ``config`` over ``params``."""
    trainable = [p for p in params if p.requires_grad]
    lr, wd = config.lr, config.weight_decay
    if config.name == "sgd":
        return _fused_or_plain(torch.optim.SGD, trainable, lr=lr, weight_decay=wd)
    if config.name == "momentum":
        return _fused_or_plain(torch.optim.SGD, trainable, lr=lr, momentum=config.momentum, weight_decay=wd)
    if config.name == "rmsprop":
        return eager(torch.optim.RMSprop)(trainable, lr=lr, weight_decay=wd, foreach=True)
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


__all__ = ["build_optimizer", "build_scheduler", "eager"]
