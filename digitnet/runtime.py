"""Where code runs and how files land: the device, the seed, threads, and atomic writes.

One place picks the device and one place seeds, so a run is reproducible from its config alone. Every file
digitnet writes goes through [atomic_write_bytes][digitnet.runtime.atomic_write_bytes] (temp file + rename) or
into a directory that is renamed into place whole ([atomic_directory][digitnet.runtime.atomic_directory]), so
Ctrl-C never leaves half a file.

```pycon
>>> _ = seed_everything(0); a = torch.rand(2)
>>> _ = seed_everything(0); bool(torch.equal(a, torch.rand(2)))
True

```
"""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import platform
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from digitnet import cpuload
from digitnet.configs import DEVICES, Precision
from digitnet.errors import ConfigError


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


def autocast(precision: Precision, device: torch.device) -> contextlib.AbstractContextManager[object]:
    """The context a forward pass runs in: nothing at ``float32``; at ``bfloat16``, torch's autocast, which
    runs matrix products and convolutions in bfloat16 and keeps the operations it lists as
    precision-sensitive (the loss, softmax) and the weights in float32."""
    if precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def precision_note(precision: Precision, device: torch.device) -> str | None:
    """A note when ``precision`` will be slow on ``device``: bfloat16 on a CPU without bfloat16
    instructions, or on a GPU older than NVIDIA's Ampere (compute capability 8), which PyTorch then
    emulates (None where the hardware has them, or this torch cannot tell). A preset chooses bfloat16
    where it was measured on a machine that has them; another machine may not."""
    if precision != "bfloat16":
        return None
    if device.type == "cuda":
        if torch.cuda.get_device_capability(device)[0] >= 8:
            return None
        return (
            "--precision bfloat16: this GPU has no bfloat16 units (before Ampere), so it is emulated and "
            "likely slower than float32 (--precision float32)"
        )
    if device.type != "cpu":
        return None
    found = bfloat16_instructions()
    if found is None or found:
        return None
    return (
        "--precision bfloat16: this processor has no bfloat16 instructions, so PyTorch emulates them and "
        "training is likely slower than at float32 (--precision float32)"
    )


def bfloat16_instructions() -> list[str] | None:
    """The bfloat16 instruction sets this CPU has, as PyTorch names them (``avx512_bf16``, ``amx_bf16``
    on x86; ``bf16``, ``sve_bf16`` on ARM); None where this torch cannot tell (before 2.9).

    Recorded with every run: with AMX, oneDNN runs bfloat16 convolutions and matrix products on it,
    another order of sums than AVX512-BF16's, so the same seed's last digits and its time differ
    between two processors that both "have bfloat16"."""
    capabilities = getattr(torch.cpu, "get_capabilities", None)  # torch ≥ 2.9
    if capabilities is None:
        return None
    found = capabilities()
    return [name for name in ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16") if found.get(name)]


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

    Each run of a sweep gets one thread (``digitnet.sweep.SWEEP_THREADS``): with one worker process per
    core, more would oversubscribe the cores.
    """
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads: expected a whole number ≥ 1, got {threads}")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def busy_cores(seconds: float | None = None) -> float:
    """How many cores other programs keep busy (Linux; 0 where that cannot be read).

    ``seconds=None``: over the window since the command line started, when it is between half a second
    and half a minute old (see [digitnet.cpuload][]), else sampled over a tenth of a second now. A number:
    sampled over that many seconds now, while this process sleeps.
    """
    if seconds is None:
        since_start = cpuload.other_busy_cores(cpuload.START, minimum=0.5, maximum=30.0)
        if since_start is not None:
            return since_start
        seconds = 0.1
    before = cpuload.read()
    if before is None:  # no counters (macOS, Windows): nothing to wait for
        return 0.0
    time.sleep(seconds)
    return cpuload.other_busy_cores(before) or 0.0


def choose_threads() -> tuple[int, str | None]:
    """The thread count for a run that did not set one, and a note when it is fewer than torch's default.

    torch starts one thread per core. On a machine where another program keeps a core busy (a browser, a
    second training), a thread sharing that core stalls the others at every operation, since each waits for
    the slowest: measured on 2 cores, a ``--preset fast`` process beside one busy process took well over twice
    its idle time with 2 threads, and barely longer than one thread's idle time with 1
    (``scripts/benchmark.py --busy``). So the cores other programs are using are left to them.
    How busy the cores are is measured while torch imports ([busy_cores][digitnet.runtime.busy_cores]).
    ``OMP_NUM_THREADS``, when set, is the user's choice and is kept.
    """
    default = torch.get_num_threads()
    if "OMP_NUM_THREADS" in os.environ or default == 1:
        return default, None
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else default
    busy = round(busy_cores())
    threads = max(1, min(default, available - busy))
    if threads == default:
        return default, None
    return threads, (
        f"other programs keep {busy} of {available} cores busy: training with {threads} "
        f"{'thread' if threads == 1 else 'threads'} rather "
        f"than {default}, which would wait on the busy cores (--threads N to choose)"
    )


@contextlib.contextmanager
def using_threads(threads: int | None) -> Iterator[int]:
    """Run a block with ``threads`` intra-op threads (None: leave as is), then restore the previous count,
    so one run's setting never leaks into the next run of the same process."""
    previous = torch.get_num_threads()
    try:
        yield configure_threads(threads)
    finally:
        configure_threads(previous)


SMALLEST_NORMAL_FLOAT32 = float(np.finfo(np.float32).tiny)  # 1.2e-38


def flushes_denormals() -> bool:
    """Whether this thread's CPU treats float32 numbers below 1.2e-38 as zero (see
    [flushing_denormals][digitnet.runtime.flushing_denormals]); torch can set this but not tell it."""
    below = np.float32(SMALLEST_NORMAL_FLOAT32) / np.float32(2.0)  # a denormal, or 0 where they are flushed
    return bool(below == 0)


@contextlib.contextmanager
def flushing_denormals() -> Iterator[bool]:
    """Run a block (a run's training) with float32 numbers below 1.2e-38 flushed to zero on the CPU.

    Numbers that small (*denormal* or *subnormal*) are worked out by a slow path of the processor: a
    multiplication with one takes over 30 times as long. Training makes them: an optimizer's running
    average of a gradient that stays zero (a hidden unit that fires for none of the batch's digits)
    shrinks by the same factor every step (Adam's by 0.9) and passes through that range before it
    reaches zero. Flushing them changes no weight: the largest step a flushed value could have made is a
    learning rate of 0.01 times 1.2e-38 divided by the optimizers' epsilon of 1e-8, about 1e-32, below
    the last digit of any weight above 1e-24. Measured on full MNIST (``scripts/benchmark.py
    --denormals``, the Speed page), ten-epoch runs of the baseline MLP on one thread, every step's loss
    the same, trained in 0.85 to 0.86 of their time with RMSprop and 0.90 to 0.94 with Adam, against
    0.96 for SGD, which has nothing to flush (so part of each ratio is the order of the pair or drift).

    It is ``torch.set_flush_denormal(True)``, for this thread and for the threads torch starts for its
    operations after it (they copy it when they start, and only then), so it is set before the run's data
    is prepared. This thread's previous setting comes back afterwards; torch's threads started during the
    block keep flushing (nothing in torch reaches them), and those started before it never did: in a
    notebook that already ran large operations on several threads, only the training thread flushes.
    Yields whether this CPU can flush them (every x86 processor PyTorch supports can).
    """
    before = flushes_denormals()
    supported = torch.set_flush_denormal(True)
    try:
        yield supported
    finally:
        if supported and not before:
            torch.set_flush_denormal(False)


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
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        # The vector instructions PyTorch's CPU kernels were dispatched to: another set sums in another
        # order, so the same seed trains a (slightly) different model on another processor.
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bfloat16_instructions": bfloat16_instructions(),
        "threads": torch.get_num_threads(),
        "flush_denormals": flushes_denormals(),  # in this (the training) thread; see flushing_denormals
        "platform": platform.platform(),
    }


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The processor's model name (Linux's ``/proc/cpuinfo``), else what ``platform`` knows: a run records
    it because its last digits depend on the processor it trained on."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "model name" and value.strip():
                return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or platform.machine()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        _apply_umask(Path(tmp_name), directory=False)
        Path(tmp_name).replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp_name).unlink()
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Text flavour of [atomic_write_bytes][digitnet.runtime.atomic_write_bytes] (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(value: Any) -> Any:
    """``value`` with NaN and ±inf floats as None: strict JSON has no such numbers, and a diverged run's
    loss is one (its ``status`` says why the number is missing)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def atomic_write_json(path: Path, value: Any) -> None:
    """JSON flavour of [atomic_write_bytes][digitnet.runtime.atomic_write_bytes], indented for people who
    open the file; strict JSON, non-finite numbers as null (see [json_safe][digitnet.runtime.json_safe])."""
    atomic_write_text(path, json.dumps(json_safe(value), indent=2, allow_nan=False) + "\n")


# ------------------------------------------------------------------------------- output directories
# digitnet replaces a directory only if it wrote it itself: each directory it writes carries a small
# marker file naming what it is (a run, an evaluation, ...) and, for a run, its config key. Anything else
# at the target (a student's thesis, a run directory of another config, a file) is refused before any work.

OWNER_FILE = ".digitnet"
OutputKind = Literal["run", "evaluation", "split", "figures", "sweep", "writeup"]


def output_marker(directory: Path) -> dict[str, Any] | None:
    """What the marker in ``directory`` says it holds, or None if digitnet did not write it."""
    try:
        value = json.loads((directory / OWNER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        value = None
    if isinstance(value, dict) and isinstance(value.get("kind"), str):
        return value
    # Sweeps and run directories written before the marker existed are recognised by their files.
    if (directory / "runs.csv").is_file() and (directory / "results.md").is_file():
        return {"kind": "sweep", "key": None}
    try:
        legacy = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(legacy, dict) and isinstance(legacy.get("key"), str) and (directory / "model.pt").is_file():
        return {"kind": "run", "key": legacy["key"]}
    return None


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path(path.anchor or ".")


def claim_output(
    final: Path,
    kind: OutputKind,
    key: str | None = None,
    flag: str = "--out",
    explain: Callable[[Path], str] | None = None,
) -> None:
    """Refuse, before any work starts, an output directory digitnet could not write without destroying
    something it did not write itself.

    ``final`` may be missing, an empty directory, or a directory this function's ``kind`` wrote earlier
    (for a run: of the same config ``key``). Its nearest existing ancestor must be a writable directory,
    checked by creating and removing a scratch directory there, so a read-only or misplaced ``--out``
    fails now rather than after an hour of training. ``explain`` says how a run of another key differs
    (which options), where the two keys alone would not tell a student what to change back.
    """
    if final.is_symlink() or (final.exists() and not final.is_dir()):
        raise ConfigError(
            f"{flag} {final}: a file is there; digitnet writes a new directory, choose another path"
        )
    absolute = final.resolve()
    cwd = Path.cwd()
    if absolute == cwd or absolute in cwd.parents or absolute.parent == absolute:
        raise ConfigError(f"{flag} {final}: that is the current directory or above it; name a new directory")
    if final.is_dir():
        try:
            entries = [p.name for p in final.iterdir()]
        except OSError as error:
            raise ConfigError(f"{flag} {final}: cannot read it ({error.strerror})") from None
        if entries:
            marker = output_marker(final)
            if marker is None or marker["kind"] != kind:
                what = f"a digitnet {marker['kind']} directory" if marker else "files digitnet did not write"
                raise ConfigError(
                    f"{flag} {final}: it holds {what}; digitnet replaces only its own {kind} output, "
                    "so choose a new directory"
                )
            if key is not None and marker.get("key") != key:
                difference = (
                    explain(final) if explain else ""
                ) or f"key {marker.get('key')}, this run is {key}"
                raise ConfigError(
                    f"{flag} {final}: it holds a run of another config ({difference}); choose a new "
                    "directory or delete that run yourself"
                )
    ancestor = _nearest_existing(final.parent)
    if not ancestor.is_dir():
        raise ConfigError(f"{flag} {final}: {ancestor} is a file, not a directory")
    try:
        probe = tempfile.mkdtemp(prefix=".digitnet-probe.", dir=ancestor)
    except OSError as error:
        raise ConfigError(f"{flag} {final}: cannot write in {ancestor} ({error.strerror})") from None
    Path(probe).rmdir()


def mark_output(directory: Path, kind: OutputKind, key: str | None = None) -> None:
    """Label a directory digitnet filled file by file, so a later run may replace it (see claim_output)."""
    atomic_write_json(directory / OWNER_FILE, {"kind": kind, "key": key})


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but belongs to someone else
        return True
    return True


def _carry_over(old: Path, new: Path, stale: Collection[str] = ()) -> None:
    """Move every entry of ``old`` that ``new`` lacks into ``new``: what digitnet writes is replaced, what
    it did not write there (a student's notes) stays. A ``stale`` entry (digitnet's output derived from
    the replaced files) loses digitnet's files; it is carried over only if a student's remain in it."""
    for entry in list(old.iterdir()):
        if entry.name in stale and not _without_own_files(entry):
            continue
        if not (new / entry.name).exists() and not (new / entry.name).is_symlink():
            entry.replace(new / entry.name)


def _without_own_files(entry: Path) -> bool:
    """Remove from directory ``entry`` the files its marker says digitnet wrote; True if others remain
    (a student's notes beside an evaluation), which are kept. A file is digitnet's whole: False."""
    marker = output_marker(entry) if entry.is_dir() else None
    if marker is None:
        return False
    own = set(written_files(entry) or ())
    for item in list(entry.iterdir()):
        if item.name not in own:
            continue
        if item.is_dir() and not item.is_symlink():
            shutil.rmtree(item)
        else:
            item.unlink()
    if not [p for p in entry.iterdir() if p.name != OWNER_FILE]:
        return False
    atomic_write_json(entry / OWNER_FILE, {**marker, "files": []})
    return True


def written_files(directory: Path) -> list[str] | None:
    """The entries digitnet wrote into ``directory`` (an [atomic_directory][digitnet.runtime.atomic_directory]
    records them in its marker), or None where it does not know (no marker, or written before it kept
    the list): without the list it cannot tell a student's files from its own, so it removes none."""
    marker = output_marker(directory)
    files = marker.get("files") if marker else None
    return [str(name) for name in files] if isinstance(files, list) else None


def remove_stale_staging(parent: Path, name: str) -> None:
    """Clean up after a digitnet process killed while saving ``parent/name`` (its PID is gone).

    Its staging directory (``.NAME.PID.*.tmp``) holds only files it was writing and is removed. A retired
    directory (``.NAME.PID.*.old``) may still hold entries that belong in ``name``: they are put back first.
    """
    if not parent.is_dir():
        return
    final = parent / name
    for leftover in parent.glob(f".{glob.escape(name)}.*"):
        parts = leftover.name[len(name) + 2 :].split(".")
        if len(parts) < 2 or parts[-1] not in ("tmp", "old") or not parts[0].isdigit():
            continue
        if not leftover.is_dir() or leftover.is_symlink() or _process_alive(int(parts[0])):
            continue
        retired = leftover / name
        if parts[-1] == "old" and retired.is_dir():
            if final.exists():
                _carry_over(retired, final)
            else:
                retired.replace(final)
        shutil.rmtree(leftover, ignore_errors=True)


@contextlib.contextmanager
def training_alone(run_dir: Path, flag: str = "--out") -> Iterator[None]:
    """Refuse a second process training into ``run_dir`` while this block runs.

    Two identical commands in two terminals would both train, both write the resume file beside the
    run, and both replace the directory. Each holds a marker beside it (``.NAME.PID.training``) while it
    trains; a marker whose process is gone (``kill -9``) is removed. The marker is made before others are
    looked for, so two processes starting together both refuse rather than both proceed.
    """
    made = not run_dir.parent.exists()  # removed again if the run fails before writing anything there
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    mine = run_dir.parent / f".{run_dir.name}.{os.getpid()}.training"
    mine.touch()
    try:
        for marker in run_dir.parent.glob(f".{glob.escape(run_dir.name)}.*.training"):
            pid = marker.name[len(run_dir.name) + 2 : -len(".training")]
            if marker == mine or not pid.isdigit():
                continue
            if not _process_alive(int(pid)):
                marker.unlink(missing_ok=True)
                continue
            raise ConfigError(
                f"{flag} {run_dir}: another digitnet process (pid {pid}) is training into it; wait for it "
                f"to finish or choose another directory (if no such process runs, delete {marker})"
            )
        yield
    finally:
        mine.unlink(missing_ok=True)
        if made:
            with contextlib.suppress(OSError):  # not empty: it holds what the run wrote
                run_dir.parent.rmdir()


@contextlib.contextmanager
def atomic_directory(
    final: Path, kind: OutputKind, key: str | None = None, stale: Collection[str] = ()
) -> Iterator[Path]:
    """Yield a temporary sibling directory that replaces ``final`` only if the block finishes.

    ``final`` is first checked with [claim_output][digitnet.runtime.claim_output], so only digitnet's own
    output of the same ``kind`` (and run ``key``) is ever replaced, and of that only the files the block
    writes again: other entries are carried over into the new directory, except those named in ``stale``
    (digitnet's own outputs derived from the files replaced), which go with the old directory. An exception
    or Ctrl-C inside the block removes the temporary directory, so ``final`` is either the previous complete
    directory or the new complete one.
    """
    claim_output(final, kind, key)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(final.parent, final.name)
    prefix = f".{final.name}.{os.getpid()}."
    staging = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=final.parent))
    _apply_umask(staging, directory=True)
    try:
        mark_output(staging, kind, key)
        yield staging
        # the marker (the block may have rewritten it) lists what the block wrote: the entries carried
        # over below are not in it, so a later replacement can tell them from digitnet's own
        marker = output_marker(staging) or {"kind": kind, "key": key}
        files = sorted(p.name for p in staging.iterdir() if p.name != OWNER_FILE)
        atomic_write_json(staging / OWNER_FILE, {**marker, "files": files})
        if final.exists():
            retired = Path(tempfile.mkdtemp(prefix=prefix, suffix=".old", dir=final.parent))
            final.replace(retired / final.name)
            staging.replace(final)
            _carry_over(retired / final.name, final, stale)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.replace(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _apply_umask(path: Path, directory: bool) -> None:
    """mkstemp/mkdtemp create 0600/0700 whatever the umask; give the file the mode ``open`` would."""
    umask = os.umask(0)
    os.umask(umask)
    path.chmod((0o777 if directory else 0o666) & ~umask)
