"""`data download` against a local fake mirror: MD5-checked, mismatches deleted, nothing leaves loopback."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import idx_bytes, make_digits
from typer.testing import CliRunner

import digitnet.data.sources
from digitnet.cli import app
from digitnet.data import download_mnist, load_mnist_dir
from digitnet.errors import DataError


def _fake_files() -> dict[str, bytes]:
    files = {}
    for prefix, count in (("train", 120), ("t10k", 30)):
        images, labels = make_digits(count)
        files[f"{prefix}-images-idx3-ubyte.gz"] = gzip.compress(idx_bytes(images), mtime=0)
        files[f"{prefix}-labels-idx1-ubyte.gz"] = gzip.compress(idx_bytes(labels), mtime=0)
    return files


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, dict[str, bytes]]]:
    """A loopback HTTP server serving fake MNIST files, with their MD5s patched in as the known ones."""
    files = _fake_files()
    served = tmp_path / "served"
    served.mkdir()
    for name, data in files.items():
        (served / name).write_bytes(data)
    monkeypatch.setattr(
        digitnet.data.sources, "MNIST_MD5", {n: hashlib.md5(d).hexdigest() for n, d in files.items()}
    )

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", files
    server.shutdown()


def test_download_fetches_verifies_and_loads(mirror, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, files = mirror
    written = download_mnist(tmp_path / "data", mirrors=[url])
    assert sorted(p.name for p in written) == sorted(files)
    assert len(load_mnist_dir(tmp_path / "data").train) == 120
    # a second call finds the verified files and fetches nothing (the mirror could be gone)
    assert download_mnist(tmp_path / "data", mirrors=["http://127.0.0.1:9/"]) == written


def test_md5_mismatch_deletes_the_file_and_says_so(mirror, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    url, _ = mirror
    monkeypatch.setitem(digitnet.data.sources.MNIST_MD5, "train-images-idx3-ubyte.gz", "0" * 32)
    with pytest.raises(DataError, match="MD5 mismatch"):
        download_mnist(tmp_path / "data", mirrors=[url])
    assert not list((tmp_path / "data").glob("train-images*"))


def test_unreachable_mirror_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="could not download train-images"):
        download_mnist(tmp_path / "data", mirrors=["http://127.0.0.1:9/"])


def test_cli_download_uses_the_data_dir(mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    url, _ = mirror
    from torchvision.datasets import MNIST

    monkeypatch.setattr(MNIST, "mirrors", [url])
    result = CliRunner().invoke(app, ["data", "download", "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d" / "t10k-labels-idx1-ubyte.gz").is_file()
