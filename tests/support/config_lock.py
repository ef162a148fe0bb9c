"""`lock_held(lock)`: another process holds config.toml's write lock (flock) in a block."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_HOLD = """\
import fcntl, sys
handle = open(sys.argv[1], "a")
fcntl.flock(handle, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()  # until the test closes our standard input
"""


@contextmanager
def lock_held(lock: Path) -> Iterator[None]:
    """Hold an exclusive flock on `lock` from a child process; it lets go when the block ends."""
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(lock)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        assert child.stdout.readline() == "held\n", "the child did not get the lock"
        yield
    finally:
        child.stdin.close()
        status = child.wait(timeout=10)
        child.stdout.close()
        if status != 0:
            raise AssertionError(f"the lock holder exited {child.returncode}")
