"""``digitnet export`` and ``digitnet playground``: a trained run outside PyTorch, and in the browser."""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Annotated

import typer

from digitnet.cli.common import FLAG, RunDir, app, choices_metavar, console, fail, friendly

FORMATS = ("onnx",)


@app.command(short_help="Write the model as ONNX, checked by onnxruntime.")
@friendly
def export(
    run_dir: RunDir,
    *,
    format: Annotated[
        str, typer.Option("--format", help="File format.", metavar=choices_metavar(FORMATS))
    ] = "onnx",
    out: Annotated[
        Path | None, typer.Option(help="The file to write.", show_default="RUN_DIR/model.onnx")
    ] = None,
) -> None:
    """Write the model as ONNX (pixels 0..1 in, logits out, normalisation inside), checked by onnxruntime."""
    from digitnet.export import INPUT_NAME, OPSET, OUTPUT_NAME, TOLERANCE, export_onnx

    if format not in FORMATS:
        fail(f"--format {format!r}: expected one of {', '.join(FORMATS)}")
    result = export_onnx(run_dir, out)
    console.print(
        f"{result.path}: {result.size_bytes / 1024:,.0f} KiB, opset {OPSET}, input '{INPUT_NAME}' "
        f"(N, 1, 28, 28) pixels 0..1, output '{OUTPUT_NAME}' (N, 10); onnxruntime matches PyTorch on "
        f"{result.digits_checked} digits (largest difference {result.max_abs_diff:.1e} ≤ {TOLERANCE:g})",
        highlight=False,
        soft_wrap=True,
    )


@app.command(short_help="Draw digits in the browser; your model reads them.")
@friendly
def playground(
    run_dir: RunDir,
    *,
    port: Annotated[
        int, typer.Option(help="Port on 127.0.0.1 (0: any free one).", min=0, max=65535, metavar="<int>")
    ] = 8000,
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="Do not open a browser.", metavar=FLAG)
    ] = False,
) -> None:
    """Draw digits in the browser and watch your own model read them (served on 127.0.0.1; Ctrl-C stops)."""
    from digitnet.playground import playground_server

    server = playground_server(run_dir, port)
    console.print(f"Playground: {server.url}   (Ctrl-C stops it)", highlight=False, soft_wrap=True)
    if not no_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("stopped", highlight=False)
    finally:
        server.server_close()
