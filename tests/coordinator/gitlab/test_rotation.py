"""Token rotation in-process: the schedule (which runner next, when) on an injected clock,
and the resets against the fake coordinator, saved into a real config.toml."""

from __future__ import annotations

import asyncio
import datetime
import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import tomlkit

from alloy_runner.config.load import load_config
from alloy_runner.config.model import RunnerConfig
from alloy_runner.coordinator.api_metrics import Endpoint
from alloy_runner.coordinator.gitlab import rotation as rotation_module
from alloy_runner.coordinator.gitlab.api import ApiClient
from alloy_runner.coordinator.gitlab.rotation import (
    TokenRotation,
    next_reset,
    reset_time,
)
from alloy_runner.coordinator.gitlab.runners_api import RunnerToken, reset_token
from alloy_runner.coordinator.gitlab.source import GitlabSource
from tests.support.fake_coordinator import FakeCoordinator, StartFake
from tests.support.fakes import RecordingMetrics

UTC = datetime.UTC
T0 = datetime.datetime(2026, 1, 1, tzinfo=UTC)
HOUR = datetime.timedelta(hours=1)
TOKEN_A = "glrt-aaaaaaaaaaaaaaaaaaaa"
TOKEN_B = "glrt-bbbbbbbbbbbbbbbbbbbb"


def _runner(name: str, obtained: float | None, expires: float | None) -> RunnerConfig:
    """A coordinated runner whose token was obtained and expires so many hours after T0."""
    return RunnerConfig(
        name=name,
        url="http://127.0.0.1:1",
        token=f"glrt-{name}",
        token_obtained_at=None if obtained is None else T0 + obtained * HOUR,
        token_expires_at=None if expires is None else T0 + expires * HOUR,
    )


# --- the schedule ----------------------------------------------------------------------------


def test_a_token_is_reset_three_quarters_into_its_lifetime() -> None:
    """GitLab Runner's TokenResetIntervalFactor: obtained + 0.75 x (expires - obtained)."""
    assert reset_time(_runner("a", 0, 4)) == T0 + 3 * HOUR
    assert reset_time(_runner("a", 2, 3)) == T0 + 2.75 * HOUR
    assert reset_time(_runner("a", 0, None)) is None  # the token does not expire
    spool = RunnerConfig(name="s", token_obtained_at=T0, token_expires_at=T0 + HOUR)
    assert reset_time(spool) is None  # no coordinator to ask
    unknown = reset_time(_runner("a", None, 4))  # no token_obtained_at: due at once
    assert unknown is not None and unknown < T0


def test_the_earliest_due_runner_is_next_and_a_retry_waits() -> None:
    """The first due goes first (the first of equals); a failed one waits for its retry time."""
    a, b, c = _runner("a", 0, 4), _runner("b", 0, 2), _runner("c", 0, 2)
    assert next_reset([a, b, c]) == (b, T0 + 1.5 * HOUR)
    assert next_reset([a, c, b]) == (c, T0 + 1.5 * HOUR)
    later = {"b": T0 + 5 * HOUR, "c": T0 + 3.5 * HOUR}
    assert next_reset([a, b, c], later) == (a, T0 + 3 * HOUR)
    assert next_reset([a, b], {"a": T0}) == (b, T0 + 1.5 * HOUR)  # a past retry time: no change
    assert next_reset([_runner("x", 0, None)]) is None


# --- the resets ------------------------------------------------------------------------------


@dataclass
class Clock:
    """An injected clock: `sleep` moves it on at once and keeps what was asked."""

    at: datetime.datetime = T0
    slept: list[float] = field(default_factory=list)
    on_sleep: Callable[[], None] = lambda: None  # what else happens while the rotation waits

    def now(self) -> datetime.datetime:
        return self.at

    async def sleep(self, seconds: float) -> None:
        self.on_sleep()
        self.slept.append(seconds)
        self.at += datetime.timedelta(seconds=seconds)


class CountingSaves:
    """The ConfigSaves port, counted (telemetry's side: tests/telemetry/metrics/test_config.py)."""

    def __init__(self) -> None:
        self.saved_count = 0
        self.failed_count = 0

    def saved(self) -> None:
        self.saved_count += 1

    def saving_failed(self) -> None:
        self.failed_count += 1


CONFIG = """\
# the operator's comment, kept
concurrent = 2

[[runners]]
  name = "a"  # first
  url = "{url}"
  token = "{a}"
  token_obtained_at = 2026-01-01T00:00:00Z
  token_expires_at = 2026-01-01T04:00:00Z

[[runners]]
  name = "b"
  url = "{url}"
  token = "{b}"
  token_obtained_at = 2026-01-01T00:00:00Z
  token_expires_at = 2026-01-01T02:00:00Z
"""


@dataclass
class Rig:
    fake: FakeCoordinator
    path: Path
    clock: Clock
    saves: CountingSaves
    metrics: RecordingMetrics
    sources: dict[str, GitlabSource]
    rotation: TokenRotation
    rotated: list[RunnerConfig]

    def file_runners(self) -> dict[str, dict[str, Any]]:
        doc = tomlkit.parse(self.path.read_text()).unwrap()
        return {r["name"]: r for r in doc["runners"]}

    def run(self) -> None:
        """Run the rotation loop until no token is left to rotate."""
        self.steps(self.rotation.run)

    def steps(self, *steps: Callable[[], Awaitable[object] | None]) -> None:
        """Call each step in turn, awaiting those that are coroutines, in one event loop."""

        async def main() -> None:
            try:
                for step in steps:
                    result = step()
                    if inspect.isawaitable(result):
                        await result
            finally:
                for source in self.sources.values():
                    await source.aclose()

        asyncio.run(main())


@pytest.fixture
def rig(start_fake: StartFake, tmp_path: Path) -> Iterator[Rig]:
    fake = start_fake(runner_tokens=[TOKEN_A, TOKEN_B])
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(url=fake.url, a=TOKEN_A, b=TOKEN_B))
    path.chmod(0o600)
    config = load_config(path)
    metrics = RecordingMetrics()
    sources = {r.name: GitlabSource(r, metrics=metrics) for r in config.runners}
    clock, saves, rotated = Clock(), CountingSaves(), list[RunnerConfig]()
    rotation = TokenRotation(
        ((r, sources[r.name]) for r in config.runners),
        path=path,
        saves=saves,
        on_rotated=rotated.append,
        now=clock.now,
        sleep=clock.sleep,
        retry_after=600.0,
    )
    yield Rig(fake, path, clock, saves, metrics, sources, rotation, rotated)


def test_each_token_is_reset_when_due_and_saved_with_comments_kept(rig: Rig) -> None:
    """b (due at 1.5 h) then a (at 3 h): new tokens to the sources and into the file, counted."""
    assert rig.rotation.due() == ("b", T0 + 1.5 * HOUR)
    rig.run()  # the fake's new tokens never expire: the loop ends after both
    assert rig.clock.slept == [3600.0, 1800.0, 3600.0, 1800.0]  # the wall clock read hourly
    assert rig.fake.count("reset_token", "201") == 2
    new = {name: source.token for name, source in rig.sources.items()}
    assert new["a"] not in (TOKEN_A, TOKEN_B) and new["a"] in rig.fake.runner_tokens
    assert new["b"] not in (TOKEN_A, TOKEN_B) and new["b"] in rig.fake.runner_tokens
    assert TOKEN_A not in rig.fake.runner_tokens  # the old ones are dead at the coordinator
    text = rig.path.read_text()
    assert "# the operator's comment, kept" in text and "# first" in text
    runners = rig.file_runners()
    assert runners["b"]["token"] == new["b"]
    assert runners["b"]["token_obtained_at"] == T0 + 1.5 * HOUR
    assert runners["a"]["token"] == new["a"]
    assert runners["a"]["token_obtained_at"] == T0 + 3 * HOUR
    assert runners["a"]["token_expires_at"].year == 1  # GitLab's "never"
    assert (rig.saves.saved_count, rig.saves.failed_count) == (2, 0)
    assert [r.name for r in rig.rotated] == ["b", "a"]
    assert rig.rotated[1].token == new["a"] and rig.rotated[1].token_expires_at is None
    resets = [c for c in rig.metrics.api_calls if c.endpoint is Endpoint.RESET_TOKEN]
    assert [(c.runner, c.status) for c in resets] == [("b", 201), ("a", 201)]
    assert load_config(rig.path).runners[0].token == new["a"]  # `run` accepts the saved file


def test_the_next_reset_follows_the_new_token_s_lifetime(rig: Rig) -> None:
    """A new token that expires in 8 h from its reset at 1.5 h is reset again at 7.5 h."""
    rig.fake.token_expires_at = "2026-01-01T09:30:00Z"

    def after_b() -> None:
        b = rig.rotation.runner("b")
        assert b.token_obtained_at == T0 + 1.5 * HOUR
        assert b.token_expires_at == T0 + 9.5 * HOUR
        assert rig.file_runners()["b"]["token_expires_at"] == T0 + 9.5 * HOUR
        assert rig.rotation.due() == ("a", T0 + 3 * HOUR)
        rig.clock.at = T0 + 3 * HOUR

    rig.clock.at = T0 + 1.5 * HOUR
    rig.steps(partial(rig.rotation.rotate, "b"), after_b, partial(rig.rotation.rotate, "a"))
    # a, reset at 3 h with 6.5 h to live, is due at 7.875 h: b (at 7.5 h) goes first.
    assert rig.rotation.due() == ("b", T0 + 7.5 * HOUR)
    assert rig.rotation.runner("a").token_obtained_at == T0 + 3 * HOUR


def test_a_failed_save_is_counted_and_the_new_token_is_used(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """The file cannot be replaced: error logged and counted; the source has the new token.

    The next rotation finds the runner by the older token the file still has.
    """
    blocker = rig.path.with_name(f".{rig.path.name}.{os.getpid()}.tmp")
    blocker.mkdir()  # the atomic save's temporary file cannot be made (even by root)
    before = rig.path.read_text()
    first: list[str] = []

    def after_failure() -> None:
        assert (rig.saves.saved_count, rig.saves.failed_count) == (0, 1)
        assert rig.path.read_text() == before
        first.append(rig.sources["b"].token)
        assert first[0] != TOKEN_B and first[0] in rig.fake.runner_tokens
        blocker.rmdir()

    with caplog.at_level(logging.INFO, logger="alloy_runner"):
        rig.steps(
            partial(rig.rotation.rotate, "b"), after_failure, partial(rig.rotation.rotate, "b")
        )
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "failed to save config" in errors[0].getMessage()
    assert first[0] not in caplog.text  # never the whole token
    assert (rig.saves.saved_count, rig.saves.failed_count) == (1, 1)
    assert rig.file_runners()["b"]["token"] == rig.sources["b"].token != first[0]


def test_a_failed_save_is_tried_again_until_the_file_has_the_token(rig: Rig) -> None:
    """Saves that fail are tried again 600 s, then 1200 s later; once it works, it is counted."""
    blocker = rig.path.with_name(f".{rig.path.name}.{os.getpid()}.tmp")
    blocker.mkdir()

    def fix_after_two_failures() -> None:
        if rig.saves.failed_count == 2 and blocker.exists():
            blocker.rmdir()  # the operator fixed the directory

    rig.clock.on_sleep = fix_after_two_failures
    rig.run()
    # b reset at 1.5 h; its save tried again 600 s later, then 1200 s later (at 2 h); a at 3 h.
    assert rig.clock.slept == [3600.0, 1800.0, 600.0, 1200.0, 3600.0]
    assert (rig.saves.saved_count, rig.saves.failed_count) == (2, 2)
    assert rig.file_runners()["b"]["token"] == rig.sources["b"].token
    assert rig.file_runners()["b"]["token_obtained_at"] == T0 + 1.5 * HOUR
    assert rig.fake.count("reset_token", "201") == 2  # the retries do not reset again


def test_a_coordinator_error_is_retried_later(rig: Rig) -> None:
    """A 503 to the reset: logged, tried again `retry_after` later, then saved."""
    rig.fake.fail(["503"], count=1, endpoints=["reset_token"])
    rig.run()
    # b at 1.5 h, again at 1h40, a at 3 h
    assert rig.clock.slept == [3600.0, 1800.0, 600.0, 3600.0, 1200.0]
    assert rig.fake.count("reset_token") == 3
    assert (rig.saves.saved_count, rig.saves.failed_count) == (2, 0)


def test_an_unexpected_failure_does_not_end_the_rotation(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in one reset is logged with its traceback and retried; rotation goes on."""
    real = reset_token
    calls: list[str] = []

    async def flaky(client: ApiClient, token: str) -> RunnerToken:
        calls.append(token)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return await real(client, token)

    monkeypatch.setattr(rotation_module, "reset_token", flaky)
    with caplog.at_level(logging.ERROR, logger="alloy_runner"):
        rig.run()
    assert calls == [TOKEN_B, TOKEN_B, TOKEN_A]
    assert "rotating its token failed" in caplog.text and "RuntimeError: a bug" in caplog.text
    assert rig.sources["b"].resetting is False
    assert (rig.saves.saved_count, rig.saves.failed_count) == (2, 0)


def test_a_refused_token_is_not_rotated_again(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """A token the coordinator no longer knows (403) stays as it is; the others rotate."""
    with rig.fake.lock:
        rig.fake.runner_tokens.discard(TOKEN_B)
    with caplog.at_level(logging.ERROR, logger="alloy_runner"):
        rig.run()
    assert rig.fake.count("reset_token", "403") == 1
    assert rig.fake.count("reset_token", "201") == 1
    assert rig.sources["b"].token == TOKEN_B
    assert "its token is not rotated again" in caplog.text
    assert (rig.saves.saved_count, rig.saves.failed_count) == (1, 0)


def test_the_feature_flag_turns_rotation_off_with_a_warning(
    start_fake: StartFake, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """FF_DISABLE_AUTOMATIC_TOKEN_ROTATION: a warning when the token is due, no reset, no save."""
    fake = start_fake(runner_tokens=[TOKEN_A])
    path = tmp_path / "config.toml"
    path.write_text(
        CONFIG.split('[[runners]]\n  name = "b"', maxsplit=1)[0].format(url=fake.url, a=TOKEN_A)
        + "  [runners.feature_flags]\n    FF_DISABLE_AUTOMATIC_TOKEN_ROTATION = true\n"
    )
    config = load_config(path)
    assert not any("FF_DISABLE_AUTOMATIC_TOKEN_ROTATION" in w for w in config.warnings)
    clock, saves = Clock(), CountingSaves()
    (runner,) = config.runners
    source = GitlabSource(runner)
    rotation = TokenRotation(
        [(runner, source)], path=path, saves=saves, now=clock.now, sleep=clock.sleep
    )

    async def main() -> None:
        await rotation.run()
        await source.aclose()

    with caplog.at_level(logging.WARNING, logger="alloy_runner"):
        asyncio.run(main())
    assert clock.slept == [3600.0, 3600.0, 3600.0]
    assert fake.count("reset_token") == 0
    assert "automatic token rotation is disabled" in caplog.text
    assert (saves.saved_count, saves.failed_count) == (0, 0)
    assert rotation.due() is None


def test_a_403_to_a_request_sent_with_the_old_token_does_not_pause_the_runner(
    start_fake: StartFake,
) -> None:
    """A job request in flight while the token is reset gets 403: the runner asks again soon."""
    fake = start_fake()
    runner = RunnerConfig(name="gl", url=fake.url, token="glrt-rotated-away")
    source = GitlabSource(runner, check_interval=0.5)

    async def main() -> None:
        source.resetting = True
        assert await source.request() is None
        source.resetting = False
        source.token = fake.runner_token
        await source.wait_for_jobs(5.0)  # within the check interval, not the hour's pause
        assert await source.request() is None
        await source.aclose()

    asyncio.run(main())
    assert fake.count("request_job", "403") == 1
    assert fake.count("request_job", "204") == 1
    assert fake.job_request_tokens == ["glrt-rotated-away", fake.runner_token]


def test_a_save_that_fails_for_weeks_keeps_its_hourly_pace(rig: Rig) -> None:
    """After 2,000 failed saves the next is still tried an hour later (no overflow, no spin)."""
    blocker = rig.path.with_name(f".{rig.path.name}.{os.getpid()}.tmp")
    blocker.mkdir()
    rig.clock.at = T0 + 1.5 * HOUR
    # Weeks of hourly failures, stood for by their count (2,000 hours: 2**1999 overflows).
    rig.steps(partial(rig.rotation.rotate, "b"))
    held = rig.rotation._held["b"]
    held.save_failures = 2000
    rig.steps(partial(rig.rotation._save, held))
    assert held.save_failures == 2001
    assert held.save_again_at == T0 + 1.5 * HOUR + datetime.timedelta(seconds=3600)
    assert rig.saves.failed_count == 2


def test_a_new_token_that_is_already_expired_waits_before_the_next_reset(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """A new token that expires before this host's now (clock skew): warned; no reset spin."""
    rig.fake.token_expires_at = "2026-01-01T00:30:00Z"  # before the reset at 1.5 h
    rig.clock.at = T0 + 1.5 * HOUR
    with caplog.at_level(logging.WARNING, logger="alloy_runner"):
        rig.steps(partial(rig.rotation.rotate, "b"))
    assert "not after this host's clock" in caplog.text
    # Its reset time (0.75 h) is past: the next reset waits retry_after (600 s), not 0 s.
    assert rig.rotation.due() == ("b", T0 + 1.5 * HOUR + datetime.timedelta(seconds=600))
    assert rig.fake.count("reset_token", "201") == 1


def test_a_runner_gone_from_the_file_is_not_saved_again_and_again(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """Registered again meanwhile (another token): one error and one count; the others rotate."""
    rig.path.write_text(rig.path.read_text().replace(TOKEN_B, "glrt-again-gggggggggggg"))
    with caplog.at_level(logging.ERROR, logger="alloy_runner"):
        rig.run()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "no section of this runner" in errors[0]
    assert (rig.saves.saved_count, rig.saves.failed_count) == (1, 1)
    assert rig.clock.slept == [3600.0, 1800.0, 3600.0, 1800.0]  # no retry of b's save: a at 3 h
    assert rig.file_runners()["a"]["token"] == rig.sources["a"].token


def test_a_runner_renamed_meanwhile_is_found_by_its_token(rig: Rig) -> None:
    """The section renamed in config.toml while `run` ran: its rotated token is saved there."""
    rig.path.write_text(rig.path.read_text().replace('name = "b"', 'name = "b-renamed"'))
    rig.run()
    assert rig.saves.failed_count == 0 and rig.saves.saved_count >= 2
    assert rig.file_runners()["b-renamed"]["token"] == rig.sources["b"].token != TOKEN_B


def test_stop_lets_a_rotation_under_way_reach_the_file(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped while the coordinator makes the new token: the token is still saved."""
    real = reset_token
    asked = asyncio.Event()

    async def slow(client: ApiClient, token: str) -> RunnerToken:
        asked.set()
        await asyncio.sleep(0.05)  # the stop arrives while the reset is under way
        return await real(client, token)

    monkeypatch.setattr(rotation_module, "reset_token", slow)
    rig.clock.at = T0 + 1.5 * HOUR  # b is due

    async def start_then_stop() -> None:
        rig.rotation.start()
        await asyncio.wait_for(asked.wait(), 10)
        await rig.rotation.stop(timeout=10)

    rig.steps(start_then_stop)
    assert rig.fake.count("reset_token", "201") == 1
    assert rig.file_runners()["b"]["token"] == rig.sources["b"].token != TOKEN_B
    assert (rig.saves.saved_count, rig.saves.failed_count) == (1, 0)
