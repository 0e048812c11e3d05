"""Model files: what a run saves, and how it is read back safely.

``model.pt`` holds the weights beside the config that rebuilds the model, the pixel normalisation it was
trained with and the run's status; it loads with ``torch.load(weights_only=True)``, so no pickled code
ever runs, and a diverged or damaged one is refused in one line. ``.NAME.resume.pt``, written after every
finished epoch, holds what the next epoch depends on (weights, optimizer moments, schedule position,
random states), so an interrupted run continues bit for bit.

```python
checkpoint = load_checkpoint(Path("runs/mlp-sgd-1a2b3c4d5e6f"))
logits = checkpoint.model(images)
```
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from digitnet.data import NormStats
from digitnet.errors import CheckpointError, ConfigError
from digitnet.history import History
from digitnet.memory import check_memory
from digitnet.models import build_model, describe_model, planned_parameters
from digitnet.runtime import atomic_write_bytes
from digitnet.settings import RunConfig, run_config_from_dict

CHECKPOINT_FORMAT = 1


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the model's weights on the CPU: it stays as it is while training goes on changing them."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _torch_bytes(payload: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def save_checkpoint_bytes(
    config: RunConfig, state: dict[str, torch.Tensor], stats: NormStats, history: History
) -> bytes:
    """``model.pt`` contents: the state dict beside the config that rebuilds the model and the pixel
    normalisation it was trained with (so ``predict`` needs no training data), and the run's status,
    so a diverged model is refused rather than used."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": asdict(config),
        "normalization": asdict(stats),
        "state_dict": state,
        "status": history.status,
        "diverged_at": history.diverged_at,
    }
    return _torch_bytes(payload)


def resume_path(run_dir: Path) -> Path:
    """Where a run's per-epoch resumable checkpoint lives: a hidden file beside its directory, so the
    directory itself still appears whole or not at all."""
    return run_dir.parent / f".{run_dir.name}.resume.pt"


RESUME_FORMAT = 1


@dataclass
class Resumable:
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
            "model": cpu_state(self.model),
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


def save_resume(path: Path, snapshot: dict[str, Any]) -> None:
    """Write a [Resumable.snapshot][digitnet.checkpoint.Resumable.snapshot] atomically: a run killed while
    it is written resumes from the previous epoch's."""
    atomic_write_bytes(path, _torch_bytes(snapshot))


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


def checkpoint_path(run_dir: Path) -> Path:
    """The ``model.pt`` of ``run_dir`` (a run directory, or the checkpoint file itself), or a one-line
    error that says what was given instead: a student's image where the run directory goes is the usual
    slip (``digitnet predict seven.png``), and "not a safe checkpoint" would send them the wrong way."""
    if not run_dir.exists():
        raise CheckpointError(f"{run_dir}: no such run directory")
    if run_dir.is_file() and run_dir.suffix != ".pt":
        raise CheckpointError(
            f"{run_dir}: not a run directory; the run directory ('digitnet train' wrote it) comes first"
        )
    path = run_dir / "model.pt" if run_dir.is_dir() else run_dir
    if not path.is_file():
        if (run_dir / "runs.csv").is_file():  # a sweep: its runs are in runs/, one folder each
            raise CheckpointError(
                f"{run_dir}: a sweep from 'digitnet compare', not one run; give one of its runs, "
                f"{run_dir / 'runs' / '<key>'} (runs.csv says which key is which value and seed)"
            )
        raise CheckpointError(
            f"{run_dir}: no checkpoint (model.pt); is this a run directory from 'digitnet train'?"
        )
    return path


def load_checkpoint(run_dir: Path, device: torch.device | None = None) -> Checkpoint:
    """Rebuild a run's model from ``model.pt`` with ``weights_only=True``: no pickled code ever runs."""
    path = checkpoint_path(run_dir)
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
    "RESUME_FORMAT",
    "Checkpoint",
    "checkpoint_path",
    "load_checkpoint",
    "load_resume",
    "read_json",
    "resume_path",
    "save_checkpoint_bytes",
    "save_resume",
]
