"""Every setting of a run, declared once: its config field, type, default, help and choices.

A run is a [RunConfig][digitnet.settings.RunConfig] of four small frozen configs (data, model, optim,
train), each validating its own ranges. This module adds what the command line, sweeps, presets and saved
``config.json`` files share: the table [SETTINGS][digitnet.settings.SETTINGS] of the names a student types
(``--batch-size``, ``compare lr``, ``--variant "dropout=0.2"``), from which ``digitnet train``/``compare``
build their options and the
docs their CLI reference; typed validation of saved configs (pydantic, unknown names refused); and the
measured [PRESETS][digitnet.presets.PRESETS].

```pycon
>>> make_run_config({"lr": 0.001, "optimizer": "adam"}).optim
OptimConfig(name='adam', lr=0.001, momentum=0.9, weight_decay=0.0, schedule='none')
>>> SETTINGS["model"].choices
('mlp', 'nmlp', 'bn', 'cnn', 'cnn-bn', 'vgg')

```
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from functools import cache
from pathlib import Path
from typing import Any, Literal

from digitnet.errors import ConfigError

# ------------------------------------------------------------------------------------------ configs
# One small frozen config per concern. Each checks its own ranges, so a bad value is one line naming
# the flag, whether it came from the command line, a preset, a --variant or a saved config.json.

DatasetName = Literal["auto", "mnist", "csv", "sample"]
Normalization = Literal["none", "unit", "standard"]
DATASETS: tuple[DatasetName, ...] = ("auto", "mnist", "csv", "sample")
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


ModelName = Literal["mlp", "nmlp", "bn", "cnn", "cnn-bn", "vgg"]
MODELS: tuple[ModelName, ...] = ("mlp", "nmlp", "bn", "cnn", "cnn-bn", "vgg")
CNN_MODELS: tuple[ModelName, ...] = ("cnn", "cnn-bn", "vgg")
DEFAULT_MLP_HIDDEN = (100, 50)  # the reports' MLP, 784-100-50-10
DEFAULT_CNN_HIDDEN = (120, 84)  # LeNet-5's fully connected widths
DEFAULT_NMLP_DROPOUT = 0.2


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


# No layer of a digit classifier needs more; wider ones only exhaust memory (checked again, against this
# machine's memory, by digitnet.runtime.check_memory before anything is allocated).
MAX_WIDTH = 65_536


def widths_text(sizes: tuple[int, ...]) -> str:
    return ",".join(str(s) for s in sizes)


def parse_hidden(text: str, flag: str = "--hidden") -> tuple[int, ...]:
    """``"100,50"`` → ``(100, 50)``, with a one-line error naming ``flag`` for anything else."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    example = "16,32" if flag == "--channels" else "100,50"
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


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer and learning-rate schedule. The defaults are the assignments' baseline: SGD, lr 0.01."""

    name: OptimizerName = "sgd"
    lr: float = 0.01
    """Peak lr for onecycle"""
    momentum: float = 0.9
    """Used by "momentum" (and RMSprop's momentum term stays 0: the textbook form)"""
    weight_decay: float = 0.0
    """L2 for sgd/momentum/rmsprop/adam; decoupled for adamw"""
    schedule: ScheduleName = "none"
    """Step: ×0.1 every third of the run; onecycle: warm up then anneal"""

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ConfigError(f"--optimizer: expected one of {', '.join(OPTIMIZERS)}, got {self.name!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"--schedule: expected one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if not self.lr > 0:
            raise ConfigError(f"--lr: expected a learning rate > 0, got {self.lr:g}")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"--momentum: expected 0 ≤ momentum < 1, got {self.momentum:g}")
        if not self.weight_decay >= 0:
            raise ConfigError(f"--weight-decay: expected ≥ 0, got {self.weight_decay:g}")


DEVICES = ("auto", "cpu", "cuda", "mps")
MAX_SEED = 2**32


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

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"--epochs: expected a whole number ≥ 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size: expected a whole number ≥ 1, got {self.batch_size}")
        if not 0 <= self.seed < MAX_SEED:
            # torch and NumPy take 32-bit seeds at most; larger ones would wrap onto smaller ones.
            raise ConfigError(f"--seed: expected a whole number from 0 to {MAX_SEED - 1}, got {self.seed}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads: expected a whole number ≥ 1, got {self.threads}")
        if self.eval_batch_size < 1:
            raise ConfigError(f"eval_batch_size: expected a whole number ≥ 1, got {self.eval_batch_size}")


Section = Literal["data", "model", "optim", "train"]
SECTIONS: dict[Section, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "optim": OptimConfig,
    "train": TrainConfig,
}


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's numbers. Its hash is the run's cache key."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def key(self) -> str:
        """A stable 12-hex-digit hash of the full config: equal configs, equal keys, across processes."""
        text = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def title(self) -> str:
        """Model, optimizer, lr and batch size: the caption every figure of this run carries."""
        return (
            f"{_describe_model(self.model)} · {self.optim.name} lr {self.optim.lr:g}"
            + (f" ({self.optim.schedule})" if self.optim.schedule != "none" else "")
            + f" · batch {self.train.batch_size}"
        )


def resolve_run_config(config: RunConfig) -> RunConfig:
    """``config`` with its data source pinned (see
    [resolve_data_config][digitnet.data.resolve_data_config])."""
    from digitnet.data import resolve_data_config

    return replace(config, data=resolve_data_config(config.data))


def _describe_model(config: ModelConfig) -> str:
    from digitnet.models import describe_model  # torch is imported only when a run needs it

    return describe_model(config)


# ----------------------------------------------------------------------------------- config <-> JSON


@cache
def _validator() -> Any:
    """pydantic's validator for the nested config: strict types (no "10" for 10), unknown keys refused.

    The configs stay plain frozen dataclasses; each still checks its own ranges in ``__post_init__``,
    which pydantic calls after checking the types.
    """
    from pydantic import ConfigDict, TypeAdapter  # imported when a config is read, not for --help

    for cls in (RunConfig, *SECTIONS.values()):
        cls.__pydantic_config__ = ConfigDict(extra="forbid", strict=True)  # type: ignore[attr-defined]
    return TypeAdapter(RunConfig)


def run_config_from_dict(data: Any, where: str = "config") -> RunConfig:
    """A [RunConfig][digitnet.settings.RunConfig] from its ``asdict`` form (as saved in ``config.json`` and
    ``model.pt``),
    validated field by field; the first problem becomes one
    [ConfigError][digitnet.errors.ConfigError] line."""
    from pydantic import ValidationError

    try:
        config: RunConfig = _validator().validate_json(json.dumps(data))
    except ValidationError as error:
        problem = error.errors()[0]
        place = ".".join(str(part) for part in (where, *problem["loc"]))
        if problem["type"] == "unexpected_keyword_argument":
            raise ConfigError(f"{place}: unknown setting") from None
        raise ConfigError(f"{place}: {problem['msg']}, got {problem.get('input')!r}") from None
    except TypeError as error:  # not JSON at all (a tensor where a number belongs, say)
        raise ConfigError(f"{where}: not a config ({error})") from None
    return config


# ------------------------------------------------------------------------------- settings by name


@dataclass(frozen=True)
class Setting:
    """One user-facing setting: where it lives in [RunConfig][digitnet.settings.RunConfig], how to read it
    from text, and what
    ``--help`` says about it. The option's type, default and choices come from here and the config."""

    section: Section
    field: str
    help: str
    parse: Callable[[str], Any] = str
    kind: type = str
    """The command-line option's type"""
    choices: tuple[str, ...] = ()
    default_text: str | None = None
    """For defaults that depend on other settings; else the field's"""

    @property
    def default(self) -> Any:
        """The config field's default in the option's type (``"16,32"`` for a tuple); None where it
        depends on other settings (then [default_text][digitnet.settings.Setting.default_text] says how)."""
        if self.default_text is not None:
            return None
        (spec,) = (f for f in fields(SECTIONS[self.section]) if f.name == self.field)
        value = spec.default if spec.default is not MISSING else spec.default_factory()  # type: ignore[operator]
        return ",".join(str(v) for v in value) if isinstance(value, tuple) else value


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true/false, got {text!r}")


def _parse_channels(text: str) -> tuple[int, ...]:
    return parse_hidden(text, flag="--channels")


# The names users type (CLI flags without dashes, compare factors, --variant keys, presets), in the order
# `--help` lists them.
SETTINGS: dict[str, Setting] = {
    "model": Setting(
        "model",
        "name",
        "mlp; nmlp = LayerNorm + dropout; bn = BatchNorm; cnn = LeNet-style; cnn-bn = CNN + BatchNorm; "
        "vgg = two 3×3 convolutions per stage.",
        choices=MODELS,
    ),
    "hidden": Setting(
        "model",
        "hidden_sizes",
        "Hidden widths, comma-separated (for CNNs: the dense layers).",
        parse_hidden,
        default_text="100,50; CNNs 120,84",
    ),
    "channels": Setting(
        "model", "channels", "CNNs only: channels of the two stages, e.g. 8,16.", _parse_channels
    ),
    "dropout": Setting(
        "model",
        "dropout",
        "Dropout probability, 0 ≤ p < 1.",
        float,
        float,
        default_text="0.2 for nmlp, else 0",
    ),
    "optimizer": Setting("optim", "name", "The update rule.", choices=OPTIMIZERS),
    "lr": Setting("optim", "lr", "Learning rate (> 0; the peak for onecycle).", float, float),
    "momentum": Setting("optim", "momentum", "Momentum for --optimizer momentum.", float, float),
    "weight-decay": Setting("optim", "weight_decay", "L2 weight decay (decoupled for adamw).", float, float),
    "schedule": Setting(
        "optim",
        "schedule",
        "none; step = ×0.1 each third of the run; onecycle = warm up, then anneal.",
        choices=SCHEDULES,
    ),
    "batch-size": Setting("train", "batch_size", "Training batch size.", int, int),
    "epochs": Setting("train", "epochs", "Passes over the training split.", int, int),
    "seed": Setting("train", "seed", "Seed for weights, shuffling and augmentation.", int, int),
    "dataset": Setting(
        "data",
        "dataset",
        "auto = --csv if given, else full MNIST if found, else the bundled sample.",
        choices=DATASETS,
    ),
    "data-dir": Setting(
        "data",
        "data_dir",
        "Directory with the four MNIST files.",
        kind=Path,
        default_text="$DIGITNET_DATA, else the user cache",
    ),
    "csv": Setting(
        "data", "csv", "Kaggle train.csv or a label-first CSV (implies --dataset csv).", kind=Path
    ),
    "normalize": Setting(
        "data",
        "normalize",
        "none; unit = ÷255; standard = the training split's mean and std.",
        choices=NORMALIZATIONS,
    ),
    "augment": Setting("data", "augment", "Random rotation ±10° and shift ≤2 px.", _parse_bool, bool),
    "device": Setting("train", "device", "auto = CUDA, else MPS, else the CPU.", choices=DEVICES),
    "threads": Setting(
        "train",
        "threads",
        "CPU threads per run; part of the run's key.",
        int,
        int,
        default_text="torch's for train, 1 per run for compare",
    ),
    "eval-batch-size": Setting(
        "train", "eval_batch_size", "Batch size for validation and test (no gradients).", int, int
    ),
}


def parse_setting(name: str, text: str) -> Any:
    """Read ``text`` as a value of setting ``name`` (``lr`` → float, ``hidden`` → widths, ...)."""
    if name not in SETTINGS:
        raise ConfigError(f"unknown setting {name!r}; known: {', '.join(SETTINGS)}")
    try:
        return SETTINGS[name].parse(text)
    except ValueError as error:
        raise ConfigError(f"{name}={text}: {error}") from None


def parse_assignments(text: str) -> dict[str, Any]:
    """``"lr=0.001 dropout=0.2"`` → ``{"lr": 0.001, "dropout": 0.2}`` (a ``--variant``)."""
    values: dict[str, Any] = {}
    for part in text.split():
        name, sep, value = part.partition("=")
        if not sep or not value:
            raise ConfigError(f"--variant {text!r}: expected name=value pairs like 'lr=0.001 dropout=0.2'")
        values[name] = parse_setting(name, value)
    return values


def make_run_config(settings: dict[str, Any]) -> RunConfig:
    """Build a [RunConfig][digitnet.settings.RunConfig] from named settings; unknown names are an error,
    never ignored.

    Each section is built once from the settings that name it, so family defaults (dropout 0.2 for
    ``nmlp``, dense widths for ``cnn``) apply to whatever was not given.
    """
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(SETTINGS)}")
    sections: dict[str, dict[str, Any]] = {"data": {}, "model": {}, "optim": {}, "train": {}}
    for name, value in settings.items():
        if value is not None:
            setting = SETTINGS[name]
            sections[setting.section][setting.field] = value
    return RunConfig(
        data=DataConfig(**sections["data"]),
        model=ModelConfig(**sections["model"]),
        optim=OptimConfig(**sections["optim"]),
        train=TrainConfig(**sections["train"]),
    )


__all__ = [
    "SECTIONS",
    "SETTINGS",
    "RunConfig",
    "Setting",
    "make_run_config",
    "parse_assignments",
    "parse_setting",
    "resolve_run_config",
    "run_config_from_dict",
]
