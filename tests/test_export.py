"""digitnet export: the ONNX file gives PyTorch's logits from plain 0..1 pixels, or nothing is written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from digitnet.checkpoint import load_checkpoint
from digitnet.cli import app
from digitnet.errors import DigitnetError
from digitnet.run import run_experiment
from digitnet.settings import make_run_config

pytest.importorskip("onnxruntime")
from digitnet import export

ROOT = Path(__file__).resolve().parents[1]
REPORT_CNN_RUN = ROOT / "runs" / "report" / "runs" / "794c39d324b8"  # the docs' CNN, seed 0 (if cached here)


@pytest.fixture(scope="module", params=["mlp", "cnn-bn"])
def tiny_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch on the sample: enough for weights that are not at their initial values; BatchNorm's
    running statistics must be exported as eval mode uses them."""
    config = make_run_config(
        {"dataset": "sample", "model": request.param, "epochs": 1, "batch-size": 128, "normalize": "standard"}
    )
    return run_experiment(config, tmp_path_factory.mktemp(request.param) / "run").run_dir


def test_onnx_logits_equal_the_models_on_normalised_pixels(tiny_run: Path, tmp_path: Path) -> None:
    result = export.export_onnx(tiny_run, tmp_path / "model.onnx")
    assert result.path.is_file() and result.size_bytes == result.path.stat().st_size
    assert result.max_abs_diff <= export.TOLERANCE
    # Reference: the checkpoint's own model on pixels normalised as in training (0–255, then the stats),
    # on digits of another batch size than the check used (the batch axis is free).
    checkpoint = load_checkpoint(tiny_run)
    rng = np.random.default_rng(0)
    pixels = export.check_digits(300)[rng.permutation(300)[:37]]
    with torch.no_grad():
        expected = checkpoint.model(checkpoint.normalization.apply(torch.from_numpy(pixels) * 255)).numpy()
    got = export.onnx_logits(result.path, pixels)
    assert got.shape == (37, 10)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert checkpoint.normalization.mean != 0  # the check would be blind if the run had no normalisation


def test_a_disagreeing_runtime_fails_the_export_and_writes_nothing(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = export.onnx_logits
    monkeypatch.setattr(
        export, "onnx_logits", lambda model, pixels: real(model, pixels) + 2 * export.TOLERANCE
    )
    out = tmp_path / "model.onnx"
    with pytest.raises(DigitnetError, match="differ from PyTorch's"):
        export.export_onnx(tiny_run, out)
    assert list(tmp_path.iterdir()) == []


def test_export_command_writes_beside_the_run_and_refuses_foreign_files(
    tiny_run: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["export", str(tiny_run), "--format", "onnx"])
    assert result.exit_code == 0, result.output
    assert (tiny_run / "model.onnx").is_file() and "opset 17" in result.output
    again = runner.invoke(app, ["export", str(tiny_run)])  # its own earlier export is replaced
    assert again.exit_code == 0, again.output
    thesis = tmp_path / "thesis.onnx"
    thesis.write_text("my notes")
    refused = runner.invoke(app, ["export", str(tiny_run), "--out", str(thesis)])
    said = " ".join(refused.output.split())
    assert refused.exit_code == 2 and f"--out {thesis}: a file digitnet did not export is there" in said
    assert thesis.read_text() == "my notes"
    wrong = runner.invoke(app, ["export", str(tiny_run), "--format", "tflite"])
    assert wrong.exit_code == 2 and "error: --format 'tflite'" in wrong.output


def test_missing_extra_is_one_line(tiny_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    result = CliRunner().invoke(app, ["export", str(tiny_run), "--out", "m.onnx"])
    assert result.exit_code == 2
    assert (
        result.output.strip() == 'error: digitnet export needs the onnx extra: pip install "digitnet[onnx]"'
    )
    assert not Path("m.onnx").exists()


@pytest.mark.full_mnist
@pytest.mark.slow
def test_onnx_test_accuracy_equals_the_runs_on_full_mnist(full_mnist: Path, tmp_path: Path) -> None:
    """The exported model, fed pixels / 255 and nothing else, scores the run's own test accuracy on the
    10,000 MNIST test digits: a short run trained here, and the docs' CNN where its cache is present."""
    config = make_run_config(
        {"dataset": "mnist", "data-dir": str(full_mnist), "model": "mlp", "epochs": 1, "batch-size": 128}
    )
    runs = [run_experiment(config, tmp_path / "run").run_dir]
    if (REPORT_CNN_RUN / "model.pt").is_file():
        runs.append(REPORT_CNN_RUN)
    for run_dir in runs:
        result = export.export_onnx(run_dir, tmp_path / f"{run_dir.name}.onnx")
        accuracy, count = export.onnx_test_accuracy(result.path, run_dir)
        summary = json.loads((run_dir / "summary.json").read_text())
        assert count == 10_000
        assert abs(100 * accuracy - 100 * summary["test_accuracy"]) < 0.01, run_dir.name
        torch_accuracy = 100 * summary["test_accuracy"]
        print(f"{run_dir.name}: onnxruntime {100 * accuracy:.2f}%, PyTorch {torch_accuracy:.2f}%")
