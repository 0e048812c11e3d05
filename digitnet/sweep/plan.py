"""Planning a sweep: the factor's values (or paired variants) become cells, each run over several seeds.

```pycon
>>> [cell.label for cell in plan_sweep(SweepSpec("lr", ("0.1", "0.01")))]
['0.1', '0.01']

```
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from digitnet.configs import CONVENTIONAL_LR, at_own_rate
from digitnet.errors import ConfigError
from digitnet.settings import (
    RunConfig,
    make_run_config,
    parse_assignments,
    parse_setting,
    resolve_run_config,
    without_others_first_layer,
)

FACTORS: dict[str, tuple[str, ...]] = {
    "lr": ("0.1", "0.03", "0.01", "0.003", "0.001", "0.0003"),
    "batch-size": ("16", "32", "64", "128", "256", "512"),
    "optimizer": ("sgd", "momentum", "rmsprop", "adam"),
    "dropout": ("0", "0.1", "0.2", "0.3", "0.5"),
    "norm": ("none", "layer", "batch"),
    "epochs": ("1", "3", "10"),
    "hidden": ("100,50", "30,5"),
    "model": ("mlp", "nmlp", "bn", "cnn"),
    "variants": (),
}
# The model variants a grid (--models) may name: plain, normalised, and BatchNorm + dropout. A variant
# with dropout takes --dropout when given (else its default, None: the model's own); one without has none,
# whatever --dropout says, so "bn" and "bn-dropout" rows differ in the dropout alone.
MODEL_VARIANTS: dict[str, tuple[str, float | None]] = {
    "mlp": ("mlp", 0.0),
    "nmlp": ("nmlp", None),
    "bn": ("bn", 0.0),
    "bn-dropout": ("bn", 0.2),
    "cnn": ("cnn", 0.0),
    "cnn-bn": ("cnn-bn", 0.0),
    "vgg": ("vgg", 0.0),
}


def variant_row(variant: str, base: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A grid row of ``variant``: its label, and the settings it adds to the base (its model and its
    dropout). A row whose dropout came from --dropout says so: "bn-dropout 0.5", not the usual 0.2."""
    model, dropout = MODEL_VARIANTS[variant]
    if dropout == 0.0:
        return variant, {"model": model, "dropout": 0.0}
    given = base.get("dropout")
    label = variant if given is None else f"{variant} {given:g}"
    return label, {"model": model, "dropout": given if given is not None else dropout}


NORM_MODELS = {"none": "mlp", "layer": "nmlp", "batch": "bn"}
# Comparing optimizers at one shared lr would judge Adam at SGD's rate (or SGD at Adam's), so unless
# --lr is given each optimizer runs at its conventional rate, and its label says which.
# Settings a --variant may not vary: the sweep sets the seeds itself, and these two change how fast, not
# what, a run learns; a variant that set them would be merged with the baseline or mislabelled.
NOT_PER_RUN = frozenset({"seed", "threads", "device"})


@dataclass(frozen=True)
class SweepSpec:
    """What to sweep; ``base`` holds every other setting, exactly as ``digitnet train`` takes them."""

    factor: str
    values: tuple[str, ...] = ()  # as typed after the factor; empty: the factor's defaults
    base: tuple[tuple[str, Any], ...] = ()  # named settings (see digitnet.settings.SETTINGS)
    seeds: int = 3
    models: tuple[str, ...] = ()  # a grid: each model variant × each value
    variants: tuple[str, ...] = ()  # for factor "variants": "lr=0.001 dropout=0.2", ...
    by: str = ""  # a second factor: every value of `factor` × every value of `by`, each cell from scratch
    by_values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.factor not in FACTORS:
            raise ConfigError(f"FACTOR: expected one of {', '.join(FACTORS)}, got {self.factor!r}")
        if self.seeds < 1:
            raise ConfigError(f"--seeds: expected a whole number ≥ 1, got {self.seeds}")
        unknown = [m for m in self.models if m not in MODEL_VARIANTS]
        if unknown:
            raise ConfigError(f"--models: unknown {', '.join(unknown)}; expected {', '.join(MODEL_VARIANTS)}")
        if self.factor == "variants" and not self.variants:
            raise ConfigError("compare variants needs at least one --variant 'name=value ...'")
        if self.factor != "variants" and self.variants:
            raise ConfigError("--variant goes with the factor 'variants'")
        if self.by:
            if self.by not in FACTORS or self.by == "variants":
                choices = ", ".join(f for f in FACTORS if f != "variants")
                raise ConfigError(f"--by: expected one of {choices}, got {self.by!r}")
            if self.by == self.factor:
                raise ConfigError(f"--by {self.by}: the second factor must differ from the first")
            if self.factor == "variants" or self.models:
                raise ConfigError(
                    "--by makes a two-factor grid; it does not combine with variants or --models"
                )
            if len(self.by_values) < 2:  # one value is a setting, not a factor (often a typo)
                given = f" (got {' '.join(self.by_values)})" if self.by_values else ""
                example = f"--by {self.by} {_example(self.by)}"
                raise ConfigError(f"--by {self.by}: give at least two values{given}, e.g. {example}")


@dataclass(frozen=True)
class Cell:
    """One point of the sweep: a label for tables and the settings that differ from the base."""

    label: str
    value: str
    group: str  # the model variant in a grid, "<by> <value>" in a two-factor grid, else ""
    overrides: dict[str, Any]
    by_value: str = ""  # the second factor's value in a two-factor grid


# ----------------------------------------------------------------------------------------- planning


def plan_sweep(spec: SweepSpec) -> list[Cell]:
    """The cells of ``spec``: values parsed and checked before anything trains."""
    base = dict(spec.base)
    if spec.factor == "variants":
        cells = [Cell("baseline", "baseline", "", {})]
        seen = {repr([]): "the baseline"}
        for text in spec.variants:
            overrides = parse_assignments(text)
            not_per_run = sorted(set(overrides) & NOT_PER_RUN)
            if not_per_run:
                raise ConfigError(
                    f"--variant {text!r}: {', '.join(not_per_run)} is not a per-run setting "
                    "(seeds come from --seed and --seeds; threads and device do not change what is learned)"
                )
            same = _earlier_with_same(seen, overrides, text)
            if same is not None:
                raise ConfigError(f"--variant {text!r}: the same settings as {same!r}; give each once")
            cells.append(Cell(" ".join(text.split()), " ".join(text.split()), "", overrides))
        return cells
    values = spec.values or FACTORS[spec.factor]
    cells = []
    seen_values: dict[str, str] = {}
    for value in values:
        overrides = _factor_overrides(spec.factor, value, base)
        same = _earlier_with_same(seen_values, overrides, value)
        if same is not None:
            raise ConfigError(f"compare {spec.factor}: {same} and {value} are the same value; give each once")
        label = value
        if spec.factor == "optimizer" and "lr" not in base and spec.by != "lr" and value in CONVENTIONAL_LR:
            overrides["lr"] = CONVENTIONAL_LR[value]
            label = at_own_rate(value, CONVENTIONAL_LR[value])
        if spec.factor == "optimizer" and value != "momentum" and "momentum" in base:
            overrides["momentum"] = None  # --momentum is for the momentum row; the others have none
        cells.append(Cell(label, value, "", overrides))
    if spec.by:
        return _two_factor_grid(spec, cells, base)
    if not spec.models:
        return cells
    grid = []
    for variant in spec.models:
        group, settings = variant_row(variant, base)
        grid += [
            Cell(f"{group} / {cell.label}", cell.value, group, settings | cell.overrides) for cell in cells
        ]
    return grid


def _two_factor_grid(spec: SweepSpec, cells: Sequence[Cell], base: dict[str, Any]) -> list[Cell]:
    """Every cell of ``factor`` × every value of ``by``: rows are the second factor's values (a cell's
    group), so the sweep figures draw one line per row against the first factor."""
    grid = []
    seen: dict[str, str] = {}
    for by_value in spec.by_values:
        overrides = _factor_overrides(spec.by, by_value, base)
        same = _earlier_with_same(seen, overrides, by_value)
        if same is not None:
            raise ConfigError(f"--by {spec.by}: {same} and {by_value} are the same value; give each once")
        for cell in cells:
            clash = sorted(set(overrides) & set(cell.overrides) - {"dropout"})
            if clash:
                raise ConfigError(
                    f"compare {spec.factor} --by {spec.by}: both set {', '.join(clash)}; pick two factors "
                    "that change different settings"
                )
            group = f"{spec.by} {by_value}"
            label = f"{spec.factor} {cell.label} / {group}"
            # norm fills in the dropout (the base's, default 0); a dropout factor beside it must win.
            merged = overrides | cell.overrides if spec.by == "norm" else cell.overrides | overrides
            grid.append(Cell(label, cell.value, group, merged, by_value))
    return grid


def _earlier_with_same(seen: dict[str, str], overrides: dict[str, Any], text: str) -> str | None:
    """The value given earlier that sets the same ``overrides`` as ``text`` (0.01 and 0.010, or 0.01 twice),
    or None after recording ``text`` as the first: one config must not be trained and reported as two."""
    key = repr(sorted(overrides.items()))
    if key in seen:
        return seen[key]
    seen[key] = text
    return None


def parse_by_values(factor: str, text: str) -> tuple[str, ...]:
    """The values after ``--by FACTOR``: separated by commas or spaces (``1,3,10``), except for
    ``hidden``, whose sizes already contain commas, so spaces separate them (``"100,50 30,5"``)."""
    separators = text.split() if factor == "hidden" else text.replace(",", " ").split()
    return tuple(separators)


def parse_values(factor: str, text: str) -> tuple[str, ...]:
    """One value argument of ``compare FACTOR VALUES…``: ``0.01,0.1`` is two values, as after ``--by``
    (a student who writes lists with commas gets what they meant, not a number that fails to parse);
    hidden sizes and variants keep their commas and spaces."""
    return (text,) if factor in ("hidden", "variants") else parse_by_values(factor, text)


def _example(factor: str) -> str:
    return '"100,50 30,5"' if factor == "hidden" else ",".join(FACTORS[factor][:2])


def _factor_overrides(factor: str, value: str, base: dict[str, Any]) -> dict[str, Any]:
    if factor == "norm":
        if value not in NORM_MODELS:
            raise ConfigError(f"compare norm: expected none, layer or batch, got {value!r}")
        # Normalisation alone: keep the base dropout (default 0) rather than nmlp's default 0.2.
        return {"model": NORM_MODELS[value], "dropout": base.get("dropout", 0.0)}
    return {factor: parse_setting(factor, value)}


SWEEP_THREADS = 1  # per run: jobs, not threads, spread a sweep over the cores (see run_configs)


def run_configs(spec: SweepSpec, cells: Sequence[Cell]) -> list[tuple[Cell, int, RunConfig]]:
    """Every (cell, seed, config) of the sweep, the data source pinned so cache keys mean one dataset.

    Each run gets a fixed thread count (1 unless ``threads`` is in the base settings) whatever
    ``--jobs`` is, so a sweep gives the same bits run serially or in parallel; small models also train
    faster as one process per core than as one process with several threads.
    """
    base = {"threads": SWEEP_THREADS} | dict(spec.base)
    first_seed = int(base.pop("seed", 0))
    planned = []
    for cell in cells:
        for offset in range(spec.seeds):
            seed = first_seed + offset
            settings = base | cell.overrides | {"seed": seed}
            if "first-layer" not in cell.overrides:
                settings = without_others_first_layer(settings)
            config = resolve_run_config(make_run_config(settings))
            planned.append((cell, seed, config))
    return planned
