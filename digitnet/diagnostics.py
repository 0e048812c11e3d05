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
    """Hooks that sum per-layer health over an epoch's steps;
    [epoch_end][digitnet.diagnostics.TrainingMonitor.epoch_end] reads and resets them. The sums stay
    tensors on the model's device until then (one sync per epoch).

    The i-th ReLU in forward order follows the i-th weight layer in every digitnet model (the output
    layer has none), which is how dead units are assigned to layers.
    """

    def __init__(self, model: nn.Module, optimizer: Optimizer) -> None:
        self.layers = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
        self.names = [_label(i, m) for i, m in enumerate(self.layers, start=1)]
        relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
        self.relus = relus[: len(self.layers)]
        self._handles: list[RemovableHandle] = [
            optimizer.register_step_pre_hook(self._before_step),
            optimizer.register_step_post_hook(self._after_step),
            *(relu.register_forward_hook(self._watch(i)) for i, relu in enumerate(self.relus)),
        ]
        self._reset()

    def _reset(self) -> None:
        # Sums and counts of the finite values only: in the epoch that diverges, the steps before the
        # loss became NaN are the ones that say why.
        self._grad_norms: list[Tensor | float] = [0.0] * len(self.layers)
        self._grad_steps: list[Tensor | float] = [0.0] * len(self.layers)
        self._ratios: list[Tensor | float] = [0.0] * len(self.layers)
        self._ratio_steps: list[Tensor | float] = [0.0] * len(self.layers)
        self._before: list[Tensor | None] = [None] * len(self.layers)
        self._active: list[Tensor | None] = [None] * len(self.relus)

    def _before_step(self, _optimizer: Optimizer, _args: Any, _kwargs: Any) -> None:
        for i, layer in enumerate(self.layers):
            weight = layer.weight
            if weight.grad is not None:
                norm = weight.grad.detach().float().norm()
                finite = torch.isfinite(norm)
                self._grad_norms[i] = self._grad_norms[i] + torch.where(finite, norm, 0.0)
                self._grad_steps[i] = self._grad_steps[i] + finite.float()
            self._before[i] = weight.detach().clone()

    def _after_step(self, _optimizer: Optimizer, _args: Any, _kwargs: Any) -> None:
        for i, layer in enumerate(self.layers):
            before = self._before[i]
            if before is not None:
                weight = layer.weight.detach()
                ratio = (weight - before).float().norm() / weight.float().norm().clamp_min(1e-12)
                finite = torch.isfinite(ratio)
                self._ratios[i] = self._ratios[i] + torch.where(finite, ratio, 0.0)
                self._ratio_steps[i] = self._ratio_steps[i] + finite.float()
                self._before[i] = None

    def _watch(self, index: int) -> Any:
        def hook(module: nn.Module, _inputs: Any, output: Tensor) -> None:
            if not module.training:  # validation passes do not count: "dead" means on training digits
                return
            # (B, C, H, W): a channel fires if any position does; (B, D): per unit
            fired = (output.detach() > 0).flatten(2).any(dim=2) if output.dim() == 4 else output.detach() > 0
            fired = fired.any(dim=0)
            seen = self._active[index]
            self._active[index] = fired if seen is None else seen | fired

        return hook

    def epoch_end(self, epoch: int) -> EpochHealth:
        """The epoch's means per layer (over its steps with finite values; NaN if none had one), then a
        fresh start for the next epoch."""

        def mean(total: Tensor | float, count: Tensor | float) -> float:
            return float(total) / float(count) if float(count) > 0 else math.nan

        layers = []
        for i, name in enumerate(self.names):
            active = self._active[i] if i < len(self._active) else None
            dead = None if active is None else 1.0 - int(active.sum()) / active.numel()
            layers.append(
                LayerHealth(
                    layer=name,
                    grad_norm=mean(self._grad_norms[i], self._grad_steps[i]),
                    update_ratio=mean(self._ratios[i], self._ratio_steps[i]),
                    dead_fraction=dead,
                )
            )
        self._reset()
        return EpochHealth(epoch, layers)

    def close(self) -> None:
        """Remove every hook: the model and optimizer are as they were before."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


__all__ = ["EpochHealth", "LayerHealth", "TrainingMonitor"]
