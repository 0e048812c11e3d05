"""The ``digitnet`` command line: each option is one setting, each command calls one library function.

Only this package knows about Typer and only it prints. ``common`` holds what every
command shares (errors, signals, the run options); the commands live in ``runs`` (train, compare),
``results`` (evaluate, predict, report), ``inside`` (inspect, lr-find), ``writeup`` (the student's lab
report), ``playground`` (export, playground) and ``data``.
Importing them registers them, in the order ``--help`` lists them.
"""

# ruff: noqa: I001  (the import order is the order of the commands in --help)
from __future__ import annotations

from digitnet.cli import runs
from digitnet.cli import results
from digitnet.cli import inside
from digitnet.cli import writeup
from digitnet.cli import playground
from digitnet.cli import data
from digitnet.cli.common import app

__all__ = ["app", "data", "inside", "playground", "results", "runs", "writeup"]
