"""--diagnostics: off, the run and its key are what they were; on, each number matches torch itself."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import planned_sweep
from typer.testing import CliRunner

import digitnet.trainer
from digitnet.cli import app
from digitnet.configs import ModelConfig, TrainConfig
from digitnet.data import NormStats, TensorSplit
from digitnet.diagnostics import TrainingMonitor
from digitnet.models import build_model
from digitnet.settings import RunConfig, make_run_config, run_config_from_dict
from digitnet.trainer import History, fit

runner = CliRunner()


def _tensors(count: int = 64) -> TensorSplit:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(count, 1, 28, 28, generator=generator)
    y = torch.randint(0, 10, (count,), generator=generator)
    return TensorSplit(x, y, x[:16], y[:16], x[:16], y[:16], NormStats(0.0, 1.0))


def test_without_the_flag_the_keys_are_those_of_the_runs_made_before_it_existed() -> None:
    # Computed by digitnet before --diagnostics existed (main at 914b219): the docs' cached runs use them.
    assert RunConfig().key() == "214228b7ceb7"
    cnn = make_run_config({"model": "cnn", "optimizer": "adam", "lr": 0.001, "dataset": "mnist", "epochs": 5})
    assert cnn.key() == "8f9bc479d6d4"
    assert make_run_config({"diagnostics": True}).key() != RunConfig().key()
    # a config.json written before the setting existed still reads, as a run without diagnostics
    saved = {"data": {}, "model": {}, "optim": {}, "train": {"epochs": 3}}
    assert run_config_from_dict(saved).train.diagnostics is False


def test_without_the_flag_no_monitor_is_made_and_history_json_is_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("a monitor was created without --diagnostics")

    monkeypatch.setattr(digitnet.trainer, "TrainingMonitor", refuse)
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden_sizes=(20,)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    history = fit(model, optimizer, _tensors(), TrainConfig(epochs=2, batch_size=16), torch.Generator())
    assert history.diagnostics is None and "diagnostics" not in history.to_dict()
    assert not model[1]._forward_hooks and not optimizer._optimizer_step_pre_hooks  # nothing attached


def test_each_number_is_what_torch_computes_for_one_full_batch_step() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden_sizes=(30, 20)))
    reference = copy.deepcopy(model)
    data = _tensors(64)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    # one batch of every digit: the epoch is a single step, so its means are that step's values
    config = TrainConfig(epochs=1, batch_size=64, diagnostics=True)
    history = fit(model, optimizer, data, config, torch.Generator().manual_seed(0))
    assert history.diagnostics is not None
    (health,) = history.diagnostics
    linears = [m for m in reference.modules() if isinstance(m, torch.nn.Linear)]
    hidden: list[torch.Tensor] = []
    h = data.train_x.flatten(1)
    for layer in linears[:-1]:
        h = F.relu(layer(h))
        hidden.append(h)
    loss = F.cross_entropy(linears[-1](h), data.train_y)
    loss.backward()
    assert [layer.layer for layer in health.layers] == [
        "1 Linear 784→30",
        "2 Linear 30→20",
        "3 Linear 20→10",
    ]
    trained = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    for index, (before, after, measured) in enumerate(zip(linears, trained, health.layers, strict=True)):
        grad = before.weight.grad
        assert grad is not None
        assert measured.grad_norm == pytest.approx(float(grad.norm()), rel=1e-4)
        step = 0.5 * grad  # plain SGD: ΔW = -lr · g
        assert measured.update_ratio == pytest.approx(
            float(step.norm() / after.weight.detach().norm()), rel=1e-3
        )
        if index < len(hidden):
            never_fired = int((hidden[index] <= 0).all(dim=0).sum())
            assert measured.dead_fraction == never_fired / hidden[index].shape[1]  # a count, exactly
        else:
            assert measured.dead_fraction is None
    # removed afterwards: the model trains on as if it had never been watched
    assert not any(m._forward_hooks for m in model.modules())
    assert not optimizer._optimizer_step_pre_hooks and not optimizer._optimizer_step_post_hooks
    # history.json round-trips
    assert History.from_dict(json.loads(json.dumps(history.to_dict()))).diagnostics == history.diagnostics


def test_train_with_diagnostics_records_every_epoch_and_plots_them(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "--epochs", "2", "--model", "cnn", "--threads", "1", "--diagnostics", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    history = json.loads((out / "history.json").read_text())
    assert [epoch["epoch"] for epoch in history["diagnostics"]] == [1, 2]
    assert len(history["diagnostics"][0]["layers"]) == 5  # 2 convolutions, 3 dense layers
    assert (out / "diagnostics.png").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["train"]["diagnostics"] is True


def test_live_curves_redraw_the_epochs_so_far_in_place() -> None:
    from matplotlib.figure import Figure

    from digitnet.live import LiveCurves

    calls: list[tuple[int, bool]] = []

    def show(figures: list[Figure], handles: list[object] | None) -> list[object]:
        calls.append((len(figures), handles is None))
        return ["loss output", "accuracy output"]

    curves = LiveCurves("tiny", show=show)
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden_sizes=(20,)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    history = fit(
        model, optimizer, _tensors(), TrainConfig(epochs=3, batch_size=16), torch.Generator(), None, curves
    )
    # shown once as new outputs, then updated in place twice
    assert calls == [(2, True), (2, False), (2, False)]
    assert curves.history.epochs == history.epochs
    accuracy_figure = curves.figures()[1]
    validation = next(line for line in accuracy_figure.axes[0].lines if "validation" in str(line.get_label()))
    assert list(validation.get_ydata()) == [100 * r.val_accuracy for r in history.epochs]


def test_compare_passes_diagnostics_to_every_run(monkeypatch: pytest.MonkeyPatch) -> None:
    _, spec = planned_sweep(monkeypatch, "lr", "0.01", "--diagnostics", "--dataset", "sample")
    base = dict(spec.base)
    assert base["diagnostics"] is True
    assert make_run_config(base | {"lr": 0.01}).train.diagnostics is True


def test_a_diverged_run_keeps_the_health_of_the_epoch_that_diverged(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "--lr", "10000", "--epochs", "2", "--threads", "1", "--diagnostics", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output  # diverged
    history = History.from_dict(json.loads((out / "history.json").read_text()))
    assert history.status == "diverged" and history.diagnostics is not None
    assert [health.epoch for health in history.diagnostics] == [1]
    # the steps before the loss became NaN still count: each update was far larger than the weights' 1e-3
    assert all(layer.update_ratio > 1e-2 for layer in history.diagnostics[0].layers)
    assert (out / "diagnostics.png").is_file()


def test_the_hooks_only_read_training_is_bit_identical_with_and_without_them() -> None:
    losses = []
    for diagnostics in (False, True):
        torch.manual_seed(0)
        model = build_model(ModelConfig(hidden_sizes=(30, 20)))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        config = TrainConfig(epochs=2, batch_size=16, diagnostics=diagnostics)
        history = fit(model, optimizer, _tensors(64), config, torch.Generator().manual_seed(0))
        losses.append((history.iteration_loss, [r.val_loss for r in history.epochs]))
    assert losses[0] == losses[1]


def test_dead_units_are_counted_exactly() -> None:
    # 2 of 100 hidden units can never fire (bias -1, no weights): 0.02 dead, not float32's 0.01999998
    model = torch.nn.Sequential(torch.nn.Linear(4, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.fill_(1.0)
        model[0].bias[:2] = -1.0
    monitor = TrainingMonitor(model, torch.optim.SGD(model.parameters(), lr=0.1))
    try:
        model(torch.randn(8, 4))
        health = monitor.epoch_end(1)
    finally:
        monitor.close()
    assert health.layers[0].dead_fraction == 0.02
