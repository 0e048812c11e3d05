"""``digitnet train`` and ``digitnet compare``: one run, or one factor over several seeds."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from digitnet.cli import common
from digitnet.cli.common import (
    EXIT_DIVERGED,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    FLAG,
    Preset,
    app,
    choices_metavar,
    console,
    fail,
    friendly,
    log_line,
    percent,
    print_notes,
    progress_bar,
    run_settings,
    show_run,
    terminated,
    with_run_options,
)

if TYPE_CHECKING:
    from digitnet.run import RunSummary

# The names `compare --help` lists; digitnet.sweep holds the same (a test checks), but importing it would
# import torch, and --help must stay instant.
FACTOR_NAMES = ("lr", "batch-size", "optimizer", "dropout", "norm", "epochs", "hidden", "model", "variants")
BACKEND_NAMES = ("local", "ray")

# --------------------------------------------------------------------------------------------- train


@app.command(short_help="Train one model and write its run directory.")
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
            metavar=FLAG,
        ),
    ] = False,
    **options: Any,
) -> None:
    """Train one model from scratch and write its run directory (config, history, plots, checkpoint)."""
    from digitnet.idx import prefetch
    from digitnet.presets import preset_settings
    from digitnet.settings import make_run_config, resolve_run_config, with_conventional_lr

    settings, lr_note = with_conventional_lr(run_settings(options, preset, context))
    config = make_run_config(settings)
    # a preset's fixed first layer left out for another model (settings.without_others_first_layer)
    dropped = "first-layer" in preset_settings(preset) and "first-layer" not in settings
    layer_note = (
        f"--preset {preset} fixes the first layer of --model cnn only; this {config.model.name} learns "
        "its own"
        if dropped
        else None
    )
    # While torch imports (next lines), the other core reads the MNIST files and, in the digitnet
    # command, a helper process imports matplotlib to draw the figures (digitnet.figure_helper).
    if common.STANDALONE:
        from digitnet import figure_helper

        figure_helper.start()
    prefetch(config.data)

    from digitnet.history import EpochRecord
    from digitnet.run import RunStart, run_experiment

    config = resolve_run_config(config)
    run_dir = out or Path("runs") / f"{config.model.name}-{config.optim.name}-{config.key()}"
    # a fixed first layer's weights are not counted: say so where the count would otherwise puzzle
    trained_word = "trainable " if config.model.first_layer == "pca" else ""

    with progress_bar("epoch") as progress:
        task = progress.add_task("loading data…", total=config.train.epochs)

        def on_start(start: RunStart) -> None:
            print_notes(start.notes + tuple(note for note in (lr_note, layer_note) if note))
            progress.console.print(
                f"{start.split} · {start.model} ({start.parameters:,} {trained_word}parameters) · "
                f"{start.device}",
                highlight=False,
                soft_wrap=True,
            )
            if start.resumed_from:
                print_notes(
                    (
                        f"resuming after epoch {start.resumed_from} of {config.train.epochs}, saved by an "
                        "interrupted run of this config (--restart starts over)",
                    )
                )
            progress.update(task, completed=start.resumed_from, description="training…")

        def on_epoch(record: EpochRecord) -> None:
            measured = record.train_eval_accuracy
            text = (
                f"loss {record.train_loss:.4f} · train {percent(record.train_accuracy)}"
                + (f" (eval mode {percent(measured)})" if measured is not None else "")
                + f" · val {percent(record.val_accuracy)} · {record.samples_per_second:,.0f} samples/s"
            )
            progress.update(task, advance=1, description=text)
            log_line(progress, f"epoch {record.epoch}/{config.train.epochs} · {text}")
            if record.prepared_seconds is not None:  # a line of its own: the live bar would cut it off
                print_notes(
                    (
                        f"epoch {record.epoch}'s time includes {record.prepared_seconds:.1f} s of computing "
                        "the fixed first layer's outputs once; the later epochs reuse them",
                    )
                )

        result = run_experiment(config, run_dir, on_start=on_start, on_epoch=on_epoch, restart=restart)

    summary = result.summary
    if not result.written:
        fail(
            "interrupted before epoch 1 finished: nothing was written, so the same command starts over",
            EXIT_TERMINATED if terminated() else EXIT_INTERRUPTED,
        )
    # The run's title on a line of its own: as the table's title it wrapped to the table's width.
    console.print(config.title(), style="bold", highlight=False, soft_wrap=True)
    table = Table(show_edge=False)
    eval_train = summary.train_eval_accuracy is not None
    columns = ("", "train (running)", *(("train (eval)",) if eval_train else ()), "validation", "test")
    for column in columns:
        table.add_column(column, justify="right")
    table.add_row(
        "accuracy",
        percent(summary.train_accuracy),
        *((percent(summary.train_eval_accuracy),) if eval_train else ()),
        percent(summary.val_accuracy),
        percent(summary.test_accuracy),
    )
    table.add_row(
        "loss",
        *(
            f"{loss:.4f}" if loss is not None else "—"
            for loss in (
                summary.train_loss,
                *((summary.train_eval_loss,) if eval_train else ()),
                summary.val_loss,
                summary.test_loss,
            )
        ),
    )
    console.print(table)
    tested = f"test set: {summary.test_set}"
    if summary.test_accuracy is None and summary.status == "interrupted":  # measured once training ends
        tested = f"{tested}, not measured: training was stopped ('digitnet evaluate' measures it)"
    console.print(
        f"{summary.parameters:,} {trained_word}parameters · {training_time(summary)} · {tested}",
        highlight=False,
        soft_wrap=True,
    )
    written = "partial run" if summary.status == "interrupted" else "run"
    console.print(f"{written} written to {result.run_dir}", highlight=False, soft_wrap=True)
    if result.removed:  # said, so that a student who looks for last week's evaluation knows where it went
        print_notes(
            (
                f"removed the earlier weights' {', '.join(result.removed)} from {result.run_dir} (files you "
                "added there are kept): they described a model that is gone (run digitnet evaluate, "
                "inspect or export again)",
            )
        )
    if summary.status == "diverged" and summary.diverged_at is not None:
        at = summary.diverged_at
        fail(
            f"training diverged at epoch {at['epoch']}, step {at['step']} (loss became NaN/inf); "
            "try a smaller --lr",
            EXIT_DIVERGED,
        )
    if summary.status == "interrupted":
        finished = summary.epochs_completed  # ≥ 1: a run stopped inside epoch 1 is not written (above)
        saved = "it was" if finished == 1 else "they were"
        saved += " saved, and the same command resumes from there"
        fail(
            f"interrupted after {finished} finished epoch{'' if finished == 1 else 's'}: {saved}",
            EXIT_TERMINATED if terminated() else EXIT_INTERRUPTED,
        )


# ------------------------------------------------------------------------------------------- compare


WAITED = 0.9  # CPU time under this share of the clock's: the run waited for its core, and is told so


def training_time(summary: RunSummary) -> str:
    """``"6.0 s training"``; where the run spent a tenth or more of it waiting for its core (one thread,
    beside a busy program), the CPU time too, so a student comparing two runs knows which figure to use."""
    clock, cpu = summary.train_seconds, summary.train_cpu_seconds
    if cpu is None or cpu >= WAITED * clock:
        return f"{clock:.1f} s training"
    return f"{clock:.1f} s training, {cpu:.1f} s of it on the CPU (other programs held the core the rest)"


@app.command(short_help="Train each value of a factor over seeds: tables, verdicts.")
@with_run_options(seed="First seed; the seeds are seed, seed+1, …")
@friendly
def compare(
    context: typer.Context,
    factor: Annotated[
        str,
        typer.Argument(
            help=f"What to vary, one factor at a time: {', '.join(FACTOR_NAMES)}.",
            metavar="FACTOR",
            show_default=False,
        ),
    ],
    values: Annotated[
        list[str] | None,
        typer.Argument(
            help="Values to try, separated by spaces or commas (hidden sizes: by spaces, e.g. 100,50 30,5; "
            "default: a sensible set per factor).",
            metavar="VALUES",
            show_default=False,
        ),
    ] = None,
    *,
    seeds: Annotated[int, typer.Option(help="Seeds per value; tables report mean ± std.")] = 3,
    jobs: Annotated[
        int | None,
        typer.Option(
            help="Worker processes, each training one run at a time on --threads threads (1 unless given). "
            "A core another program keeps busy slows the worker on it without stalling the others "
            "(threads of one run would wait on it).",
            show_default="CPU cores",
        ),
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(
            help="A grid: each of these models × each value, comma-separated, e.g. --models mlp,bn-dropout: "
            "any --model, and bn-dropout (BatchNorm with dropout: --dropout, else 0.2); only nmlp and "
            "bn-dropout rows have dropout. (Not the factor 'variants', which pairs settings: see --variant.)"
        ),
    ] = None,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            help="With 'variants': paired settings, e.g. 'lr=0.001 dropout=0.2' (repeatable).",
            metavar="SETTINGS",
        ),
    ] = None,
    by: Annotated[
        tuple[str, str] | None,
        typer.Option(
            help="A second factor and its values: every value × every value, each cell from scratch, and a "
            "heatmap, e.g. --by epochs 1,3,10 (hidden sizes: --by hidden '100,50 30,5').",
            metavar="FACTOR VALUES",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Sweep directory.", show_default="sweeps/<factor>[-<by>]")
    ] = None,
    backend: Annotated[
        str,
        typer.Option(
            help="local = worker processes; ray = Ray tasks (needs pip install -e '.[ray]').",
            metavar=choices_metavar(BACKEND_NAMES),
        ),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(help="With --backend ray: 'auto' joins a running cluster; none starts a local one."),
    ] = None,
    preset: Preset = None,
    **options: Any,
) -> None:
    """Train each value of a factor (or each pair, with --by) from scratch over seeds: tables, verdicts.

    Finished runs are cached by their config hash, so a rerun trains only what is missing. A first look
    in a minute: --seeds 1 --epochs 1 (no verdicts then: one seed cannot tell two values apart).
    """
    from digitnet.settings import with_conventional_lr
    from digitnet.sweep import RunRecord, SweepSpec, default_jobs, results_table_rows, run_sweep
    from digitnet.sweep.aggregate import CLOCK_NOTE, over_seeds, time_heading
    from digitnet.sweep.plan import parse_by_values, parse_values

    base = run_settings(options, preset, context)
    if jobs is not None and jobs < 1:
        fail(f"--jobs: expected a whole number ≥ 1, got {jobs}")
    by_factor, by_text = by or ("", "")
    if by_text.startswith("-"):  # Typer took the next option's name as the values
        fail(f"--by {by_factor}: its values come right after it, e.g. --by {by_factor} 1,3 (got {by_text!r})")
    parsed_values = tuple(v for text in values or () for v in parse_values(factor, text))
    if values and not parsed_values:  # "compare lr ," must not quietly become the default grid
        fail(f"compare {factor}: no values in {' '.join(values)!r}; give them separated by spaces or commas")
    lr_note = None
    if "lr" not in (factor, by_factor) and factor != "optimizer":  # those set the rate per value
        base, lr_note = with_conventional_lr(base)
    spec = SweepSpec(
        factor=factor,
        values=parsed_values,
        base=tuple(sorted(base.items())),
        seeds=seeds,
        models=tuple(m.strip() for m in models.split(",") if m.strip()) if models else (),
        variants=tuple(variant or ()),
        by=by_factor,
        by_values=parse_by_values(by_factor, by_text),
    )
    sweep_dir = out or Path("sweeps") / (f"{factor}-{by_factor}" if by_factor else factor)
    with progress_bar("runs") as progress:
        task = progress.add_task("planning…", total=None)

        def on_run(record: RunRecord, done: int, total: int) -> None:
            show_run(progress, task, record, done, total)

        def on_data(data: str, notes: tuple[str, ...]) -> None:
            # once the sweep is planned: a bad value ("epochs 2.5") fails alone, before any note
            print_notes(((lr_note,) if lr_note else ()) + notes)
            progress.console.print(f"data: {data}", highlight=False, soft_wrap=True)

        tables_before = (sweep_dir / "results.md").is_file()
        try:
            result = run_sweep(
                spec,
                sweep_dir,
                jobs=default_jobs() if jobs is None else jobs,
                on_run=on_run,
                backend=backend,
                ray_address=ray_address,
                on_data=on_data,
            )
        except KeyboardInterrupt:  # the finished runs are cached; the tables were not rewritten
            if tables_before:
                print_notes(
                    (
                        f"the tables and figures in {sweep_dir} are still those of the last compare "
                        "that finished there",
                    )
                )
            raise

    title = f"compare {factor}" + (f" --by {by_factor}" if by_factor else "")
    # the title on a line of its own: as the table's title it would wrap to the table's width
    console.print(
        f"{title}: {over_seeds(seeds, result.cells, factor)}", style="bold", highlight=False, soft_wrap=True
    )
    table = Table(show_edge=False)
    columns = ("value", "diverged", "val acc (%)", "test acc (%)", "time (s)")  # all of them: results.md
    for column in columns:
        heading = time_heading(result.cells) if column == "time (s)" else column
        table.add_column(heading, justify="left" if column == "value" else "right", no_wrap=column == "value")
    for row in results_table_rows(result.cells):
        table.add_row(*(row[c] for c in columns))
    console.print(table)
    if time_heading(result.cells) == "time (s)":  # the heading says CPU time when it is; say why not
        console.print(f"{CLOCK_NOTE[0].upper()}{CLOCK_NOTE[1:]}.", highlight=False, soft_wrap=True)
    console.print(result.summary, highlight=False, soft_wrap=True)
    if by_factor:
        console.print(
            f"Each row and each column compared: {sweep_dir / 'verdicts.md'}; "
            f"the grid: {sweep_dir / 'heatmap.png'}",
            highlight=False,
            soft_wrap=True,
        )
    console.print(
        f"{result.trained} run(s) trained, {result.reused} reused from cache · written to {sweep_dir}",
        highlight=False,
        soft_wrap=True,
    )
