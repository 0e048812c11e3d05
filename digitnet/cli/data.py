"""``digitnet data download | prepare | show``: get, split and look at the digits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from digitnet.cli.common import (
    CsvPath,
    DataDir,
    Dataset,
    TestFraction,
    console,
    data_app,
    friendly,
    print_notes,
    run_settings,
)

# ---------------------------------------------------------------------------------------------- data


@data_app.command("download", short_help="Fetch the four MNIST files, MD5-checked.")
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


@data_app.command("prepare", short_help="Split the digits 80/20 and save the split for reuse.")
@friendly
def data_prepare(
    *,
    dataset: Dataset = "auto",
    data_dir: DataDir = None,
    csv: CsvPath = None,
    test_fraction: TestFraction = None,
    out: Annotated[Path, typer.Option(help="Directory for split.npz and class_counts.csv.")] = Path(
        "data/split"
    ),
) -> None:
    """Split the digits 80/20 (stratified) and write the split with its class counts, for reuse:
    'digitnet train --split DIR/split.npz' trains on exactly these digits."""
    from digitnet.data import describe_split, load_split, save_split
    from digitnet.runtime import claim_output
    from digitnet.settings import make_run_config

    given = {"dataset": dataset, "data_dir": data_dir, "csv": csv, "test_fraction": test_fraction}
    config = make_run_config(run_settings(given)).data
    claim_output(out, "split")
    split = load_split(config)
    print_notes(split.notes)
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


@data_app.command("show", short_help="Draw the digits, their classes and their augmentation.")
@friendly
def data_show(
    *,
    dataset: Dataset = "auto",
    data_dir: DataDir = None,
    csv: CsvPath = None,
    seed: Annotated[int, typer.Option(help="Which random digits are drawn and augmented.")] = 0,
    out: Annotated[Path, typer.Option(help="Directory for the figures.")] = Path("figures/data"),
) -> None:
    """Draw the data's figures: 64 random training digits, ten of each class, class counts per split,
    augmentation and normalisation on real digits; and the class-count table."""
    from digitnet.analysis import draw_data_figures
    from digitnet.runtime import claim_output, mark_output
    from digitnet.settings import make_run_config

    config = make_run_config(
        run_settings({"dataset": dataset, "data_dir": data_dir, "csv": csv, "seed": seed})
    )
    claim_output(out, "figures")
    written, notes = draw_data_figures(config.data, out, seed)
    mark_output(out, "figures")
    print_notes(notes)
    for path in written:
        console.print(f"wrote {path}", highlight=False)
