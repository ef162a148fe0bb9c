"""The lock every writer of config.toml holds while it reads, edits and replaces the file.

`register`, `verify --delete`, `unregister`, `reset-token` and `run`'s token
rotation each take an exclusive `flock` on a sidecar file beside config.toml
(`config.toml.lock`; beside the file a symlinked config.toml points to), read the
file again under it, apply their edit to what they read then, replace the file
atomically and let go. No call to the coordinator is made while the lock is held,
so a writer holds it for milliseconds. One that cannot have it within `LOCK_WAIT`
seconds gives up with ConfigLocked (one line, exit 1; for the rotation a failed
save, counted and tried again later). Readers (`run`'s config load, `list`) take
no lock: the replace is atomic. The lock file is left in place (removing it would
let two writers lock two different files).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alloy_runner.exceptions import ConfigLocked

LOCK_WAIT = 10.0  # seconds a writer waits for another's lock before it gives up
_POLL = 0.05  # seconds between tries while another process holds the lock


def lock_path(path: Path) -> Path:
    """Return the lock file of config file `path`: beside the file a symlinked `path` names."""
    if path.is_symlink():  # as _save: the file it points to is the one replaced
        path = path.resolve()
    return path.with_name(f"{path.name}.lock")


@contextmanager
def config_locked(path: Path, wait: float | None = None) -> Iterator[None]:
    """Hold the write lock of config file `path`; wait at most `wait` (LOCK_WAIT) seconds.

    Raise ConfigLocked if another process holds it for longer, OSError if the lock file
    cannot be made (the directory is not writable: the file could not be replaced either).
    """
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        _acquire(fd, path, lock, LOCK_WAIT if wait is None else wait)
        yield
    finally:
        os.close(fd)  # the lock goes with the file description


def _acquire(fd: int, path: Path, lock: Path, wait: float) -> None:
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConfigLocked(
                    f"{path}: not written: another process has held its lock ({lock}) "
                    f"for over {wait:g}s"
                ) from None
            time.sleep(min(_POLL, left))
