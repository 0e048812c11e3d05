"""A run's figures drawn by a second Python process, started before the command imports torch.

``digitnet train`` spends its first 1.5–2 s importing torch, on one core; on a two-core machine the
other waits. Drawing the run's figures needs matplotlib, whose import costs about 0.4 s more. So the
command first starts this helper: it imports matplotlib (never torch) on the idle core and waits on a
pipe. When the run is written, its history goes to the helper and the figure files' bytes come back;
the run directory is written as before. The helper draws the figures at once, one per core (it forks
a copy of itself for each after the first), and leaves as soon as it has replied. If there is no helper
(the library called from Python, the tests' in-process runs) or it failed in any way, the figures are
drawn in this process instead, with the same code, so the files are the same either way.

The helper runs in a session of its own, so Ctrl-C at the terminal reaches only the command, which
decides what is written; it ends as soon as its pipe closes, so it does not outlive the command.

```python
figure_helper.start()  # before importing torch
...
files = figure_helper.draw(history, title)  # {"loss.png": b"…", "loss.svg": b"…", …}
```
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import subprocess
import sys
import threading
from pathlib import Path

from digitnet import cpuload
from digitnet.history import History

_TIMEOUT = 120.0  # seconds; drawing takes under one, importing matplotlib on a loaded laptop a few
_helper: subprocess.Popen[bytes] | None = None
# The helper imports this same digitnet, from where this process found it, and nothing from the working
# directory: "python -c" puts that directory first on sys.path, where a student's random.py or json.py
# (or another checkout of digitnet) would be imported in place of the real one.
_HELPER_MAIN = (
    "import sys; sys.path[:1] = [sys.argv[1]] + ([] if sys.path[:1] == [''] else sys.path[:1]); "
    "from digitnet.figure_helper import _serve; _serve()"
)


def start() -> None:
    """Start the helper, once per process; where Python cannot start one, the figures are drawn here."""
    global _helper
    if _helper is not None or not sys.executable:
        return
    try:
        _helper = subprocess.Popen(
            [sys.executable, "-c", _HELPER_MAIN, str(Path(__file__).resolve().parents[1])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        _helper = None
        return
    cpuload.count_as_own(_helper.pid)  # its import beside torch's is not another program's load


def draw(history: History, title: str = "") -> dict[str, bytes]:
    """The run directory's figures ([run_figures][digitnet.plotting.run_figures]), from the helper when
    one was started, else drawn here."""
    global _helper
    helper, _helper = _helper, None
    if helper is not None:
        try:
            output, _ = helper.communicate(pickle.dumps((history.to_dict(), title)), timeout=_TIMEOUT)
            figures = pickle.loads(output) if helper.returncode == 0 else None
            if isinstance(figures, dict) and all(isinstance(v, bytes) for v in figures.values()):
                return figures
        except Exception:  # any failure of the helper (killed, a bad reply, a timeout): draw here instead
            with contextlib.suppress(OSError):
                helper.kill()
                helper.wait()
    from digitnet.plotting import run_figures

    return run_figures(history, title)


def _serve() -> None:
    """The helper's side: import matplotlib now, then draw the one run it is sent and reply with the
    files' bytes. The pipe is read from the start, in a thread, so that a command that ends early (a bad
    option, Ctrl-C during the import) ends its helper at once, not after the import."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests: list[bytes] = []

    def receive() -> None:
        requests.append(sys.stdin.buffer.read())
        if not requests[0]:  # the pipe closed with nothing sent: the command has ended
            os._exit(0)

    reader = threading.Thread(target=receive, daemon=True)
    reader.start()
    import digitnet.plotting  # noqa: F401  (the import this process is for, done while torch imports)

    reader.join()
    data, title = pickle.loads(requests[0])
    sys.stdout.buffer.write(pickle.dumps(_draw_at_once(History.from_dict(data), title)))
    sys.stdout.buffer.flush()
    # The command reads until the pipe closes, which Python's clean-up at exit would delay by a tenth
    # of a second or more (every module taken apart); the reply is written, so leave now.
    os._exit(0)


def _draw_at_once(history: History, title: str) -> dict[str, bytes]:
    """Every figure of the run, each but the first in a child forked from this process (matplotlib is
    imported already), the first here: the command waits for them with its cores idle, and two figures
    drawn at once take little more than one. A child that fails leaves its figure to be drawn here, so
    the files are the same either way. Where there is no ``fork`` (Windows) or forking a process with
    system frameworks loaded is unsafe (macOS), they are drawn one after the other."""
    from digitnet.plotting import run_figure, run_figure_stems, run_figures

    if sys.platform != "linux":
        return run_figures(history, title)
    stems = run_figure_stems(history)
    children: dict[str, tuple[int, int]] = {}  # stem → (pid, the read end of its pipe)
    for stem in stems[1:]:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: draw one figure, send it, and leave without any of the parent's clean-up
            status = 1
            try:
                os.close(read)
                # not the command's pipe: the command reads that until every copy of it is closed
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                with os.fdopen(write, "wb") as pipe:
                    pipe.write(pickle.dumps(run_figure(history, stem, title)))
                status = 0
            finally:
                os._exit(status)
        os.close(write)
        children[stem] = (pid, read)
    drawn = {stems[0]: run_figure(history, stems[0], title)}
    for stem, (pid, read) in children.items():
        with os.fdopen(read, "rb") as pipe:
            reply = pipe.read()
        _, status = os.waitpid(pid, 0)
        try:
            files = pickle.loads(reply) if status == 0 else None
        except Exception:  # a reply cut short: as if the child had failed
            files = None
        drawn[stem] = files if isinstance(files, dict) else run_figure(history, stem, title)
    return {name: data for stem in stems for name, data in drawn[stem].items()}


__all__ = ["draw", "start"]
