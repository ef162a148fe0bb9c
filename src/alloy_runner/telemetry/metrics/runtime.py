"""The process_* and python_* runtime families: Python's counterparts of Go's runtime metrics."""

from __future__ import annotations

import asyncio
import gc
import platform
import resource
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psutil

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


def _asyncio_tasks(loop_of: Callable[[], asyncio.AbstractEventLoop | None]) -> Callable[[], float]:
    def read() -> float:
        loop = loop_of()
        if loop is None or loop.is_closed():
            return 0.0
        return float(len(asyncio.all_tasks(loop)))

    return read


def install_runtime(
    telemetry: Telemetry,
    loop_of: Callable[[], asyncio.AbstractEventLoop | None] = lambda: None,
    process: psutil.Process | None = None,
) -> GcTimer:
    """Register the process_* and python_* families; return the GC timer to uninstall at exit."""
    proc = process if process is not None else psutil.Process()
    start_time = proc.create_time()

    def cpu() -> float:
        times = proc.cpu_times()
        return float(times.user + times.system)

    telemetry.observe(instruments.PROCESS_CPU, cpu)
    telemetry.observe(
        instruments.PROCESS_MAX_FDS, lambda: float(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    )
    telemetry.observe(instruments.PROCESS_OPEN_FDS, lambda: float(proc.num_fds()))
    telemetry.observe(instruments.PROCESS_RSS, lambda: float(proc.memory_info().rss))
    telemetry.observe(instruments.PROCESS_VMS, lambda: float(proc.memory_info().vms))
    telemetry.observe(instruments.PROCESS_START, lambda: start_time)

    timer = GcTimer(telemetry.histogram(instruments.GC_DURATION))
    timer.install()
    telemetry.observe(instruments.GC_COLLECTIONS, _gc_stat("collections", timer))
    telemetry.observe(instruments.GC_COLLECTED, _gc_stat("collected"))
    telemetry.observe(instruments.GC_UNCOLLECTABLE, _gc_stat("uncollectable"))
    telemetry.observe(instruments.THREADS, lambda: float(threading.active_count()))
    telemetry.observe(instruments.ASYNCIO_TASKS, _asyncio_tasks(loop_of))
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
