"""The four small configs a run is made of: data, model, optimizer, training.

Each is a frozen dataclass whose fields say what they mean, and each checks its own ranges when it is
made, so a bad value is one [ConfigError][digitnet.errors.ConfigError] line naming the flag, whether
it came from the command line, a preset, a ``--variant`` or a saved ``config.json``. The names a student
types for these fields, and their help, are in [digitnet.settings][].

```pycon
>>> TrainConfig(epochs=0)
Traceback (most recent call last):
...
digitnet.errors.ConfigError: --epochs: expected a whole number from 1 to 10,000, got 0

```
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from digitnet.errors import ConfigError

DatasetName = Literal["auto", "mnist", "csv", "sample", "split"]
Normalization = Literal["none", "unit", "standard"]
DATASETS: tuple[DatasetName, ...] = ("auto", "mnist", "csv", "sample", "split")
# A source without a test set (a CSV, the sample) gives this share of itself to one, as MNIST's 10,000 of
# 70,000 digits; the rest is split train/validation by val_fraction.
DEFAULT_TEST_FRACTION = 1 / 7
NORMALIZATIONS: tuple[Normalization, ...] = ("none", "unit", "standard")


@dataclass(frozen=True)
class DataConfig:
    """Where the digits come from and how they are prepared."""

    dataset: DatasetName = "auto"
    """``auto``: --csv if given, else full MNIST if found, else the bundled sample"""
    data_dir: str | None = None
    """``None``: $DIGITNET_DATA, else the per-user cache directory"""
    csv: str | None = None
    normalize: Normalization = "standard"
    """``standard``: mean/std of the training split only"""
    augment: bool = False
    """Random rotation ±10° and shift ≤2 px, per sample, on the fly"""
    val_fraction: float = 0.2
    split_seed: int = 0
    """Fixed apart from the training seed, so seeds vary training, not the split"""
    test_fraction: float | None = None
    """Share held out as the test set by a source that has none; ``None``: 1/7; 0: no test set"""
    split: str | None = None
    """A ``split.npz`` written by ``digitnet data prepare``: its train/val/test, as they were saved"""

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ConfigError(f"--dataset: expected one of {', '.join(DATASETS)}, got {self.dataset!r}")
        if self.normalize not in NORMALIZATIONS:
            raise ConfigError(
                f"--normalize: expected one of {', '.join(NORMALIZATIONS)}, got {self.normalize!r}"
            )
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction: expected a number in (0, 1), got {self.val_fraction}")
        if self.dataset == "csv" and not self.csv:
            raise ConfigError("--dataset csv needs --csv PATH (a Kaggle train.csv or a label-first CSV)")
        if self.dataset == "split" and not self.split:
            raise ConfigError("--dataset split needs --split PATH (a split.npz from 'digitnet data prepare')")
        if self.test_fraction is not None and not 0.0 <= self.test_fraction < 1.0:
            raise ConfigError(f"--test-fraction: expected 0 ≤ fraction < 1, got {self.test_fraction:g}")
        if self.test_fraction is not None and self.test_fraction + self.val_fraction >= 1.0:
            raise ConfigError(
                f"--test-fraction {self.test_fraction:g}: with validation's {self.val_fraction:g} nothing "
                "would be left to train on"
            )
        if self.split and (self.csv or self.data_dir or self.dataset not in ("auto", "split")):
            raise ConfigError(
                "--split PATH brings its own train/validation/test digits; "
                "leave out --dataset, --csv and --data-dir"
            )
        if self.split and self.test_fraction is not None:
            raise ConfigError("--split PATH was split when it was saved; leave out --test-fraction")

    @property
    def held_out_fraction(self) -> float:
        """The share a source without a test set holds out as one: ``test_fraction``, else 1/7."""
        return DEFAULT_TEST_FRACTION if self.test_fraction is None else self.test_fraction


ModelName = Literal["mlp", "nmlp", "bn", "cnn", "cnn-bn", "vgg"]
MODELS: tuple[ModelName, ...] = ("mlp", "nmlp", "bn", "cnn", "cnn-bn", "vgg")
CNN_MODELS: tuple[ModelName, ...] = ("cnn", "cnn-bn", "vgg")
DEFAULT_MLP_HIDDEN = (100, 50)  # the reports' MLP, 784-100-50-10
DEFAULT_CNN_HIDDEN = (120, 84)  # LeNet-5's fully connected widths
DEFAULT_NMLP_DROPOUT = 0.2
FirstLayer = Literal["learned", "pca"]
FIRST_LAYERS: tuple[FirstLayer, ...] = ("learned", "pca")


@dataclass(frozen=True)
class ModelConfig:
    """Which model and its sizes. ``None`` fields take the family's default when the config is made."""

    name: ModelName = "mlp"
    hidden_sizes: tuple[int, ...] | None = None
    """MLPs: hidden widths; CNN: its fully connected widths"""
    dropout: float | None = None
    """``None``: 0.2 for nmlp, 0 otherwise"""
    channels: tuple[int, int] = (16, 32)
    """CNNs only: output channels of the two convolution stages"""
    first_layer: FirstLayer = "learned"
    """``cnn`` only: ``pca`` fixes the first convolution's filters to the training digits' principal 5×5
    patterns (whitened) instead of learning them (see [digitnet.models.pca_filters][])"""

    def __post_init__(self) -> None:
        if self.name not in MODELS:
            raise ConfigError(f"--model: expected one of {', '.join(MODELS)}, got {self.name!r}")
        if self.hidden_sizes is None:
            object.__setattr__(
                self, "hidden_sizes", DEFAULT_CNN_HIDDEN if self.name in CNN_MODELS else DEFAULT_MLP_HIDDEN
            )
        else:
            object.__setattr__(self, "hidden_sizes", tuple(int(h) for h in self.hidden_sizes))
        if self.dropout is None:
            object.__setattr__(self, "dropout", DEFAULT_NMLP_DROPOUT if self.name == "nmlp" else 0.0)
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        assert self.hidden_sizes is not None and self.dropout is not None
        if any(width < 1 or width > MAX_WIDTH for width in self.hidden_sizes):
            raise ConfigError(
                f"--hidden: every width must be between 1 and {MAX_WIDTH:,}, "
                f"got {widths_text(self.hidden_sizes)}"
            )
        if self.name not in CNN_MODELS and len(self.hidden_sizes) < 1:
            raise ConfigError("--hidden: an MLP needs at least one hidden layer")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"--dropout: expected 0 ≤ dropout < 1, got {self.dropout:g}")
        if len(self.channels) != 2 or any(c < 1 or c > MAX_WIDTH for c in self.channels):
            raise ConfigError(
                f"--channels: expected two widths between 1 and {MAX_WIDTH:,}, "
                f"got {widths_text(self.channels)}"
            )
        if self.first_layer not in FIRST_LAYERS:
            raise ConfigError(
                f"--first-layer: expected one of {', '.join(FIRST_LAYERS)}, got {self.first_layer!r}"
            )
        if self.first_layer == "pca" and self.name != "cnn":
            raise ConfigError(
                "--first-layer pca: only for --model cnn (the LeNet without BatchNorm), "
                f"got --model {self.name}"
            )
        if self.first_layer == "pca" and self.channels[0] > PCA_FILTERS:
            raise ConfigError(
                f"--first-layer pca: 5×5 patches have {PCA_FILTERS} principal patterns, "
                f"so --channels can start at {PCA_FILTERS} at most, got {self.channels[0]}"
            )


# A 5×5 patch has 25 pixels, so 25 principal patterns: the most channels a PCA first layer can have.
PCA_FILTERS = 25

# No layer of a digit classifier needs more; wider ones only exhaust memory (checked again, against this
# machine's memory, by digitnet.memory.check_memory before anything is allocated).
MAX_WIDTH = 65_536


def widths_text(sizes: tuple[int, ...]) -> str:
    return ",".join(str(s) for s in sizes)


def parse_hidden(text: str, flag: str = "--hidden") -> tuple[int, ...]:
    """``"100,50"`` → ``(100, 50)``, with a one-line error naming ``flag`` for anything else."""
    example = "16,32" if flag == "--channels" else "100,50"
    parts = [p.strip() for p in text.split(",")]
    if len(parts) > 1 and not all(parts):  # "100,,50" or "100,": a width left out, not a typo to guess
        raise ConfigError(f"{flag}: a width is missing between commas in {text!r}; expected like {example}")
    parts = [p for p in parts if p]
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        raise ConfigError(
            f"{flag}: expected comma-separated whole numbers like {example}, got {text!r}"
        ) from None
    if not sizes:
        raise ConfigError(f"{flag}: expected comma-separated whole numbers like {example}, got {text!r}")
    if any(s < 1 for s in sizes):
        raise ConfigError(f"{flag}: every width must be ≥ 1, got {text!r}")
    if any(s > MAX_WIDTH for s in sizes):
        raise ConfigError(f"{flag}: every width must be ≤ {MAX_WIDTH:,}, got {text!r}")
    return sizes


OptimizerName = Literal["sgd", "momentum", "rmsprop", "adam", "adamw"]
ScheduleName = Literal["none", "step", "onecycle"]
OPTIMIZERS: tuple[OptimizerName, ...] = ("sgd", "momentum", "rmsprop", "adam", "adamw")
SCHEDULES: tuple[ScheduleName, ...] = ("none", "step", "onecycle")
# The learning rate each optimizer is usually run at: SGD needs a larger step than the adaptive methods,
# which scale theirs per parameter. Adam at SGD's 0.01 overshoots; SGD at Adam's 0.001 crawls.
CONVENTIONAL_LR: dict[OptimizerName, float] = {
    "sgd": 0.01,
    "momentum": 0.01,
    "rmsprop": 0.001,
    "adam": 0.001,
    "adamw": 0.001,
}


def at_own_rate(optimizer: str, lr: float) -> str:
    """A sweep cell's label for ``optimizer`` run at its conventional rate, ``"adam (lr 0.001)"``: the rate
    changed with the optimizer, so every table, figure and report that names the cell says so
    ([AT_OWN_RATE][digitnet.configs.AT_OWN_RATE] finds it again in a label)."""
    return f"{optimizer} (lr {lr:g})"


AT_OWN_RATE = re.compile(r"(\S+) \(lr [^)]*\)")
"""Finds [at_own_rate][digitnet.configs.at_own_rate]'s ``"adam (lr 0.001)"`` in a cell's label (group 1:
the optimizer)"""


DEFAULT_MOMENTUM = 0.9


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer and learning-rate schedule. The defaults are the assignments' baseline: SGD, lr 0.01."""

    name: OptimizerName = "sgd"
    lr: float = 0.01
    """Peak lr for onecycle"""
    momentum: float | None = None
    """Only "momentum" has one (``None``: 0.9); the others record None, since they use none (RMSprop's
    momentum term stays 0: the textbook form)"""
    weight_decay: float = 0.0
    """L2 for sgd/momentum/rmsprop/adam; decoupled for adamw"""
    schedule: ScheduleName = "none"
    """Step: ×0.1 every third of the run; onecycle: warm up then anneal"""

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ConfigError(f"--optimizer: expected one of {', '.join(OPTIMIZERS)}, got {self.name!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"--schedule: expected one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):  # an infinite rate diverges at the first step
            raise ConfigError(f"--lr: expected a finite learning rate > 0, got {self.lr:g}")
        # A config records what the run used: momentum only where the update rule has one (an old
        # config's "momentum": 0.9 beside "sgd" is read as what it meant, none).
        if self.name != "momentum":
            object.__setattr__(self, "momentum", None)
        elif self.momentum is None:
            object.__setattr__(self, "momentum", DEFAULT_MOMENTUM)
        if self.momentum is not None and not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"--momentum: expected 0 ≤ momentum < 1, got {self.momentum:g}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ConfigError(f"--weight-decay: expected a finite value ≥ 0, got {self.weight_decay:g}")


DEVICES = ("auto", "cpu", "cuda", "mps")
MAX_SEED = 2**32
# Far beyond any run worth doing on MNIST (the longest in the docs is 30 epochs); a typo of 10 with extra
# zeros would otherwise train "forever" and grow history.json by a record per epoch.
MAX_EPOCHS = 10_000
Precision = Literal["float32", "bfloat16"]
PRECISIONS: tuple[Precision, ...] = ("float32", "bfloat16")


@dataclass(frozen=True)
class TrainConfig:
    """How long and in what batches to train, on which device, from which seed."""

    epochs: int = 10
    batch_size: int = 32
    """Measured: SGD 0.01 for 10 epochs reaches 97.0% test at 32, 95.9% at 64"""
    seed: int = 0
    device: str = "auto"
    """``auto``: CUDA, else MPS, else CPU"""
    eval_batch_size: int = 2048
    """Evaluation needs no gradients, so large batches are cheap and fast"""
    # CPU threads for this run (None: torch's default). Part of the config because the thread count
    # changes the order of floating-point sums, so the same seed gives the same bits only at equal threads.
    threads: int | None = None
    eval_train: bool = False
    """Also measure the whole training split in eval mode after each epoch (the running train accuracy
    is taken while the weights change, with dropout on)"""
    diagnostics: bool = False
    """Record per-layer gradient norms, update/weight ratios and dead ReLUs each epoch (hooks: slower).
    Left out of the run's key when off, so runs made before it existed keep their keys"""
    precision: Precision = "float32"
    """``bfloat16``: matrix products and convolutions (forward and backward, validation and test) run in
    bfloat16 under autocast while weights, optimizer state and the loss stay float32. It can be faster
    where the processor has bfloat16 instructions (AVX512-BF16 or AMX; recent GPUs) and is emulated where it
    has not. Left out of the run's key at float32, so runs made before it existed keep their keys"""

    def __post_init__(self) -> None:
        if not 1 <= self.epochs <= MAX_EPOCHS:
            raise ConfigError(
                f"--epochs: expected a whole number from 1 to {MAX_EPOCHS:,}, got {self.epochs}"
            )
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size: expected a whole number ≥ 1, got {self.batch_size}")
        if not 0 <= self.seed < MAX_SEED:
            # torch and NumPy take 32-bit seeds at most; larger ones would wrap onto smaller ones.
            raise ConfigError(f"--seed: expected a whole number from 0 to {MAX_SEED - 1}, got {self.seed}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads: expected a whole number ≥ 1, got {self.threads}")
        if self.eval_batch_size < 1:
            raise ConfigError(f"--eval-batch-size: expected a whole number ≥ 1, got {self.eval_batch_size}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision: expected one of {', '.join(PRECISIONS)}, got {self.precision!r}")


__all__ = [
    "AT_OWN_RATE",
    "CNN_MODELS",
    "CONVENTIONAL_LR",
    "DATASETS",
    "DEFAULT_CNN_HIDDEN",
    "DEFAULT_MLP_HIDDEN",
    "DEFAULT_MOMENTUM",
    "DEFAULT_NMLP_DROPOUT",
    "DEFAULT_TEST_FRACTION",
    "DEVICES",
    "FIRST_LAYERS",
    "MAX_EPOCHS",
    "MAX_SEED",
    "MAX_WIDTH",
    "MODELS",
    "NORMALIZATIONS",
    "OPTIMIZERS",
    "PCA_FILTERS",
    "PRECISIONS",
    "SCHEDULES",
    "DataConfig",
    "DatasetName",
    "FirstLayer",
    "ModelConfig",
    "ModelName",
    "Normalization",
    "OptimConfig",
    "OptimizerName",
    "Precision",
    "ScheduleName",
    "TrainConfig",
    "at_own_rate",
    "parse_hidden",
    "widths_text",
]
