"""How much memory this machine has free, and refusing up front what would not fit.

Only the standard library is used here, so the IDX reader can check a file's declared size from a
thread that runs while torch is still importing ([digitnet.idx][digitnet.idx]).
"""

from __future__ import annotations

import os
from pathlib import Path

from digitnet.errors import ConfigError


def available_memory() -> int | None:
    """Bytes of memory this process could still use (Linux's MemAvailable), or None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(needed: int, what: str) -> None:
    """Refuse up front what would not fit in memory: the kernel's OOM killer ends a process with no
    message at all, so a student would see only "Killed" after minutes of work."""
    available = available_memory()
    if available is not None and needed > 0.8 * available:
        raise ConfigError(
            f"{what}: needs about {needed / 2**30:.1f} GiB of memory, "
            f"this machine has {available / 2**30:.1f} GiB available"
        )


__all__ = ["available_memory", "check_memory"]
