"""``digitnet evaluate``, ``predict`` and ``report``: what a trained run does, and the docs' figures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from digitnet.cli.common import (
    EXIT_USER_ERROR,
    FLAG,
    DataDir,
    RunDir,
    app,
    console,
    friendly,
    print_error,
    print_notes,
    progress_bar,
    show_run,
)

# --------------------------------------------------------------------------------- evaluate, predict


@app.command(short_help="Measure a run's model on the test set, class by class.")
@friendly
def evaluate(
    run_dir: RunDir,
    *,
    out: Annotated[
        Path | None,
        typer.Option(help="Directory for the metrics and figures.", show_default="RUN_DIR/evaluation"),
    ] = None,
) -> None:
    """Reload a run's model and measure it on the test set: per-class metrics, confusion matrix, galleries.

    The test set is that of the data the run trained on, found where the run recorded it; if those
    files have moved since, set $DIGITNET_DATA to where they are now.
    """
    from digitnet.evaluate import evaluate_run

    result = evaluate_run(run_dir, out)
    if result.status == "interrupted":
        print_notes(
            (
                f"this run was interrupted after {result.epochs} epochs: the model is measured as it was "
                "then; the same 'digitnet train' command finishes it",
            )
        )
    # the headline on a line of its own: as the table's title it wrapped over three centred lines
    console.print(
        f"{result.test_set}: accuracy {100 * result.accuracy:.2f}%, loss {result.loss:.4f}",
        style="bold",
        highlight=False,
        soft_wrap=True,
    )
    table = Table(show_edge=False)
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


@app.command(short_help="Read the digit in your own images (top 3).")
@friendly
def predict(
    run_dir: RunDir,
    images: Annotated[
        list[Path], typer.Argument(help="PNG/JPG images of single digits, any size.", metavar="IMAGES")
    ],
    *,
    show: Annotated[
        bool,
        typer.Option(
            "--show", help="Write the preprocessed 28×28 beside each input (NAME.mnist.png).", metavar=FLAG
        ),
    ] = False,
) -> None:
    """Predict the digit in your own images, prepared the way MNIST was made; prints the top 3."""
    from digitnet.predict import predict_files

    predictions = predict_files(run_dir, images, show=show)
    if any(prediction.error is None for prediction in predictions):
        console.print(
            "image: the digit read   (the model's three most likely digits, and how likely it finds each)",
            highlight=False,
            soft_wrap=True,
        )
    for prediction in predictions:
        if prediction.error is not None:
            print_error(prediction.error)
            continue
        ranked = " · ".join(f"{digit} {100 * p:.1f}%" for digit, p in prediction.top)
        console.print(
            f"{prediction.path}: {prediction.top[0][0]}   ({ranked})", highlight=False, soft_wrap=True
        )
        if prediction.preprocessed is not None:
            console.print(f"  preprocessed: {prediction.preprocessed}", highlight=False, soft_wrap=True)
    if any(prediction.error is not None for prediction in predictions):
        raise typer.Exit(EXIT_USER_ERROR)  # the others were predicted; a script still sees the failure


# -------------------------------------------------------------------------------------------- report


@app.command(short_help="Run every experiment of the docs site and write its pages.")
@friendly
def report(
    *,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick", help="Bundled sample, 1 seed, 2 epochs: the same path in minutes.", metavar=FLAG
        ),
    ] = False,
    docs_dir: Annotated[Path, typer.Option(help="Where figures/ and results/ go.")] = Path("docs"),
    cache_dir: Annotated[Path, typer.Option(help="Where the runs are kept (reused on rerun).")] = Path(
        "runs/report"
    ),
    data_dir: DataDir = None,
    jobs: Annotated[int | None, typer.Option(help="Worker processes.", show_default="CPU cores")] = None,
) -> None:
    """Run every experiment of the docs site (cached) and write its figures, tables and CLI reference.

    Needs the onnx extra (pip install "digitnet[onnx]"): the report exports the Playground's models.
    """
    from digitnet.report import run_report, write_cli_reference
    from digitnet.sweep import RunRecord, SweepResult, default_jobs

    with progress_bar("runs") as progress:
        task = progress.add_task("planning…", total=None)

        def on_run(experiment: str, record: RunRecord, done: int, total: int) -> None:
            show_run(progress, task, record, done, total, where=experiment)

        def on_experiment(name: str, result: SweepResult) -> None:
            progress.console.print(
                f"{name}: {result.trained} trained, {result.reused} reused · {result.summary}",
                highlight=False,
                soft_wrap=True,
            )

        written = run_report(
            docs_dir,
            cache_dir,
            quick=quick,
            data_dir=str(data_dir) if data_dir else None,
            jobs=default_jobs() if jobs is None else jobs,
            on_experiment=on_experiment,
            on_run=on_run,
        )
    written.append(write_cli_reference(docs_dir))
    console.print(f"{len(written)} files written under {docs_dir}", highlight=False)
