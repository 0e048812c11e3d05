"""Regenerate every figure and table the docs site shows, from the project's own runs.

``digitnet report`` runs each write-up's experiment through ``digitnet.sweep.run_sweep`` (so runs
are cached and a rerun only trains what is missing), keeps the runs under a cache directory, and copies
only figures and tables into the docs: ``<docs>/figures/<experiment>/`` and ``<docs>/results/<experiment>/``.
Each results folder also gets ``command.md``, the exact ``digitnet compare`` command that reproduces it.

``--quick`` runs the same path on the bundled sample with one seed and two epochs, for CI.

```python
written = run_report(Path("docs"), Path("runs/report"), quick=True)
```
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digitnet.runtime import atomic_write_text
from digitnet.sweep import SweepResult, SweepSpec, results_markdown, run_sweep

VARIANTS = ("lr=0.001 dropout=0.2", "lr=0.0005 dropout=0.4", "lr=0.0001 dropout=0.6")


@dataclass(frozen=True)
class Experiment:
    """One write-up's sweep: its folder name, the sweep, and the figures to publish."""

    name: str
    spec: SweepSpec
    figures: tuple[str, ...] = ("val_loss.png", "val_accuracy.png", "train_loss.png", "final.png")
    columns: tuple[str, ...] = ("value", "val acc (%)", "test acc (%)", "best epoch", "time (s)")
    """The columns its page discusses (``table.md``); ``results.md`` and ``results.csv`` keep them all"""


TRAIN_VAL_TEST = ("value", "train acc (%)", "val acc (%)", "test acc (%)")


@dataclass(frozen=True)
class Claim:
    """A comparison a page makes in words. The page includes ``results/claims/<name>.md``, the verdict
    generated from the cells' seeds, so the sentence changes when the numbers do and never outlives
    them; the prose around it says only what any outcome would leave true."""

    name: str
    experiment: str
    first: str  # two cell labels of that experiment's table, in either order
    second: str


CLAIMS = (
    Claim("lr-top", "lr", "0.1", "0.03"),
    Claim("lr-overshoot", "lr", "0.3", "0.1"),
    Claim("batch-16-32", "batch-size", "16", "32"),
    Claim("sgd-adam-mlp", "optimizer", "mlp / sgd (lr 0.01)", "mlp / adam (lr 0.001)"),
    Claim("sgd-adam-bn", "optimizer", "bn / sgd (lr 0.01)", "bn / adam (lr 0.001)"),
    Claim("bn-mlp-sgd", "optimizer", "bn / sgd (lr 0.01)", "mlp / sgd (lr 0.01)"),
    Claim("bn-mlp-adam", "optimizer", "bn / adam (lr 0.001)", "mlp / adam (lr 0.001)"),
    Claim("dropout-bn-sgd", "optimizer", "bn / sgd (lr 0.01)", "bn-dropout / sgd (lr 0.01)"),
    Claim("dropout-bn-adam", "optimizer", "bn / adam (lr 0.001)", "bn-dropout / adam (lr 0.001)"),
    Claim("nmlp-mlp", "nmlp", "nmlp", "mlp"),
    Claim("variants-first-two", "variants", "lr=0.001 dropout=0.2", "lr=0.0005 dropout=0.4"),
    Claim("dropout-at-slow-rate", "lr-dropout", "lr 0.0001 / dropout 0", "lr 0.0001 / dropout 0.6"),
    Claim("rate-at-heavy-dropout", "lr-dropout", "lr 0.001 / dropout 0.6", "lr 0.0001 / dropout 0.6"),
    Claim("dropout-0-02", "dropout", "0", "0.2"),
    Claim("layer-none", "norm", "layer", "none"),
    Claim("batch-none", "norm", "batch", "none"),
    Claim("batch-layer", "norm", "batch", "layer"),
    Claim("epochs-10-3", "epochs", "10", "3"),
    Claim("hidden-wide", "hidden", "300,100", "100,50"),
    Claim("bottleneck-10-epochs", "hidden-epochs", "hidden 30,5 / epochs 10", "hidden 100,50 / epochs 1"),
)


def claim_text(claim: Claim, result: SweepResult) -> str:
    """The claim's verdict: the one ahead on mean validation accuracy first, both means, the interval."""
    from digitnet.sweep.aggregate import verdict

    cells = {c.cell.label: c for c in result.cells}
    missing = [label for label in (claim.first, claim.second) if label not in cells]
    if missing:
        raise ValueError(f"claim {claim.name}: no cell {', '.join(missing)} in experiment {claim.experiment}")
    first, second = cells[claim.first], cells[claim.second]
    if second.stats["val_accuracy"].mean > first.stats["val_accuracy"].mean:
        first, second = second, first
    found = verdict(first, second)
    means = (
        f"validation {first.stats['val_accuracy'].text()} % for {first.cell.label} against "
        f"{second.stats['val_accuracy'].text()} % for {second.cell.label}"
    )
    return f"**Verdict** ({means}): {found.sentence()}.\n"


def experiments(quick: bool, data_dir: str | None) -> list[Experiment]:
    """The report's sweeps. Full: MNIST, 3 seeds, the assignments' epochs; quick: sample, 1 seed, 2 epochs."""
    data: dict[str, Any] = {"dataset": "sample"} if quick else {"dataset": "mnist"}
    if data_dir and not quick:
        data["data-dir"] = data_dir
    epochs = 2 if quick else 10
    seeds = 1 if quick else 3

    def spec(
        factor: str,
        values: tuple[str, ...] = (),
        by: tuple[str, tuple[str, ...]] = ("", ()),
        close_call: bool = False,
        **settings: Any,
    ) -> SweepSpec:
        """``close_call``: five seeds, where three left the verdict hanging on the interval's edge."""
        base = data | {"epochs": epochs} | {k.replace("_", "-"): v for k, v in settings.items()}
        for swept in (factor, by[0]):  # the sweep sets these itself: "--epochs 10 --by epochs 1,3" misleads
            base.pop(swept, None)
        variants = VARIANTS if factor == "variants" else ()
        models = tuple(base.pop("models", ()))
        count = 5 if close_call and not quick else seeds
        return SweepSpec(factor, values, tuple(sorted(base.items())), count, models, variants, *by)

    # The variants pair a rate with a dropout; the grids below vary each with the other held fixed.
    # Adam at 0.001 is the fixed optimizer and rate of the one-factor experiments (dropout, norm), so
    # their cells are cells of the lr × dropout grid too, and are trained once.
    adam: dict[str, Any] = {"optimizer": "adam", "lr": 0.001}
    grid_figures = ("heatmap.png", "final.png", "val_accuracy.png")

    return [
        Experiment(
            "baseline",
            spec("lr", ("0.01",)),
            (),
            (*TRAIN_VAL_TEST, "train loss", "val loss", "test loss"),
        ),
        Experiment(
            "lr",
            # up to 1: the grid must reach rates where SGD overshoots, not stop where it still learns
            spec("lr", ("1", "0.3", "0.1", "0.03", "0.01", "0.003", "0.001", "0.0003")),
            # no time column: the rates above 0.1 were trained later, on a busier machine than the rest
            columns=(
                "value",
                "diverged",
                "train acc (%)",
                "train loss",
                "val acc (%)",
                "test acc (%)",
                "best epoch",
            ),
        ),
        Experiment("batch-size", spec("batch-size")),
        Experiment(
            "optimizer",
            spec("optimizer", models=("mlp", "bn", "bn-dropout")),
            columns=(*TRAIN_VAL_TEST, "time (s)"),
        ),
        Experiment(
            "nmlp",
            spec("model", ("mlp", "nmlp"), close_call=True),
            columns=(*TRAIN_VAL_TEST, "val loss", "best epoch"),
        ),
        # The baseline cell is Adam at 0.01, as published; said explicitly since --lr now defaults to
        # each optimizer's conventional rate (0.001 for Adam).
        Experiment(
            "variants",
            spec("variants", optimizer="adam", lr=0.01),
            columns=(*TRAIN_VAL_TEST, "val loss", "best epoch"),
        ),
        Experiment(
            "dropout",
            spec("dropout", ("0", "0.2", "0.4", "0.6"), **adam),
            columns=(*TRAIN_VAL_TEST, "val loss", "best epoch"),
        ),
        Experiment(
            "norm",
            spec("norm", ("none", "layer", "batch"), close_call=True, **adam),
            columns=(*TRAIN_VAL_TEST, "val loss"),
        ),
        Experiment(
            "lr-dropout",
            spec(
                "lr",
                ("0.001", "0.0005", "0.0001"),
                ("dropout", ("0", "0.2", "0.4", "0.6")),
                optimizer="adam",
            ),
            grid_figures,
            columns=(*TRAIN_VAL_TEST, "val loss"),
        ),
        Experiment(
            "epochs",
            spec("epochs", ("1", "3", "10") if not quick else ("1", "2")),
            columns=(*TRAIN_VAL_TEST, "time (s)"),
        ),
        Experiment(
            "hidden",
            spec("hidden", ("30,5", "100,50", "300,100"), close_call=True),
            columns=("value", "parameters", "train acc (%)", "val acc (%)", "test acc (%)"),
        ),
        Experiment(
            "hidden-epochs",
            spec("hidden", ("100,50", "30,5"), ("epochs", ("1", "3", "10") if not quick else ("1", "2"))),
            grid_figures,
            columns=TRAIN_VAL_TEST,
        ),
        Experiment(
            "cnn",
            spec("model", ("cnn",), optimizer="adam", lr=0.001, epochs=2 if quick else 5),
            columns=("value", "parameters", *TRAIN_VAL_TEST[1:], "test loss", "time (s)"),
        ),
    ]


def command_line(spec: SweepSpec) -> str:
    """The ``digitnet compare`` command that reproduces ``spec``, as a user types it: the data directory
    comes from ``$DIGITNET_DATA`` rather than this machine's path."""
    words = ["digitnet", "compare", spec.factor, *spec.values]
    for name, value in spec.base:
        if name == "data-dir":
            continue
        text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        words += [f"--{name}", text]
    words += ["--seeds", str(spec.seeds)]
    if spec.models:
        words += ["--models", ",".join(spec.models)]
    for variant in spec.variants:
        words += ["--variant", variant]
    if spec.by:
        separator = " " if spec.by == "hidden" else ","
        words += ["--by", spec.by, separator.join(spec.by_values)]
    return shlex.join(words)


ReportCallback = Callable[[str, SweepResult], None]


def _publish(source_dir: Path, names: tuple[str, ...], target_dir: Path, prefix: str = "") -> list[Path]:
    """Copy ``names`` from a run or sweep directory into the docs (as ``prefix + name``)."""
    target_dir.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in names:
        target = target_dir / f"{prefix}{name}"
        shutil.copyfile(source_dir / name, target)
        copied.append(target)
    return copied


def run_report(
    docs_dir: Path,
    cache_dir: Path,
    quick: bool = False,
    data_dir: str | None = None,
    jobs: int = 1,
    on_experiment: ReportCallback | None = None,
) -> list[Path]:
    """Run every experiment (reusing cached runs) and publish figures and tables under ``docs_dir``."""
    from digitnet.analysis import draw_data_figures
    from digitnet.configs import DataConfig
    from digitnet.evaluate import evaluate_run
    from digitnet.inside import draw_inside_figures

    written: list[Path] = []
    playground_rows: list[str] = []
    data_config = DataConfig(dataset="sample") if quick else DataConfig(dataset="mnist", data_dir=data_dir)
    data_files, _ = draw_data_figures(
        data_config, docs_dir / "figures" / "data", tables_dir=docs_dir / "results" / "data"
    )
    written += data_files
    results: dict[str, SweepResult] = {}
    first_runs: dict[str, Path] = {}
    for experiment in experiments(quick, data_dir):
        result = results[experiment.name] = run_sweep(
            experiment.spec, cache_dir / experiment.name, jobs=jobs, runs_dir=cache_dir / "runs"
        )
        figures_dir = docs_dir / "figures" / experiment.name
        results_dir = docs_dir / "results" / experiment.name
        written += _publish(result.out_dir, experiment.figures, figures_dir)
        if experiment.name in ("baseline", "cnn"):
            # the first seed's own figures: per-iteration loss with its moving average, accuracy per epoch
            first_run = result.cells[0].runs[0].run_dir
            written += _publish(first_run, ("loss.png", "accuracy.png"), figures_dir, prefix="run_")
            playground_rows.append(_export_playground_model(first_run, docs_dir, experiment.name))
            written.append(docs_dir / "playground" / "models" / f"{PLAYGROUND_MODELS[experiment.name]}.onnx")
        written += _publish(
            result.out_dir, ("results.md", "results.csv", "verdicts.md", "verdicts.csv"), results_dir
        )
        table = results_markdown(
            experiment.spec,
            result.cells,
            result.summary,
            result.data,
            experiment.columns,
            f"results/{experiment.name}/results.csv",
        )
        atomic_write_text(results_dir / "table.md", table)
        written.append(results_dir / "table.md")
        atomic_write_text(results_dir / "command.md", f"```bash\n{command_line(experiment.spec)}\n```\n")
        written.append(results_dir / "command.md")
        if experiment.name == "cnn":
            evaluation = evaluate_run(result.cells[0].runs[0].run_dir, cache_dir / "cnn-evaluation")
            gallery = ("confusion_matrix.png", "misclassified.png", "confident_mistakes.png", "correct.png")
            written += _publish(evaluation.files[0].parent, gallery, figures_dir)
        if experiment.name in ("baseline", "cnn"):
            first_runs["mlp" if experiment.name == "baseline" else "cnn"] = result.cells[0].runs[0].run_dir
        if on_experiment is not None:
            on_experiment(experiment.name, result)
    claims_dir = docs_dir / "results" / "claims"
    for claim in CLAIMS:
        cells = {c.cell.label for c in results[claim.experiment].cells}
        if quick and not {claim.first, claim.second} <= cells:
            continue  # the quick grids are smaller (2 epochs): a claim about epoch 10 has no cells there
        atomic_write_text(claims_dir / f"{claim.name}.md", claim_text(claim, results[claim.experiment]))
        written.append(claims_dir / f"{claim.name}.md")
    table = PLAYGROUND_HEADER + "".join(playground_rows)
    atomic_write_text(docs_dir / "results" / "playground" / "models.md", table)
    written.append(docs_dir / "results" / "playground" / "models.md")
    # "Inside the network": the baseline MLP's and the CNN's views, and the lr page's range test
    data = (
        {"dataset": "sample"}
        if quick
        else {"dataset": "mnist", **({"data-dir": data_dir} if data_dir else {})}
    )
    written += draw_inside_figures(docs_dir, cache_dir, first_runs, data, epochs=2 if quick else 10)
    return written


# The Playground page's models: the first run (seed 0) of these experiments, exported to ONNX.
PLAYGROUND_MODELS = {"baseline": "mlp", "cnn": "cnn"}
PLAYGROUND_HEADER = (
    "| model | run | ONNX file (KiB) | test acc, PyTorch (%) | test acc, onnxruntime, pixels / 255 (%) |\n"
    "|---|---|---|---|---|\n"
)


def _export_playground_model(run_dir: Path, docs_dir: Path, experiment: str) -> str:
    """Export one run for the Playground (``docs/playground/models/``) and return its row of the table:
    the file's size, and its test accuracy under onnxruntime beside the run's own."""
    from digitnet.checkpoint import read_json
    from digitnet.export import export_onnx, onnx_test_accuracy

    name = PLAYGROUND_MODELS[experiment]
    result = export_onnx(run_dir, docs_dir / "playground" / "models" / f"{name}.onnx")
    accuracy, _ = onnx_test_accuracy(result.path, run_dir)
    torch_accuracy = float(read_json(run_dir / "summary.json")["test_accuracy"])
    return (
        f"| {name.upper()} | `{run_dir.name}` | {result.size_bytes / 1024:.0f} | "
        f"{100 * torch_accuracy:.2f} | {100 * accuracy:.2f} |\n"
    )


def cli_reference() -> str:
    """Markdown reference of every command and option, generated by Typer from the app itself."""
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "typer",
            "digitnet.cli",
            "utils",
            "docs",
            "--name",
            "digitnet",
            "--title",
            "Command-line reference",
        ],
        check=True,
        capture_output=True,
        text=True,
        env=_plain_env(),
    )
    return _escape_angle_brackets(result.stdout)


def _escape_angle_brackets(markdown: str) -> str:
    """``<`` and ``>`` in the reference's prose as entities: a default such as ``runs/<model>-…`` would
    otherwise read as an HTML tag and vanish from the page. Code spans and fenced blocks stay as they are."""
    lines, fenced = [], False
    for line in markdown.splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            parts = line.split("`")  # odd-numbered parts are inside code spans
            line = "`".join(
                part if index % 2 else part.replace("<", "&lt;").replace(">", "&gt;")
                for index, part in enumerate(parts)
            )
        lines.append(line)
    return "".join(lines)


def _plain_env() -> dict[str, str]:
    """The environment with a fixed terminal width, so generated help text wraps the same everywhere."""
    import os

    return {**os.environ, "COLUMNS": "100", "TERM": "dumb", "NO_COLOR": "1"}


def write_cli_reference(docs_dir: Path) -> Path:
    """Regenerate ``<docs>/cli.md`` from the Typer app."""
    path = docs_dir / "cli.md"
    atomic_write_text(path, cli_reference())
    return path


__all__ = [
    "CLAIMS",
    "Claim",
    "Experiment",
    "claim_text",
    "cli_reference",
    "command_line",
    "experiments",
    "run_report",
    "write_cli_reference",
]
