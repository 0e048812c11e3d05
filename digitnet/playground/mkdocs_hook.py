"""MkDocs hook (``hooks:`` in mkdocs.yml): puts the Playground into the docs site.

``<!-- playground -->`` in a page becomes [page_markup][digitnet.playground.page_markup] with the site's
models (``docs/playground/models/*.onnx``, written by ``digitnet report``), and after each build the page's
script and onnxruntime-web's files are copied beside it, from ``node_modules/`` (``npm ci``), so the
site ships its own runtime and works offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

from digitnet.errors import DigitnetError
from digitnet.playground import copy_page_files, ort_dist, page_markup

MARKER = "<!-- playground -->"
PAGE = "playground.md"
SITE_MODELS = ({"label": "CNN", "url": "models/cnn.onnx"}, {"label": "MLP", "url": "models/mlp.onnx"})


def on_pre_build(config: Any) -> None:
    """Fail before building, in one line, if ``npm ci`` has not been run."""
    try:
        ort_dist()
    except DigitnetError as error:
        raise PluginError(str(error)) from None


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise PluginError(f"{PAGE}: the {MARKER} marker is missing")
    return markdown.replace(MARKER, page_markup(list(SITE_MODELS)))


def on_post_build(config: Any) -> None:
    try:
        copy_page_files(Path(config["site_dir"]) / Path(PAGE).stem)
    except DigitnetError as error:
        raise PluginError(str(error)) from None
