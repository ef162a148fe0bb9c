"""The real `alloy-runner register` and config.toml's write lock, held by another process.

The wait is the real one (config_lock.LOCK_WAIT, 10 s): no knob shortens it.
"""

from __future__ import annotations

import os
import subprocess
import time
import tomllib
from pathlib import Path

from alloy_runner.coordinator.gitlab.config_lock import LOCK_WAIT
from tests.support import ALLOY_RUNNER, run_cli, runner_env, wait_until
from tests.support.config_lock import lock_held
from tests.support.fake_coordinator import FakeCoordinator, StartFake

CONFIG = """\
# the operator's file
concurrent = 1

[[runners]]
  name = "a"
  url = "{url}"
  token = "{token}"
"""


def _config(fake: FakeCoordinator, tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(url=fake.url, token=fake.runner_token))
    path.chmod(0o600)
    return path


def _register(fake: FakeCoordinator, path: Path, name: str) -> list[str]:
    return [
        "register",
        "--non-interactive",
        "--config",
        str(path),
        "--url",
        fake.url,
        "--registration-token",
        fake.registration_token,
        "--name",
        name,
    ]


def test_register_exits_1_in_one_line_when_the_lock_stays_held(
    start_fake: StartFake, tmp_path: Path
) -> None:
    """After the bounded wait: one error line, exit 1, the file as it was, the runner deleted."""
    fake = start_fake()
    path = _config(fake, tmp_path)
    before = path.read_text()
    lock = tmp_path / "config.toml.lock"
    with lock_held(lock):
        started = time.monotonic()
        result = run_cli(_register(fake, path, "b"), tmp_path, timeout=LOCK_WAIT + 30)
        waited = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert result.stderr == (
        f"alloy-runner: error: {path}: not written: another process has held its lock "
        f"({lock}) for over {LOCK_WAIT:g}s\n"
    )
    assert waited >= LOCK_WAIT  # it waited the whole bound before it gave up
    assert path.read_text() == before
    assert fake.count("register_runner", "201") == 1
    assert fake.count("unregister_runner", "204") == 1  # as when the file cannot be written
    assert fake.runner_tokens == {fake.runner_token}


def _has_open(pid: int, lock: Path) -> bool:
    """Whether process `pid` has `lock` open (it is trying to lock it)."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any(os.readlink(fd) == str(lock) for fd in fds.iterdir())
    except (FileNotFoundError, ProcessLookupError):  # an fd closed while looked at
        return False


def test_register_waits_for_the_lock_and_writes_once_it_is_let_go(
    start_fake: StartFake, tmp_path: Path
) -> None:
    """register has its runner and the lock file open when the holder lets go: it then saves."""
    fake = start_fake()
    path = _config(fake, tmp_path)
    lock = tmp_path / "config.toml.lock"
    with lock_held(lock):
        child = subprocess.Popen(
            [ALLOY_RUNNER, *_register(fake, path, "b")],
            env=runner_env(tmp_path),
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_until(lambda: _has_open(child.pid, lock), 20, 0.02, "register opens the lock")
            assert fake.count("register_runner", "201") == 1  # asked before it took the lock
        except BaseException:
            child.kill()
            child.communicate()
            raise
    out, err = child.communicate(timeout=LOCK_WAIT + 20)
    assert child.returncode == 0, err
    runners = tomllib.loads(path.read_text())["runners"]
    assert [r["name"] for r in runners] == ["a", "b"]
    assert runners[1]["token"] in fake.runner_tokens and "Runner b registered" in out
    assert fake.count("unregister_runner") == 0


def test_reset_token_that_cannot_save_prints_the_whole_new_token(
    start_fake: StartFake, tmp_path: Path
) -> None:
    """The old token is dead at the coordinator: the one error line holds the new one in full."""
    fake = start_fake(token_expires_at="2026-03-01T00:00:00Z")
    path = _config(fake, tmp_path)
    old = fake.runner_token
    before = path.read_text()
    with lock_held(tmp_path / "config.toml.lock"):
        result = run_cli(
            ["reset-token", "--config", str(path), "--name", "a"], tmp_path, timeout=LOCK_WAIT + 30
        )
    assert old not in fake.runner_tokens  # reset at the coordinator
    [new] = fake.runner_tokens
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert result.stderr == (
        f"alloy-runner: error: runner 'a': the new token {new} (expires"
        f" 2026-03-01T00:00:00+00:00) is NOT saved in {path}: not written: another process has"
        f" held its lock ({tmp_path / 'config.toml.lock'}) for over {LOCK_WAIT:g}s; put it in"
        " the file by hand\n"
    )
    assert path.read_text() == before
