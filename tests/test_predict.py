"""evaluate and predict on a model trained by the test; MNIST-style preprocessing of user images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from digitnet.cli import app
from digitnet.data import DataConfig, load_split
from digitnet.errors import DataError
from digitnet.evaluate import evaluate_run
from digitnet.images import load_image, to_mnist
from digitnet.predict import predict_files
from digitnet.run import run_experiment
from digitnet.settings import make_run_config


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = make_run_config(
        {"dataset": "sample", "model": "cnn", "optimizer": "adam", "lr": 0.002, "epochs": 4, "batch-size": 64}
    )
    return run_experiment(config, tmp_path_factory.mktemp("cnn") / "run").run_dir


def _user_style_png(
    digit: np.ndarray, path: Path, scale: int, dark_on_light: bool, offset: tuple[int, int]
) -> Path:
    """An MNIST digit as a user might give it: upscaled, off-centre on a bigger page, maybe inverted."""
    big = Image.fromarray(digit).resize((28 * scale, 28 * scale), Image.Resampling.BICUBIC)
    page = Image.new("L", (28 * scale + 60, 28 * scale + 40), 0)
    page.paste(big, offset)
    pixels = np.asarray(page)
    if dark_on_light:
        pixels = 255 - pixels
    Image.fromarray(pixels).convert("RGB").save(path)
    return path


def test_predict_gets_user_style_digits_right(cnn_run: Path, tmp_path: Path) -> None:
    """Clean digits (per class, the first test digit the model gets right as a 28×28 MNIST image) must
    still be right after a user-style round trip: upscaled 3–6×, off-centre on a larger page, half of
    them dark-on-light. This isolates predict's preprocessing from the model's own errors."""
    from digitnet.checkpoint import load_checkpoint
    from digitnet.trainer import predict_logits

    test = load_split(DataConfig(dataset="sample")).test
    checkpoint = load_checkpoint(cnn_run)
    stats = checkpoint.normalization
    as_mnist = predict_logits(checkpoint.model, (test.images.float().unsqueeze(1) - stats.mean) / stats.std)
    right_as_mnist = (as_mnist.argmax(1) == test.labels).numpy()
    paths, truth = [], []
    for digit in range(10):
        index = int(np.flatnonzero((test.labels.numpy() == digit) & right_as_mnist)[0])
        paths.append(
            _user_style_png(
                test.images[index].numpy(),
                tmp_path / f"d{digit}.png",
                scale=3 + digit % 4,
                dark_on_light=digit % 2 == 0,
                offset=(10 + 3 * digit, 5 + digit),
            )
        )
        truth.append(digit)
    predictions = predict_files(cnn_run, paths, show=True)
    correct = sum(p.top[0][0] == t for p, t in zip(predictions, truth, strict=True))
    assert correct >= 9, [p.top for p in predictions]
    assert all(len(p.top) == 3 and p.top[0][1] >= p.top[1][1] >= p.top[2][1] for p in predictions)
    assert (tmp_path / "d0.mnist.png").is_file()
    assert np.asarray(Image.open(tmp_path / "d0.mnist.png")).shape == (28, 28)


def test_evaluate_writes_metrics_and_galleries(cnn_run: Path) -> None:
    result = evaluate_run(cnn_run)
    summary = json.loads((cnn_run / "summary.json").read_text())
    assert result.accuracy == pytest.approx(summary["test_accuracy"])
    for path in result.files:
        assert path.is_file(), path
    metrics = json.loads((cnn_run / "evaluation" / "metrics.json").read_text())
    assert sum(row["support"] for row in metrics["per_class"]) == metrics["digits"]
    recall_weighted = sum(r["recall"] * r["support"] for r in metrics["per_class"]) / metrics["digits"]
    assert recall_weighted == pytest.approx(metrics["accuracy"])  # recall weighted by support is accuracy


def test_cli_predict_and_evaluate(cnn_run: Path, tmp_path: Path) -> None:
    digit = load_split(DataConfig(dataset="sample")).test.images[0].numpy()
    path = _user_style_png(digit, tmp_path / "mine.png", 4, True, (20, 10))
    result = CliRunner().invoke(app, ["predict", str(cnn_run), str(path)])
    assert result.exit_code == 0, result.output
    assert "%" in result.output and "mine.png" in result.output
    result = CliRunner().invoke(app, ["evaluate", str(cnn_run), "--out", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output
    assert "precision" in result.output and (tmp_path / "ev" / "confusion_matrix.png").is_file()


def test_one_blank_image_does_not_stop_the_others(cnn_run: Path, tmp_path: Path) -> None:
    digit = load_split(DataConfig(dataset="sample")).test.images[0].numpy()
    good = _user_style_png(digit, tmp_path / "mine.png", 4, True, (20, 10))
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((40, 40), 250, dtype=np.uint8)).save(blank)
    result = CliRunner().invoke(app, ["predict", str(cnn_run), str(blank), str(good), "--show"])
    assert result.exit_code == 2, result.output  # a script still sees that one failed
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {blank}: no digit found (no ink stands out from the background)"]
    assert f"{good}: " in result.output and "%" in result.output  # the good one was predicted
    assert (tmp_path / "mine.mnist.png").is_file() and not (tmp_path / "blank.mnist.png").exists()


def test_polarity_and_placement_match_mnist() -> None:
    page = np.full((120, 90), 250.0)
    page[30:100, 40:52] = 10.0  # a dark vertical stroke on light paper, off-centre
    dark_on_light = to_mnist(page)
    light_on_dark = to_mnist(255 - page)
    assert np.array_equal(dark_on_light, light_on_dark)
    assert dark_on_light[0, 0] == 0 and dark_on_light.max() == 255
    ys, xs = np.indices(dark_on_light.shape)
    mass = dark_on_light.astype(float)
    assert abs((ys * mass).sum() / mass.sum() - 13.5) <= 0.6
    assert abs((xs * mass).sum() / mass.sum() - 13.5) <= 0.6
    rows = np.flatnonzero(dark_on_light.any(axis=1))
    assert rows[-1] - rows[0] + 1 <= 21  # fitted to the 20-pixel box


def test_transparent_png_is_drawn_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((50, 50, 4), dtype=np.uint8)
    rgba[10:40, 22:28] = (0, 0, 0, 255)  # black ink; the rest fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    gray = load_image(tmp_path / "t.png")
    assert gray[0, 0] == 255 and gray[20, 25] == 0


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20])
def test_non_images_are_a_data_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(content)
    with pytest.raises(DataError, match=r"x\.png"):
        load_image(path)


def test_blank_image_has_no_digit() -> None:
    with pytest.raises(DataError, match="no digit"):
        to_mnist(np.full((40, 40), 200.0))


def test_predict_says_what_it_prints_and_what_went_wrong_in_a_students_words(
    cnn_run: Path, tmp_path: Path
) -> None:
    digit = load_split(DataConfig(dataset="sample")).test.images[0].numpy()
    good = _user_style_png(digit, tmp_path / "mine.png", 4, True, (20, 10))
    notes = tmp_path / "notes.png"
    notes.write_text("not an image")
    result = CliRunner().invoke(app, ["predict", str(cnn_run), str(notes), str(good)])
    assert result.exit_code == 2, result.output
    assert "the model's three most likely digits, and how likely it finds each" in result.output
    assert (
        f"error: {notes}: its contents are not an image digitnet can read; save it as PNG or JPG"
        in " ".join(result.output.split())
    )
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "runs.csv").write_text("value,seed,key\n")
    result = CliRunner().invoke(app, ["predict", str(sweep), str(good)])
    assert result.exit_code == 2 and "a sweep from 'digitnet compare', not one run" in result.output
