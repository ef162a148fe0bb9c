"""What the coordinator did that config.toml cannot be made to match is said in full.

`reset-token` kills the old token at the coordinator before it writes the new one:
if the write fails (the lock held, the file broken or edited meanwhile), the one
error line holds the whole new token, so the operator can put it in by hand.
`unregister` likewise says the runner is gone at the coordinator; the daemon's
rotation tries a failed save once more at shutdown and says if the token is lost
(never the whole token in its log). In-process,
against the fake coordinator; LOCK_WAIT is cut to 0.3 s (test_config_lock's fixture).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from pathlib import Path

import pytest

from alloy_runner.config.load import load_config
from alloy_runner.coordinator.gitlab import tokens
from alloy_runner.coordinator.gitlab.rotation import TokenRotation
from alloy_runner.coordinator.gitlab.source import GitlabSource
from alloy_runner.exceptions import ConfigNotSaved
from tests.coordinator.gitlab.test_config_lock import (
    CONFIG,
    TOKEN_A,
    Saves,
    _expiring_source,
    _runners,
    _setup,
    meanwhile,
    short_wait,
)
from tests.support.cli import Invoke, assert_one_error_line
from tests.support.config_lock import lock_held
from tests.support.fake_coordinator import FakeCoordinator, StartFake

__all__ = ["short_wait"]  # the fixture, used here too (autouse)

RESET = "/runners/reset_authentication_token"


def _new_token(fake: FakeCoordinator) -> str:
    """The one token the coordinator knows now (the old one died with the reset)."""
    assert TOKEN_A not in fake.runner_tokens
    [token] = fake.runner_tokens
    return token


def test_reset_token_with_the_lock_held_says_the_whole_new_token(
    start_fake: StartFake, tmp_path: Path
) -> None:
    """The lock stays held: ConfigNotSaved holds the new token in full; the file as it was."""
    fake, path = _setup(start_fake, tmp_path)
    before = path.read_text()
    with lock_held(tmp_path / "config.toml.lock"), pytest.raises(ConfigNotSaved) as caught:
        tokens.reset(path, tokens.Selection(name="a"))
    new = _new_token(fake)
    assert str(caught.value) == (
        f"runner 'a': the new token {new} is NOT saved in {path}: not written: another process"
        f" has held its lock ({tmp_path / 'config.toml.lock'}) for over 0.3s; put it in the"
        " file by hand"
    )
    assert path.read_text() == before


def test_reset_token_cli_with_the_lock_held_exits_1_with_the_token_and_its_expiry(
    invoke: Invoke, start_fake: StartFake, tmp_path: Path
) -> None:
    """The command's contract: one error line with the token and when it expires, exit 1."""
    fake = start_fake(runner_tokens=[TOKEN_A], token_expires_at="2026-03-01T00:00:00Z")
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(url=fake.url, token=TOKEN_A))
    path.chmod(0o600)
    with lock_held(tmp_path / "config.toml.lock"):
        ran = invoke(["reset-token", "-c", str(path), "--name", "a"])
    new = _new_token(fake)
    assert_one_error_line(
        ran,
        1,
        f"runner 'a': the new token {new} (expires 2026-03-01T00:00:00+00:00) is NOT saved"
        f" in {path}: not written: another process has held its lock",
        "; put it in the file by hand",
    )
    assert ran.stdout == ""
    assert _runners(path)["a"]["token"] == TOKEN_A


def test_reset_token_finds_a_section_renamed_meanwhile_by_its_token(
    start_fake: StartFake, tmp_path: Path
) -> None:
    """The operator renamed a while its token was reset: the section still gets the token."""
    fake, path = _setup(start_fake, tmp_path)

    def rename() -> None:
        path.write_text(path.read_text().replace('name = "a"', 'name = "a2"'))

    other = meanwhile("POST", RESET, rename)
    [(name, short)] = tokens.reset(path, tokens.Selection(name="a"), transport=other)
    runners = _runners(path)
    assert name == "a" and list(runners) == ["a2"]
    assert runners["a2"]["token"] == _new_token(fake) and _new_token(fake).startswith(short)


def test_reset_token_of_a_runner_removed_meanwhile_says_its_whole_token(
    start_fake: StartFake, tmp_path: Path
) -> None:
    """The operator's editor dropped a while its token was reset: the token in the message."""
    fake, path = _setup(start_fake, tmp_path)
    edited = "# edited meanwhile\nconcurrent = 1\n"
    other = meanwhile("POST", RESET, lambda: path.write_text(edited))
    with pytest.raises(ConfigNotSaved) as caught:
        tokens.reset(path, tokens.Selection(name="a"), transport=other)
    assert str(caught.value) == (
        f"runner 'a': the new token {_new_token(fake)} is NOT saved in {path}: its section is"
        " no longer there with the token that was reset (removed or given another token"
        " meanwhile); put it in the file by hand"
    )
    assert path.read_text() == edited


def test_reset_token_into_a_file_broken_meanwhile_says_its_whole_token(
    start_fake: StartFake, tmp_path: Path
) -> None:
    """A file that no longer parses is no usage error now: exit 1, the token in the line."""
    fake, path = _setup(start_fake, tmp_path)
    other = meanwhile("POST", RESET, lambda: path.write_text("concurrent = [\n"))
    with pytest.raises(ConfigNotSaved) as caught:
        tokens.reset(path, tokens.Selection(name="a"), transport=other)
    message = str(caught.value)
    assert message.startswith(f"runner 'a': the new token {_new_token(fake)} is NOT saved in")
    assert message.endswith("; put it in the file by hand") and "\n" not in message
    assert ConfigNotSaved.exit_code == 1


def test_unregister_with_the_lock_held_says_the_runner_is_gone_at_the_coordinator(
    invoke: Invoke, start_fake: StartFake, tmp_path: Path
) -> None:
    """The coordinator deleted it, the file still lists it: one line that says both, exit 1."""
    fake, path = _setup(start_fake, tmp_path)
    lock = tmp_path / "config.toml.lock"
    with lock_held(lock):
        ran = invoke(["unregister", "-c", str(path), "--name", "a"])
    assert_one_error_line(
        ran,
        1,
        f"runner 'a' was deleted at the coordinator but {path} still lists it: not written:"
        f" another process has held its lock ({lock}) for over 0.3s",
    )
    assert fake.runner_tokens.isdisjoint({TOKEN_A}) and fake.count("unregister_runner", "204")
    assert _runners(path)["a"]["token"] == TOKEN_A


def _rotation(path: Path, source: GitlabSource, clock: list[datetime.datetime]) -> TokenRotation:
    [runner] = load_config(path).runners

    async def sleep(seconds: float) -> None:
        clock[0] += datetime.timedelta(seconds=seconds)

    return TokenRotation(
        [(runner, source)], path=path, saves=Saves(), now=lambda: clock[0], sleep=sleep
    )


@pytest.mark.parametrize("held_at_stop", [True, False])
def test_a_rotated_token_never_saved_is_tried_once_more_at_stop(
    start_fake: StartFake, tmp_path: Path, caplog: pytest.LogCaptureFixture, held_at_stop: bool
) -> None:
    """The daemon's save failed (lock held): at shutdown it tries again; if that fails too,
    an error line says the token is lost (its first 8 characters only, as every log line)."""
    _fake, path = _setup(start_fake, tmp_path)
    _runner, source = _expiring_source(path)
    rotation = _rotation(path, source, [datetime.datetime(2026, 1, 1, 3, tzinfo=datetime.UTC)])
    lock = tmp_path / "config.toml.lock"

    async def main() -> None:
        try:
            with lock_held(lock):
                await rotation.rotate("a")
                if held_at_stop:
                    await rotation.stop()
            if not held_at_stop:
                await rotation.stop()
        finally:
            await source.aclose()

    with caplog.at_level(logging.ERROR, logger="alloy_runner"):
        asyncio.run(main())
    new = source.token
    lines = [r.getMessage() for r in caplog.records]
    assert all(new not in line for line in lines)  # never the whole token in the log
    lost = f"runner a: its token in use ({new[:8]}...) is not in config.toml and is lost"
    if held_at_stop:
        assert len(lines) == 3 and lines[2].startswith(lost), lines  # 2 failed saves, then lost
        assert _runners(path)["a"]["token"] == TOKEN_A
    else:
        assert len(lines) == 1 and "failed to save config" in lines[0]
        assert _runners(path)["a"]["token"] == new != TOKEN_A
