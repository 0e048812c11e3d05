"""Shared fixtures: tiny MNIST-format files written by the tests, and an isolated environment.

No test touches the network or the user's home: the data directory and caches point into tmp_path.
"""

from __future__ import annotations

import functools
import gzip
import http.server
import os
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from click.testing import Result
from typer.testing import CliRunner

from digitnet.data import DATA_ENV_VAR, find_mnist_files
from digitnet.sweep import SweepSpec

FULL_MNIST_DIR = os.environ.get(DATA_ENV_VAR)


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array: magic 0x0000 08 <ndim>, big-endian dims, then the bytes."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def make_digits(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` fake 28×28 digits whose bright column encodes the label, so a model can learn them."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 40, size=(count, 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        images[i, 4:24, 4 + 2 * label] = 255
    return images, labels.astype(np.uint8)


def write_mnist_dir(
    directory: Path, train_count: int = 200, test_count: int = 50, gz: bool = True, layout: str = "flat"
) -> Path:
    """Write the four MNIST files (gzipped or not, flat or torchvision's MNIST/raw) and return the root."""
    folder = directory / "MNIST" / "raw" if layout == "torchvision" else directory
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, count, seed in (("train", train_count, 0), ("t10k", test_count, 1)):
        images, labels = make_digits(count, seed)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte"
            data = idx_bytes(array)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
    return directory


def write_csv(path: Path, count: int = 100, header: bool = True, label: str = "first") -> Path:
    """A digits CSV: Kaggle's ``label,pixel0..pixel783`` with a header, or headerless label-first/last."""
    images, labels = make_digits(count)
    rows = []
    if header:
        rows.append(",".join(["label"] + [f"pixel{i}" for i in range(784)]))
    for image, lab in zip(images, labels, strict=True):
        pixels = [str(v) for v in image.reshape(-1)]
        rows.append(",".join([str(lab), *pixels] if label == "first" else [*pixels, str(lab)]))
    path.write_text("\n".join(rows) + "\n")
    return path


def digitnet_process(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """``digitnet ARGS`` as a separate process in its own session (so a test can signal it or its whole
    group), unbuffered, with text pipes; never on full MNIST."""
    env = {k: v for k, v in os.environ.items() if k != DATA_ENV_VAR} | {"PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", "from digitnet.cli import main; main()", *args],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def planned_sweep(monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[Result, SweepSpec]:
    """``digitnet compare ARGS`` up to the sweep it would run: its spec, with nothing trained."""
    from digitnet import sweep
    from digitnet.cli import app

    specs: list[SweepSpec] = []

    def fake_sweep(spec: SweepSpec, *rest: object, **options: Any) -> None:
        specs.append(spec)
        if options.get("on_data") is not None:  # as run_sweep does once planned: the notes are printed
            options["on_data"]("stand-in data", ())
        raise SystemExit(0)

    monkeypatch.setattr(sweep, "run_sweep", fake_sweep)
    result = CliRunner().invoke(app, ["compare", *args])
    assert result.exit_code == 0 and specs, result.output
    return result, specs[0]


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep caches and the default data dir inside tmp_path; no full MNIST unless a test asks."""
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
def mnist_dir(tmp_path: Path) -> Path:
    """A small, complete, gzipped MNIST directory (200 train + 50 test digits)."""
    return write_mnist_dir(tmp_path / "mnist")


@pytest.fixture
def full_mnist(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The real MNIST directory from $DIGITNET_DATA, or skip the test."""
    if not FULL_MNIST_DIR or find_mnist_files(Path(FULL_MNIST_DIR)) is None:
        pytest.skip(f"full MNIST not available (set {DATA_ENV_VAR})")
    monkeypatch.setenv(DATA_ENV_VAR, FULL_MNIST_DIR)
    return Path(FULL_MNIST_DIR)


# ---------------------------------------------------------------------------------------------- the site


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the built site without logging every request; .wasm as application/wasm, which
    onnxruntime-web needs to compile the Playground's runtime."""

    extensions_map: ClassVar[dict[str, str]] = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm",
    }

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The docs site, built once per session with --strict (its hook copies onnxruntime-web in)."""
    pytest.importorskip("mkdocs")
    site = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return site


@pytest.fixture(scope="session")
def served_site(built_site: Path) -> Iterator[str]:
    """The built site on 127.0.0.1, as its root URL."""
    handler = functools.partial(QuietHandler, directory=str(built_site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
