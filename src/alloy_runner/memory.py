"""Give memory the process has freed back to the operating system: glibc's `malloc_trim`.

glibc keeps what `free()` returns mapped, in the main heap and in the arena of
each thread that allocated it, and only gives back the top of the main heap
by itself. A runner frees most of what it allocates in bursts: the imports
and wiring at start-up, and each scrape (its worker thread allocates the
exposition in an arena of its own, then ends). `malloc_trim(0)` returns the
free pages of every arena after such a burst; measured with
`benchmarks/bench_idle_rss.py`, it takes about 0.5 MB off the idle runner.

No library does this one call; ctypes is already loaded (the OpenTelemetry SDK
imports it). On a C library without `malloc_trim` (musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    return trim


def release_free_memory() -> bool:
    """Return freed heap pages to the operating system; tell whether the C library can."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)  # ctypes releases the GIL for the call: other threads go on meanwhile
    return True
