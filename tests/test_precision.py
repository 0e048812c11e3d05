"""--precision bfloat16: torch's autocast around the forward pass and the loss, nothing else changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from digitnet.cli import app
from digitnet.configs import ModelConfig, OptimConfig, TrainConfig
from digitnet.data import DataConfig, TensorSplit, load_split, to_tensors
from digitnet.errors import ConfigError
from digitnet.models import build_model
from digitnet.optim import build_optimizer
from digitnet.runtime import seed_everything
from digitnet.settings import RunConfig, make_run_config
from digitnet.trainer import evaluate, fit

CPU = torch.device("cpu")
runner = CliRunner()


@pytest.fixture(scope="module")
def tensors() -> TensorSplit:
    return to_tensors(load_split(DataConfig(dataset="sample")), DataConfig(), CPU).head(1024, 256)


@pytest.mark.parametrize("model_name", ["mlp", "cnn-bn"])
def test_bfloat16_training_is_the_textbook_loop_under_torch_autocast(
    tensors: TensorSplit, model_name: str
) -> None:
    """The same seed and batch order, step for step: digitnet's loop at bfloat16 against a loop written
    out with ``torch.autocast(dtype=torch.bfloat16)`` around forward and loss; equal to the bit."""
    config = TrainConfig(epochs=1, batch_size=64, seed=3, precision="bfloat16")
    generator = seed_everything(3)
    model = build_model(ModelConfig(model_name))
    optimizer = build_optimizer(model.parameters(), OptimConfig("adam", lr=1e-3))
    history = fit(model, optimizer, tensors, config, generator)

    order = seed_everything(3)
    reference = build_model(ModelConfig(model_name))
    reference_optimizer = build_optimizer(reference.parameters(), OptimConfig("adam", lr=1e-3))
    losses = []
    reference.train()
    for index in torch.randperm(1024, generator=order).split(64):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(reference(tensors.train_x[index]), tensors.train_y[index])
        reference_optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        reference_optimizer.step()
        losses.append(loss.item())
    assert history.iteration_loss == losses
    for ours, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        assert ours.dtype == torch.float32 and torch.equal(ours, theirs)
    # validation ran at the training precision too
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        reference.eval()
        logits = reference(tensors.val_x)
    expected = float((logits.argmax(1) == tensors.val_y).float().mean())
    assert history.epochs[-1].val_accuracy == pytest.approx(expected, abs=1e-12)
    at_float32 = evaluate(model, tensors.val_x, tensors.val_y)
    assert evaluate(model, tensors.val_x, tensors.val_y, precision="bfloat16").loss != at_float32.loss


def test_float32_keeps_every_key_and_bfloat16_makes_a_new_one() -> None:
    assert make_run_config({"precision": "float32"}).key() == RunConfig().key()
    assert make_run_config({"precision": "bfloat16"}).key() != RunConfig().key()


def test_an_unknown_precision_is_one_error_line() -> None:
    with pytest.raises(ConfigError, match="--precision: expected one of float32, bfloat16"):
        TrainConfig(precision="float16")  # type: ignore[arg-type]
    result = runner.invoke(app, ["train", "--precision", "half", "--dataset", "sample"])
    assert result.exit_code == 2
    assert "half" in result.output and "Traceback" not in result.output


def test_bfloat16_on_a_cpu_without_its_instructions_says_it_will_be_slow(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from digitnet.runtime import precision_note

    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx2": True}, raising=False)
    note = precision_note("bfloat16", CPU)
    assert note is not None and "--precision float32" in note
    assert precision_note("float32", CPU) is None
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": True}, raising=False)
    assert precision_note("bfloat16", CPU) is None
    command = ["train", "--precision", "bfloat16", "--dataset", "sample", "--epochs", "1", "--hidden", "8"]
    monkeypatch.chdir(tmp_path)  # the runs land here, not in the checkout
    quiet = runner.invoke(app, command)
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {}, raising=False)
    warned = runner.invoke(app, [*command, "--seed", "1"])
    assert quiet.exit_code == 0 and "no bfloat16 instructions" not in quiet.output, quiet.output
    assert warned.exit_code == 0 and "no bfloat16 instructions" in warned.output, warned.output
    # each run records the instructions it had: with AMX or without, the same seed ends in other digits
    recorded = {
        json.loads(path.read_text())["environment"]["bfloat16_instructions"][0:1] == ["avx512_bf16"]
        for path in tmp_path.glob("runs/*/config.json")
    }
    assert recorded == {True, False}
