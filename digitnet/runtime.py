"""Where code runs and how files land: the device, the seed, threads, and atomic writes.

One place picks the device and one place seeds, so a run is reproducible from its config alone.
Every file digitnet writes goes through :func:`atomic_write_bytes` (temp file + rename) or into a
directory that is renamed into place whole (:func:`atomic_directory`), so Ctrl-C never leaves half a file.

```pycon
>>> _ = seed_everything(0); a = torch.rand(2)
>>> _ = seed_everything(0); bool(torch.equal(a, torch.rand(2)))
True

```
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from digitnet.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """Turn ``auto|cpu|cuda|mps`` into a device, refusing one this machine does not have.

    ``auto`` prefers CUDA, then Apple's MPS, then the CPU: the fastest device present.
    """
    if name not in DEVICES:
        raise ConfigError(f"--device: expected one of {', '.join(DEVICES)}, got {name!r}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available on this machine")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("--device mps: no MPS device is available on this machine")
    return torch.device(name)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch, and return a fresh CPU generator for data order.

    The returned generator drives shuffling and augmentation, so batch order depends on the seed alone,
    not on how many random numbers model initialisation happened to draw.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed + 1)
    return generator


def configure_threads(threads: int | None) -> int:
    """Set torch's intra-op threads (``None`` keeps torch's default) and return the count in force.

    Worker processes of a parallel sweep each get ``cores // jobs`` threads so they do not oversubscribe.
    """
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads: expected a whole number ≥ 1, got {threads}")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


@contextlib.contextmanager
def using_threads(threads: int | None) -> Iterator[int]:
    """Run a block with ``threads`` intra-op threads (None: leave as is), then restore the previous count,
    so one run's setting never leaks into the next run of the same process."""
    previous = torch.get_num_threads()
    try:
        yield configure_threads(threads)
    finally:
        configure_threads(previous)


def environment_info(device: torch.device) -> dict[str, Any]:
    """Library versions, device and thread count: recorded in every run so numbers can be traced.

    Versions come from package metadata, so recording them imports nothing (torchvision's import alone
    costs a third of a second of every run's start-up).
    """
    from importlib.metadata import PackageNotFoundError, version

    def installed(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    return {
        "digitnet": installed("digitnet"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": installed("torchvision"),
        "numpy": np.__version__,
        "scikit_learn": installed("scikit-learn"),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp_name).replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp_name).unlink()
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Text flavour of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, value: Any) -> None:
    """JSON flavour of :func:`atomic_write_bytes`, indented for people who open the file."""
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling directory that replaces ``final`` only if the block finishes.

    An exception or Ctrl-C inside the block removes the temporary directory, so ``final`` is either the
    previous complete directory or the new complete one.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield staging
        if final.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
            final.replace(retired / final.name)
            staging.replace(final)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.replace(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
