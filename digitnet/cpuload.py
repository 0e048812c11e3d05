"""How many cores other programs keep busy, from the kernel's CPU counters (``/proc/stat``, Linux).

A run that did not set ``--threads`` trains with the cores nobody else is using
([choose_threads][digitnet.runtime.choose_threads]). Measuring that needs a window of time: the first
reading is taken when this module is imported, which the command line does before it imports torch, so
the two seconds torch takes to import are the window. The run then needs no sampling pause of its own,
and the longer window is less easily fooled by a short burst of someone else's work.

Only the standard library is used here: the module must load before anything heavy.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Reading:
    """The machine's CPU counters and this process's own CPU time at one moment."""

    busy_ticks: int  # every CPU's non-idle time, in clock ticks
    total_ticks: int
    own_seconds: float  # this process's CPU time, all its threads
    at: float  # time.monotonic()


def read() -> Reading | None:
    """The counters now, or None where there is no ``/proc/stat`` (macOS, Windows) or it is unreadable."""
    try:
        with Path("/proc/stat").open() as handle:
            fields = [int(value) for value in handle.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    except (OSError, ValueError, IndexError):
        return None
    return Reading(sum(fields) - idle, sum(fields), time.process_time(), time.monotonic())


START = read()  # when the command line started (it imports this module first)


def other_busy_cores(
    since: Reading | None, minimum: float = 0.0, maximum: float = float("inf")
) -> float | None:
    """Cores kept busy by other processes between ``since`` and now: all the machine's busy time less this
    process's own, per second of the window. None without counters, or when the window is shorter than
    ``minimum`` or longer than ``maximum`` seconds (an old window says little about the machine now)."""
    now = read()
    if since is None or now is None or not minimum <= now.at - since.at <= maximum:
        return None
    total = now.total_ticks - since.total_ticks
    if total <= 0:
        return None
    busy = (now.busy_ticks - since.busy_ticks) / total * (os.cpu_count() or 1)
    own = (now.own_seconds - since.own_seconds) / max(now.at - since.at, 1e-9)
    return max(0.0, busy - own)


__all__ = ["START", "Reading", "other_busy_cores", "read"]
