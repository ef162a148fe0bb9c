"""config.toml.lock itself: its mode, how it is opened, who may take it, taking it twice.

The open mode is read from the kernel (/proc/self/fdinfo), not from the code. The
test with another user runs a real process as `nobody` (setpriv): root only.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from alloy_runner.coordinator.gitlab import config_lock
from alloy_runner.coordinator.gitlab.config_lock import config_locked
from alloy_runner.exceptions import ConfigLocked

CONFIG = """\
[[runners]]
  name = "a"
  url = "http://127.0.0.1:1"
  token = "glrt-old-aaaaaaaaaaaa"
"""


@pytest.fixture
def path(tmp_path: Path) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    config.chmod(0o600)
    return config


def _open_flags(lock: Path) -> list[int]:
    """The open flags of each file descriptor of this process on `lock`, as the kernel has them."""
    flags = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            if os.readlink(fd) != str(lock):
                continue
            info = Path(f"/proc/self/fdinfo/{fd.name}").read_text()
        except FileNotFoundError:  # the fd of the listing itself, closed by now
            continue
        [line] = [line for line in info.splitlines() if line.startswith("flags:")]
        flags.append(int(line.split()[1], 8))
    return flags


def test_the_lock_file_is_made_0644_and_opened_read_only(path: Path) -> None:
    """Nothing secret inside, and flock needs no write access: any reader can take it."""
    lock = path.with_name("config.toml.lock")
    umask = os.umask(0o077)  # a strict umask does not narrow it
    try:
        with config_locked(path):
            [flags] = _open_flags(lock)
    finally:
        os.umask(umask)
    assert flags & os.O_ACCMODE == os.O_RDONLY
    assert stat.S_IMODE(lock.stat().st_mode) == 0o644
    assert _open_flags(lock) == []  # let go: closed


def test_an_old_0600_lock_file_of_this_user_is_made_0644(path: Path) -> None:
    """A lock file an earlier version made 0600 is opened to others by its owner's next write."""
    lock = path.with_name("config.toml.lock")
    lock.touch(0o600)
    lock.chmod(0o600)
    with config_locked(path):
        pass
    assert stat.S_IMODE(lock.stat().st_mode) == 0o644


def test_taking_the_lock_again_in_the_thread_that_holds_it_is_a_bug_said_at_once(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It would wait for itself and blame another process: RuntimeError instead, no wait."""
    monkeypatch.setattr(config_lock, "LOCK_WAIT", 2.0)  # a wait would end in ConfigLocked
    link = tmp_path / "link.toml"
    link.symlink_to(path)
    lock = path.with_name("config.toml.lock")
    with config_locked(path):
        with pytest.raises(RuntimeError) as caught, config_locked(path):
            pass
        assert str(caught.value) == (
            f"{lock}: taken again by the thread that holds it (a bug: it would wait for itself)"
        )
        with pytest.raises(RuntimeError), config_locked(link):  # the same file by another name
            pass
        assert len(_open_flags(lock)) == 1  # the nested tries closed what they opened
    with config_locked(path):  # let go: it can be had again
        pass


def test_another_thread_of_the_process_waits_for_the_lock(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two threads are two writers: the second waits (here past LOCK_WAIT), it is no bug."""
    monkeypatch.setattr(config_lock, "LOCK_WAIT", 0.3)

    def take() -> str:
        with config_locked(path):
            return "had"

    with ThreadPoolExecutor(1) as pool:
        with config_locked(path), pytest.raises(ConfigLocked):
            pool.submit(take).result()
        assert pool.submit(take).result() == "had"


_AS_SERVICE_USER = """\
import datetime, sys
from pathlib import Path
from alloy_runner.coordinator.gitlab import tokens
from alloy_runner.coordinator.gitlab.runners_api import RunnerToken
T = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
new = RunnerToken(0, "glrt-new-nnnnnnnnnnnn", T + datetime.timedelta(days=30))
try:
    print(tokens.write_rotated(Path(sys.argv[1]), "a", {"glrt-old-aaaaaaaaaaaa"}, new, T))
except Exception as exc:
    print(type(exc).__name__, exc)
"""


@pytest.fixture
def service_dir() -> Iterator[Path]:
    """A directory in /tmp that `nobody` can reach (pytest's tmp_path is root's only)."""
    made = Path(tempfile.mkdtemp(prefix="alloy-lock-", dir="/tmp"))
    made.chmod(0o755)
    try:
        yield made
    finally:
        shutil.rmtree(made)


def _as_nobody(config: Path) -> str:
    """Save a rotated token into `config` as the daemon would, as user nobody."""
    user = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    done = subprocess.run(
        [*user, sys.executable, "-c", _AS_SERVICE_USER, str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1"},
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _give_to_nobody(config: Path) -> None:
    for owned in (config.parent, config):
        shutil.chown(owned, "nobody", "nogroup")


needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv"
)


@needs_root
def test_a_lock_file_made_by_root_does_not_stop_the_service_users_save(service_dir: Path) -> None:
    """`sudo alloy-runner register` made the lock; config.toml is then chowned to the service
    user, whose `run` must still save the token it rotated."""
    config = service_dir / "config.toml"
    config.write_text(CONFIG)
    config.chmod(0o600)
    umask = os.umask(0o077)
    try:
        with config_locked(config):  # root's write, as `sudo alloy-runner register`
            pass
    finally:
        os.umask(umask)
    lock = service_dir / "config.toml.lock"
    assert lock.stat().st_uid == 0
    _give_to_nobody(config)
    assert _as_nobody(config) == "True"
    assert tomllib.loads(config.read_text())["runners"][0]["token"] == "glrt-new-nnnnnnnnnnnn"


@needs_root
def test_a_lock_file_the_service_user_cannot_open_is_named_with_the_fix(
    service_dir: Path,
) -> None:
    """One an older version made 0600 as root: the error names it and how to fix it."""
    config = service_dir / "config.toml"
    config.write_text(CONFIG)
    config.chmod(0o600)
    lock = service_dir / "config.toml.lock"
    lock.touch(0o600)
    lock.chmod(0o600)
    _give_to_nobody(config)
    said = _as_nobody(config)
    nobody = int(subprocess.run(["id", "-u", "nobody"], capture_output=True).stdout)
    assert said == (
        f"ConfigLockUnusable {config}: not written: its lock file {lock} (owner uid 0, mode"
        f" 0600) cannot be opened by uid {nobody}: Permission denied; make it readable (chmod"
        f" 0644 {lock}), give it to the user that writes config.toml (chown), or remove it"
        " while no alloy-runner command writes the file"
    )
    assert "glrt-old-aaaaaaaaaaaa" in config.read_text()
