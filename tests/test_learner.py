"""The learner's path: settings that say what a run used, data named everywhere, splits a student controls."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_csv
from typer.testing import CliRunner

from digitnet.checkpoint import load_checkpoint
from digitnet.cli import app
from digitnet.configs import OptimConfig
from digitnet.data import DataConfig, load_split, to_tensors
from digitnet.errors import ConfigError
from digitnet.evaluate import spread_over_classes
from digitnet.plotting import plot_accuracy, plot_loss
from digitnet.run import run_experiment
from digitnet.settings import make_run_config
from digitnet.sweep import SweepSpec, plan_sweep, run_configs
from digitnet.sweep.aggregate import CellResult, Stat, describe_result
from digitnet.sweep.plan import Cell
from digitnet.trainer import evaluate

runner = CliRunner()


def configs_of(sweep: Path) -> list[dict[str, object]]:
    return [json.loads(path.read_text())["config"] for path in sorted(sweep.glob("runs/*/config.json"))]


# ------------------------------------------------------------------ what a config records (items 4, 5)


def test_a_config_records_momentum_only_where_the_rule_has_one() -> None:
    assert OptimConfig(name="sgd").momentum is None
    assert OptimConfig(name="adam").momentum is None
    assert OptimConfig(name="momentum").momentum == 0.9
    assert make_run_config({"optimizer": "momentum", "momentum": 0.5}).optim.momentum == 0.5
    # An old config.json said "momentum": 0.9 beside plain SGD: read as what the run used, none.
    assert OptimConfig(name="sgd", momentum=0.9).momentum is None
    with pytest.raises(ConfigError, match="has no momentum term"):
        make_run_config({"optimizer": "sgd", "momentum": 0.5})


def test_compare_optimizer_gives_momentum_to_the_momentum_row_only() -> None:
    spec = SweepSpec("optimizer", ("sgd", "momentum", "adam"), base=(("momentum", 0.8),), seeds=1)
    optims = {cell.value: config.optim for cell, _, config in run_configs(spec, plan_sweep(spec))}
    assert optims["momentum"].momentum == 0.8
    assert optims["sgd"].momentum is None and optims["adam"].momentum is None


def test_dropout_goes_to_the_grid_rows_that_have_dropout(tmp_path: Path) -> None:
    args = ["compare", "optimizer", "adam", "--models", "mlp,bn,bn-dropout", "--dropout", "0.5"]
    result = runner.invoke(app, [*args, "--epochs", "1", "--seeds", "1", "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    dropouts = sorted((c["model"]["name"], c["model"]["dropout"]) for c in configs_of(tmp_path / "s"))
    assert "bn-dropout 0.5 / adam" in result.output  # the row says which dropout it had  # type: ignore[index]
    assert dropouts == [("bn", 0.0), ("bn", 0.5), ("mlp", 0.0)]
    # Without --dropout, bn-dropout keeps its own 0.2 and nmlp its default.
    spec = SweepSpec("optimizer", ("adam",), seeds=1, models=("bn-dropout", "nmlp", "mlp"))
    models = [config.model for _, _, config in run_configs(spec, plan_sweep(spec))]
    assert [(m.name, m.dropout) for m in models] == [("bn", 0.2), ("nmlp", 0.2), ("mlp", 0.0)]


# ------------------------------------------------------------------------- data named, edges (2, 3)


def test_compare_names_its_data_in_the_output_the_table_and_the_figures(tmp_path: Path) -> None:
    out = tmp_path / "epochs"
    args = ["compare", "epochs", "1", "2", "4", "--dataset", "sample", "--seeds", "1", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data_line = "the bundled 5,000-digit sample: 3,428 train / 857 validation / 715 test digits"
    assert f"data: {data_line}" in result.output
    assert "5,000-digit" in result.output  # the sample's notice, as train prints it
    results_md = (out / "results.md").read_text()
    assert results_md.startswith(f"Data: {data_line}.")
    # More epochs of SGD on the sample keep helping: 4, the largest value tried, wins, which is an edge.
    assert "Best epochs: 4" in result.output
    assert "edge of the grid" in " ".join(result.output.split())
    assert "edge of the grid" in results_md
    assert data_line in (out / "final.svg").read_text()
    for table in ("runs.csv", "results.csv"):
        with (out / table).open() as handle:
            assert {row["dataset"] for row in csv.DictReader(handle)} == {"sample"}


def _cell(value: str, mean: float, group: str = "") -> CellResult:
    stats = {"val_accuracy": Stat(mean, 0.001, 3)}
    return CellResult(Cell(value, value, group, {}), [], stats)


@pytest.mark.parametrize(
    ("means", "edge"),
    [
        ((0.90, 0.95, 0.97), "largest"),
        ((0.97, 0.95, 0.90), "smallest"),
        ((0.90, 0.97, 0.95), None),
    ],
)
def test_the_summary_says_when_the_best_value_is_at_an_edge(
    means: tuple[float, ...], edge: str | None
) -> None:
    cells = [_cell(v, m) for v, m in zip(("0.001", "0.01", "0.1"), means, strict=True)]
    text = describe_result(SweepSpec("lr", seeds=3), cells)
    if edge is None:
        assert "edge of the grid" not in text
    else:
        assert f"edge of the grid (the {edge} value tried)" in text


def test_no_edge_for_names_or_for_no_dropout() -> None:
    names = [_cell(v, m) for v, m in (("sgd", 0.9), ("adam", 0.95), ("rmsprop", 0.93))]
    assert "edge" not in describe_result(SweepSpec("optimizer", seeds=3), names)
    dropout = [_cell(v, m) for v, m in (("0", 0.97), ("0.2", 0.96), ("0.5", 0.95))]
    assert "edge" not in describe_result(SweepSpec("dropout", seeds=3), dropout)


# -------------------------------------------------------------------------- splits a student controls


def test_test_fraction_zero_gives_an_exact_stratified_80_20_of_a_csv(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "train.csv", count=500)
    split = load_split(DataConfig(csv=str(csv), test_fraction=0.0))
    assert (len(split.train), len(split.val), len(split.test)) == (400, 100, 0)
    counts = np.bincount(torch.cat([split.train.labels, split.val.labels]).numpy(), minlength=10)
    val_counts = np.bincount(split.val.labels.numpy(), minlength=10)
    assert np.allclose(val_counts, counts * 0.2, atol=1)  # every class 80/20
    assert any("no test set" in note for note in split.notes)
    assert "none" in split.test_set
    default = load_split(DataConfig(csv=str(csv)))
    assert len(default.test) in (71, 72)  # 1/7 of 500, rounded up by scikit-learn


def test_a_run_without_a_test_set_says_so_and_evaluates_on_validation(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "train.csv", count=300)
    args = ["train", "--csv", str(csv), "--test-fraction", "0", "--epochs", "1", "--out", str(tmp_path / "r")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["test_accuracy"] is None and summary["test_set"].startswith("none")
    evaluation = runner.invoke(app, ["evaluate", str(tmp_path / "r")])
    assert evaluation.exit_code == 0, evaluation.output
    metrics = json.loads((tmp_path / "r" / "evaluation" / "metrics.json").read_text())
    assert metrics["digits"] == 60 and "validation set" in metrics["test_set"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--test-fraction", "1"], "--test-fraction: expected 0 ≤ fraction < 1"),
        (["--test-fraction", "0.9"], "nothing would be left to train on"),
        (["--split", "nowhere.npz"], "no such file"),
        (["--split", "bad.npz"], "bad.npz: not a .npz file"),
        (["--split", "bad.npz", "--dataset", "mnist"], "leave out --dataset"),
    ],
)
def test_bad_split_settings_are_one_line(args: list[str], needle: str, tmp_path: Path) -> None:
    (tmp_path / "bad.npz").write_text("not numpy")
    result = runner.invoke(app, ["train", "--epochs", "1", *args])
    assert result.exit_code == 2
    assert needle in " ".join(result.output.split()) and "Traceback" not in result.output
    assert "allow_pickle" not in result.output


def test_mnist_refuses_a_test_fraction(mnist_dir: Path) -> None:
    result = runner.invoke(app, ["train", "--data-dir", str(mnist_dir), "--test-fraction", "0.1"])
    assert result.exit_code == 2 and "has its own test set" in result.output


def test_a_saved_split_trains_the_same_run_as_the_split_it_came_from(tmp_path: Path) -> None:
    prepared = runner.invoke(app, ["data", "prepare", "--dataset", "sample", "--out", str(tmp_path / "sp")])
    assert prepared.exit_code == 0, prepared.output
    settings = {"epochs": 2, "optimizer": "adam", "dropout": 0.2, "threads": 1}
    direct = run_experiment(make_run_config(settings | {"dataset": "sample"}), tmp_path / "direct")
    saved = run_experiment(
        make_run_config(settings | {"split": str(tmp_path / "sp" / "split.npz")}), tmp_path / "saved"
    )
    assert saved.config.data.dataset == "split"
    assert saved.summary.sizes == direct.summary.sizes and saved.summary.dataset == "sample"
    assert saved.history.iteration_loss == direct.history.iteration_loss
    assert saved.summary.test_accuracy == direct.summary.test_accuracy
    a = load_checkpoint(tmp_path / "direct").model.state_dict()
    b = load_checkpoint(tmp_path / "saved").model.state_dict()
    assert all(torch.equal(a[name], b[name]) for name in a)


# ---------------------------------------------------------------------------------- train accuracy (8)


def test_eval_train_measures_the_training_split_in_eval_mode(tmp_path: Path) -> None:
    config = make_run_config({"dataset": "sample", "epochs": 2, "dropout": 0.5, "eval-train": True})
    result = run_experiment(config, tmp_path / "r")
    last = result.history.epochs[-1]
    assert last.train_eval_accuracy is not None and last.train_eval_loss is not None
    # The same number, measured independently on the saved model with dropout off.
    model = load_checkpoint(tmp_path / "r").model
    tensors = to_tensors(load_split(config.data), config.data, torch.device("cpu"))
    again = evaluate(model, tensors.train_x, tensors.train_y)
    assert again.accuracy == pytest.approx(last.train_eval_accuracy, abs=1e-9)
    assert result.summary.train_eval_accuracy == last.train_eval_accuracy
    assert result.summary.train_eval_loss == last.train_eval_loss == pytest.approx(again.loss)
    labels = [line.get_label() for line in plot_accuracy(result.history).axes[0].get_lines()]
    assert "train (eval mode, epoch end)" in labels
    loss_labels = [line.get_label() for line in plot_loss(result.history).axes[0].get_lines()]
    assert "train loss (eval mode, epoch end)" in loss_labels
    plain = run_experiment(make_run_config({"dataset": "sample", "epochs": 1}), tmp_path / "p")
    assert plain.history.epochs[0].train_eval_accuracy is None
    assert "train (eval mode, epoch end)" not in [
        line.get_label() for line in plot_accuracy(plain.history).axes[0].get_lines()
    ]


# ----------------------------------------------------------------------------------- galleries (9)


def test_galleries_spread_over_the_classes() -> None:
    labels = torch.tensor([3, 3, 3, 3, 1, 1, 7, 3, 1])
    order = spread_over_classes(torch.arange(len(labels)), labels)
    assert labels[order].tolist() == [1, 3, 7, 1, 3, 1, 3, 3, 3]
    assert sorted(order.tolist()) == list(range(len(labels)))
