"""Bad input, interruption and fuzzing: users must never see a traceback, a corrupt file, or a half-run.

The catalogue drives every entry point through the CLI with a broken input and checks the contract:
exit code 2, exactly one ``error:`` line naming the file or flag, no traceback, nothing written.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import digitnet_process, idx_bytes, make_digits, write_csv, write_mnist_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from digitnet.cli import app
from digitnet.data import read_csv_digits, read_idx
from digitnet.errors import DigitnetError
from digitnet.images import load_image, to_mnist

runner = CliRunner()


# ------------------------------------------------------------------------------------------ catalogue
# Each case builds its broken input under tmp and returns (CLI arguments, text the error must contain).

Case = Callable[[Path], tuple[list[str], str]]


def _mnist_with(tmp: Path, name: str, data: bytes) -> Path:
    root = write_mnist_dir(tmp / "mnist")
    (root / f"{name}.gz").unlink()
    (root / name).write_bytes(data)
    return root


def _train_on_dir(root: Path) -> list[str]:
    return ["train", "--dataset", "mnist", "--data-dir", str(root)]


def _csv_rows(tmp: Path, rows: list[list[str]], header: list[str] | None = None) -> Path:
    path = tmp / "digits.csv"
    lines = ([",".join(header)] if header else []) + [",".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _good_row(label: str = "3") -> list[str]:
    return [label] + ["0"] * 784


def _kaggle_header() -> list[str]:
    return ["label"] + [f"pixel{i}" for i in range(784)]


def _run_dir_with_other_model(tmp: Path) -> Path:
    from digitnet.run import run_experiment
    from digitnet.settings import make_run_config

    run = run_experiment(make_run_config({"dataset": "sample", "epochs": 1, "batch-size": 512}), tmp / "run")
    payload = torch.load(run.run_dir / "model.pt", weights_only=True)
    payload["config"]["model"]["name"] = "cnn"
    torch.save(payload, run.run_dir / "model.pt")
    return run.run_dir


CATALOGUE: dict[str, Case] = {
    # --- files and directories
    "missing data dir": lambda t: (_train_on_dir(t / "nowhere"), "nowhere"),
    "data dir without MNIST": lambda t: (_train_on_dir(t), "no MNIST files"),
    "named data dir without MNIST, dataset auto": lambda t: (
        ["train", "--data-dir", str(t)],
        "no MNIST files in it",
    ),
    "some MNIST files only": lambda t: (_train_on_dir(_partial_dir(t)), "missing t10k-images"),
    "empty IDX file": lambda t: (
        _train_on_dir(_mnist_with(t, "train-labels-idx1-ubyte", b"")),
        "train-labels",
    ),
    "truncated gzip": lambda t: (_train_on_dir(_truncated_gz(t)), "gzip"),
    "IDX wrong magic": lambda t: (
        _train_on_dir(
            _mnist_with(t, "train-labels-idx1-ubyte", b"\x00\x00\x0d\x01" + b"\x00\x00\x00\x01\x07")
        ),
        "magic",
    ),
    "IDX wrong dimensions": lambda t: (
        _train_on_dir(_mnist_with(t, "train-images-idx3-ubyte", idx_bytes(np.zeros((200, 28), np.uint8)))),
        "dimensions",
    ),
    "IDX fewer bytes than header": lambda t: (
        _train_on_dir(_mnist_with(t, "train-images-idx3-ubyte", idx_bytes(make_digits(200)[0])[:-100])),
        "header promises",
    ),
    "IDX images not 28x28": lambda t: (
        _train_on_dir(
            _mnist_with(t, "train-images-idx3-ubyte", idx_bytes(np.zeros((200, 20, 20), np.uint8)))
        ),
        "28×28",
    ),
    "image and label counts differ": lambda t: (
        _train_on_dir(_mnist_with(t, "train-labels-idx1-ubyte", idx_bytes(np.zeros(150, np.uint8)))),
        "150 labels",
    ),
    "label outside 0-9 in IDX": lambda t: (
        _train_on_dir(_mnist_with(t, "train-labels-idx1-ubyte", idx_bytes(np.full(200, 12, np.uint8)))),
        "label 12",
    ),
    # --- CSV
    "missing CSV": lambda t: (["train", "--csv", str(t / "nope.csv")], "nope.csv"),
    "empty CSV": lambda t: (["train", "--csv", str(_write(t / "e.csv", ""))], "empty"),
    "CSV with 783 columns": lambda t: (
        ["train", "--csv", str(_csv_rows(t, [["1"] + ["0"] * 782] * 80))],
        "783 columns",
    ),
    "CSV with 786 columns": lambda t: (
        ["train", "--csv", str(_csv_rows(t, [["1"] + ["0"] * 785] * 80))],
        "786 columns",
    ),
    "CSV non-numeric cell": lambda t: (
        [
            "train",
            "--csv",
            str(_csv_rows(t, [_good_row()] * 5 + [["4", "x"] + ["0"] * 783], _kaggle_header())),
        ],
        "'x' is not a number",
    ),
    "CSV header without label column": lambda t: (
        ["train", "--csv", str(_csv_rows(t, [_good_row()] * 80, ["digit"] + [f"p{i}" for i in range(784)]))],
        "no 'label' column",
    ),
    "headerless CSV without labels": lambda t: (
        ["train", "--csv", str(_csv_rows(t, [["0"] * 784] * 80))],
        "no label column",
    ),
    "CSV label outside 0-9": lambda t: (
        ["train", "--csv", str(_csv_rows(t, [_good_row()] * 5 + [_good_row("10")], _kaggle_header()))],
        "label 10 outside 0–9",
    ),
    "CSV pixel outside 0-255": lambda t: (
        ["train", "--csv", str(_csv_rows(t, [["2", "300"] + ["0"] * 783], _kaggle_header()))],
        "pixel value 300",
    ),
    "CSV NaN pixel": lambda t: (
        ["train", "--csv", str(_csv_rows(t, [["2", "nan"] + ["0"] * 783], _kaggle_header()))],
        "NaN",
    ),
    "unlabelled Kaggle test.csv": lambda t: (
        ["train", "--csv", str(_csv_rows(t, [["0"] * 784] * 3, [f"pixel{i}" for i in range(784)]))],
        "unlabelled",
    ),
    "binary file as CSV": lambda t: (
        ["train", "--csv", str(_write_bytes(t / "b.csv", b"\xff\xfe\x00\x81" * 50))],
        "b.csv",
    ),
    # --- run directories, checkpoints, images
    "predict: not an image": lambda t: (
        ["predict", str(_run_dir_with_model(t)), str(_write(t / "digit.png", "hello"))],
        "digit.png",
    ),
    "predict: missing image": lambda t: (
        ["predict", str(_run_dir_with_model(t)), str(t / "gone.png")],
        "gone.png",
    ),
    "predict: an image where the run directory goes": lambda t: (
        ["predict", str(_write_bytes(t / "seven.png", _png_seven())), str(t / "seven.png")],
        "seven.png: not a run directory",
    ),
    "evaluate: an image where the run directory goes": lambda t: (
        ["evaluate", str(_write_bytes(t / "seven.png", _png_seven()))],
        "seven.png: not a run directory",
    ),
    "evaluate: run dir without checkpoint": lambda t: (
        ["evaluate", str(_mkdir(t / "empty-run"))],
        "no checkpoint",
    ),
    "evaluate: checkpoint from another model": lambda t: (
        ["evaluate", str(_run_dir_with_other_model(t))],
        "do not fit",
    ),
    "evaluate: corrupt checkpoint": lambda t: (
        ["evaluate", str(_corrupt_checkpoint(t))],
        "model.pt",
    ),
    # --- flags
    "unknown --model": lambda t: (["train", "--model", "resnet"], "--model"),
    "unknown --optimizer": lambda t: (["train", "--optimizer", "lbfgs"], "--optimizer"),
    "unknown compare factor": lambda t: (["compare", "colour"], "FACTOR: expected one of lr"),
    "unknown --variant setting": lambda t: (["compare", "variants", "--variant", "learning=0.1"], "learning"),
    "lr zero": lambda t: (["train", "--lr", "0"], "--lr"),
    "lr negative": lambda t: (["compare", "batch-size", "--lr", "-1"], "--lr"),
    "dropout negative": lambda t: (["train", "--dropout", "-0.1"], "--dropout"),
    "dropout one": lambda t: (["train", "--dropout", "1"], "--dropout"),
    "batch size zero": lambda t: (["train", "--batch-size", "0"], "--batch-size"),
    "epochs zero": lambda t: (["train", "--epochs", "0"], "--epochs"),
    "hidden width zero": lambda t: (["train", "--hidden", "100,0"], "--hidden"),
    "compare bad value": lambda t: (["compare", "lr", "0.1", "fast"], "lr=fast"),
    "seeds zero": lambda t: (["compare", "lr", "--seeds", "0"], "--seeds"),
    # --- found by the adversarial round (issue 18)
    "seed past 32 bits": lambda t: (["train", "--seed", str(2**70)], "--seed"),
    "hidden width past any use": lambda t: (["train", "--hidden", "99999999999999999999"], "--hidden"),
    "model too large for memory": lambda t: (["train", "--hidden", "60000,60000"], "memory"),
    "channels zero names --channels": lambda t: (
        ["train", "--model", "cnn", "--channels", "0,0"],
        "--channels",
    ),
    "duplicate sweep values": lambda t: (
        ["compare", "lr", "0.01", "0.010", "--dataset", "sample"],
        "same value",
    ),
    "the same sweep value twice": lambda t: (
        ["compare", "lr", "0.01,0.01", "--dataset", "sample"],
        "same value",
    ),
    "sweep values that are only commas": lambda t: (
        ["compare", "lr", ",", "--dataset", "sample"],
        "no values",
    ),
    "the same variant twice": lambda t: (
        ["compare", "variants", "--variant", "lr=0.1", "--variant", "lr=0.1", "--dataset", "sample"],
        "same settings",
    ),
    "variant sets the seed": lambda t: (
        ["compare", "variants", "--variant", "seed=5", "--dataset", "sample"],
        "not a per-run setting",
    ),
    "duplicate variants": lambda t: (
        ["compare", "variants", "--variant", "lr=0.1", "--variant", "lr=0.10", "--dataset", "sample"],
        "same settings",
    ),
    "CSV pixels as 0-1 fractions": lambda t: (
        ["train", "--csv", str(_csv_rows(t, [["2", "0.5"] + ["0.25"] * 783] * 80, _kaggle_header()))],
        "fractions",
    ),
    "CSV where one digit has one row": lambda t: (
        ["train", "--csv", str(_csv_rows(t, [_good_row(str(i % 9)) for i in range(90)] + [_good_row("9")]))],
        "digit 9 has 1 row",
    ),
    "CSV with no contrast": lambda t: (
        ["train", "--csv", str(_csv_rows(t, [_good_row(str(i % 10)) for i in range(100)]))],
        "no contrast",
    ),
    "CSV path is a symlink loop": lambda t: (["train", "--csv", str(_symlink_loop(t))], "loop.csv"),
    "IDX header declares more than memory": lambda t: (
        _train_on_dir(_mnist_with(t, "train-images-idx3-ubyte", _idx_header((100_000_000, 28, 28)))),
        "memory",
    ),
    "gzip bomb past the declared size": lambda t: (_train_on_dir(_gzip_bomb(t)), "header promises"),
    "predict with a diverged run": lambda t: (
        ["predict", str(_diverged_run(t)), str(_write_bytes(t / "d.png", _png_seven()))],
        "diverged",
    ),
    "hidden width of a million": lambda t: (["train", "--hidden", "1000000"], "--hidden"),
    "checkpoint of a million-wide model": lambda t: (
        ["evaluate", str(_checkpoint_with(t, config=_wide_config()))],
        "hidden",
    ),
    "checkpoint of an unknown format": lambda t: (
        ["evaluate", str(_checkpoint_with(t, format=99))],
        "format 99",
    ),
}


def _idx_header(shape: tuple[int, ...]) -> bytes:
    import struct

    return struct.pack(">HBB", 0, 0x08, len(shape)) + b"".join(struct.pack(">I", d) for d in shape)


def _gzip_bomb(tmp: Path) -> Path:
    """Tiny on disk, 50 MB inflated, with a header that declares 200 images: never inflated whole."""
    root = write_mnist_dir(tmp / "mnist")
    bomb = gzip.compress(_idx_header((200, 28, 28)) + bytes(50_000_000), compresslevel=1)
    (root / "train-images-idx3-ubyte.gz").write_bytes(bomb)
    return root


def _symlink_loop(tmp: Path) -> Path:
    (tmp / "loop.csv").symlink_to(tmp / "loop2.csv")
    (tmp / "loop2.csv").symlink_to(tmp / "loop.csv")
    return tmp / "loop.csv"


def _diverged_run(tmp: Path) -> Path:
    from digitnet.run import run_experiment
    from digitnet.settings import make_run_config

    config = make_run_config({"dataset": "sample", "epochs": 1, "lr": 1e12, "threads": 1})
    result = run_experiment(config, tmp / "diverged")
    assert result.history.status == "diverged"
    return result.run_dir


def _png_seven() -> bytes:
    import io

    from PIL import Image

    page = np.full((60, 60), 255, np.uint8)
    page[10:14, 15:45] = 0
    page[14:50, 38:42] = 0
    buffer = io.BytesIO()
    Image.fromarray(page).save(buffer, format="PNG")
    return buffer.getvalue()


def _wide_config() -> dict[str, object]:
    from dataclasses import asdict

    from digitnet.settings import make_run_config

    config = asdict(make_run_config({"dataset": "sample"}))
    config["model"]["hidden_sizes"] = [1_000_000, 50]
    return config


def _checkpoint_with(tmp: Path, **changes: object) -> Path:
    run_dir = _run_dir_with_model(tmp)
    payload = torch.load(run_dir / "model.pt", weights_only=True)
    payload.update(changes)
    torch.save(payload, run_dir / "model.pt")
    return run_dir


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _partial_dir(tmp: Path) -> Path:
    root = write_mnist_dir(tmp / "partial")
    (root / "t10k-images-idx3-ubyte.gz").unlink()
    return root


def _truncated_gz(tmp: Path) -> Path:
    root = write_mnist_dir(tmp / "mnist")
    path = root / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-40])
    return root


def _run_dir_with_model(tmp: Path) -> Path:
    from digitnet.run import run_experiment
    from digitnet.settings import make_run_config

    return run_experiment(
        make_run_config({"dataset": "sample", "epochs": 1, "batch-size": 512}), tmp / "ok"
    ).run_dir


def _corrupt_checkpoint(tmp: Path) -> Path:
    run_dir = _run_dir_with_model(tmp)
    path = run_dir / "model.pt"
    path.write_bytes(path.read_bytes()[:200])
    return run_dir


def _written(root: Path) -> list[Path]:
    """Every path under ``root`` except library caches (matplotlib builds its font list on import)."""
    return sorted(p for p in root.rglob("*") if "cache" not in p.relative_to(root).parts)


def test_catalogue_is_large_enough() -> None:
    assert len(CATALOGUE) >= 56  # 40 before the adversarial round of issue 18


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_bad_input_gives_one_line_and_exit_2(name: str, tmp_path: Path) -> None:
    args, needle = CATALOGUE[name](tmp_path)
    out = tmp_path / "out-must-not-exist"
    if args[0] in ("train", "compare", "evaluate"):
        args = [*args, "--out", str(out)]
    before = _written(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert needle in errors[0], errors[0]
    assert not out.exists()
    assert _written(tmp_path) == before  # nothing written anywhere


# ---------------------------------------------------------------------------------------- interruption


def _wait_for(predicate: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


@pytest.mark.slow
def test_sigint_during_train_leaves_a_complete_interrupted_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    process = digitnet_process(
        "train", "--dataset", "sample", "--model", "cnn", "--epochs", "300", "--out", str(out), cwd=tmp_path
    )
    assert process.stderr is not None
    seen = ""
    while "epoch 2/300" not in seen:  # stderr is a pipe: one plain line per finished epoch
        line = process.stderr.readline()
        assert line, seen
        seen += line
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted after" in stderr
    summary = json.loads((out / "summary.json").read_text())
    history = json.loads((out / "history.json").read_text())
    assert summary["status"] == "interrupted" and history["status"] == "interrupted"
    assert len(history["epochs"]) >= 1 and summary["epochs_completed"] == len(history["epochs"])
    torch.load(out / "model.pt", weights_only=True)
    assert not [p for p in tmp_path.rglob("*.tmp")]  # no staging files left behind


@pytest.mark.slow
def test_sigint_during_compare_loses_no_finished_run(tmp_path: Path) -> None:
    args = [
        "compare",
        "epochs",
        "1",
        "2",
        "3",
        "40",
        "--seeds",
        "1",
        "--jobs",
        "1",
        "--dataset",
        "sample",
        "--out",
        str(tmp_path / "sweep"),
    ]
    process = digitnet_process(*args, cwd=tmp_path)
    runs = tmp_path / "sweep" / "runs"
    _wait_for(
        lambda: runs.is_dir() and len([p for p in runs.iterdir() if not p.name.startswith(".")]) >= 3, 120
    )
    time.sleep(1.0)  # well into the 40-epoch run
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in stderr, stderr
    finished = {
        p.name
        for p in runs.iterdir()
        if not p.name.startswith(".")  # the 40-epoch run's resumable checkpoint, kept for the rerun
        and json.loads((p / "summary.json").read_text())["status"] == "completed"
    }
    assert len(finished) == 3
    finished_values = ["1", "2", "3"]
    rerun = runner.invoke(app, ["compare", "epochs", *finished_values, *args[6:]])
    assert rerun.exit_code == 0, rerun.output
    assert "0 run(s) trained, 3 reused" in rerun.output


# -------------------------------------------------------------------------------------------- fuzzing

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def mutated(data: bytes, position: int, value: int, cut: int) -> bytes:
    """``data`` with one byte overwritten and its last ``cut`` bytes dropped: a damaged valid file."""
    damaged = bytearray(data)
    damaged[position % len(damaged)] = value
    return bytes(damaged[: len(damaged) - cut])


@FUZZ
@given(data=st.binary(max_size=4000))
def test_csv_reader_raises_only_its_own_error_on_random_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.csv"
    path.write_bytes(data)
    with contextlib.suppress(DigitnetError):
        read_csv_digits(path)


@FUZZ
@given(position=st.integers(0, 10_000), value=st.integers(0, 255), cut=st.integers(0, 200))
def test_csv_reader_survives_mutated_valid_files(tmp_path: Path, position: int, value: int, cut: int) -> None:
    path = write_csv(tmp_path / "valid.csv", count=3)
    path.write_bytes(mutated(path.read_bytes(), position, value, cut))
    try:
        digits = read_csv_digits(path)
    except DigitnetError:
        return
    assert digits.images.shape[1:] == (28, 28) and int(digits.labels.max()) <= 9


@FUZZ
@given(data=st.binary(max_size=2000), ndim=st.sampled_from([1, 3]), zipped=st.booleans())
def test_idx_reader_raises_only_its_own_error_on_random_bytes(
    tmp_path: Path, data: bytes, ndim: int, zipped: bool
) -> None:
    path = tmp_path / "fuzz-idx"
    path.write_bytes(gzip.compress(data) if zipped else data)
    with contextlib.suppress(DigitnetError):
        read_idx(path, ndim)


@FUZZ
@given(position=st.integers(0, 4000), value=st.integers(0, 255), cut=st.integers(0, 50))
def test_idx_reader_survives_mutated_valid_files(tmp_path: Path, position: int, value: int, cut: int) -> None:
    path = tmp_path / "mutated-idx3-ubyte"
    path.write_bytes(mutated(idx_bytes(make_digits(5)[0]), position, value, cut))
    try:
        array = read_idx(path, 3)
    except DigitnetError:
        return
    assert array.ndim == 3


@FUZZ
@given(data=st.binary(max_size=3000))
def test_image_loading_raises_only_its_own_error_on_random_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.png"
    path.write_bytes(data)
    with contextlib.suppress(DigitnetError):
        to_mnist(load_image(path))


@FUZZ
@given(
    pixels=st.lists(st.floats(0, 255), min_size=1, max_size=400).flatmap(
        lambda values: st.sampled_from([d for d in range(1, len(values) + 1) if len(values) % d == 0]).map(
            lambda rows: np.asarray(values).reshape(rows, -1)
        )
    )
)
def test_preprocessing_gives_mnist_shape_or_its_own_error(pixels: np.ndarray) -> None:
    try:
        digit = to_mnist(pixels)
    except DigitnetError:
        return
    # Anti-aliased downscaling may soften a thin stroke below 255, but some ink must survive.
    assert digit.shape == (28, 28) and digit.dtype == np.uint8 and digit.max() > 0
