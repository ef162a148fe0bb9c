"""Process start times from /proc, as the docker executor's owner marks use them."""

from __future__ import annotations

import subprocess
import time

import pytest

from alloy_runner.executors.procfs import start_time


def test_a_child_started_when_its_parent_saw_it_start() -> None:
    before = time.time()
    child = subprocess.Popen(["sleep", "30"])
    after = time.time()
    try:
        started = start_time(child.pid)
    finally:
        child.kill()
        child.wait()
    # The boot time in /proc/stat is whole seconds: allow one either way.
    assert before - 1 <= started <= after + 1


def test_a_process_that_is_gone_is_a_lookup_error() -> None:
    child = subprocess.Popen(["true"])
    child.wait()  # reaped: its pid is free
    with pytest.raises(ProcessLookupError):
        start_time(child.pid)


def test_this_process_started_before_now() -> None:
    assert 0 < start_time() <= time.time()
