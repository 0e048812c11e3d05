"""What a run measured, as plain data: epochs, per-step losses, the test score, per-layer health.

The trainer fills a [History][digitnet.history.History], ``history.json`` stores it, the figures and
tables read it. Nothing here imports torch: a figure can be drawn from a finished run's ``history.json``,
and ``digitnet train`` draws its figures in a helper process that never imports torch
([digitnet.figure_helper][digitnet.figure_helper]).

```python
history = History.from_dict(json.load(open(run_dir / "history.json")))
print(history.best_epoch(), history.epochs[-1].val_accuracy)
```
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

RunStatus = Literal["completed", "diverged", "interrupted"]


@dataclass(frozen=True)
class LayerHealth:
    """One weight layer's epoch, averaged over its optimizer steps."""

    layer: str
    """e.g. ``Linear 784→100`` or ``Conv2d 1→16 5×5``, numbered in forward order"""
    grad_norm: float
    update_ratio: float
    dead_fraction: float | None
    """Share of the ReLU units after this layer that never fired this epoch; None for the output layer"""


@dataclass(frozen=True)
class EpochHealth:
    epoch: int
    layers: list[LayerHealth]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpochHealth:
        def number(value: float | None) -> float:
            return math.nan if value is None else float(value)  # null in JSON: not finite (diverged)

        layers = [
            LayerHealth(
                layer=layer["layer"],
                grad_norm=number(layer["grad_norm"]),
                update_ratio=number(layer["update_ratio"]),
                dead_fraction=layer["dead_fraction"],
            )
            for layer in data["layers"]
        ]
        return cls(int(data["epoch"]), layers)


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch measured. Train figures are running values over the epoch's batches."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    lr: float
    """Learning rate at the end of the epoch"""
    train_seconds: float
    eval_seconds: float
    samples_per_second: float
    """Training samples per second of training time"""
    train_eval_loss: float | None = None
    """With ``eval_train``: the whole training split measured in eval mode at the epoch's end"""
    train_eval_accuracy: float | None = None
    prepared_seconds: float | None = None
    """Part of ``train_seconds``, in the first epoch a process trains: computing a fixed first stage's
    outputs once (``--first-layer pca``), which is why that epoch's samples per second are lower"""
    train_cpu_seconds: float | None = None
    """The CPU time ``train_seconds`` took, when one thread trained on the CPU (None otherwise, and in
    older histories). Unlike the clock it leaves out the moments another program held the core, so two
    runs compare fairly when one trained beside a busier neighbour (the report's figures, a browser)"""


@dataclass
class History:
    """Everything a run measured, in a form that round-trips through JSON."""

    epochs: list[EpochRecord] = field(default_factory=list)
    iteration_loss: list[float] = field(default_factory=list)
    """One per optimizer step"""
    status: RunStatus = "completed"
    diverged_at: dict[str, int] | None = None
    """{"epoch": E, "step": S, "steps_per_epoch": N}, S counted from 1 over the run (older histories
    lack N)"""
    test_loss: float | None = None
    test_accuracy: float | None = None
    test_seconds: float | None = None
    """How long measuring the test set took (the run's last step before writing)"""
    diagnostics: list[EpochHealth] | None = None
    """With ``--diagnostics``: per epoch, per layer health (see ``digitnet.diagnostics``)"""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.diagnostics is None:  # a run without --diagnostics writes the history.json it always did
            del data["diagnostics"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls(
            epochs=[EpochRecord(**record) for record in data["epochs"]],
            # null in JSON is a loss that was not finite (see runtime.json_safe)
            iteration_loss=[math.nan if v is None else float(v) for v in data["iteration_loss"]],
            status=data["status"],
            diverged_at=data.get("diverged_at"),
            test_loss=data.get("test_loss"),
            test_accuracy=data.get("test_accuracy"),
            test_seconds=data.get("test_seconds"),
            diagnostics=(
                [EpochHealth.from_dict(epoch) for epoch in data["diagnostics"]]
                if data.get("diagnostics") is not None
                else None
            ),
        )

    @property
    def train_seconds(self) -> float:
        return sum(record.train_seconds for record in self.epochs)

    @property
    def train_cpu_seconds(self) -> float | None:
        """The epochs' CPU time, if every one recorded it (see ``EpochRecord.train_cpu_seconds``); 0 for
        a run that diverged in its first epoch, as its ``train_seconds`` is."""
        seconds = [r.train_cpu_seconds for r in self.epochs if r.train_cpu_seconds is not None]
        return sum(seconds) if len(seconds) == len(self.epochs) else None

    def best_epoch(self) -> int | None:
        """The epoch with the highest validation accuracy (the first, on ties)."""
        if not self.epochs:
            return None
        return max(self.epochs, key=lambda r: (r.val_accuracy, -r.epoch)).epoch


__all__ = ["EpochHealth", "EpochRecord", "History", "LayerHealth", "RunStatus"]
