"""Figures and tables that explain a dataset or a trained model (the ``data show`` and ``evaluate`` steps).

These functions compose the data, trainer and plotting modules; they return what they wrote so the CLI
(or the docs report) can list it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from digitnet.data import augment_batch, image_grid_rows, load_split, to_tensors
from digitnet.images import load_image, save_png, to_mnist
from digitnet.plotting import (
    IMAGE_FORMATS,
    plot_class_counts,
    plot_class_rows,
    plot_confusion_matrix,
    plot_digit_grid,
    plot_normalization,
    save_figure,
)
from digitnet.run import load_checkpoint
from digitnet.runtime import (
    atomic_directory,
    atomic_write_json,
    atomic_write_text,
    claim_output,
    seed_everything,
)
from digitnet.settings import DataConfig
from digitnet.trainer import predict_logits


def draw_data_figures(
    config: DataConfig, out_dir: Path, seed: int = 0, tables_dir: Path | None = None
) -> tuple[list[Path], tuple[str, ...]]:
    """Sample grid, one row per class, class counts per split, and augmentation on real digits.

    The class-count table (``class_counts.md``) goes to ``tables_dir``, by default beside the figures.
    """
    split = load_split(config)
    generator = seed_everything(seed)
    written: list[Path] = []
    chosen = torch.randperm(len(split.train), generator=generator)[:64]
    figure = plot_digit_grid(
        split.train.images[chosen].numpy(),
        [str(int(v)) for v in split.train.labels[chosen]],
        f"64 random training digits ({split.source}) with their labels",
    )
    written += save_figure(figure, out_dir / "samples", IMAGE_FORMATS)
    rows = image_grid_rows(split.train, per_class=10, generator=generator)
    figure = plot_class_rows(rows.numpy(), "ten training examples of each digit")
    written += save_figure(figure, out_dir / "classes", IMAGE_FORMATS)
    counts = {name: getattr(split, name).class_counts() for name in ("train", "val", "test")}
    figure = plot_class_counts(
        {"train": counts["train"], "validation": counts["val"], "test": counts["test"]},
        f"digits per class in each split ({split.source}, stratified 80/20)",
    )
    written += save_figure(figure, out_dir / "class_counts")
    # Augmentation: each row is one digit, first the original, then seven random draws.
    originals = split.train.images[chosen[:6]].to(torch.float32).unsqueeze(1)  # (6, 1, 28, 28)
    repeated = originals.repeat_interleave(7, dim=0)
    augmented = augment_batch(repeated, generator).clamp(0, 255).reshape(6, 7, 28, 28)
    panel = torch.cat([originals.reshape(6, 1, 28, 28), augmented], dim=1).reshape(-1, 28, 28)
    captions = ["original" if i % 8 == 0 else "augmented" for i in range(len(panel))]
    figure = plot_digit_grid(
        np.asarray(panel.round().to(torch.uint8)),
        captions,
        "--augment: random rotation ±10° and shift ≤2 px, drawn fresh every epoch",
    )
    written += save_figure(figure, out_dir / "augmentation", IMAGE_FORMATS)
    written += save_figure(plot_normalization(split.train.images), out_dir / "normalization", IMAGE_FORMATS)
    table = (tables_dir or out_dir) / "class_counts.md"
    atomic_write_text(table, class_counts_markdown(counts))
    written.append(table)
    return written, split.notes


def class_counts_markdown(counts: dict[str, list[int]]) -> str:
    """Digits per class in each part of the split, as a markdown table."""
    header = "| split | " + " | ".join(str(d) for d in range(10)) + " | total |"
    lines = [header, "|---" * 12 + "|"]
    for name, values in counts.items():
        lines.append(f"| {name} | " + " | ".join(f"{v:,}" for v in values) + f" | {sum(values):,} |")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Evaluation:
    """A trained model measured on its test set: overall and per-class figures, and what was written."""

    run_dir: Path
    test_set: str
    accuracy: float
    loss: float
    per_class: list[dict[str, float]]  # digit, precision, recall, f1, support
    mistakes: int
    files: list[Path]


def evaluate_run(run_dir: Path, out_dir: Path | None = None, gallery_size: int = 32) -> Evaluation:
    """Reload a run's checkpoint, evaluate it on its test set, and write metrics and figures.

    Writes ``metrics.json``, ``classification_report.txt``, ``confusion_matrix.png``, and galleries of
    misclassified digits, correct ones, and the most confident mistakes (true → predicted, confidence).
    """
    from sklearn.metrics import classification_report, confusion_matrix, precision_recall_fscore_support

    out_dir = out_dir or run_dir / "evaluation"
    claim_output(out_dir, "evaluation")  # before any work: never replace what digitnet did not write
    checkpoint = load_checkpoint(run_dir)
    config = checkpoint.config
    split = load_split(config.data)
    tensors = to_tensors(split, config.data, torch.device("cpu"))
    logits = predict_logits(checkpoint.model, tensors.test_x, config.train.eval_batch_size)
    probabilities = torch.softmax(logits.float(), dim=1)
    confidence, predicted = probabilities.max(dim=1)
    truth = tensors.test_y
    loss = float(torch.nn.functional.cross_entropy(logits.float(), truth))
    y_true, y_pred = truth.numpy(), predicted.numpy()
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=list(range(10)), zero_division=0
    )
    per_class = [
        {
            "digit": d,
            "precision": float(precision[d]),
            "recall": float(recall[d]),
            "f1": float(f1[d]),
            "support": int(support[d]),
        }
        for d in range(10)
    ]
    accuracy = float((predicted == truth).float().mean())
    test_set = "held-out 1/7 of the source" if split.test_is_holdout else "MNIST test set"
    written: list[Path] = []
    with atomic_directory(out_dir, "evaluation") as staging:
        atomic_write_json(
            staging / "metrics.json",
            {
                "run": str(run_dir),
                "test_set": test_set,
                "digits": len(truth),
                "accuracy": accuracy,
                "loss": loss,
                "per_class": per_class,
            },
        )
        report = classification_report(y_true, y_pred, labels=list(range(10)), digits=4, zero_division=0)
        atomic_write_text(staging / "classification_report.txt", report)
        matrix = confusion_matrix(y_true, y_pred, labels=list(range(10)))
        figure = plot_confusion_matrix(matrix, f"confusion matrix · {config.title()}")
        save_figure(figure, staging / "confusion_matrix")
        images = split.test.images.numpy()
        wrong = torch.nonzero(predicted != truth).flatten()
        right = torch.nonzero(predicted == truth).flatten()

        def gallery(indices: torch.Tensor, name: str, title: str, color: str) -> None:
            picked = indices[:gallery_size]
            captions = [f"{int(truth[i])} → {int(predicted[i])} ({float(confidence[i]):.2f})" for i in picked]
            figure = plot_digit_grid(
                images[picked.numpy()], captions, title, caption_colors=[color] * len(picked)
            )
            save_figure(figure, staging / name, IMAGE_FORMATS)

        gallery(
            wrong, "misclassified", f"misclassified test digits ({len(wrong)} of {len(truth)})", "tab:red"
        )
        gallery(right, "correct", "correctly classified test digits", "tab:green")
        gallery(
            wrong[confidence[wrong].argsort(descending=True)],
            "confident_mistakes",
            "the most confident mistakes",
            "tab:red",
        )
    for name in (
        "metrics.json",
        "classification_report.txt",
        "confusion_matrix.png",
        "confusion_matrix.svg",
        "misclassified.png",
        "correct.png",
        "confident_mistakes.png",
    ):
        written.append(out_dir / name)
    return Evaluation(run_dir, test_set, accuracy, loss, per_class, len(wrong), written)


@dataclass(frozen=True)
class Prediction:
    """Top classes for one image, most probable first."""

    path: Path
    top: list[tuple[int, float]]
    preprocessed: Path | None


def predict_files(
    run_dir: Path, paths: Sequence[Path], show: bool = False, top_k: int = 3
) -> list[Prediction]:
    """Classify the user's own images, prepared the way MNIST digits were (see [digitnet.images][])."""
    checkpoint = load_checkpoint(run_dir)
    prepared = [(path, to_mnist(load_image(path))) for path in paths]  # every file checked before writing
    stats = checkpoint.normalization
    batch = (
        torch.from_numpy(np.stack([digit for _, digit in prepared])).float().unsqueeze(1)
    )  # (N, 1, 28, 28)
    logits = predict_logits(checkpoint.model, (batch - stats.mean) / stats.std)
    probabilities = torch.softmax(logits.float(), dim=1)
    values, classes = probabilities.topk(top_k, dim=1)
    predictions = []
    for index, (path, digit) in enumerate(prepared):
        shown = None
        if show:
            shown = path.with_name(f"{path.stem}.mnist.png")
            save_png(digit, shown)
        top = [(int(c), float(v)) for c, v in zip(classes[index], values[index], strict=True)]
        predictions.append(Prediction(path, top, shown))
    return predictions
