"""`unregister` and `reset-token`: a runner's token at the coordinator and in config.toml.

`write_rotated` writes the token `run` rotated itself (rotation.py). All edit the file
as `register` does (tomlkit: comments and layout kept; checked by the loader `run`
uses; replaced atomically), under its write lock and to the file as read under it,
after the coordinator answered (config_lock.py). `unregister` finds a runner again
by its name and the token it had; `reset-token` and the rotation by the token alone (a
token is unique; the section may have been renamed meanwhile). A section that holds
another token by then (reset, rotated or registered again meanwhile) is left as it is,
and the command says so. What the coordinator did that the file cannot be made to
match (the lock not had, the file not writable, the section gone) is ConfigNotSaved:
one line saying what to put in the file by hand, with `reset-token`'s whole new token
(it is dead nowhere else: the old one no longer works).
"""

from __future__ import annotations

import datetime
import sys
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from tomlkit.items import InlineTable, Table
from tomlkit.toml_document import TOMLDocument

from alloy_runner.coordinator.gitlab.api import ApiClient, short_token
from alloy_runner.coordinator.gitlab.config_lock import config_locked
from alloy_runner.coordinator.gitlab.registration import (
    NO_EXPIRY,
    Transport,
    _drop,
    _key,
    _load,
    _run,
    _runners,
    _save,
)
from alloy_runner.coordinator.gitlab.runners_api import (
    RunnerToken,
    reset_token,
    unregister_runner,
)
from alloy_runner.exceptions import ConfigError, ConfigNotSaved


@dataclass(frozen=True)
class Selection:
    """Which runners a command acts on: by name, every one with a url, or by url and token/id."""

    name: str = ""
    all_runners: bool = False
    url: str = ""
    token: str = ""
    runner_id: int = 0

    def check(self, command: str, by_token: bool) -> None:
        ways = [bool(self.name), self.all_runners, bool(self.url)]
        if sum(ways) != 1:
            other = "--url and --token" if by_token else "--url and --id"
            raise ConfigError(f"{command}: give one of --name, --all-runners, or {other}")
        if self.url and by_token and not self.token:
            raise ConfigError(f"{command}: --url needs --token")
        if self.url and not by_token and not self.runner_id:
            raise ConfigError(f"{command}: --url needs --id")

    def matches(self, table: Table | InlineTable) -> bool:
        url, name = str(table.get("url", "")), str(table.get("name", ""))
        if not url:
            return False  # a spool runner has no coordinator
        if self.all_runners:
            return True
        if self.name:
            return name == self.name
        if self.url.rstrip("/") != url.rstrip("/"):
            return False
        if self.token:
            return str(table.get("token", "")) == self.token
        return int(table.get("id", 0) or 0) == self.runner_id


def _client(table: Table | InlineTable, transport: Transport) -> ApiClient:
    return ApiClient(
        str(table.get("url", "")),
        runner=str(table.get("name", "")),
        tls_ca_file=str(table.get("tls-ca-file", "")),
        transport=transport,
    )


def unregister(path: Path, which: Selection, *, transport: Transport = None) -> list[str]:
    """Remove runners from the coordinator and from `path`; return the names removed.

    With `--url`/`--token` of a runner not in the file, only the coordinator forgets it.
    """
    which.check("unregister", by_token=True)
    doc = _load(path, must_exist=not which.url)
    tables = [t for t in _runners(doc) if which.matches(t)]
    if not tables and which.url:
        _delete(which.url, which.token, transport)
        return [short_token(which.token)]
    if not tables:
        raise ConfigError(f"{path}: no runner matches {_describe(which)}")
    removed: list[tuple[str, str]] = []  # (name, token) of each runner the coordinator forgot
    try:
        for table in tables:

            async def call(table: Table | InlineTable = table) -> None:
                client = _client(table, transport)
                try:
                    await unregister_runner(client, str(table.get("token", "")))
                finally:
                    await client.aclose()

            _run(call)
            removed.append(_key(table))
    finally:
        if removed:
            _forget(path, set(removed))
    return [name for name, _token in removed]


def _forget(path: Path, removed: set[tuple[str, str]]) -> None:
    """Drop the sections of `removed` (name, token) from the file as it is now; say what stays.

    Raise ConfigNotSaved, naming the runners the coordinator deleted, if it cannot be written.
    """
    try:
        with config_locked(path):
            doc = _load(path, must_exist=False)
            keys = {_key(table) for table in _runners(doc)}
            if _drop(doc, removed):
                _save(path, doc)
    except (Exception, KeyboardInterrupt) as exc:
        deleted = ", ".join(repr(name) for name, _token in sorted(removed))
        one = len(removed) == 1
        raise ConfigNotSaved(
            f"runner{'' if one else 's'} {deleted} {'was' if one else 'were'} deleted at the "
            f"coordinator but {path} still lists {'it' if one else 'them'}: {_why(path, exc)}"
        ) from exc
    names = {name for name, _token in keys}
    for name, token in sorted(removed):
        if (name, token) not in keys and name in names:
            print(
                f"alloy-runner: {path}: runner {name!r} was given another token meanwhile "
                "(reset, rotated or registered again): its section is kept",
                file=sys.stderr,
            )


def _delete(url: str, token: str, transport: Transport) -> None:
    async def call() -> None:
        client = ApiClient(url, runner="", transport=transport)
        try:
            await unregister_runner(client, token)
        finally:
            await client.aclose()

    _run(call)


def _describe(which: Selection) -> str:
    if which.name:
        return f"--name {which.name!r}"
    if which.all_runners:
        return "--all-runners (no runner has a url)"
    return f"--url {which.url!r}"


def reset(path: Path, which: Selection, *, transport: Transport = None) -> list[tuple[str, str]]:
    """Replace runners' tokens with new ones from the coordinator; return (name, short token)."""
    which.check("reset-token", by_token=False)
    doc = _load(path, must_exist=True)
    tables = [t for t in _runners(doc) if which.matches(t)]
    if not tables:
        raise ConfigError(f"{path}: no runner matches {_describe(which)}")
    done: list[tuple[str, str, RunnerToken, datetime.datetime]] = []  # name, old token, new
    try:
        for table in tables:

            async def call(table: Table | InlineTable = table) -> RunnerToken:
                client = _client(table, transport)
                try:
                    return await reset_token(client, str(table.get("token", "")))
                finally:
                    await client.aclose()

            got = _run(call)
            now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
            done.append((*_key(table), got, now))
    finally:
        if done:  # the old tokens are dead now: keep every new one, even if a later call failed
            _store(path, done)
    return [(name, short_token(got.token)) for name, _old, got, _now in done]


def _store(path: Path, done: list[tuple[str, str, RunnerToken, datetime.datetime]]) -> None:
    """Write the new tokens into the file as it is now; raise ConfigNotSaved for what is not.

    Its message holds each new token that is not saved in full: nowhere else has it.
    """
    try:
        with config_locked(path):
            doc = _load(path, must_exist=False)
            lost = [entry for entry in done if not _store_one(doc, entry)]
            if len(lost) < len(done):
                _save(path, doc)
        why = (
            "its section is no longer there with the token that was reset (removed or given"
            " another token meanwhile)"
        )
    except (Exception, KeyboardInterrupt) as exc:  # the file as it was: nothing is saved
        lost, why = done, _why(path, exc)
    if lost:
        raise ConfigNotSaved(
            "; ".join(_unsaved(path, name, got, why) for name, _o, got, _n in lost)
        )


def _store_one(doc: TOMLDocument, entry: tuple[str, str, RunnerToken, datetime.datetime]) -> bool:
    _name, old, got, obtained = entry
    table = _section(doc, {old})
    if table is not None:
        _set_token(table, got, obtained)
    return table is not None


def _unsaved(path: Path, name: str, got: RunnerToken, why: str) -> str:
    expires = f" (expires {got.expires_at.isoformat()})" if got.expires_at else ""
    return (
        f"runner {name!r}: the new token {got.token}{expires} is NOT saved in {path}: {why};"
        " put it in the file by hand"
    )


def _why(path: Path, exc: BaseException) -> str:
    """Say why `path` was not written, without repeating its name."""
    text = str(exc).replace("\n", " ") or type(exc).__name__
    return text.removeprefix(f"{path}: ")


def _section(doc: TOMLDocument, tokens: Collection[str]) -> Table | InlineTable | None:
    """Return the section of the runner whose token is one of `tokens`, if there is one."""
    for table in _runners(doc):
        token = str(table.get("token", ""))
        if token and token in tokens:
            return table
    return None


def _set_token(table: Table | InlineTable, got: RunnerToken, obtained: datetime.datetime) -> None:
    table["token"] = got.token
    table["token_obtained_at"] = obtained
    table["token_expires_at"] = got.expires_at or NO_EXPIRY


def write_rotated(
    path: Path,
    name: str,
    held: Collection[str],
    got: RunnerToken,
    obtained: datetime.datetime,
    *,
    warn: Callable[[str], None] | None = None,
) -> bool:
    """Write the token `run` rotated, and its times, into runner `name`'s section of `path`.

    The section is the one whose token is one this process held for that runner (an older
    one if an earlier save failed), whatever its name is now. Return False if there is none
    (the runner was removed or registered again); raise ConfigError if the file is broken,
    ConfigLocked if another process holds its lock for over LOCK_WAIT seconds, OSError if it
    cannot be replaced.
    """
    with config_locked(path):
        doc = _load(path, must_exist=True)
        table = _section(doc, held)
        if table is None:
            return False
        _set_token(table, got, obtained)
        _save(path, doc, warn)
        return True
