"""config.toml's writers race: each edits the file as read under its lock, after the coordinator.

In-process, against the fake coordinator. A transport sends each request on to the
fake; before the one a test names, another writer (a token rotation's save, a
second `register`, an operator's editor) runs to completion in another thread:
the race is forced, not waited for. That other writer takes the lock itself, so
a writer that held it across its coordinator call would make it time out
(LOCK_WAIT is cut to a fraction of a second here).
"""

from __future__ import annotations

import asyncio
import datetime
import io
import logging
import tomllib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from alloy_runner.config.load import load_config
from alloy_runner.config.model import RunnerConfig
from alloy_runner.coordinator.gitlab import config_lock, registration, tokens
from alloy_runner.coordinator.gitlab.registration import NewRunner
from alloy_runner.coordinator.gitlab.rotation import TokenRotation
from alloy_runner.coordinator.gitlab.runners_api import RunnerToken
from alloy_runner.coordinator.gitlab.source import GitlabSource
from alloy_runner.exceptions import ConfigError, ConfigLocked
from tests.support.cli import Invoke, assert_one_error_line
from tests.support.config_lock import lock_held
from tests.support.fake_coordinator import FakeCoordinator, StartFake
from tests.support.fakes import RecordingMetrics

TOKEN_A = "glrt-aaaaaaaaaaaaaaaaaaaa"
ROTATED = "glrt-rotated-rrrrrrrrrrrr"
T = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
CONFIG = """\
# the operator's comment, kept
concurrent = 2

[[runners]]
  name = "a"
  url = "{url}"
  token = "{token}"
"""


@pytest.fixture(autouse=True)
def short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer that held the lock across its coordinator call fails fast, not in 10 s."""
    monkeypatch.setattr(config_lock, "LOCK_WAIT", 0.3)


def _setup(
    start_fake: StartFake, tmp_path: Path, token: str = TOKEN_A
) -> tuple[FakeCoordinator, Path]:
    fake = start_fake(runner_tokens=[TOKEN_A])
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(url=fake.url, token=token))
    path.chmod(0o600)
    return fake, path


def _expiring_source(path: Path) -> tuple[RunnerConfig, GitlabSource]:
    """Give the file's runner a token that expires at 04:00 (obtained at midnight); return
    the runner and its coordinator source, as the daemon builds them."""
    with path.open("a") as handle:
        handle.write("  token_obtained_at = 2026-01-01T00:00:00Z\n")
        handle.write("  token_expires_at = 2026-01-01T04:00:00Z\n")
    [runner] = load_config(path).runners
    return runner, GitlabSource(runner, metrics=RecordingMetrics())


def _runners(path: Path) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in tomllib.loads(path.read_text()).get("runners", [])}


def meanwhile(method: str, path: str, other: Callable[[], object]) -> httpx.MockTransport:
    """Forward every request to the real server; before the first `method` `path` (under
    /api/v4) goes, run `other` to its end in another thread (its errors fail the test)."""
    ran: list[object] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if not ran and (request.method, request.url.path) == (method, f"/api/v4{path}"):
            with ThreadPoolExecutor(1) as pool:
                ran.append(pool.submit(other).result())
        with httpx.Client() as client:
            reply = client.send(
                httpx.Request(
                    request.method, request.url, headers=request.headers, content=request.content
                )
            )
        skip = {"content-encoding", "content-length", "transfer-encoding"}
        headers = {k: v for k, v in reply.headers.items() if k.lower() not in skip}
        return httpx.Response(reply.status_code, headers=headers, content=reply.content)

    transport = httpx.MockTransport(handler)
    transport.ran = ran  # type: ignore[attr-defined]
    return transport


def _rotate_a(path: Path) -> Callable[[], bool]:
    """`run`'s save of a token it rotated for runner a."""
    new = RunnerToken(0, ROTATED, T + datetime.timedelta(days=30))
    return lambda: tokens.write_rotated(path, "a", {TOKEN_A}, new, T)


def _new(fake: FakeCoordinator, name: str) -> NewRunner:
    return NewRunner(url=fake.url, name=name, registration_token=fake.registration_token)


def test_a_rotation_saved_while_register_asks_the_coordinator_is_kept(
    start_fake: StartFake, tmp_path: Path
) -> None:
    """register read the file, then the daemon saved a rotated token: the file has both."""
    fake, path = _setup(start_fake, tmp_path)
    hook = meanwhile("POST", "/runners", _rotate_a(path))
    registration.register(path, _new(fake, "b"), transport=hook)
    assert hook.ran == [True]  # type: ignore[attr-defined]
    runners = _runners(path)
    assert runners["a"]["token"] == ROTATED  # not overwritten by the copy read before
    assert runners["b"]["token"] in fake.runner_tokens
    assert path.read_text().startswith("# the operator's comment, kept\n")


def test_two_registers_at_once_keep_both_runners(start_fake: StartFake, tmp_path: Path) -> None:
    """A second register ends while the first waits for the coordinator: three runners."""
    fake, path = _setup(start_fake, tmp_path)
    other = meanwhile("POST", "/runners", lambda: registration.register(path, _new(fake, "c")))
    registration.register(path, _new(fake, "b"), transport=other)
    assert list(_runners(path)) == ["a", "c", "b"]
    assert fake.count("unregister_runner") == 0


def test_a_name_registered_meanwhile_is_refused_and_the_new_runner_unregistered(
    start_fake: StartFake, tmp_path: Path
) -> None:
    """Both register b: the one that writes second says so and deletes its runner again."""
    fake, path = _setup(start_fake, tmp_path)
    other = meanwhile("POST", "/runners", lambda: registration.register(path, _new(fake, "b")))
    with pytest.raises(ConfigError, match=r"'b' is already configured \(added while this one"):
        registration.register(path, _new(fake, "b"), transport=other)
    runners = _runners(path)
    assert list(runners) == ["a", "b"] and runners["b"]["token"] in fake.runner_tokens
    assert fake.count("register_runner") == 2 and fake.count("unregister_runner", "204") == 1
    assert len(fake.runner_tokens) == 2  # a's and the b that was written


def test_reset_token_keeps_a_runner_registered_meanwhile(
    start_fake: StartFake, tmp_path: Path
) -> None:
    """reset-token writes its new token into the file as it is after the reset."""
    fake, path = _setup(start_fake, tmp_path)
    other = meanwhile(
        "POST",
        "/runners/reset_authentication_token",
        lambda: registration.register(path, _new(fake, "b")),
    )
    [(name, short)] = tokens.reset(path, tokens.Selection(name="a"), transport=other)
    runners = _runners(path)
    assert name == "a" and runners["a"]["token"].startswith(short)
    assert runners["a"]["token"] in fake.runner_tokens and TOKEN_A not in fake.runner_tokens
    assert "b" in runners


def test_verify_delete_keeps_a_runner_whose_token_was_rotated_meanwhile(
    start_fake: StartFake, tmp_path: Path
) -> None:
    """The coordinator no longer knows the token verify read; the file has a newer one by now."""
    _fake, path = _setup(start_fake, tmp_path, token="glrt-gone-gggggggggggg")
    new = RunnerToken(0, ROTATED, None)
    rotate = lambda: tokens.write_rotated(path, "a", {"glrt-gone-gggggggggggg"}, new, T)  # noqa: E731
    [result] = registration.verify(
        path, delete=True, transport=meanwhile("POST", "/runners/verify", rotate)
    )
    assert result.alive is None and "changed while it was verified" in result.why
    assert _runners(path)["a"]["token"] == ROTATED


def test_verify_delete_removes_a_runner_still_with_its_dead_token(
    start_fake: StartFake, tmp_path: Path
) -> None:
    """The same race against another runner's section: the dead one goes, the other stays."""
    fake, path = _setup(start_fake, tmp_path, token="glrt-gone-gggggggggggg")
    other = meanwhile(
        "POST", "/runners/verify", lambda: registration.register(path, _new(fake, "b"))
    )
    [result] = registration.verify(path, delete=True, transport=other)
    assert result.alive is False
    assert list(_runners(path)) == ["b"]


def test_unregister_keeps_a_section_given_another_token_meanwhile(
    start_fake: StartFake, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The runner is deleted at the coordinator; its section, rotated meanwhile, stays, said."""
    fake, path = _setup(start_fake, tmp_path)
    other = meanwhile("DELETE", "/runners", _rotate_a(path))
    assert tokens.unregister(path, tokens.Selection(name="a"), transport=other) == ["a"]
    assert TOKEN_A not in fake.runner_tokens
    assert _runners(path)["a"]["token"] == ROTATED
    err = capsys.readouterr().err
    assert "runner 'a' was given another token meanwhile" in err and "section is kept" in err


def test_a_held_lock_times_out_and_nothing_is_written(tmp_path: Path) -> None:
    """Another process holds config.toml.lock: after LOCK_WAIT, ConfigLocked; the file as it was."""
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(url="http://127.0.0.1:1", token=TOKEN_A))
    path.chmod(0o600)
    before = path.read_text()
    with lock_held(tmp_path / "config.toml.lock"), pytest.raises(ConfigLocked) as caught:
        _rotate_a(path)()
    assert str(caught.value) == (
        f"{path}: not written: another process has held its lock "
        f"({tmp_path / 'config.toml.lock'}) for over 0.3s"
    )
    assert path.read_text() == before
    assert _rotate_a(path)()  # once it is let go, the save goes through
    assert _runners(path)["a"]["token"] == ROTATED


def test_a_symlinked_config_is_locked_beside_the_file_it_points_to(tmp_path: Path) -> None:
    """The link and its target are one file: one lock, beside the target."""
    real = tmp_path / "etc" / "runner.toml"
    real.parent.mkdir()
    real.write_text(CONFIG.format(url="http://127.0.0.1:1", token=TOKEN_A))
    real.chmod(0o600)
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    assert (
        config_lock.lock_path(link) == config_lock.lock_path(real) == real.with_suffix(".toml.lock")
    )
    with lock_held(real.with_suffix(".toml.lock")), pytest.raises(ConfigLocked):
        _rotate_a(link)()


def test_register_with_the_lock_held_exits_1_and_unregisters_its_runner(
    invoke: Invoke, start_fake: StartFake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's contract: one error line, exit 1; the runner made for it is deleted again."""
    monkeypatch.setattr("sys.stdin", io.StringIO())
    fake, path = _setup(start_fake, tmp_path)
    before = path.read_text()
    args = ["register", "-n", "-c", str(path), "-u", fake.url, "-r", fake.registration_token]
    with lock_held(tmp_path / "config.toml.lock"):
        ran = invoke([*args, "--name", "b"])
    assert_one_error_line(ran, 1, f"{path}: not written", "config.toml.lock", "for over 0.3s")
    assert path.read_text() == before
    assert fake.count("register_runner", "201") == 1
    assert fake.count("unregister_runner", "204") == 1
    assert fake.runner_tokens == {TOKEN_A}


class Saves:
    """The rotation's ConfigSaves port, counted."""

    def __init__(self) -> None:
        self.counts = [0, 0]  # saved, failed

    def saved(self) -> None:
        self.counts[0] += 1

    def saving_failed(self) -> None:
        self.counts[1] += 1


def test_a_rotation_save_while_the_lock_is_held_fails_counted_and_is_tried_again(
    start_fake: StartFake, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The daemon's save waits LOCK_WAIT, fails (one line, counted); its retry writes the file."""
    _fake, path = _setup(start_fake, tmp_path)
    runner, source = _expiring_source(path)
    clock, saves = [T], Saves()

    async def sleep(seconds: float) -> None:
        clock[0] += datetime.timedelta(seconds=seconds)

    rotation = TokenRotation(
        [(runner, source)], path=path, saves=saves, now=lambda: clock[0], sleep=sleep
    )

    async def main() -> None:
        try:
            with lock_held(tmp_path / "config.toml.lock"):
                await rotation.rotate("a")
            assert saves.counts == [0, 1]
            assert _runners(path)["a"]["token"] == TOKEN_A  # not written under another's lock
            await rotation.run()  # the failed save, tried again 60 s later
        finally:
            await source.aclose()

    with caplog.at_level(logging.ERROR, logger="alloy_runner"):
        asyncio.run(main())
    assert saves.counts == [1, 1] and clock[0] == T + datetime.timedelta(seconds=60)
    assert _runners(path)["a"]["token"] == source.token != TOKEN_A
    [error] = caplog.records
    assert "failed to save config" in error.getMessage() and "held its lock" in error.getMessage()
    assert not error.exc_info  # a lock held by another is no bug: no traceback
