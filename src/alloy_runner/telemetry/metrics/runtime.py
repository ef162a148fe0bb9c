"""The process_* and python_* runtime families: Python's counterparts of Go's runtime metrics."""

from __future__ import annotations

import asyncio
import gc
import os
import platform
import resource
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alloy_runner.telemetry.catalog import instruments

if TYPE_CHECKING:
    from opentelemetry.metrics import Histogram

    from alloy_runner.telemetry.metrics.setup import Reading, Telemetry


class GcTimer:
    """Time every garbage collection through `gc.callbacks`.

    The callback only appends to a deque: it can run inside any allocation,
    even one made while the SDK holds an aggregation lock, so recording into
    the histogram there could deadlock. The durations are recorded when the
    runtime families are next collected.
    """

    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram
        self._pending: deque[tuple[int, float]] = deque(maxlen=100_000)
        self._started: float | None = None

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started is not None:
            self._pending.append((info["generation"], time.perf_counter() - self._started))
            self._started = None

    def flush(self) -> None:
        """Record the collections timed since the last flush, each exactly once.

        Every reader's collection calls this (the scrape and the OTLP export,
        on their own threads): a recording reaches all readers, and a popped
        duration is gone, so two readers never record one collection twice.
        """
        while True:
            try:
                generation, seconds = self._pending.popleft()
            except IndexError:  # empty, or emptied by a collection on another thread
                return
            self._histogram.record(seconds, {"generation": str(generation)})

    def install(self) -> None:
        gc.callbacks.append(self)

    def uninstall(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)


def _gc_stat(key: str, timer: GcTimer | None = None) -> Callable[[], Reading]:
    def read() -> Reading:
        if timer is not None:
            timer.flush()
        return [(float(s[key]), {"generation": str(g)}) for g, s in enumerate(gc.get_stats())]

    return read


class ProcStat:
    """The process_* values of one process, read from /proc.

    As prometheus_client's process collector reads them (proc(5)): CPU, memory
    and start time from /proc/PID/stat, open descriptors from /proc/PID/fd, the
    boot time from /proc/stat. No third-party module, and no state between reads.
    """

    def __init__(self, pid: int | str = "self", proc: Path = Path("/proc")) -> None:
        self._dir = proc / str(pid)
        self._ticks = float(os.sysconf("SC_CLK_TCK"))
        self._page = float(os.sysconf("SC_PAGE_SIZE"))
        boot = next(
            line for line in (proc / "stat").read_bytes().splitlines() if line.startswith(b"btime")
        )
        self.start_time = float(self._stat()[19]) / self._ticks + float(boot.split()[1])

    def _stat(self) -> list[bytes]:
        # The fields after the command name, which may itself hold spaces and parentheses.
        return (self._dir / "stat").read_bytes().rpartition(b")")[2].split()

    def cpu_seconds(self) -> float:
        fields = self._stat()
        return (float(fields[11]) + float(fields[12])) / self._ticks  # utime + stime

    def resident_bytes(self) -> float:
        return float(self._stat()[21]) * self._page

    def virtual_bytes(self) -> float:
        return float(self._stat()[20])

    def open_fds(self) -> float:
        return float(len(os.listdir(self._dir / "fd")))


def _asyncio_tasks(loop: asyncio.AbstractEventLoop | None) -> Callable[[], float]:
    def read() -> float:
        if loop is None or loop.is_closed():
            return 0.0
        return float(len(asyncio.all_tasks(loop)))

    return read


def install_runtime(
    telemetry: Telemetry,
    loop: asyncio.AbstractEventLoop | None = None,
    process: ProcStat | None = None,
) -> GcTimer:
    """Register the process_* and python_* families; return the GC timer to uninstall at exit."""
    proc = process if process is not None else ProcStat()
    start_time = proc.start_time
    telemetry.observe(instruments.PROCESS_CPU, proc.cpu_seconds)
    telemetry.observe(
        instruments.PROCESS_MAX_FDS, lambda: float(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    )
    telemetry.observe(instruments.PROCESS_OPEN_FDS, proc.open_fds)
    telemetry.observe(instruments.PROCESS_RSS, proc.resident_bytes)
    telemetry.observe(instruments.PROCESS_VMS, proc.virtual_bytes)
    telemetry.observe(instruments.PROCESS_START, lambda: start_time)
    timer = GcTimer(telemetry.histogram(instruments.GC_DURATION))
    timer.install()
    telemetry.observe(instruments.GC_COLLECTIONS, _gc_stat("collections", timer))
    telemetry.observe(instruments.GC_COLLECTED, _gc_stat("collected"))
    telemetry.observe(instruments.GC_UNCOLLECTABLE, _gc_stat("uncollectable"))
    telemetry.observe(instruments.THREADS, lambda: float(threading.active_count()))
    telemetry.observe(instruments.ASYNCIO_TASKS, _asyncio_tasks(loop))
    telemetry.observe(instruments.ALLOCATED_BLOCKS, lambda: float(sys.getallocatedblocks()))
    major, minor, patch = platform.python_version_tuple()
    python_labels = {
        "implementation": platform.python_implementation(),
        "major": major,
        "minor": minor,
        "patchlevel": patch,
        "version": platform.python_version(),
    }
    telemetry.observe(instruments.PYTHON_INFO, lambda: [(1.0, python_labels)])
    return timer
