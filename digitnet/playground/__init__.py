"""The Playground: a page where a student draws a digit and watches a model read it, in the browser.

The page's files live in ``digitnet/playground/static/`` (``playground.js`` repeats
[to_mnist][digitnet.images.to_mnist] step for step, then runs an ONNX model from
[digitnet.export][]). Its runtime, onnxruntime-web, comes from the npm registry: ``npm ci`` in the
repository installs the version ``package-lock.json`` pins into ``node_modules/``, and only the three
files the page needs ([ORT_FILES][digitnet.playground.ORT_FILES]) are copied from there: into the docs
site by the MkDocs hook ``digitnet/playground/mkdocs_hook.py``, and into the page ``digitnet playground``
serves. Nothing is fetched from a CDN, so both work offline.

```python
server = playground_server(Path("runs/cnn-adam-1a2b3c4d5e6f"), port=8000)
server.serve_forever()  # http://127.0.0.1:8000/
```
"""

from __future__ import annotations

import contextlib
import functools
import html
import http.server
import json
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from digitnet.errors import DigitnetError

STATIC = Path(__file__).resolve().parent / "static"
PAGE_FILES = ("playground.js", "playground.css")
# onnxruntime-web's WebAssembly-only build: its loader, the Emscripten glue and the runtime itself (the
# other builds in the package, WebGPU, WebGL, JSPI, are not needed for a 30,000-parameter network).
ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
REPOSITORY = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"  # never reachable from another machine
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".wasm": "application/wasm",  # WebAssembly.instantiateStreaming refuses any other type
    ".onnx": "application/octet-stream",
}


def ort_dist(repository: Path | None = None) -> Path:
    """The folder holding onnxruntime-web's [ORT_FILES][digitnet.playground.ORT_FILES], as ``npm ci`` left it.

    Raises [DigitnetError][digitnet.errors.DigitnetError] naming the command that installs it.
    """
    repository = REPOSITORY if repository is None else repository
    dist = repository / "node_modules" / "onnxruntime-web" / "dist"
    missing = [name for name in ORT_FILES if not (dist / name).is_file()]
    if missing:
        raise DigitnetError(
            f"the Playground needs onnxruntime-web ({missing[0]} is missing): run 'npm ci' in {repository}"
        )
    return dist


def copy_page_files(target: Path, repository: Path | None = None) -> list[Path]:
    """Copy the page's own files into ``target/static/`` and onnxruntime-web's into ``target/ort/``."""
    dist = ort_dist(repository)
    written = []
    for folder, source, names in (("static", STATIC, PAGE_FILES), ("ort", dist, ORT_FILES)):
        (target / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            written.append(Path(shutil.copyfile(source / name, target / folder / name)))
    return written


def page_markup(models: list[Mapping[str, str]], base: str = "") -> str:
    """The HTML the Playground needs in a page: the runtime, the script, and the element it fills.

    ``models`` are ``{"label": ..., "url": ...}``, the first one selected; ``base`` prefixes the asset paths.
    """
    data = html.escape(json.dumps(list(models)), quote=True)
    return (
        f'<link rel="stylesheet" href="{base}static/playground.css">\n'
        f'<div class="digitnet-playground" data-models="{data}" data-ort="{base}ort/">'
        "<noscript>The Playground needs JavaScript.</noscript></div>\n"
        f'<script src="{base}ort/ort.wasm.min.js"></script>\n'
        f'<script src="{base}static/playground.js"></script>\n'
    )


def standalone_page(model_label: str) -> str:
    """The page ``digitnet playground`` serves: the docs page's Playground alone, with one model."""
    markup = page_markup([{"label": model_label, "url": "models/model.onnx"}])
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<link rel='icon' href='data:,'>"  # no favicon request
        "<title>digitnet Playground</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem}</style></head><body>\n"
        "<h1>digitnet Playground</h1>\n"
        f"<p>Draw a digit. Your model: <code>{html.escape(model_label)}</code>.</p>\n"
        f"{markup}</body></html>\n"
    )


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves exactly the files in ``routes`` (URL path → file), nothing else: no directory listings."""

    def __init__(self, *args: object, routes: Mapping[str, Path], page: bytes, **kwargs: object) -> None:
        self.routes = routes
        self.page = page
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(self.page, CONTENT_TYPES[".html"])
            return
        file = self.routes.get(path)
        if file is None:
            self.send_error(404)
            return
        self._send(file.read_bytes(), CONTENT_TYPES.get(file.suffix, "application/octet-stream"))

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")  # a retrained model shows up on reload
        self.end_headers()
        # The browser may leave (a reload, a closed tab) before a file is through: nothing to report.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the CLI says where the page is; a line per request would bury it


class PlaygroundServer(http.server.ThreadingHTTPServer):
    """The local Playground server; ``url`` is where the page is, ``workdir`` holds the exported model."""

    workdir: tempfile.TemporaryDirectory[str] | None = None  # set once bound (a failed bind closes too)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/"

    def server_close(self) -> None:
        super().server_close()
        if self.workdir is not None:
            self.workdir.cleanup()


def playground_server(run_dir: Path, port: int = 8000) -> PlaygroundServer:
    """Export ``run_dir``'s model (checked, see [export_onnx][digitnet.export.export_onnx]) and bind a
    server for the Playground page with it on 127.0.0.1:``port`` (0: any free port). Call
    ``serve_forever()`` on the result; ``server_close()`` removes the exported file."""
    from digitnet.export import export_onnx

    dist = ort_dist()
    workdir = tempfile.TemporaryDirectory(prefix="digitnet-playground-")
    try:
        exported = export_onnx(run_dir, Path(workdir.name) / "model.onnx")
        routes = {f"/static/{name}": STATIC / name for name in PAGE_FILES}
        routes |= {f"/ort/{name}": dist / name for name in ORT_FILES}
        routes["/models/model.onnx"] = exported.path
        label = f"{exported.model} ({run_dir.resolve().name})"
        handler = functools.partial(_Handler, routes=routes, page=standalone_page(label).encode())
        try:
            server = PlaygroundServer((HOST, port), handler)
        except OSError as error:
            raise DigitnetError(
                f"port {port} on {HOST}: {error.strerror or error}; pick another with --port"
            ) from None
    except BaseException:
        workdir.cleanup()
        raise
    server.workdir = workdir
    return server


__all__ = [
    "ORT_FILES",
    "STATIC",
    "PlaygroundServer",
    "copy_page_files",
    "ort_dist",
    "page_markup",
    "playground_server",
    "standalone_page",
]
