"""The ``evaluate`` step: reload a run's model, measure it on its test set, show where it fails.

Writes ``metrics.json`` (accuracy, loss, per-class precision/recall/F1), ``classification_report.txt``,
a confusion matrix and galleries of misclassified, correct and most confidently wrong digits.

```python
result = evaluate_run(Path("runs/cnn-adam-1a2b3c4d5e6f"))
print(f"{100 * result.accuracy:.2f}% on the {result.test_set}, {result.mistakes} mistakes")
```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from digitnet.checkpoint import checkpoint_path, load_checkpoint, read_json
from digitnet.data import NUM_CLASSES, load_split, saved_run_data, to_tensors
from digitnet.errors import CheckpointError
from digitnet.plotting import (
    IMAGE_FORMATS,
    plot_confusion_matrix,
    plot_digit_grid,
    save_figure,
)
from digitnet.run import RunSummary
from digitnet.runtime import (
    atomic_directory,
    atomic_write_json,
    atomic_write_text,
    claim_output,
)
from digitnet.trainer import predict_logits, score_logits


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
    status: str  # the run's status: an "interrupted" run measures a model that stopped part-way
    epochs: str  # "7 of 30": epochs the model trained, of those its config asked for


def evaluate_run(run_dir: Path, out_dir: Path | None = None, gallery_size: int = 32) -> Evaluation:
    """Reload a run's checkpoint, evaluate it on its test set, and write metrics and figures.

    Writes ``metrics.json``, ``classification_report.txt``, ``confusion_matrix.png``, and galleries of
    misclassified digits, correct ones, and the most confident mistakes (true → predicted, confidence).
    """
    from sklearn.metrics import classification_report, confusion_matrix, precision_recall_fscore_support

    checkpoint_path(run_dir)  # a wrong run directory is named as such, not as a bad --out
    out_dir = out_dir or (run_dir if run_dir.is_dir() else run_dir.parent) / "evaluation"
    claim_output(out_dir, "evaluation")  # before any work: never replace what digitnet did not write
    checkpoint = load_checkpoint(run_dir)
    config = checkpoint.config
    split = load_split(saved_run_data(config.data))
    tensors = to_tensors(split, config.data, torch.device("cpu"))
    if len(split.test):
        test_set, digits = split.test_set, split.test
        inputs, truth = tensors.test_x, tensors.test_y
    else:  # --test-fraction 0: the validation set is the only held-out one
        test_set, digits = "the validation set (this run's split keeps no test set)", split.val
        inputs, truth = tensors.val_x, tensors.val_y
    logits = predict_logits(checkpoint.model, inputs, config.train.eval_batch_size, config.train.precision)
    probabilities = torch.softmax(logits.float(), dim=1)
    confidence, predicted = probabilities.max(dim=1)
    score = score_logits(logits, truth)
    loss, accuracy = score.loss, score.accuracy
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
        images = digits.images.numpy()
        wrong = torch.nonzero(predicted != truth).flatten()
        right = torch.nonzero(predicted == truth).flatten()
        caption = "caption: true → predicted (the model's probability for its prediction)"

        def gallery(indices: torch.Tensor, name: str, title: str, color: str) -> None:
            picked = indices[:gallery_size]
            captions = [f"{int(truth[i])} → {int(predicted[i])} ({float(confidence[i]):.2f})" for i in picked]
            figure = plot_digit_grid(
                images[picked.numpy()], captions, f"{title}\n{caption}", caption_colors=[color] * len(picked)
            )
            save_figure(figure, staging / name, IMAGE_FORMATS)

        gallery(
            spread_over_classes(wrong, truth),
            "misclassified",
            f"misclassified digits ({len(wrong)} of {len(truth)}), spread over the true classes",
            "tab:red",
        )
        gallery(spread_over_classes(right, truth), "correct", "correctly classified digits", "tab:green")
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
    status, epochs = _training_state(run_dir, config.train.epochs)
    return Evaluation(run_dir, test_set, accuracy, loss, per_class, len(wrong), written, status, epochs)


def spread_over_classes(indices: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``indices`` reordered round-robin over their labels (the first 0, the first 1, …, the second 0, …),
    so a gallery's first few dozen show every class rather than the first digits of the file."""
    if len(indices) == 0:
        return indices
    classes = labels[indices]
    rank = torch.zeros_like(indices)
    for digit in range(NUM_CLASSES):
        members = classes == digit
        rank[members] = torch.arange(int(members.sum()))
    order = torch.argsort(rank * NUM_CLASSES + classes, stable=True)
    return indices[order]


def _training_state(run_dir: Path, planned: int) -> tuple[str, str]:
    """The run's status and how many of its epochs it trained, from ``summary.json`` (if readable)."""
    try:
        summary = RunSummary.from_dict(read_json(run_dir / "summary.json"))
    except CheckpointError:
        return "unknown", f"? of {planned}"
    return summary.status, f"{summary.epochs_completed} of {planned}"


__all__ = ["Evaluation", "evaluate_run", "spread_over_classes"]
