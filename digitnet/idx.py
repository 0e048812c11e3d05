"""MNIST's four IDX files: where they are, how one is read, and reading them while torch imports.

Nothing here imports torch, so a command can start reading the files before it imports torch:
[prefetch][digitnet.idx.prefetch] inflates the 55 MB of digits in a background thread while torch's
import (1.5–2 s) keeps the main thread busy. zlib lets go of Python's global lock while it inflates, so on a
two-core machine the reading runs on the core the import leaves idle, and the run finds its digits
already in memory (about 0.3 s of every ``digitnet train`` on full MNIST).
[read_idx][digitnet.idx.read_idx] takes a prefetched file if it is still the same file (inode, size and
modification time), and reads it itself otherwise. The rest of digitnet reaches these names through
[digitnet.data][digitnet.data].

```python
prefetch(DataConfig(data_dir="data/mnist"))  # returns at once; a daemon thread reads
images = read_idx(Path("data/mnist/train-images-idx3-ubyte.gz"), 3)  # (60000, 28, 28) uint8
```
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Protocol

import numpy as np

from digitnet.configs import DataConfig
from digitnet.errors import DataError
from digitnet.memory import check_memory

DATA_ENV_VAR = "DIGITNET_DATA"
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 22  # compressed bytes fed to zlib at a time: few, long stretches without the global lock


# --------------------------------------------------------------------------------------------- locating


def default_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """``--data-dir``, else ``$DIGITNET_DATA``, else a per-user cache directory (never the working dir)."""
    if data_dir:
        return Path(data_dir).expanduser()
    from_env = os.environ.get(DATA_ENV_VAR)
    if from_env:
        return Path(from_env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("digitnet")) / "mnist"


def find_mnist_files(directory: Path) -> dict[str, Path] | None:
    """The four MNIST files in ``directory`` (flat or ``MNIST/raw``, gz or not), or None if there are none.

    Some but not all of them is an error that names the missing files: a half-finished download should
    not silently fall back to the sample.
    """
    found: dict[str, Path] = {}
    for folder in (directory, directory / "MNIST" / "raw"):
        for key, stem in MNIST_FILES.items():
            if key in found:
                continue
            for candidate in (folder / stem, folder / f"{stem}.gz"):
                if candidate.is_file():
                    found[key] = candidate
                    break
    if not found:
        return None
    missing = [f"{MNIST_FILES[key]}[.gz]" for key in MNIST_FILES if key not in found]
    if missing:
        raise DataError(f"{directory}: incomplete MNIST directory, missing {', '.join(missing)}")
    return found


# -------------------------------------------------------------------------------------------- reading


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class _Gunzip:
    """A gzip stream read forward in a few long calls to zlib.

    Python's ``gzip`` module inflates 8 KB of input at a time and takes the global lock back after each,
    so a reading thread would mostly wait for the import beside it. Here each call inflates up to 4 MB of
    input at once, and never more output than was asked for (a gzip bomb is not inflated past the size
    the IDX header declares). A file of several gzip members reads as one stream, as with ``gzip``.
    """

    def __init__(self, handle: _Readable) -> None:
        self._handle = handle
        self._inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self._fed = False  # whether the current member has been given any input
        self._pending = b""

    def read(self, size: int) -> bytes:
        pieces: list[bytes] = []
        wanted = size
        while wanted > 0:
            if not self._fed:  # zero bytes may pad the file between or after members, as gzip allows
                self._pending = self._pending.lstrip(b"\0")
            if not self._pending:
                self._pending = self._handle.read(_CHUNK)
                if not self._pending:
                    if self._fed:
                        raise EOFError("compressed file ended before the end-of-stream marker was reached")
                    break
                continue
            piece = self._inflater.decompress(self._pending, wanted)
            self._fed = True
            pieces.append(piece)
            wanted -= len(piece)
            if self._inflater.eof:  # this member is complete; anything after it starts the next one
                self._pending = self._inflater.unused_data
                self._inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                self._fed = False
            else:
                self._pending = self._inflater.unconsumed_tail
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)


@contextlib.contextmanager
def _open_maybe_gzip(path: Path) -> Iterator[_Readable]:
    """The file's bytes as a stream, inflated on the fly when it is gzipped (by its magic, not its name)."""
    with path.open("rb") as handle:
        gzipped = handle.read(2) == _GZIP_MAGIC
        handle.seek(0)
        yield _Gunzip(handle) if gzipped else handle


def _read_idx_file(path: Path, ndim: int) -> np.ndarray:
    try:
        with _open_maybe_gzip(path) as handle:
            gzipped = isinstance(handle, _Gunzip)
            header = handle.read(4 + 4 * ndim)
            if len(header) < 4 + 4 * ndim:
                raise DataError(f"{path}: too short for an IDX header ({len(header)} bytes)")
            zero, dtype_code, rank = int.from_bytes(header[:2], "big"), header[2], header[3]
            if zero != 0 or dtype_code != _IDX_UBYTE:
                raise DataError(
                    f"{path}: wrong magic number 0x{int.from_bytes(header[:4], 'big'):08x}, "
                    f"expected 0x{_IDX_UBYTE << 8 | ndim:08x} (unsigned-byte IDX, {ndim}-D)"
                )
            if rank != ndim:
                raise DataError(f"{path}: IDX file has {rank} dimensions, expected {ndim}")
            shape = tuple(int.from_bytes(header[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
            expected = math.prod(shape)
            # the bytes, then the float32 copy training normalises them into: 5 bytes a pixel
            check_memory(expected * 5, f"{path}: its header declares {shape}")
            body = handle.read(expected + 1)  # one byte more tells a file longer than declared
    except (EOFError, zlib.error) as error:
        raise DataError(f"{path}: corrupt or truncated gzip file ({error})") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None
    if len(body) != expected:
        found = f"{len(body)}" if len(body) < expected else "more"
        # Inflating stops at the declared size, before the checksum at the end: damage inside a gzip
        # stream can read as extra data.
        damaged = " (or the gzip file is corrupt)" if gzipped and found == "more" else ""
        raise DataError(
            f"{path}: header promises {expected} bytes of data for shape {shape}, found {found}{damaged}"
        )
    # A writable copy, made here (numpy copies without the global lock) so that torch can share it as is.
    return np.frombuffer(body, dtype=np.uint8).reshape(shape).copy()


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes with ``ndim`` dimensions, as a writable array, every header field
    validated.

    torchvision's ``read_sn3_pascalvincent_tensor`` reads only unpacked paths, checks with ``assert``
    (stripped under ``python -O``) and is called with ``strict=False``, so a truncated file would become a
    short tensor. Here a wrong magic number, wrong rank or a byte count that disagrees with the header is a
    [DataError][digitnet.errors.DataError] naming the file. The header is read first and the body only up to
    the size it declares, so neither a gzip bomb nor a huge sparse file is ever inflated into memory.
    """
    prefetched = _take_prefetched(path, ndim)
    if prefetched is not None:
        return prefetched.result()  # the reading thread's array, or its error raised here
    return _read_idx_file(path, ndim)


# ---------------------------------------------------------------------------------------- reading ahead

_Key = tuple[str, int]
_prefetched: dict[_Key, tuple[tuple[int, int, int], Future[np.ndarray]]] = {}
_lock = threading.Lock()


def _identity(path: Path) -> tuple[int, int, int]:
    """What tells a file rewritten since it was read: its inode, size and modification time."""
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _take_prefetched(path: Path, ndim: int) -> Future[np.ndarray] | None:
    """The prefetched read of ``path``, once (the array then belongs to the caller alone), or None when
    there is none or the file changed after it was read."""
    with _lock:
        entry = _prefetched.pop((str(path.resolve()), ndim), None)
    if entry is None:
        return None
    identity, future = entry
    try:
        unchanged = _identity(path) == identity
    except OSError:
        unchanged = False
    return future if unchanged else None


def prefetch(config: DataConfig) -> bool:
    """Start reading the MNIST files ``config`` would train on, in a daemon thread; True if it started.

    Only a source that is plainly an MNIST directory is read ahead (``--dataset auto`` or ``mnist``, no
    ``--csv``, no ``--split``): anything else, a missing directory included, is left to the run, which
    reports it. Files read ahead but never asked for (the run stopped at a bad option) are held until the
    next prefetch replaces them; being a daemon, the thread never holds up the end of the process.
    """
    if config.dataset not in ("auto", "mnist") or config.csv or config.split:
        return False
    try:
        files = find_mnist_files(default_data_dir(config.data_dir))
        jobs = [(path, 3 if key.endswith("images") else 1) for key, path in (files or {}).items()]
        entries: dict[_Key, tuple[tuple[int, int, int], Future[np.ndarray]]] = {
            (str(path.resolve()), ndim): (_identity(path), Future()) for path, ndim in jobs
        }
    except (DataError, OSError):
        return False
    if not entries:
        return False
    with _lock:  # only the latest prefetch is kept: one whose run failed before reading it is dropped
        _prefetched.clear()
        _prefetched.update(entries)

    def read_all() -> None:
        for (path, ndim), (_, future) in entries.items():
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(_read_idx_file(Path(path), ndim))
                except BaseException as error:  # handed to whoever reads the file, as its own read would
                    future.set_exception(error)

    threading.Thread(target=read_all, name="digitnet-prefetch", daemon=True).start()
    return True


__all__ = ["DATA_ENV_VAR", "MNIST_FILES", "default_data_dir", "find_mnist_files", "prefetch", "read_idx"]
