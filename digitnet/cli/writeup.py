"""``digitnet writeup``: the student's own lab report from the run and sweep directories they made."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from digitnet.cli.common import FLAG, app, console, fail, friendly, print_notes


@app.command(short_help="Write a lab report (Markdown, HTML, PDF) from runs.")
@friendly
def writeup(
    sources: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Run directories ('digitnet train') and sweep directories ('digitnet compare'), in the "
            "order the report shows them.",
            metavar="SOURCES",
            show_default=False,
        ),
    ] = None,
    *,
    out: Annotated[
        Path, typer.Option(help="Directory for report.md, report.html, report.pdf and figures/.")
    ] = Path("lab-report"),
    title: Annotated[str, typer.Option(help="The report's title.")] = "Lab report",
    pdf: Annotated[
        bool,
        typer.Option(
            "--pdf/--no-pdf", help="Print report.pdf with headless Chromium, when installed.", metavar=FLAG
        ),
    ] = True,
    render: Annotated[
        bool,
        typer.Option(
            "--render",
            help="Turn the report.md you filled in (in --out) into report.html and report.pdf again.",
            metavar=FLAG,
        ),
    ] = False,
) -> None:
    """Write a lab report (Markdown, HTML, PDF): setup, figures, results with 95% intervals, the generated
    verdicts and warnings, and a marked box for your own interpretation beside each."""
    from digitnet.writeup import WriteupConfig, render_report, write_report

    if render:
        if sources:
            fail("--render reads the report.md in --out; give no run or sweep directories with it")
        files, note = render_report(out, WriteupConfig(title=title, pdf=pdf))
        if note is not None and pdf:
            print_notes((note,))
        console.print(
            f"{', '.join(p.name for p in files)} rewritten from {out / 'report.md'}", highlight=False
        )
        return
    if not sources:
        fail("give the run and sweep directories to report on (or --render to re-render an edited report)")
    result = write_report(sources, out, WriteupConfig(title=title, pdf=pdf))
    if result.pdf_note is not None and pdf:
        print_notes((result.pdf_note,))
    reports = [p.name for p in result.files if p.parent == result.out_dir]
    figures = len(result.files) - len(reports)
    console.print(
        f"{', '.join(reports)} and {figures} figure(s) written to {result.out_dir} · "
        f"{result.interpretation_boxes} 'Your interpretation' boxes to fill in",
        highlight=False,
        soft_wrap=True,
    )
