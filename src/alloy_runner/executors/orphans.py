"""Find and stop the processes of a job whose runner died.

Every build script runs with `ALLOY_RUNNER_JOB_URL` in its environment, and
children inherit it, so the processes of a job are found by that variable
even after the runner that started them is gone (kill -9 leaves them running
in their own session).
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

ENV_KEY = "ALLOY_RUNNER_JOB_URL"
PASSES = 3  # a process forked while we scan is found on the next pass


def _marked(marker: bytes) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdecimal() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        if marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def kill_job_processes(job_url: str) -> int:
    """SIGKILL every process whose environment names `job_url`; return how many there were."""
    marker = f"{ENV_KEY}={job_url}".encode()
    killed: set[int] = set()
    for _ in range(PASSES):
        pids = [pid for pid in _marked(marker) if pid not in killed]
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            killed.add(pid)
    return len(killed)
