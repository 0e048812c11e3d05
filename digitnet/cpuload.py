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
    """The CPU counters of the cores this process may run on, and its own CPU time, at one moment."""

    busy_ticks: int  # those cores' non-idle time, in clock ticks
    total_ticks: int
    cores: int  # how many cores were counted
    own_seconds: float  # this process's CPU time, all its threads
    at: float  # time.monotonic()


def read() -> Reading | None:
    """The counters now, or None where there is no ``/proc/stat`` (macOS, Windows) or it is unreadable.

    Only the cores in this process's affinity set are counted: in a container pinned to two cores of a
    large host, the host's other cores are other tenants' business, not a reason to train on fewer threads.
    """
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    busy = total = cores = 0
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            name, *values = line.split()
            if not name.startswith("cpu") or name == "cpu":
                continue
            if allowed is not None and int(name[3:]) not in allowed:
                continue
            # user nice system idle iowait irq softirq steal (guest time is already inside user and nice)
            fields = [int(value) for value in values[:8]]
            busy += sum(fields) - fields[3] - fields[4]
            total += sum(fields)
            cores += 1
    except (OSError, ValueError, IndexError):
        return None
    if cores == 0:
        return None
    own = time.process_time() + sum(_cpu_seconds(pid) for pid in _helpers)
    return Reading(busy, total, cores, own, time.monotonic())


_helpers: set[int] = set()


def count_as_own(pid: int) -> None:
    """Count a helper process this one started (digitnet.figure_helper) as this process's own work: the
    helper importing matplotlib beside torch is not another program keeping a core busy."""
    _helpers.add(pid)


def _cpu_seconds(pid: int) -> float:
    """CPU time of process ``pid`` so far (user + system), from ``/proc/<pid>/stat``; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


START = read()  # when the command line started (it imports this module first)


def other_busy_cores(
    since: Reading | None, minimum: float = 0.0, maximum: float = float("inf")
) -> float | None:
    """Cores kept busy by other processes between ``since`` and now: the counted cores' busy time less this
    process's own (its helper processes' included), per second of the window. None without counters, or
    when the window is shorter than ``minimum`` or longer than ``maximum`` seconds (an old window says
    little about the machine now)."""
    now = read()
    if since is None or now is None or now.cores != since.cores:
        return None
    if not minimum <= now.at - since.at <= maximum:
        return None
    total = now.total_ticks - since.total_ticks
    if total <= 0:
        return None
    busy = (now.busy_ticks - since.busy_ticks) / total * now.cores
    own = (now.own_seconds - since.own_seconds) / max(now.at - since.at, 1e-9)
    return max(0.0, busy - own)


__all__ = ["START", "Reading", "count_as_own", "other_busy_cores", "read"]
