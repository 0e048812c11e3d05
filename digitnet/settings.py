"""Every setting of a run, declared once: its config field, type, default, help and choices.

A run is a [RunConfig][digitnet.settings.RunConfig] of four small frozen configs (data, model, optim, train),
each validating its own ranges. This module adds what the command line, sweeps, presets and saved
``config.json`` files share: the table [SETTINGS][digitnet.settings.SETTINGS] of the names a student types
(``--batch-size``, ``compare lr``, ``--variant "dropout=0.2"``), from which ``digitnet train``/``compare``
build their options and the docs their CLI reference; typed validation of saved configs (pydantic, unknown
names refused); and the measured [PRESETS][digitnet.presets.PRESETS].

```pycon
>>> make_run_config({"lr": 0.001, "optimizer": "adam"}).optim
OptimConfig(name='adam', lr=0.001, momentum=None, weight_decay=0.0, schedule='none')
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

from digitnet.configs import (
    CONVENTIONAL_LR,
    DATASETS,
    DEVICES,
    FIRST_LAYERS,
    MODELS,
    NORMALIZATIONS,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    DataConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    parse_hidden,
    widths_text,
)
from digitnet.errors import ConfigError

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
        """A stable 12-hex-digit hash of the full config: equal configs, equal keys, across processes.

        Settings added after runs were cached (``KEYED_WHEN_SET``) count only away from their default: a
        run without them keeps the key it had before they existed, so cached runs stay valid."""
        data = asdict(self)
        for (section, name), default in KEYED_WHEN_SET.items():
            if data[section][name] == default:
                del data[section][name]
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def title(self) -> str:
        """Model, optimizer, lr and batch size (and a precision other than float32): the caption every figure
        of this run carries."""
        return (
            f"{_describe_model(self.model)} · {self.optim.name} lr {self.optim.lr:g}"
            + (f" ({self.optim.schedule})" if self.optim.schedule != "none" else "")
            + f" · batch {self.train.batch_size}"
            + (f" · {self.train.precision}" if self.train.precision != "float32" else "")
        )


def resolve_run_config(config: RunConfig) -> RunConfig:
    """``config`` with its data source pinned ([resolve_data_config][digitnet.data.resolve_data_config])."""
    from digitnet.data import resolve_data_config

    return replace(config, data=resolve_data_config(config.data))


def _describe_model(config: ModelConfig) -> str:
    from digitnet.models import describe_model  # torch is imported only when a run needs it

    return describe_model(config)


# Settings that joined the config after the docs' runs were cached, (section, field), each with the default
# at which it is left out of RunConfig.key().
KEYED_WHEN_SET: dict[tuple[Section, str], object] = {
    ("train", "diagnostics"): False,
    ("train", "precision"): "float32",
    ("model", "first_layer"): "learned",
}


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
    validated field by field; the first problem is one [ConfigError][digitnet.errors.ConfigError] line."""
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
    "first-layer": Setting(
        "model",
        "first_layer",
        "The first convolution of --model cnn: learned = trained like every other layer; pca = fixed "
        "to the training digits' principal 5×5 patterns and not trained, so its output is computed once "
        "per digit and training steps start at the second convolution (with --augment, --diagnostics or "
        "a single epoch it runs every step, still untrained). A preset that fixes it (fast) fixes it only "
        "for --model cnn; another model learns its own.",
        choices=FIRST_LAYERS,
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
    "lr": Setting(
        "optim",
        "lr",
        "Learning rate (> 0; the peak for onecycle).",
        float,
        float,
        default_text="the optimizer's conventional rate: 0.01 for sgd and momentum, 0.001 otherwise",
    ),
    "momentum": Setting(
        "optim",
        "momentum",
        "Momentum for --optimizer momentum; plain sgd has none, and adam, adamw and rmsprop keep "
        "PyTorch's own averaging rates (betas, alpha).",
        float,
        float,
        default_text="0.9",
    ),
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
        "auto = --split or --csv if given, else full MNIST if found, else the bundled sample.",
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
    "test-fraction": Setting(
        "data",
        "test_fraction",
        "For --csv and the sample, which have no test set: the share held out as one (0: none, "
        "train/validation only). MNIST keeps its own.",
        float,
        float,
        default_text="1/7, as MNIST's 10,000 of 70,000",
    ),
    "split": Setting(
        "data",
        "split",
        "Train on a split.npz saved by 'digitnet data prepare' (implies --dataset split).",
        kind=Path,
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
        "CPU threads per run; part of the run's key. Set it for bit-identical reruns: the default "
        "depends on how busy the machine is.",
        int,
        int,
        default_text="train, lr-find: the cores other programs leave free; compare: 1 per run",
    ),
    "precision": Setting(
        "train",
        "precision",
        "float32; bfloat16 = matrix products and convolutions in bfloat16 (weights stay float32): can be "
        "faster with bfloat16 instructions (AVX512-BF16, AMX; recent GPUs), emulated elsewhere.",
        choices=PRECISIONS,
    ),
    "eval-batch-size": Setting(
        "train", "eval_batch_size", "Batch size for validation and test (no gradients).", int, int
    ),
    "eval-train": Setting(
        "train",
        "eval_train",
        "Also measure the whole training split in eval mode after each epoch (slower; the running "
        "train accuracy is taken while the model changes, dropout on).",
        _parse_bool,
        bool,
    ),
    "diagnostics": Setting(
        "train",
        "diagnostics",
        "Record each layer's gradient norm, update/weight ratio and dead ReLUs per epoch (each run's "
        "history.json and diagnostics.png); training then takes about one and a half times as long (the "
        "baseline MLP). Without it, no hook is attached.",
        _parse_bool,
        bool,
    ),
}


def parse_setting(name: str, text: str) -> Any:
    """Read ``text`` as a value of setting ``name`` (``lr`` → float, ``hidden`` → widths, ...)."""
    if name not in SETTINGS:
        raise ConfigError(f"unknown setting {name!r}; known: {', '.join(SETTINGS)}")
    parse, choices = SETTINGS[name].parse, SETTINGS[name].choices
    if choices and text not in choices:  # said as the student typed it, a value of the factor
        raise ConfigError(f"{name}={text}: expected one of {', '.join(choices)}")
    try:
        return parse(text)
    except ValueError as error:
        # Python's own words ("invalid literal for int() with base 10: '2.5'") are not a student's
        expected = str(error)
        if parse is int:
            expected = "expected a whole number"
        elif parse is float:
            expected = "expected a number"
        raise ConfigError(f"{name}={text}: {expected}") from None


def parse_assignments(text: str) -> dict[str, Any]:
    """``"lr=0.001 dropout=0.2"`` → ``{"lr": 0.001, "dropout": 0.2}`` (a ``--variant``)."""
    values: dict[str, Any] = {}
    for part in text.split():
        name, sep, value = part.partition("=")
        if not sep or not value:
            raise ConfigError(f"--variant {text!r}: expected name=value pairs like 'lr=0.001 dropout=0.2'")
        values[name] = parse_setting(name, value)
    return values


def with_conventional_lr(settings: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """``settings`` with the optimizer's conventional learning rate when none was chosen, and a note
    saying so (None when ``lr`` was given): ``--optimizer adam`` alone must not train Adam at SGD's rate."""
    if settings.get("lr") is not None:
        return settings, None
    optimizer = settings.get("optimizer") or OptimConfig().name
    if optimizer not in CONVENTIONAL_LR:
        return settings, None  # an unknown name: OptimConfig refuses it with the list of choices
    lr = CONVENTIONAL_LR[optimizer]
    note = f"--lr not given: using {lr:g}, the conventional rate for {optimizer} (set --lr to choose)"
    return settings | {"lr": lr}, note


def without_others_first_layer(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` without ``first-layer`` when their model is not ``cnn``.

    A fixed first layer (a ``--preset fast`` base) belongs to its LeNet: another model given beside it
    (``--model mlp``, a ``compare model`` cell) learns its first layer, as that model always does, rather
    than failing on a setting it cannot take. Callers apply this only where ``first-layer`` was not given
    for that model itself, so ``--model mlp --first-layer pca`` still fails in one line.
    """
    if settings.get("model", "mlp") == "cnn":
        return settings
    return {name: value for name, value in settings.items() if name != "first-layer"}


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
    optimizer = sections["optim"].get("name", OptimConfig().name)
    if sections["optim"].get("momentum") is not None and optimizer != "momentum":
        raise ConfigError(
            f"--momentum: --optimizer {optimizer} has no momentum term; use --optimizer momentum"
        )
    if sections["data"].get("split") and "dataset" not in sections["data"]:
        sections["data"]["dataset"] = "split"
    return RunConfig(
        data=DataConfig(**sections["data"]),
        model=ModelConfig(**sections["model"]),
        optim=OptimConfig(**sections["optim"]),
        train=TrainConfig(**sections["train"]),
    )


def _shown(value: Any) -> str:
    """A setting's value as a student would type or read it: ``not set`` rather than Python's ``None``,
    ``on``/``off`` for a flag, and a fraction to six digits (1/7 is ``0.142857``)."""
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return widths_text(tuple(value)) if isinstance(value, list | tuple) else str(value)


def config_difference(saved: Any, config: RunConfig, most: int = 4) -> str:
    """How ``config`` differs from a saved run's config (``config.json``'s ``"config"``), as the options
    that set it: ``"--epochs 1 there, 2 here; --lr 0.01 there, 0.1 here"``. Empty when no setting
    differs or the saved config cannot be read, so the caller falls back to the keys.

    A directory holding a run of another config is refused; this says which option to change back."""
    mine = asdict(config)
    parts = []
    for flag, setting in SETTINGS.items():
        section = saved.get(setting.section) if isinstance(saved, dict) else None
        if not isinstance(section, dict) or setting.field not in section:  # an older config: unknown
            continue
        theirs, ours = section[setting.field], mine[setting.section][setting.field]
        if (tuple(theirs) if isinstance(theirs, list) else theirs) != ours:
            parts.append(f"--{flag} {_shown(theirs)} there, {_shown(ours)} here")
    extra = f"; and {len(parts) - most} more" if len(parts) > most else ""
    return "; ".join(parts[:most]) + extra


__all__ = [
    "SECTIONS",
    "SETTINGS",
    "RunConfig",
    "Setting",
    "config_difference",
    "make_run_config",
    "parse_assignments",
    "parse_setting",
    "resolve_run_config",
    "run_config_from_dict",
    "with_conventional_lr",
    "without_others_first_layer",
]
