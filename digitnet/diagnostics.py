"""Training health, opt-in (``--diagnostics``): per epoch and per layer, how large the gradients are, how
far each step moves the weights, and how many ReLU units have stopped firing.

A [TrainingMonitor][digitnet.diagnostics.TrainingMonitor] attaches to a model and optimizer with hooks
(optimizer step pre/post hooks, forward hooks on the ReLUs) and reads its sums once per epoch. Without
``--diagnostics`` it is never created, so the training step is exactly the plain loop: no hook, no copy,
no extra device sync.

Three numbers per layer, each a classic warning light:

* **gradient norm** ``‖∂L/∂W‖``, averaged over the epoch's steps (its finite ones, in an epoch that
  diverged): near zero, the layer has stopped
  learning (vanishing gradients); growing, the run is heading for divergence;
* **update-to-weight ratio** ``‖ΔW‖ / ‖W‖`` per step: a rule of thumb (Karpathy's CS231n notes) puts a
  healthy value near 1e-3; far below, the rate is too small for that layer; far above, too large;
* **dead ReLUs**: the share of units after the layer that output zero for every training digit of the
  epoch (for convolutions, channels zero at every position). A dead unit's own weights get no gradient;
  it only comes back if the layers below it change what it receives.

```python
monitor = TrainingMonitor(model, optimizer)
train_one_epoch(model, batches, optimizer)
health = monitor.epoch_end(epoch=1)   # EpochHealth: one LayerHealth per Linear/Conv2d
monitor.close()
```
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.utils.hooks import RemovableHandle

from digitnet.history import EpochHealth, LayerHealth


def _label(index: int, module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        size = "×".join(str(k) for k in module.kernel_size)
        # a fixed layer (--first-layer pca) has no gradient or update to plot: its key entry says why
        fixed = "" if any(p.requires_grad for p in module.parameters()) else " (fixed)"
        return f"{index} Conv2d {module.in_channels}→{module.out_channels} {size}{fixed}"
    assert isinstance(module, nn.Linear)
    return f"{index} Linear {module.in_features}→{module.out_features}"


class TrainingMonitor:
    """Hooks that record per-layer health at every step;
    [epoch_end][digitnet.diagnostics.TrainingMonitor.epoch_end] reads and resets them.

    Each step keeps a few small tensors on the model's device (every layer's gradient norm, how far each
    weight moved and how large it is, which units fired), and the epoch's means are taken from them at
    its end: one sync per epoch, and as few operations per step as there are quantities, not one per
    layer and quantity. Every layer is handled by one call of torch's ``_foreach_`` functions (those
    ``clip_grad_norm_`` uses); layer by layer, with running sums updated each step, the hooks nearly
    doubled the baseline MLP's training time. ``scripts/benchmark.py --diagnostics`` measures
    what they cost now, and with ``--against REV`` against an earlier revision.

    The i-th ReLU in forward order follows the i-th weight layer in every digitnet model (the output
    layer has none), which is how dead units are assigned to layers.
    """

    def __init__(self, model: nn.Module, optimizer: Optimizer) -> None:
        self.layers = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
        self.names = [_label(i, m) for i, m in enumerate(self.layers, start=1)]
        relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
        self.relus = relus[: len(self.layers)]
        self._weights = [layer.weight for layer in self.layers]
        # the weights as the step starts, copied into the same buffers every step
        self._before = [weight.detach().clone() for weight in self._weights]
        self._stepping = False
        self._handles: list[RemovableHandle] = [
            optimizer.register_step_pre_hook(self._before_step),
            optimizer.register_step_post_hook(self._after_step),
            *(relu.register_forward_hook(self._watch(i)) for i, relu in enumerate(self.relus)),
        ]
        self._reset()

    def _reset(self) -> None:
        self._grad_norms: list[Tensor] = []
        """Per step: each layer's gradient norm (NaN for a layer without a gradient)"""
        self._moves: list[Tensor] = []
        """Per step: each layer's ``‖ΔW‖``, then each layer's ``‖W‖`` after the step"""
        self._fired: list[list[Tensor]] = [[] for _ in self.relus]
        """Per ReLU, per training forward pass: which of its units (channels) fired for some digit"""

    def _before_step(self, _optimizer: Optimizer, _args: Any, _kwargs: Any) -> None:
        with torch.no_grad():
            grads = [weight.grad for weight in self._weights]
            present = [grad for grad in grads if grad is not None]
            if len(present) == len(grads):
                self._grad_norms.append(torch.stack(torch._foreach_norm(present)))
            elif present:  # a fixed layer (--first-layer pca) has no gradient
                norms = iter(torch._foreach_norm(present))
                nan = torch.full((), math.nan, device=present[0].device)
                self._grad_norms.append(torch.stack([next(norms) if g is not None else nan for g in grads]))
            torch._foreach_copy_(self._before, self._weights)
            self._stepping = True

    def _after_step(self, _optimizer: Optimizer, _args: Any, _kwargs: Any) -> None:
        if not self._stepping:
            return
        with torch.no_grad():
            moved = torch._foreach_sub(self._weights, self._before)
            self._moves.append(torch.stack(torch._foreach_norm([*moved, *self._weights])))
        self._stepping = False

    def _watch(self, index: int) -> Any:
        def hook(module: nn.Module, _inputs: Any, output: Tensor) -> None:
            if not module.training:  # validation passes do not count: "dead" means on training digits
                return
            # (B, C, H, W): a channel fires if any position does; (B, D): per unit
            fired = (output.detach() > 0).flatten(2).any(dim=2) if output.dim() == 4 else output.detach() > 0
            self._fired[index].append(fired.any(dim=0))

        return hook

    def epoch_end(self, epoch: int) -> EpochHealth:
        """The epoch's means per layer (over its steps with finite values; NaN if none had one), then a
        fresh start for the next epoch."""
        count = len(self.layers)
        grad_norms = _finite_means(self._grad_norms, count)
        moves = torch.stack(self._moves).double() if self._moves else torch.empty(0, 2 * count)
        ratios = _finite_means(list(moves[:, :count] / moves[:, count:].clamp_min(1e-12)), count)
        layers = []
        for i, name in enumerate(self.names):
            fired = self._fired[i] if i < len(self._fired) else []
            alive = torch.stack(fired).any(dim=0) if fired else None
            # counted, not averaged in float32: 2 dead units of 100 are 0.02, not 0.01999998
            dead = None if alive is None else (alive.numel() - int(alive.sum())) / alive.numel()
            layers.append(LayerHealth(name, grad_norms[i], ratios[i], dead))
        self._reset()
        return EpochHealth(epoch, layers)

    def close(self) -> None:
        """Remove every hook: the model and optimizer are as they were before."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


def _finite_means(steps: list[Tensor], count: int) -> list[float]:
    """Each of ``count`` layers' mean over ``steps`` (one value per layer each), of its finite values only:
    in the epoch that diverges, the steps before the loss became NaN are the ones that say why."""
    if not steps:
        return [math.nan] * count
    values = torch.stack(steps).double()
    finite = torch.isfinite(values)
    totals = torch.where(finite, values, 0.0).sum(dim=0)
    counts = finite.sum(dim=0)
    return [
        float(t) / int(n) if n else math.nan for t, n in zip(totals.tolist(), counts.tolist(), strict=True)
    ]


__all__ = ["EpochHealth", "LayerHealth", "TrainingMonitor"]
