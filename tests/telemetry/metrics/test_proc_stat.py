"""process_* values from /proc (ProcStat), checked against sources other than /proc/PID/stat."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from alloy_runner.telemetry.metrics.runtime import ProcStat
from tests.support.procfs import vm_rss_bytes


def test_cpu_and_memory_of_this_process() -> None:
    """CPU time agrees with the process CPU clock, memory with /proc/self/status."""
    stat = ProcStat()
    sum(i * i for i in range(300_000))  # some CPU time to see
    # Clock ticks are 10 ms, and each field rounds down: allow a few ticks.
    assert stat.cpu_seconds() == pytest.approx(time.process_time(), abs=0.05)
    assert stat.resident_bytes() == pytest.approx(vm_rss_bytes(), abs=1 << 20)
    assert stat.virtual_bytes() > stat.resident_bytes() > 0


def test_open_descriptors_follow_files_opened(tmp_path: Path) -> None:
    stat = ProcStat()
    before = stat.open_fds()
    with (tmp_path / "f").open("w"):
        assert stat.open_fds() == before + 1
    assert stat.open_fds() == before


def test_start_time_of_a_child_is_when_it_was_started() -> None:
    """Another process's start time, as its parent's clock saw it start."""
    before = time.time()
    child = subprocess.Popen(["sleep", "30"])
    after = time.time()
    try:
        started = ProcStat(child.pid).start_time
    finally:
        child.kill()
        child.wait()
    # The boot time in /proc/stat is whole seconds: allow one either way.
    assert before - 1 <= started <= after + 1
