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

The lock file holds nothing: it is made 0644 and opened read-only (flock needs no
write access), so that one made by `sudo alloy-runner register` does not stop the
service user's `run` from saving a rotated token. One that cannot be opened even so
is ConfigLockUnusable, naming the file and how to fix it. A thread that takes the
lock while it holds it already (it would wait for itself, then blame "another
process") is a bug: RuntimeError at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alloy_runner.exceptions import ConfigLocked, ConfigLockUnusable

LOCK_WAIT = 10.0  # seconds a writer waits for another's lock before it gives up
_POLL = 0.05  # seconds between tries while another process holds the lock
_MODE = 0o644  # nothing secret inside: whoever may write config.toml must be able to open it


class _Held(threading.local):
    """The lock files (device, inode) this thread holds: taking one again is a bug."""

    def __init__(self) -> None:
        self.files: set[tuple[int, int]] = set()


_held = _Held()


def lock_path(path: Path) -> Path:
    """Return the lock file of config file `path`: beside the file a symlinked `path` names."""
    if path.is_symlink():  # as _save: the file it points to is the one replaced
        path = path.resolve()
    return path.with_name(f"{path.name}.lock")


@contextmanager
def config_locked(path: Path, wait: float | None = None) -> Iterator[None]:
    """Hold the write lock of config file `path`; wait at most `wait` (LOCK_WAIT) seconds.

    Raise ConfigLocked if another process holds it for longer, ConfigLockUnusable if the
    lock file exists but cannot be opened, OSError if it cannot be made (the directory is
    not writable: the file could not be replaced either), RuntimeError if this thread
    holds it already.
    """
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = _open(path, lock)
    try:
        info = os.fstat(fd)
        key = (info.st_dev, info.st_ino)
        if key in _held.files:
            raise RuntimeError(
                f"{lock}: taken again by the thread that holds it (a bug: it would wait for itself)"
            )
        _acquire(fd, path, lock, LOCK_WAIT if wait is None else wait)
        _held.files.add(key)
        try:
            yield
        finally:
            _held.files.discard(key)
    finally:
        os.close(fd)  # the lock goes with the file description


def _open(path: Path, lock: Path) -> int:
    """Open (make, if need be) the lock file read-only; make it 0644 if it is ours."""
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, _MODE)
    except PermissionError as exc:
        if not lock.exists():
            raise  # the directory is not writable: config.toml cannot be replaced either
        raise ConfigLockUnusable(_unusable(path, lock, exc)) from None
    info = os.fstat(fd)
    if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) != _MODE:
        # the umask narrowed it, or an older version made it 0600; if this fails, the lock
        # still works for us, and another user's open says what to do
        with contextlib.suppress(OSError):
            os.fchmod(fd, _MODE)
    return fd


def _unusable(path: Path, lock: Path, exc: OSError) -> str:
    try:
        info = lock.stat()
        owner = f" (owner uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):04o})"
    except OSError:
        owner = ""
    return (
        f"{path}: not written: its lock file {lock}{owner} cannot be opened by uid "
        f"{os.geteuid()}: {exc.strerror}; make it readable (chmod 0644 {lock}), give it to "
        "the user that writes config.toml (chown), or remove it while no alloy-runner "
        "command writes the file"
    )


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
