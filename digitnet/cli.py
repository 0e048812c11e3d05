"""The ``digitnet`` command line: each option is one setting, each command calls one library function.

Only this module knows about Typer and only this module prints. A
[DigitnetError][digitnet.errors.DigitnetError]
becomes one line on stderr and exit code 2 (``--debug`` shows the traceback instead).
"""

from __future__ import annotations

import functools
import inspect
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec, TypeAlias, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from digitnet import __version__
from digitnet.errors import ConfigError, DigitnetError
from digitnet.presets import PRESET_NAMES, preset_settings
from digitnet.settings import SETTINGS, parse_setting

app = typer.Typer(
    name="digitnet",
    help="Handwritten-digit recognition on MNIST, end to end: data, models, training, analysis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Get, split, and look at the digits.", no_args_is_help=True)
app.add_typer(data_app, name="data")

console = Console()
err_console = Console(stderr=True)
_state = {"debug": False, "terminated": False}

P = ParamSpec("P")
R = TypeVar("R")

# Exit codes: 2 for input the user can fix (like click's usage errors), 1 for a run that diverged,
# 130 for Ctrl-C and 143 for SIGTERM (the shell's convention: 128 + the signal's number).
EXIT_USER_ERROR, EXIT_DIVERGED, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 1, 130, 143


def fail(message: str, code: int = EXIT_USER_ERROR) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM (``kill``, a scheduler, a closing laptop session) stops a run the way Ctrl-C does, so the
    finished epochs are saved. Further SIGTERMs are ignored while that saving runs."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _state["terminated"] = True
    raise KeyboardInterrupt


def friendly(command: Callable[P, R]) -> Callable[P, R]:
    """Turn a [DigitnetError][digitnet.errors.DigitnetError] raised by ``command`` into one line and exit
    code 2, and Ctrl-C or
    SIGTERM into one line and exit code 130 or 143 (click would print "Aborted!" and exit 1)."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        previous = signal.signal(signal.SIGTERM, _terminated)
        _state["terminated"] = False
        try:
            return command(*args, **kwargs)
        except DigitnetError as error:
            if _state["debug"]:
                raise
            fail(str(error))
        except KeyboardInterrupt:
            fail(
                "interrupted: what finished is saved; the same command resumes where it stopped",
                EXIT_TERMINATED if _state["terminated"] else EXIT_INTERRUPTED,
            )
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper


def _version(value: bool) -> None:
    if value:
        console.print(f"digitnet {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors.")
    ] = False,
) -> None:
    """digitnet: train, compare and explain digit classifiers from the command line."""
    _state["debug"] = debug


# ------------------------------------------------------------------------------------------ options
# Every run option is derived from digitnet.settings.SETTINGS: its type, help, choices and the default
# --help shows. Each defaults to None, meaning "not given": the preset, then the config's default, apply.

Preset = Annotated[
    str | None,
    typer.Option(
        help="A measured recipe (see README); options given beside it win.",
        metavar="[" + "|".join(PRESET_NAMES) + "]",
    ),
]


def _option(name: str, help_text: str | None = None) -> Any:
    """``typer.Option`` for setting ``name``: ``--name``, its help, its choices as the metavar (checked by
    the config, so a wrong one is one ``error:`` line), and its default as ``--help`` shows it."""
    setting = SETTINGS[name]
    declarations = (f"--{name}/--no-{name}",) if setting.kind is bool else (f"--{name}",)
    return typer.Option(
        *declarations,
        help=help_text or setting.help,
        show_default=setting.default_text or True,
        metavar="[" + "|".join(setting.choices) + "]" if setting.choices else None,
    )


def with_run_options(**help_overrides: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Give a command one option per run setting (see [SETTINGS][digitnet.settings.SETTINGS]) after its
    own; their values arrive in its ``**options``. ``help_overrides`` rewords an option where the
    command reads it differently (compare's ``--seed`` is the first of several)."""

    def decorate(command: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        added = []
        for name, setting in SETTINGS.items():
            python_name = name.replace("-", "_")
            option = _option(name, help_overrides.get(python_name))
            annotation = Annotated[setting.kind | None, option]  # type: ignore[name-defined]
            added.append(
                inspect.Parameter(
                    python_name,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=setting.default,
                    annotation=annotation,
                )
            )
        command.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
        return command

    return decorate


Dataset: TypeAlias = Annotated[str, _option("dataset")]
DataDir: TypeAlias = Annotated[Path | None, _option("data-dir")]
CsvPath: TypeAlias = Annotated[Path | None, _option("csv")]
Seed: TypeAlias = Annotated[int, _option("seed")]


def run_settings(
    options: dict[str, Any], preset: str | None = None, context: typer.Context | None = None
) -> dict[str, Any]:
    """The run settings a command was given (Typer's names, ``batch_size``), over its ``preset``.

    An option left at its default was not given (the command's ``context`` records where each value
    came from), so the preset's value, then the config's default, applies. An option that is not a
    setting is a bug in the command, and fails loudly rather than being ignored.
    """
    settings: dict[str, Any] = preset_settings(preset)
    for python_name, value in options.items():
        name = python_name.replace("_", "-")
        if name not in SETTINGS:
            raise ConfigError(f"--{name}: not a run setting; known: {', '.join(SETTINGS)}")
        source = context.get_parameter_source(python_name) if context is not None else None
        if value is None or getattr(source, "name", None) == "DEFAULT":
            continue
        if name in ("hidden", "channels"):
            value = parse_setting(name, value)
        elif isinstance(value, Path):
            value = str(value)
        settings[name] = value
    return settings


def _progress(unit: str) -> Progress:
    """A live bar on a terminal; when stderr is a file or pipe, rich draws nothing until the end, so
    ``_log_line`` prints a plain line per step instead."""
    return Progress(
        TextColumn(f"[bold]{unit}"),
        MofNCompleteColumn(),
        BarColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        disable=not err_console.is_terminal,
    )


def _log_line(progress: Progress, text: str) -> None:
    if progress.disable:
        err_console.print(text, highlight=False, soft_wrap=True)


def _print_notes(notes: tuple[str, ...]) -> None:
    for note in notes:
        err_console.print(f"[dim]note:[/] {note}", highlight=False, soft_wrap=True)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}%"


# --------------------------------------------------------------------------------------------- train


@app.command()
@with_run_options()
@friendly
def train(
    context: typer.Context,
    *,
    preset: Preset = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Run directory.", show_default="runs/<model>-<optimizer>-<config hash>"),
    ] = None,
    restart: Annotated[
        bool,
        typer.Option(
            "--restart",
            help="Start over even if an interrupted run of this config was saved (it resumes otherwise).",
        ),
    ] = False,
    **options: Any,
) -> None:
    """Train one model from scratch and write its run directory (config, history, plots, checkpoint)."""
    from digitnet.run import RunStart, run_experiment
    from digitnet.settings import make_run_config, resolve_run_config
    from digitnet.trainer import EpochRecord

    settings = run_settings(options, preset, context)
    config = resolve_run_config(make_run_config(settings))
    run_dir = out or Path("runs") / f"{config.model.name}-{config.optim.name}-{config.key()}"

    with _progress("epoch") as progress:
        task = progress.add_task("loading data…", total=config.train.epochs)

        def on_start(start: RunStart) -> None:
            _print_notes(start.notes)
            progress.console.print(
                f"{start.split} · {start.model} ({start.parameters:,} parameters) · {start.device}",
                highlight=False,
                soft_wrap=True,
            )
            if start.resumed_from:
                _print_notes(
                    (
                        f"resuming after epoch {start.resumed_from} of {config.train.epochs}, saved by an "
                        "interrupted run of this config (--restart starts over)",
                    )
                )
            progress.update(task, completed=start.resumed_from, description="training…")

        def on_epoch(record: EpochRecord) -> None:
            text = (
                f"loss {record.train_loss:.4f} · train {_percent(record.train_accuracy)} · "
                f"val {_percent(record.val_accuracy)} · {record.samples_per_second:,.0f} samples/s"
            )
            progress.update(task, advance=1, description=text)
            _log_line(progress, f"epoch {record.epoch}/{config.train.epochs} · {text}")

        result = run_experiment(config, run_dir, on_start=on_start, on_epoch=on_epoch, restart=restart)

    summary = result.summary
    table = Table(title=config.title(), title_style="bold", show_edge=False)
    for column in ("", "train", "validation", "test"):
        table.add_column(column, justify="right")
    table.add_row(
        "accuracy",
        _percent(summary["train_accuracy"]),
        _percent(summary["val_accuracy"]),
        _percent(summary["test_accuracy"]),
    )
    table.add_row(
        "loss",
        *(
            f"{summary[k]:.4f}" if summary[k] is not None else "—"
            for k in ("train_loss", "val_loss", "test_loss")
        ),
    )
    console.print(table)
    console.print(
        f"{summary['parameters']:,} parameters · {summary['train_seconds']:.1f} s training · "
        f"test set: {summary['test_set']}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"run written to {result.run_dir}", highlight=False, soft_wrap=True)
    if summary["status"] == "diverged":
        at = summary["diverged_at"]
        fail(
            f"training diverged at epoch {at['epoch']}, step {at['step']} (loss became NaN/inf); "
            "try a smaller --lr",
            EXIT_DIVERGED,
        )
    if summary["status"] == "interrupted":
        fail(
            f"interrupted after {summary['epochs_completed']} finished epoch(s); what finished was saved, "
            "and the same command resumes from there",
            EXIT_TERMINATED if _state["terminated"] else EXIT_INTERRUPTED,
        )


# ------------------------------------------------------------------------------------------- compare


@app.command()
@with_run_options(seed="First seed; the seeds are seed, seed+1, …")
@friendly
def compare(
    context: typer.Context,
    factor: Annotated[
        str,
        typer.Argument(
            help="lr | batch-size | optimizer | dropout | norm | epochs | hidden | model | variants"
        ),
    ],
    values: Annotated[
        list[str] | None,
        typer.Argument(help="Values to try (default: a sensible set per factor).", show_default=False),
    ] = None,
    *,
    seeds: Annotated[int, typer.Option(help="Seeds per value; tables report mean ± std.")] = 3,
    jobs: Annotated[
        int | None, typer.Option(help="Worker processes, one run each. [default: CPU cores]")
    ] = None,
    models: Annotated[
        str | None, typer.Option(help="Grid over model variants, e.g. mlp,bn,bn-dropout.")
    ] = None,
    variant: Annotated[
        list[str] | None,
        typer.Option(help="With 'variants': paired settings, e.g. 'lr=0.001 dropout=0.2' (repeatable)."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Sweep directory. [default: sweeps/<factor>]")] = None,
    backend: Annotated[
        str, typer.Option(help="local (worker processes) | ray (Ray tasks; pip install -e '.[ray]').")
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(help="With --backend ray: 'auto' joins a running cluster; none starts a local one."),
    ] = None,
    preset: Preset = None,
    **options: Any,
) -> None:
    """Train every value of one factor from scratch over several seeds; tables, overlays, error bars.

    Finished runs are cached by their config hash, so a rerun trains only what is missing.
    """
    from digitnet.sweep import RunRecord, SweepSpec, default_jobs, results_table_rows, run_sweep

    base = run_settings(options, preset, context)
    spec = SweepSpec(
        factor=factor,
        values=tuple(values or ()),
        base=tuple(sorted(base.items())),
        seeds=seeds,
        models=tuple(m.strip() for m in models.split(",") if m.strip()) if models else (),
        variants=tuple(variant or ()),
    )
    sweep_dir = out or Path("sweeps") / factor
    with _progress("runs") as progress:
        task = progress.add_task("planning…", total=None)

        def on_run(record: RunRecord, done: int, total: int) -> None:
            status = "cached" if record.cached else record.summary["status"]
            progress.update(
                task,
                completed=done,
                total=total,
                description=f"{record.cell.label} seed {record.seed}: {status}",
            )
            _log_line(progress, f"run {done}/{total} · {record.cell.label} seed {record.seed}: {status}")

        result = run_sweep(
            spec,
            sweep_dir,
            jobs=jobs or default_jobs(),
            on_run=on_run,
            backend=backend,
            ray_address=ray_address,
        )

    table = Table(title=f"compare {factor}: mean ± std over {seeds} seed(s)", show_edge=False)
    columns = ("value", "diverged", "val acc (%)", "test acc (%)", "time (s)")  # all of them: results.md
    for column in columns:
        table.add_column(column, justify="left" if column == "value" else "right")
    for row in results_table_rows(result.cells):
        table.add_row(*(row[c] for c in columns))
    console.print(table)
    console.print(result.summary, highlight=False, soft_wrap=True)
    console.print(
        f"{result.trained} run(s) trained, {result.reused} reused from cache · written to {sweep_dir}",
        highlight=False,
        soft_wrap=True,
    )


# --------------------------------------------------------------------------------- evaluate, predict


@app.command()
@friendly
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by 'digitnet train'.")],
    *,
    out: Annotated[Path | None, typer.Option(help="Where to write. [default: RUN_DIR/evaluation]")] = None,
) -> None:
    """Reload a run's model and measure it on the test set: per-class metrics, confusion matrix, galleries."""
    from digitnet.analysis import evaluate_run

    result = evaluate_run(run_dir, out)
    table = Table(
        title=f"{result.test_set}: accuracy {100 * result.accuracy:.2f}%, loss {result.loss:.4f}",
        show_edge=False,
    )
    for column in ("digit", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="right")
    for row in result.per_class:
        table.add_row(
            str(row["digit"]),
            f"{row['precision']:.4f}",
            f"{row['recall']:.4f}",
            f"{row['f1']:.4f}",
            str(int(row["support"])),
        )
    console.print(table)
    console.print(f"{result.mistakes} mistakes · written to {result.files[0].parent}", highlight=False)


@app.command()
@friendly
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by 'digitnet train'.")],
    images: Annotated[list[Path], typer.Argument(help="PNG/JPG images of single digits, any size.")],
    *,
    show: Annotated[
        bool, typer.Option("--show", help="Write the preprocessed 28×28 beside each input (NAME.mnist.png).")
    ] = False,
) -> None:
    """Predict the digit in your own images, prepared the way MNIST was made; prints the top 3."""
    from digitnet.analysis import predict_files

    for prediction in predict_files(run_dir, images, show=show):
        ranked = " · ".join(f"{digit} {100 * p:.1f}%" for digit, p in prediction.top)
        console.print(
            f"{prediction.path}: {prediction.top[0][0]}   ({ranked})", highlight=False, soft_wrap=True
        )
        if prediction.preprocessed is not None:
            console.print(f"  preprocessed: {prediction.preprocessed}", highlight=False, soft_wrap=True)


# -------------------------------------------------------------------------------------------- report


@app.command()
@friendly
def report(
    *,
    quick: Annotated[
        bool, typer.Option("--quick", help="Bundled sample, 1 seed, 2 epochs: the same path in minutes.")
    ] = False,
    docs_dir: Annotated[Path, typer.Option(help="Where figures/ and results/ go.")] = Path("docs"),
    cache_dir: Annotated[Path, typer.Option(help="Where the runs are kept (reused on rerun).")] = Path(
        "runs/report"
    ),
    data_dir: DataDir = None,
    jobs: Annotated[int | None, typer.Option(help="Worker processes. [default: CPU cores]")] = None,
) -> None:
    """Run every experiment of the docs site (cached) and write its figures, tables and CLI reference."""
    from digitnet.report import run_report, write_cli_reference
    from digitnet.sweep import SweepResult, default_jobs

    def on_experiment(name: str, result: SweepResult) -> None:
        err_console.print(
            f"{name}: {result.trained} trained, {result.reused} reused · {result.summary}",
            highlight=False,
            soft_wrap=True,
        )

    written = run_report(
        docs_dir,
        cache_dir,
        quick=quick,
        data_dir=str(data_dir) if data_dir else None,
        jobs=jobs or default_jobs(),
        on_experiment=on_experiment,
    )
    written.append(write_cli_reference(docs_dir))
    console.print(f"{len(written)} files written under {docs_dir}", highlight=False)


# ---------------------------------------------------------------------------------------------- data


@data_app.command("download")
@friendly
def data_download(
    *,
    data_dir: DataDir = None,
) -> None:
    """Fetch the four MNIST files (torchvision's mirrors, MD5-checked) into the data directory."""
    from digitnet.data import default_data_dir, download_mnist

    target = default_data_dir(data_dir)
    for path in download_mnist(target):
        console.print(f"ok {path}", highlight=False)
    console.print(
        f"MNIST is ready in {target}; digitnet will use it by default"
        + ("" if data_dir is None else f" with --data-dir {target}"),
        highlight=False,
    )


@data_app.command("prepare")
@friendly
def data_prepare(
    *,
    dataset: Dataset = "auto",
    data_dir: DataDir = None,
    csv: CsvPath = None,
    out: Annotated[Path, typer.Option(help="Directory for split.npz and class_counts.csv.")] = Path(
        "data/split"
    ),
) -> None:
    """Split the digits 80/20 (stratified) and write the split with its class counts, for reuse."""
    from digitnet.data import describe_split, load_split, save_split
    from digitnet.runtime import claim_output
    from digitnet.settings import make_run_config

    config = make_run_config(run_settings({"dataset": dataset, "data_dir": data_dir, "csv": csv})).data
    claim_output(out, "split")
    split = load_split(config)
    _print_notes(split.notes)
    written = save_split(split, out)
    table = Table(title=describe_split(split), show_edge=False)
    table.add_column("split")
    for digit in range(10):
        table.add_column(str(digit), justify="right")
    table.add_column("total", justify="right")
    for name in ("train", "val", "test"):
        counts = getattr(split, name).class_counts()
        table.add_row(name, *map(str, counts), str(sum(counts)))
    console.print(table)
    for path in written:
        console.print(f"wrote {path}", highlight=False)


@data_app.command("show")
@friendly
def data_show(
    *,
    dataset: Dataset = "auto",
    data_dir: DataDir = None,
    csv: CsvPath = None,
    seed: Seed = 0,
    out: Annotated[Path, typer.Option(help="Directory for the figures.")] = Path("figures/data"),
) -> None:
    """Draw an 8×8 grid of random training digits, one row of examples per class, and class counts."""
    from digitnet.analysis import draw_data_figures
    from digitnet.runtime import claim_output, mark_output
    from digitnet.settings import make_run_config

    config = make_run_config(
        run_settings({"dataset": dataset, "data_dir": data_dir, "csv": csv, "seed": seed})
    )
    claim_output(out, "figures")
    written, notes = draw_data_figures(config.data, out, seed)
    mark_output(out, "figures")
    _print_notes(notes)
    for path in written:
        console.print(f"wrote {path}", highlight=False)
