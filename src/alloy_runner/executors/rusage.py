"""What a build's stages used, added up: CPU time sums, the memory peak is the highest."""

from __future__ import annotations

from collections.abc import Sequence

from alloy_runner.executors.base import ResourceUsage


def combine(parts: Sequence[ResourceUsage]) -> ResourceUsage | None:
    """Return the usage of a build's stages (None: nothing was measured)."""
    if not parts:
        return None
    return ResourceUsage(sum(p.cpu_seconds for p in parts), max(p.memory_peak_bytes for p in parts))
