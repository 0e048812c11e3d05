"""The inside views check against references computed here: the model's own weights, torch's layers run
by hand, scikit-learn's PCA and neighbours, pandas' moving average, numpy's gradient."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import write_mnist_dir
from sklearn.decomposition import PCA
from torch import nn
from typer.testing import CliRunner

from digitnet.cli import app
from digitnet.configs import ModelConfig
from digitnet.data import NormStats, load_split
from digitnet.inside import (
    confident_mistakes,
    first_layer,
    hidden_activations,
    input_x_gradient,
    lr_range_test,
    nearest,
    one_per_class,
    project,
    smooth_losses,
    stage_activations,
    stratified_sample,
    suggest_rates,
)
from digitnet.models import build_model
from digitnet.plotting import plot_embedding, plot_first_layer, plot_lr_find
from digitnet.settings import make_run_config

runner = CliRunner()


def _digits(count: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(count, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_mlp_weights_panel_k_is_that_units_weight_row() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="mlp", hidden_sizes=(50, 20)))
    layer = first_layer(model, count=12)
    weights = model[1].weight.detach().numpy()  # Flatten, then the first Linear: (50, 784)
    assert layer.kind == "unit" and len(layer.units) == 12 and layer.units[-1] == 49
    figure = plot_first_layer(layer)
    shown = [axes.images[0].get_array() for axes in figure.axes if axes.images]
    assert len(shown) == 12
    for panel, unit in zip(shown, layer.units, strict=True):
        np.testing.assert_array_equal(np.asarray(panel), weights[unit].reshape(28, 28))
    # centred on zero: white is a weight of exactly 0
    clim = figure.axes[0].images[0].get_clim()
    assert clim[0] == -clim[1]


def test_cnn_panels_are_the_first_convolutions_filters() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="cnn", channels=(6, 8)))
    layer = first_layer(model)
    assert layer.kind == "filter" and list(layer.units) == list(range(6))
    np.testing.assert_array_equal(layer.images, model.features[0].weight.detach()[:, 0].numpy())


def test_stage_activations_are_the_convolutions_run_by_hand() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="cnn", channels=(4, 6))).eval()
    x = _digits(5)
    stages = stage_activations(model, x)
    conv1, conv2 = model.features[0], model.features[3]
    first = F.relu(F.max_pool2d(F.conv2d(x, conv1.weight, conv1.bias, padding=2), 2))
    second = F.relu(F.max_pool2d(F.conv2d(first, conv2.weight, conv2.bias), 2))
    assert [tuple(s.shape) for s in stages] == [(5, 4, 14, 14), (5, 6, 5, 5)]
    torch.testing.assert_close(stages[0], first.detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(stages[1], second.detach(), rtol=1e-4, atol=1e-5)
    assert stage_activations(build_model(ModelConfig(name="mlp")), x) == []


def test_hidden_activations_and_pca_match_scikit_learn() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="mlp", hidden_sizes=(40, 16))).eval()
    x = _digits(120)
    hidden, logits = hidden_activations(model, x, batch_size=50)
    with torch.no_grad():
        reference = nn.Sequential(*list(model)[:-1])(x)  # everything before the last Linear
        torch.testing.assert_close(logits, model(x))
    torch.testing.assert_close(hidden, reference)
    projection = project(hidden.numpy())
    np.testing.assert_allclose(
        projection.pca, PCA(n_components=2).fit_transform(reference.numpy()), atol=1e-4
    )
    assert projection.tsne.shape == (120, 2)
    # the figure draws exactly those points: the first ten scatters are the classes, in order
    labels = np.arange(120) % 10
    figure = plot_embedding(projection, labels, labels, "")
    pca_axes = figure.axes[0]
    for digit in range(10):
        offsets = pca_axes.collections[digit].get_offsets()
        np.testing.assert_allclose(offsets, projection.pca[labels == digit], rtol=1e-6)


def test_saliency_of_a_linear_model_is_weight_times_input() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    stats = NormStats(mean=33.3, std=78.6)
    pixels = torch.rand(4, 28, 28) * 255
    pixels[:, :6] = 0  # blank rows: no ink, no credit
    classes = torch.tensor([3, 0, 9, 3])
    attributions = input_x_gradient(model, pixels, stats, classes)
    weights = model[1].weight.detach().numpy().reshape(10, 28, 28)
    # logit_c = Σ w_c · (p - mean) / std, so ∂logit_c/∂p = w_c / std, and the attribution is p · w_c / std
    expected = pixels.numpy() * weights[classes.numpy()] / stats.std
    np.testing.assert_allclose(attributions.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert bool((attributions[:, :6] == 0).all())


def test_nearest_and_stratified_sample_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    references, queries = rng.normal(size=(200, 5)), rng.normal(size=(7, 5))
    distances = ((queries[:, None, :] - references[None, :, :]) ** 2).sum(-1)
    np.testing.assert_array_equal(nearest(queries, references, 4), np.argsort(distances, axis=1)[:, :4])
    labels = torch.tensor(np.repeat(np.arange(10), [50, 60, 70, 80, 90, 100, 110, 120, 130, 190]))
    picked = stratified_sample(labels, 100)
    counts = np.bincount(labels[picked].numpy(), minlength=10)
    share = np.bincount(labels.numpy()) / len(labels) * 100
    assert len(picked) == 100 and np.all(np.abs(counts - share) <= 1)


def test_smoothing_is_the_bias_corrected_exponential_average() -> None:
    losses = list(np.random.default_rng(0).normal(2.0, 0.5, size=300))
    expected = pd.Series(losses).ewm(alpha=1 - 0.98, adjust=True).mean().to_numpy()
    np.testing.assert_allclose(smooth_losses(losses, 0.98), expected, rtol=1e-10)


def test_the_suggestion_is_the_steepest_point_of_a_known_curve() -> None:
    rates = np.geomspace(1e-5, 10, 400)
    logs = np.log10(rates)
    # a loss that falls fastest at lr 1e-2 (a logistic step in log10 rate), then blows up beyond 1
    curve = 2.3 - 2.0 / (1 + np.exp(-3 * (logs + 2))) + np.where(logs > 0, 40 * logs**2, 0.0)
    used, steepest, (first, last), lowest = suggest_rates(rates.tolist(), curve.tolist())
    assert math.isclose(rates[steepest], 1e-2, rel_tol=0.05)
    assert first < steepest < last < lowest < used <= len(rates)
    slope = np.gradient(curve[: lowest + 1], logs[: lowest + 1])
    assert np.all(slope[first : last + 1] <= 0.5 * slope.min())
    assert slope[first - 1] > 0.5 * slope.min() and slope[last + 1] > 0.5 * slope.min()


def test_range_test_rates_rise_exponentially_and_the_suggestion_lies_in_the_steep_region() -> None:
    config = make_run_config({"dataset": "sample", "batch-size": 64, "threads": 1})
    result = lr_range_test(config)
    steps = len(result.losses)
    per_pass = math.ceil(len(load_split(config.data).train) / 64)
    assert steps <= per_pass  # one pass (fewer steps only if the loss became NaN)
    # rate k is start · q^k with q fixed so that the pass's last step reaches end_lr
    full = np.geomspace(1e-5, 10.0, per_pass)
    np.testing.assert_allclose(result.rates, full[:steps], rtol=1e-9)
    low, high = result.suggested_range
    assert low <= result.suggested_lr <= high <= result.min_loss_lr
    figure = plot_lr_find(result)
    shaded = figure.axes[0].patches[0]
    assert math.isclose(shaded.get_x(), low) and math.isclose(shaded.get_x() + shaded.get_width(), high)
    # the key under the panel: in its lower left it covered the curve and the suggestion's line
    assert figure.axes[0].get_legend() is None and len(figure.legends) == 1
    # the suggestion is where the smoothed loss falls fastest per decade of rate, at least a third of the
    # lowest point's rate short of it: there the plunge before a blow-up is steepest, at a rate too large
    lowest = int(np.argmin(result.smoothed[: result.used]))
    slope = np.gradient(np.asarray(result.smoothed[: lowest + 1]), np.log10(result.rates[: lowest + 1]))
    short = np.asarray(result.rates[: lowest + 1]) <= result.rates[lowest] / 3
    assert result.suggested_lr == result.rates[int(np.argmin(np.where(short, slope, np.inf)))]
    assert high <= result.min_loss_lr / 3


def test_range_test_of_a_fixed_first_layer_uses_the_digits_filters(monkeypatch: pytest.MonkeyPatch) -> None:
    """With --first-layer pca (the fast preset's) the range test trains the network a run would: its fixed
    first convolution set to the training digits' principal patterns, not left at its random start."""
    import digitnet.trainer
    from digitnet.data import to_tensors
    from digitnet.models import pca_filters

    seen: list[nn.Module] = []
    original = digitnet.trainer.train_one_epoch

    def watched(model: nn.Module, *args: object, **kwargs: object) -> object:
        seen.append(model)
        return original(model, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(digitnet.trainer, "train_one_epoch", watched)
    config = make_run_config({"dataset": "sample", "model": "cnn", "first-layer": "pca", "threads": 1})
    lr_range_test(config)
    conv = seen[0].features[0]
    assert isinstance(conv, nn.Conv2d) and not conv.weight.requires_grad
    train_x = to_tensors(load_split(config.data), config.data, torch.device("cpu")).train_x
    weight, _ = pca_filters(train_x, conv.out_channels, conv.kernel_size[0], 2)
    torch.testing.assert_close(conv.weight, weight)


@pytest.mark.parametrize("model", ["mlp", pytest.param("cnn", marks=pytest.mark.slow)])
def test_inspect_writes_every_view_of_a_sample_run(model: str, tmp_path: Path) -> None:
    run_dir = tmp_path / model
    trained = runner.invoke(
        app, ["train", "--epochs", "1", "--model", model, "--threads", "1", "--out", str(run_dir)]
    )
    assert trained.exit_code == 0, trained.output
    result = runner.invoke(app, ["inspect", str(run_dir), "--sample", "200"])
    assert result.exit_code == 0, result.output
    views = ["weights", "embedding", "saliency", "neighbours"] + (["feature_maps"] if model == "cnn" else [])
    for view in views:
        assert (run_dir / "inside" / f"{view}.png").stat().st_size > 1000
    assert (run_dir / "inside" / "embedding.svg").is_file()  # a scatter; the grids of digits are PNG only
    assert (run_dir / "inside" / "feature_maps.png").exists() == (model == "cnn")


def test_inspect_refuses_what_is_not_a_run(tmp_path: Path) -> None:
    result = runner.invoke(app, ["inspect", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "error:" in result.output and "Traceback" not in result.output


def test_lr_find_prints_a_suggestion_and_writes_its_curve(tmp_path: Path) -> None:
    out = tmp_path / "find"
    result = runner.invoke(app, ["lr-find", "--batch-size", "64", "--threads", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "lr_find.json").read_text())
    assert f"suggested learning rate: {saved['suggested_lr']:.2g}" in result.output
    assert (out / "lr_find.png").is_file() and (out / "lr_find.svg").is_file()
    # the network and data it was run with, without a rate or epochs the test never used
    assert saved["config"]["train"]["batch_size"] == 64 and saved["config"]["model"]["name"] == "mlp"
    assert "lr" not in saved["config"]["optim"] and "epochs" not in saved["config"]["train"]
    # 54 steps of the sample: the loss barely moves (2.30 → 2.20), and a student is told not to trust it
    said = " ".join(result.output.split())
    start, lowest = saved["smoothed"][0], min(saved["smoothed"][: saved["used"]])
    assert lowest > 0.75 * start and f"the loss only fell from {start:.2f} to {lowest:.2f}" in said
    assert "start a compare around sgd's conventional 0.01" in said
    # so the compare it gives is around that rate, a decade wide, not around the noise (0.4 here)
    assert "this pass learnt too little to trust (note above); compare around 0.01 instead" in said
    # with the settings it was given: typed as printed, the compare trains the network the test trained
    assert "'digitnet compare lr 0.0033 0.01 0.03 --batch-size 64 --threads 1'" in said
    assert "data: the bundled 5,000-digit sample: 3,428 train" in said  # which digits, as train says
    for start, end in (("1", "0.1"), ("1e-5", "inf")):
        bad = runner.invoke(app, ["lr-find", "--start-lr", start, "--end-lr", end, "--out", str(out)])
        assert bad.exit_code == 2 and "--start-lr" in bad.output and "Traceback" not in bad.output
    # one step over the whole split: no curve to read, said as such (it blamed --start-lr)
    huge = runner.invoke(app, ["lr-find", "--batch-size", "100000", "--out", str(tmp_path / "huge")])
    assert huge.exit_code == 2 and "Traceback" not in huge.output
    said = " ".join(huge.output.split())
    assert "--batch-size 100000: over the 3,428 training digits the range test would take 1 step" in said
    assert said.count("\n") == 0 and "note:" not in huge.output  # one line, before the data's notes
    assert not (tmp_path / "huge").exists()


def test_lr_find_offers_no_option_it_would_ignore() -> None:
    """It sets the rate itself over one pass and evaluates nothing: --lr, --epochs, --schedule and the
    evaluation options in its --help only misled."""
    shown = runner.invoke(app, ["lr-find", "--help"], terminal_width=200).output
    options = shown.split("Options:")[1]  # the docstring names them, to say they are not taken
    offered = {line.split()[0] for line in options.splitlines() if line.startswith("  --")}
    assert {"--start-lr", "--batch-size", "--dropout", "--first-layer"} <= offered
    first_layer = " ".join(options.split("--first-layer")[1].split("--dropout")[0].split())
    assert "--diagnostics" not in first_layer and "single epoch" not in first_layer  # a run's, not lr-find's
    assert not offered & {
        "--lr",
        "--epochs",
        "--schedule",
        "--eval-batch-size",
        "--eval-train",
        "--diagnostics",
    }
    for option in ("--lr", "--epochs"):  # the reason, not click's nearest spelling ("--csv")
        refused = runner.invoke(app, ["lr-find", option, "2"])
        assert refused.exit_code == 2
        assert f"lr-find takes no {option}: it trains one pass with the rate rising" in refused.output


@pytest.mark.slow
def test_the_report_step_publishes_both_models_views_and_reuses_them(tmp_path: Path) -> None:
    from digitnet.inside import InspectConfig, draw_inside_figures

    runs = {}
    for model in ("mlp", "cnn"):
        run_dir = tmp_path / "runs" / model
        trained = runner.invoke(
            app, ["train", "--epochs", "1", "--model", model, "--threads", "1", "--out", str(run_dir)]
        )
        assert trained.exit_code == 0, trained.output
        runs[model] = run_dir
    docs, cache = tmp_path / "docs", tmp_path / "cache"
    small = InspectConfig(sample=150)
    written = draw_inside_figures(docs, cache, runs, {"dataset": "sample"}, small, epochs=1)
    assert (docs / "figures" / "inside" / "cnn" / "feature_maps.png") in written
    assert not (docs / "figures" / "inside" / "mlp" / "feature_maps.png").exists()
    table = (docs / "results" / "inside" / "table.md").read_text()
    summary = json.loads((cache / "inside" / "mlp" / "summary.json").read_text())
    assert f"| {summary['embedding_misclassified']} |" in table and len(table.splitlines()) == 4
    # training health: the baseline at three rates, each run's figure and its last epoch per layer
    health = (docs / "results" / "inside" / "health.md").read_text()
    for rate in ("0.001", "0.01", "0.1"):
        assert (docs / "figures" / "inside" / f"diagnostics_lr{rate}.png") in written
        assert health.count(f"| {rate} |") == 3  # three layers of the 784-100-50-10 MLP
    found = json.loads((cache / "lr-find" / "lr_find.json").read_text())
    assert f"| {found['suggested_lr']:.2g} |" in (docs / "results" / "lr" / "lr_find.md").read_text()
    # a rerun with the same runs reuses the views and the range test instead of recomputing them
    stamps = [(cache / p).stat().st_mtime_ns for p in ("inside/mlp/summary.json", "lr-find/lr_find.json")]
    draw_inside_figures(docs, cache, runs, {"dataset": "sample"}, small, epochs=1)
    assert stamps == [
        (cache / p).stat().st_mtime_ns for p in ("inside/mlp/summary.json", "lr-find/lr_find.json")
    ]


def test_confident_mistakes_and_one_per_class_match_numpy() -> None:
    rng = np.random.default_rng(0)
    probabilities = torch.softmax(torch.tensor(rng.normal(size=(300, 10)) * 3), dim=1)
    labels = torch.tensor(rng.integers(0, 10, size=300))
    picked = confident_mistakes(probabilities, labels, 5)
    p, y = probabilities.numpy(), labels.numpy()
    wrong = np.nonzero(p.argmax(1) != y)[0]
    expected = wrong[np.argsort(-p.max(1)[wrong], kind="stable")][:5]
    np.testing.assert_array_equal(picked.numpy(), expected)
    correct = torch.from_numpy(p.argmax(1) == y)
    for digit, index in enumerate(one_per_class(labels, correct)):
        members = np.nonzero((y == digit) & correct.numpy())[0]
        assert index == (members[0] if len(members) else np.nonzero(y == digit)[0][0])


def test_class_labels_are_pushed_apart_and_far_ones_stay_put() -> None:
    from digitnet.plotting import _spread_labels

    centres = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.2], [8.0, 8.0]])
    points = np.array([[0.0, 0.0], [10.0, 10.0]])
    placed = _spread_labels(centres, points, gap=0.07)
    scaled = placed / 10.0
    distances = [np.hypot(*(scaled[i] - scaled[j])) for i in range(4) for j in range(i + 1, 4)]
    assert min(distances) >= 0.07 - 1e-9
    assert np.allclose(placed[3], centres[3])


def test_lr_find_says_when_its_curve_has_few_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from digitnet.cli import app

    monkeypatch.delenv("DIGITNET_DATA", raising=False)
    out = tmp_path / "lr"
    result = CliRunner().invoke(app, ["lr-find", "--dataset", "sample", "--out", str(out)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "curve is coarse" in said and "more training digits (full MNIST" in said
    # on MNIST already, more digits is no advice: only the batch size is left, and it moves the suggestion
    mnist = write_mnist_dir(tmp_path / "mnist", train_count=1000)
    argv = ["lr-find", "--data-dir", str(mnist), "--batch-size", "16", "--out", str(tmp_path / "m")]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "curve is coarse" in said and "full MNIST" not in said
    assert "a suggestion holds for the batch size it was found at" in said


def test_the_compare_lr_find_suggests_spans_a_decade_with_each_rate_once() -> None:
    """Adam on MNIST: a steep region of 0.00014 – 0.00017 gave 'compare lr 0.00014 0.00016 0.00017', three
    rates no sweep can tell apart; a region ending at the suggestion gave one rate twice."""
    from digitnet.inside import RangeTest, rates_to_compare

    def test(low: float, suggested: float, high: float) -> RangeTest:
        return RangeTest(
            rates=[], losses=[], smoothed=[], used=0, suggested_lr=suggested, suggested_range=(low, high),
            min_loss_lr=high,
        )  # fmt: skip

    assert rates_to_compare(test(0.00014, 0.00016, 0.00017)) == "5.3e-05 0.00016 0.00048"
    assert rates_to_compare(test(0.002, 0.049, 0.049)) == "0.002 0.049"  # wide enough; 0.049 once
    assert rates_to_compare(test(0.35, 0.4, 0.45), centre=0.01) == "0.0033 0.01 0.03"  # the rate to trust


def test_a_short_range_test_is_smoothed_over_a_fifth_of_a_decade_not_fifty_steps() -> None:
    """The usual smoothing (β 0.98, about 50 steps) trails the loss by a fifth of a decade on MNIST at
    batch 32 (1,500 steps over six decades), and keeps it there; over a 188-step pass (batch 256) the
    same 50 steps are a decade and a half, so a short pass is smoothed less, and its curve's steepest
    point lies nearer the loss's own."""
    from digitnet.inside import smoothing_for, suggest_rates

    assert smoothing_for(1500, 6) == 0.98 and smoothing_for(3000, 6) == 0.98
    assert 1 / (1 - smoothing_for(188, 6)) == pytest.approx(0.2 * 188 / 6)
    assert smoothing_for(54, 6) == pytest.approx(0.8)  # never under a 5-step window: noise would stay

    def steepest_lag(beta: float, steps: int = 188) -> float:
        rates = np.geomspace(1e-5, 10, steps)
        x = np.log10(rates)  # the loss falls sharply around 1e-3, and climbs past 0.05
        loss = 2.3 - 2.0 / (1 + np.exp(-(x + 3) * 15)) + np.where(x > -1.3, (x + 1.3) * 8, 0)
        _, steepest, _, _ = suggest_rates(rates.tolist(), smooth_losses(loss.tolist(), beta))
        return float(x[steepest] + 3)  # in decades after the true drop

    assert steepest_lag(smoothing_for(188, 6)) < 0.6 * steepest_lag(0.98)


def test_lr_find_over_other_rates_keeps_its_own_folder_and_says_why_it_learnt_little(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two range tests of one network over different rates wrote the same runs/lr-find-<key>, the second
    replacing the first; and a range ending at 1e-4, where nothing blew up, was said to have grown "too
    large". The smoothing the curve was read with is recorded: 108 steps over one decade, a window of a
    fifth of it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGITNET_DATA", raising=False)
    first = runner.invoke(app, ["lr-find", "--threads", "1"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["lr-find", "--threads", "1", "--end-lr", "1e-4"])
    assert second.exit_code == 0, second.output
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(folders) == 2 and folders[1] == f"{folders[0]}-1e-05-0.0001"
    said = " ".join(second.output.split())
    assert "the rate only reached 0.0001 and the loss never turned up" in said and "too large" not in said
    assert "1 decade of rate" in said
    saved = json.loads((tmp_path / "runs" / folders[1] / "lr_find.json").read_text())
    assert saved["smoothing"] == pytest.approx(1 - 1 / (0.2 * 108)) and saved["test"]["end_lr"] == 1e-4
