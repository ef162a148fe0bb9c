"""When a process started, read from /proc as psutil's `create_time()` computes it.

Boot time (`btime` of /proc/stat) plus the process's start in clock ticks since
boot (field 22 of /proc/PID/stat, proc(5)), so that a mark written by one
runner process can be checked by another, and a reused pid is told apart.
"""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")


def boot_time() -> float:
    """Return when the machine booted, in seconds since the epoch."""
    for line in (PROC / "stat").read_bytes().splitlines():
        if line.startswith(b"btime "):
            return float(line.split()[1])
    raise OSError("/proc/stat has no btime line")


def start_time(pid: int | str = "self") -> float:
    """Return when process `pid` started (seconds since the epoch); ProcessLookupError if gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_bytes()
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    # The fields after the command name, which may itself hold spaces and parentheses.
    ticks = float(stat.rpartition(b")")[2].split()[19])
    return ticks / os.sysconf("SC_CLK_TCK") + boot_time()
