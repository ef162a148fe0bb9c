"""Automatic runner-token rotation in `run`, as GitLab Runner does it (`commands/multi.go`).

A runner whose token expires (`token_expires_at`) gets a new one three quarters
into its lifetime, at token_obtained_at + 0.75 x (token_expires_at -
token_obtained_at): `POST /runners/reset_authentication_token`, then the new
token, `token_obtained_at` and `token_expires_at` go into config.toml (comments
kept, replaced atomically; under the file's write lock, into the file as read
under it, so what `register` or another writer saved meanwhile is kept) and the
file is counted as saved. Job requests use the new token from the next one on;
running jobs keep their job tokens. A save that fails (the lock held by another
process for over 10 s, too) is logged and counted, and the process goes on with
the new token in memory; the save is tried again 60 s later (then 2, 4, ...
minutes, at most hourly) until the file has the token; at shutdown once more, and
if that fails too, an error line says the token is lost (never the whole token in the
log: register the runner again).
`FF_DISABLE_AUTOMATIC_TOKEN_ROTATION` in `[runners.feature_flags]` turns rotation
off for that runner: a warning when its token is due instead.

Runners are rotated one at a time, the earliest due first.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from alloy_runner.coordinator.gitlab.api import short_token
from alloy_runner.coordinator.gitlab.runners_api import RunnerToken, reset_token
from alloy_runner.coordinator.gitlab.tokens import write_rotated
from alloy_runner.exceptions import ConfigError, ConfigLocked, CoordinatorError, TokenRefused

if TYPE_CHECKING:
    from pathlib import Path

    from alloy_runner.config.model import RunnerConfig
    from alloy_runner.coordinator.gitlab.source import GitlabSource

log = logging.getLogger(__name__)

RESET_FACTOR = 0.75  # GitLab Runner's TokenResetIntervalFactor
RETRY_AFTER = 60.0  # seconds before a reset the coordinator could not answer is tried again
MAX_SLEEP = 3600.0  # seconds between looks at the wall clock (it may jump, the host sleep)
STOP_WAIT = 10.0  # seconds a rotation under way may take to finish at shutdown
DISABLE_FLAG = "FF_DISABLE_AUTOMATIC_TOKEN_ROTATION"
_LONG_AGO = datetime.datetime.min.replace(tzinfo=datetime.UTC)


class ConfigSaves(Protocol):
    """Where `run` reports its writes of config.toml (telemetry implements it)."""

    def saved(self) -> None: ...

    def saving_failed(self) -> None: ...


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def reset_time(runner: RunnerConfig) -> datetime.datetime | None:
    """Return when `runner`'s token is reset; None if it does not expire (or has no coordinator)."""
    expires = runner.token_expires_at
    if expires is None or runner.uses_spool:
        return None
    obtained = runner.token_obtained_at
    if obtained is None:  # GitLab's zero time: the lifetime is unknown, the reset is due now
        return _LONG_AGO
    return obtained + (expires - obtained) * RESET_FACTOR


def next_reset(
    runners: Iterable[RunnerConfig],
    not_before: dict[str, datetime.datetime] | None = None,
) -> tuple[RunnerConfig, datetime.datetime] | None:
    """Return the runner whose token is reset first, and when; the first of equals wins.

    `not_before` holds, by runner name, when a reset that failed may be tried again.
    """
    first: tuple[RunnerConfig, datetime.datetime] | None = None
    for runner in runners:
        when = reset_time(runner)
        if when is None:
            continue
        when = max(when, (not_before or {}).get(runner.name, when))
        if first is None or when < first[1]:
            first = (runner, when)
    return first


@dataclass
class _Held:
    """One runner whose token rotates: its config as in use now, its source, its tokens."""

    runner: RunnerConfig
    source: GitlabSource
    tokens: set[str] = field(default_factory=set)  # every token this process used for it
    rotates: bool = True  # False: the flag is on, or the coordinator refused the token
    save_failures: int = 0  # failed saves in a row of the token in use
    save_again_at: datetime.datetime | None = None  # when a failed save is tried again


Sleep = Callable[[float], Awaitable[None]]


class TokenRotation:
    """Reset the runners' tokens when they are due, one at a time, until stopped."""

    def __init__(
        self,
        runners: Iterable[tuple[RunnerConfig, GitlabSource]],
        *,
        path: Path,
        saves: ConfigSaves,
        on_rotated: Callable[[RunnerConfig], None] = lambda _runner: None,
        now: Callable[[], datetime.datetime] = utc_now,
        sleep: Sleep = asyncio.sleep,
        retry_after: float = RETRY_AFTER,
    ) -> None:
        self._held = {
            runner.name: _Held(runner, source, {runner.token})
            for runner, source in runners
            if reset_time(runner) is not None
        }
        self._path = path
        self._saves = saves
        self._on_rotated = on_rotated  # the configuration in force learns the new token
        self._now = now
        self._sleep = sleep
        self._retry_after = retry_after
        self._not_before: dict[str, datetime.datetime] = {}
        self._loop: asyncio.Task[None] | None = None
        self._current: asyncio.Task[None] | None = None  # a rotation under way

    def due(self) -> tuple[str, datetime.datetime] | None:
        """Return the name of the runner rotated next, and when; None: no token to rotate."""
        rotating = (h.runner for h in self._held.values() if h.rotates)
        found = next_reset(rotating, self._not_before)
        return None if found is None else (found[0].name, found[1])

    def _next_step(self) -> tuple[datetime.datetime, str, bool] | None:
        """Return when, for which runner, and whether it is a failed save to try again."""
        steps = [
            (h.save_again_at, name, True)
            for name, h in self._held.items()
            if h.save_again_at is not None
        ]
        if (due := self.due()) is not None:
            steps.append((due[1], due[0], False))
        return min(steps, key=lambda step: step[0]) if steps else None

    def runner(self, name: str) -> RunnerConfig:
        """Return runner `name`'s config as in use now (its latest token and times)."""
        return self._held[name].runner

    def start(self) -> None:
        """Rotate in the background, from now on."""
        if self._held and self._loop is None:
            self._loop = asyncio.create_task(self.run(), name="token-rotation")

    async def stop(self, timeout: float = STOP_WAIT) -> None:
        """Stop; a rotation under way may finish (its new token must reach the file)."""
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.wait({self._loop})
        current = self._current
        if current is not None and not current.done():
            done, _ = await asyncio.wait({current}, timeout=timeout)
            if not done:
                log.warning(
                    "token rotation: a rotation under way did not finish within %.0fs at "
                    "shutdown; its new token may be missing from config.toml",
                    timeout,
                )
        await self._last_saves()

    async def _last_saves(self) -> None:
        """Try once more to save each token whose save failed; say which ones are lost."""
        for held in self._held.values():
            if held.save_again_at is None:
                continue
            await self._save(held)
            if held.save_again_at is not None:  # failed again: the file has a dead token
                log.error(
                    "runner %s: its token in use (%s...) is not in config.toml and is lost "
                    "as this process stops; the file's token no longer works: register the "
                    "runner again",
                    held.runner.name,
                    short_token(held.runner.token),
                )

    async def run(self) -> None:
        """Reset each token when due (and save again what failed), until nothing is left."""
        while (step := self._next_step()) is not None:
            when, name, save_again = step
            delay = (when - self._now()).total_seconds()
            if delay > 0:
                await self._sleep(min(delay, MAX_SLEEP))
                continue  # the wall clock is read again
            work = self._save(self._held[name]) if save_again else self.rotate(name)
            # Shielded: once the coordinator has made a new token, it must reach the file.
            self._current = asyncio.ensure_future(work)
            # Retrieved even when it ends after run() was stopped (run() logs what it sees).
            self._current.add_done_callback(_retrieve)
            try:
                await asyncio.shield(self._current)
            except Exception:  # a bug must not end rotation: the tokens would expire
                log.exception("runner %s: rotating its token failed", name)
                later = self._now() + datetime.timedelta(seconds=self._retry_after)
                if save_again:
                    self._held[name].save_again_at = later
                else:
                    self._not_before[name] = later

    async def rotate(self, name: str) -> None:
        """Reset runner `name`'s token now; then save it into config.toml, counted."""
        held = self._held[name]
        if dict(held.runner.feature_flags).get(DISABLE_FLAG):
            log.warning(
                "runner %s: automatic token rotation is disabled (%s); its token expires at %s",
                name,
                DISABLE_FLAG,
                held.runner.token_expires_at,
            )
            held.rotates = False
            return
        got = await self._reset(held)
        if got is None:
            return
        obtained = self._now().replace(microsecond=0)
        if got.expires_at is not None and got.expires_at <= obtained:
            log.warning(
                "runner %s: the new token expires at %s, not after this host's clock (%s): "
                "check the clocks; the next reset waits %.0fs",
                name,
                got.expires_at.isoformat(),
                obtained.isoformat(),
                self._retry_after,
            )
        held.tokens.add(got.token)
        held.runner = replace(
            held.runner,
            token=got.token,
            token_obtained_at=obtained,
            token_expires_at=got.expires_at,
        )
        self._on_rotated(held.runner)
        log.info(
            "runner %s: authentication token reset to %s; it expires %s",
            name,
            short_token(got.token),
            f"at {got.expires_at.isoformat()}" if got.expires_at else "never",
        )
        await self._save(held)

    async def _reset(self, held: _Held) -> RunnerToken | None:
        """Ask the coordinator for a new token; the job requests use it at once."""
        source, name = held.source, held.runner.name
        source.resetting = True
        try:
            got = await reset_token(source.client, source.token)
        except TokenRefused as exc:
            log.error("runner %s: %s; its token is not rotated again", name, exc)
            held.rotates = False  # a dead token stays dead: register the runner again
            return None
        except CoordinatorError as exc:
            log.error(
                "runner %s: resetting its token failed: %s; trying again in %.0fs",
                name,
                exc,
                self._retry_after,
            )
            wait = datetime.timedelta(seconds=self._retry_after)
            self._not_before[name] = self._now() + wait
            return None
        finally:
            source.resetting = False
        source.token = got.token
        # The next reset is never sooner than retry_after from now, whatever the new expiry
        # says: a coordinator's clock behind this host's (or a past expiry) must not make
        # the runner reset its token without pause.
        self._not_before[name] = self._now() + datetime.timedelta(seconds=self._retry_after)
        return got

    async def _save(self, held: _Held) -> None:
        """Write the token in use into config.toml; a failure is tried again later, backing off."""
        runner = held.runner
        got = RunnerToken(0, runner.token, runner.token_expires_at)
        obtained = runner.token_obtained_at or self._now().replace(microsecond=0)
        try:
            written = await asyncio.to_thread(
                write_rotated,
                self._path,
                runner.name,
                set(held.tokens),
                got,
                obtained,
                warn=log.warning,
            )
        except Exception as exc:  # whatever stopped it, the file was not saved
            held.save_failures += 1
            # 1, 2, 4 ... times retry_after, at most MAX_SLEEP (the exponent capped: a save
            # that fails for weeks must not overflow the float and spin).
            wait = min(self._retry_after * 2.0 ** min(held.save_failures - 1, 16), MAX_SLEEP)
            held.save_again_at = self._now() + datetime.timedelta(seconds=wait)
            log.error(
                "runner %s: failed to save config: %s; the new token is kept in memory only "
                "(trying again in %.0fs)",
                runner.name,
                exc,
                wait,
                exc_info=not isinstance(exc, ConfigError | ConfigLocked | OSError),  # a bug
            )
            self._saves.saving_failed()
            return
        held.save_failures, held.save_again_at = 0, None
        if not written:  # nothing to save into: trying again cannot help
            log.error(
                "runner %s: config.toml has no section of this runner with a token it used "
                "(removed or registered again); its new token is kept in memory only, not tried "
                "again, and lost when this process stops",
                runner.name,
            )
            self._saves.saving_failed()
            return
        self._saves.saved()


def _retrieve(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.debug("token rotation: a rotation ended with %r", exc)
