"""Measure what a process tree used: run it under a small parent that reports its rusage.

asyncio reaps its children with waitpid(), which drops their resource usage.
So the shell executor starts `python -S -c WRAPPER REPORT argv...`: the
wrapper forks argv, waits for it with wait4(), and writes the CPU seconds
(user + system) and the peak resident size to REPORT. wait4() counts every
descendant that was waited for, so this is the process tree of the script;
the peak is that of its largest process (the kernel's ru_maxrss).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

from alloy_runner.executors.base import ResourceUsage

WRAPPER = """
import os, signal, sys
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
pid = os.fork()
if pid == 0:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, used = os.wait4(pid, 0)
with open(sys.argv[1], "w") as report:
    report.write(f"{used.ru_utime + used.ru_stime} {used.ru_maxrss * 1024}")
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def wrapped(report: Path, argv: Sequence[str]) -> tuple[str, ...]:
    """Return argv run under the wrapper, which writes its rusage to `report`."""
    return (sys.executable, "-S", "-I", "-c", WRAPPER, str(report), *argv)


def read_report(report: Path) -> ResourceUsage | None:
    """Return the rusage in `report` (None if the wrapper did not write one), and remove it."""
    with contextlib.suppress(OSError, ValueError):
        cpu, peak = report.read_text().split()
        report.unlink()
        return ResourceUsage(float(cpu), int(peak))
    return None


def combine(parts: Sequence[ResourceUsage]) -> ResourceUsage | None:
    """Return the usage of a build's stages: CPU adds up, the peak is the highest."""
    if not parts:
        return None
    return ResourceUsage(sum(p.cpu_seconds for p in parts), max(p.memory_peak_bytes for p in parts))
