"""The ``digitnet`` command line: each option is one setting, each command calls one library function.

Only this package knows about Typer and only it prints. ``common`` holds what every
command shares (errors, signals, the run options); the commands live in ``runs`` (train, compare),
``results`` (evaluate, predict, report), ``inside`` (inspect, lr-find), ``writeup`` (the student's lab
report), ``playground`` (export, playground) and ``data``.
Importing them registers them, in the order ``--help`` lists them. ``main`` is the console script.
"""

# ruff: noqa: I001  (the import order is the order of the commands in --help)
from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading

from digitnet import cpuload  # noqa: F401  (first: its reading at import starts the load measurement)
from digitnet.cli import runs
from digitnet.cli import results
from digitnet.cli import inside
from digitnet.cli import writeup
from digitnet.cli import playground
from digitnet.cli import data
from digitnet.cli import common
from digitnet.cli.common import app


def main() -> None:
    """The ``digitnet`` console script: run the command, then end the process without tearing Python down.

    Once a command has printed its last line and written its files, the interpreter would still free
    torch's ~1,200 modules and their objects one by one: 0.7–1 s on 2 cores before the shell prompt
    returns, for nothing anyone sees. So, once the command is done, the exit handlers run (``atexit``:
    logging, multiprocessing and the like), standard output and error are flushed, and the process ends
    with ``os._exit`` (the trick Instagram used to stop its web workers spending time on clean-up at
    exit). While another non-daemon thread is still running, or the exit code is a message, Python exits
    the usual way. Tests call ``app`` and never exit.
    """
    common.STANDALONE = True
    try:
        app()
        code: object = 0
    except SystemExit as stop:
        code = stop.code
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if isinstance(code, int | None) and not any(t.is_alive() for t in others):
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed pipe (digitnet ... | head) or stream
                stream.flush()
        os._exit(code or 0)
    raise SystemExit(code)  # a message as exit code, or a thread to wait for: Python's own exit


__all__ = ["app", "data", "inside", "main", "playground", "results", "runs", "writeup"]
