"""One real, short end-to-end run on full MNIST, when $DIGITNET_DATA points at it (CI sets it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from digitnet.cli import app
from digitnet.data import DataConfig, load_split


@pytest.mark.full_mnist
def test_full_mnist_split_sizes_and_counts(full_mnist: Path) -> None:
    split = load_split(DataConfig(dataset="mnist"))
    assert (len(split.train), len(split.val), len(split.test)) == (48_000, 12_000, 10_000)
    # the canonical label counts (../shared/mnist/README.md), train = train + validation
    train_counts = [a + b for a, b in zip(split.train.class_counts(), split.val.class_counts(), strict=True)]
    assert train_counts == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert split.test.class_counts() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.full_mnist
def test_one_epoch_on_full_mnist(full_mnist: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--dataset",
            "mnist",
            "--optimizer",
            "adam",
            "--lr",
            "0.001",
            "--epochs",
            "1",
            "--batch-size",
            "128",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sizes"] == {"train": 48_000, "val": 12_000, "test": 10_000}
    assert summary["test_set"] == "MNIST test set"
    assert summary["test_accuracy"] > 0.93
