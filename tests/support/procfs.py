"""What /proc says of this process."""

from __future__ import annotations

from pathlib import Path


def vm_rss_bytes() -> int:
    """Return this process's resident set in bytes, as /proc/self/status reads it."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line in /proc/self/status")
