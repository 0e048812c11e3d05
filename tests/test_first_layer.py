"""``--first-layer pca``: the filters are the digits' principal patches, whitened; the fixed first stage is
computed once and the rest trains exactly as the whole network would; the setting is checked and keyed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA
from typer.testing import CliRunner

import digitnet.trainer as trainer
from digitnet.cli import app
from digitnet.data import DataConfig, load_split, to_tensors
from digitnet.errors import ConfigError
from digitnet.models import (
    ModelConfig,
    build_model,
    count_parameters,
    fixed_stage,
    pca_filters,
    use_pca_filters,
)
from digitnet.optim import OptimConfig, build_optimizer
from digitnet.run import run_experiment
from digitnet.runtime import seed_everything
from digitnet.settings import RunConfig, make_run_config
from digitnet.sweep import SweepSpec
from digitnet.sweep.plan import plan_sweep, run_configs
from digitnet.trainer import TrainConfig, fit

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tensors():  # type: ignore[no-untyped-def]
    return to_tensors(load_split(DataConfig(dataset="sample")), DataConfig(), CPU)


def _patches(images: torch.Tensor) -> torch.Tensor:
    return F.unfold(images, 5, padding=2).transpose(1, 2).reshape(-1, 25).double()


def test_filters_are_the_principal_patterns_whitened(tensors) -> None:  # type: ignore[no-untyped-def]
    images = tensors.train_x[:1000]
    weight, bias = pca_filters(images, 8)
    assert weight.shape == (8, 1, 5, 5) and bias.shape == (8,)
    patches = _patches(images)
    # the same directions as scikit-learn's PCA of the same patches, up to each one's sign
    reference = torch.from_numpy(PCA(n_components=8).fit(patches.numpy()).components_)
    directions = weight.reshape(8, 25).double()
    directions = directions / directions.norm(dim=1, keepdim=True)
    torch.testing.assert_close((directions * reference).sum(1).abs(), torch.ones(8, dtype=torch.float64))
    # whitened: over the patches each channel has mean 0 and variance 1, and no two are correlated
    responses = patches @ weight.reshape(8, 25).double().T + bias.double()
    torch.testing.assert_close(responses.mean(0), torch.zeros(8, dtype=torch.float64), atol=1e-3, rtol=0)
    covariance = torch.cov(responses.T)
    off_diagonal = covariance - torch.diag(covariance.diag())
    assert float(off_diagonal.abs().max()) < 1e-3
    # variance 1, less the small floor added to every pattern's variance before dividing by it
    assert float(covariance.diag().min()) > 0.99 and float(covariance.diag().max()) < 1.001
    # a fixed sign: each filter's largest weight is positive, so every machine builds the same layer
    flat = weight.reshape(8, 25)
    assert bool((flat.gather(1, flat.abs().argmax(1, keepdim=True)) > 0).all())


def test_the_first_convolution_is_fixed_and_not_counted() -> None:
    learned = build_model(ModelConfig("cnn", channels=(8, 16)))
    fixed = build_model(ModelConfig("cnn", channels=(8, 16), first_layer="pca"))
    assert count_parameters(learned) - count_parameters(fixed) == 8 * 25 + 8
    assert fixed_stage(learned) is None and fixed_stage(fixed) is not None
    first, rest = fixed_stage(fixed)  # type: ignore[misc]
    x = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(rest(first(x)), fixed(x), rtol=0, atol=0)


def _fit(tensors, monkeypatch, room: int, epochs: int = 2):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(trainer, "FIXED_STAGE_BYTES", room)
    generator = seed_everything(5)
    model = build_model(ModelConfig("cnn", channels=(8, 16), first_layer="pca"))
    use_pca_filters(model, tensors.train_x)
    first_weight = model.features[0].weight.clone()
    optimizer = build_optimizer(model.parameters(), OptimConfig("adam", lr=1e-3))
    assert not any(p is model.features[0].weight for group in optimizer.param_groups for p in group["params"])
    config = TrainConfig(epochs=epochs, batch_size=64)
    history = fit(model, optimizer, tensors.head(1024, 256), config, generator)
    assert torch.equal(model.features[0].weight, first_weight)  # nothing moved it
    return history, model


def test_training_on_the_stored_first_stage_equals_running_it_every_step(
    tensors,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stored, stored_model = _fit(tensors, monkeypatch, trainer.FIXED_STAGE_BYTES)
    every_step, every_step_model = _fit(tensors, monkeypatch, 0)  # no room: the stage runs per batch
    # the one-off pass is recorded in the first epoch, whose time it is part of, and only where it ran
    first, second = stored.epochs
    assert first.prepared_seconds is not None and 0 < first.prepared_seconds < first.train_seconds
    assert second.prepared_seconds is None
    assert all(epoch.prepared_seconds is None for epoch in every_step.epochs)
    torch.testing.assert_close(
        torch.tensor(stored.iteration_loss), torch.tensor(every_step.iteration_loss), rtol=1e-5, atol=1e-6
    )
    assert [e.val_accuracy for e in stored.epochs] == pytest.approx(
        [e.val_accuracy for e in every_step.epochs], abs=2 / 256
    )
    for (name, a), b in zip(
        stored_model.state_dict().items(), every_step_model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


def test_a_single_epoch_runs_the_stage_per_batch_rather_than_storing_it(
    tensors,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One epoch passes each digit through the stage once either way: storing the outputs only adds a copy."""
    single, _ = _fit(tensors, monkeypatch, trainer.FIXED_STAGE_BYTES, epochs=1)
    assert [epoch.prepared_seconds for epoch in single.epochs] == [None]


def test_the_setting_is_checked_and_keyed_only_when_set() -> None:
    with pytest.raises(ConfigError, match="only for --model cnn"):
        ModelConfig("mlp", first_layer="pca")
    with pytest.raises(ConfigError, match="at most"):
        ModelConfig("cnn", channels=(32, 64), first_layer="pca")
    with pytest.raises(ConfigError, match="--first-layer: expected one of"):
        ModelConfig("cnn", first_layer="random")  # type: ignore[arg-type]
    assert make_run_config({"first-layer": "learned"}).key() == RunConfig().key() == "214228b7ceb7"
    assert (
        make_run_config({"model": "cnn", "first-layer": "pca"}).key()
        != make_run_config({"model": "cnn"}).key()
    )


def test_a_pca_run_resumes_bit_for_bit_and_its_model_reloads(tmp_path: Path) -> None:
    settings = {"dataset": "sample", "model": "cnn", "channels": (8, 16), "first-layer": "pca"}
    settings |= {"optimizer": "adam", "lr": 0.003, "epochs": 2, "batch-size": 256, "threads": 1}
    whole = run_experiment(make_run_config(settings), tmp_path / "whole")

    def stop(record: object) -> None:
        raise KeyboardInterrupt

    run_experiment(make_run_config(settings), tmp_path / "split", on_epoch=stop)
    resumed = run_experiment(make_run_config(settings), tmp_path / "split")
    assert resumed.history.iteration_loss == whole.history.iteration_loss
    assert resumed.summary.test_accuracy == whole.summary.test_accuracy
    a, b = (json.loads((tmp_path / run / "history.json").read_text()) for run in ("whole", "split"))
    assert a["epochs"][-1]["val_accuracy"] == b["epochs"][-1]["val_accuracy"]
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "split")])
    assert result.exit_code == 0, result.output
    assert f"{100 * whole.summary.test_accuracy:.2f}%" in result.output


def test_the_command_line_refuses_it_for_an_mlp_in_one_line() -> None:
    result = CliRunner().invoke(app, ["train", "--dataset", "sample", "--first-layer", "pca"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "--first-layer pca: only for --model cnn" in lines[0], result.output


def test_train_says_on_a_line_of_its_own_what_the_first_epochs_time_includes(tmp_path: Path) -> None:
    args = ["train", "--dataset", "sample", "--model", "cnn", "--first-layer", "pca", "--epochs", "2"]
    result = CliRunner().invoke(app, [*args, "--batch-size", "256", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if "fixed first layer's outputs once" in line]
    assert len(notes) == 1 and notes[0].startswith("note: epoch 1's time includes "), result.output


@pytest.mark.parametrize(
    ("extra", "said"), [(["--model", "cnn-bn"], True), (["--first-layer", "learned"], False), ([], False)]
)
def test_train_says_when_a_presets_fixed_layer_does_not_apply(
    extra: list[str], said: bool, tmp_path: Path
) -> None:
    args = ["train", "--preset", "fast", "--dataset", "sample", "--epochs", "1", *extra]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    note = "note: --preset fast fixes the first layer of --model cnn only; this cnn-bn learns its own"
    assert (note in result.output) is said, result.output


def test_a_fast_base_lets_every_other_model_of_a_sweep_learn_its_first_layer() -> None:
    base = tuple(sorted({"model": "cnn", "first-layer": "pca", "dataset": "sample"}.items()))
    spec = SweepSpec("model", ("mlp", "cnn", "vgg"), base=base, seeds=1)
    layers = {
        config.model.name: config.model.first_layer for _, _, config in run_configs(spec, plan_sweep(spec))
    }
    assert layers == {"mlp": "learned", "cnn": "pca", "vgg": "learned"}


def test_a_preset_fixed_layer_too_narrow_for_the_channels_names_the_preset_and_the_way_out() -> None:
    result = CliRunner().invoke(
        app, ["train", "--dataset", "sample", "--preset", "fast", "--channels", "32,64"]
    )
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "--preset fast" in lines[0] and "--first-layer learned" in lines[0], (
        result.output
    )


def test_diagnostics_name_the_fixed_layer() -> None:
    from digitnet.diagnostics import TrainingMonitor

    model = build_model(ModelConfig("cnn", channels=(8, 16), first_layer="pca"))
    optimizer = build_optimizer(model.parameters(), OptimConfig("adam"))
    monitor = TrainingMonitor(model, optimizer)
    try:
        assert monitor.names[0].endswith("(fixed)") and not monitor.names[1].endswith("(fixed)")
        for _ in range(2):  # two steps of one batch: the layers that learn get a gradient, the fixed one none
            loss = F.cross_entropy(model(torch.randn(4, 1, 28, 28)), torch.tensor([0, 1, 2, 3]))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        health = monitor.epoch_end(1)
    finally:
        monitor.close()
    fixed, *learned = health.layers
    assert math.isnan(fixed.grad_norm) and fixed.update_ratio == 0.0  # measured, and it never moved
    assert all(layer.grad_norm > 0 and layer.update_ratio > 0 for layer in learned)
