"""An on-demand CPU profile of the whole process, sampled in-process (no ptrace, no signals).

A sampler thread wakes `rate` times a second, reads every thread's Python
stack with `sys._current_frames()` and the CPU time each thread has used from
`/proc/self/task/<tid>/schedstat`. A thread that used CPU since the last tick
gets that CPU time added to the stack it is in now; a thread that waited
(in `select`, on a lock, in a sleep) adds nothing, so the result is a CPU
profile rather than a wall-clock one. Where /proc is missing it falls back
to counting every sampled stack once per tick (a wall-clock profile), and
says so in the profile's comments.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

from alloy_runner.telemetry.profiling.pprof import ProfileBuilder, stack_of

DEFAULT_RATE = 100  # Hz, as Go's runtime/pprof

CpuClock = Callable[[int], int | None]
"""Return the CPU nanoseconds a thread (by native id) has used so far; None if unknown."""


def schedstat_cpu_ns(native_id: int) -> int | None:
    """Read a thread's on-CPU nanoseconds from /proc; None if the thread or /proc is gone."""
    try:
        with open(f"/proc/self/task/{native_id}/schedstat", "rb") as f:
            return int(f.read().split(maxsplit=1)[0])
    except (OSError, ValueError, IndexError):
        return None


def proc_available() -> bool:
    """Tell whether per-thread CPU times can be read here."""
    return schedstat_cpu_ns(threading.get_native_id()) is not None


class CpuProfiler:
    """Take one CPU profile at a time for a given number of seconds."""

    def __init__(
        self,
        rate: int = DEFAULT_RATE,
        *,
        cpu_clock: CpuClock | None = None,
    ) -> None:
        self.rate = rate
        self._cpu_clock = cpu_clock
        self._busy = threading.Lock()
        self._closed = threading.Event()
        self.ends_at: float | None = None  # monotonic time the running profile ends

    def try_begin(self) -> bool:
        """Reserve the profiler; False if a profile is being taken."""
        return self._busy.acquire(blocking=False)

    def close(self) -> None:
        """End a running profile early and refuse new ones (shutdown); the running one returns
        what it has sampled so far."""
        self._closed.set()

    def profile(self, seconds: float) -> bytes:
        """Sample for `seconds` (the caller holds `try_begin`); return a gzipped pprof Profile."""
        try:
            return self._sample(seconds)
        finally:
            self.ends_at = None
            self._busy.release()

    def _sample(self, seconds: float) -> bytes:
        clock = self._cpu_clock
        if clock is None:
            clock = schedstat_cpu_ns if proc_available() else None
        period_ns = 1_000_000_000 // self.rate
        builder = ProfileBuilder(
            [("samples", "count"), ("cpu", "nanoseconds")], ("cpu", "nanoseconds"), period_ns
        )
        if clock is None:
            builder.comment("no per-thread CPU times here: a wall-clock profile of every thread")
        last: dict[tuple[int, int], int] = {}
        started = time.monotonic()
        started_ns = time.time_ns()
        ends = self.ends_at = started + seconds
        next_tick = started
        while not self._closed.is_set():
            self._tick(builder, clock, last, period_ns)
            next_tick += 1.0 / self.rate
            now = time.monotonic()
            if now >= ends:
                break
            next_tick = max(next_tick, now)  # late ticks are skipped, not run back to back
            self._closed.wait(min(next_tick, ends) - now)
        return builder.encode(time.time_ns() - started_ns)

    @staticmethod
    def _tick(
        builder: ProfileBuilder,
        clock: CpuClock | None,
        last: dict[tuple[int, int], int],
        period_ns: int,
    ) -> None:
        me = threading.get_ident()
        threads = {t.ident: (t.name, t.native_id) for t in threading.enumerate()}
        for ident, frame in sys._current_frames().items():
            if ident == me:
                continue
            name, native_id = threads.get(ident, (f"thread-{ident}", None))
            if clock is None:
                spent = period_ns
            else:
                if native_id is None:
                    continue
                used = clock(native_id)
                if used is None:
                    continue
                key = (ident, native_id)  # a new thread may reuse a gone one's ident
                spent = used - last.get(key, used)  # a thread's first tick sets its baseline
                last[key] = used
                if spent <= 0:
                    continue
            builder.add(stack_of(frame), (1, spent), (("thread", name),))
