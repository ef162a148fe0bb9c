"""`unregister` and `reset-token`: a runner's token at the coordinator and in config.toml.

`write_rotated` writes the token `run` rotated itself (rotation.py). All edit the file
as `register` does (tomlkit: comments and layout kept; checked by the loader `run`
uses; replaced atomically), under its write lock and to the file as read under it,
after the coordinator answered (config_lock.py). A runner is found again by its name
and the token it had: a section that holds another token by then (reset, rotated or
registered again meanwhile) is left as it is, and the command says so.
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
from alloy_runner.exceptions import ConfigChanged, ConfigError


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
    """Drop the sections of `removed` (name, token) from the file as it is now; say what stays."""
    with config_locked(path):
        doc = _load(path, must_exist=False)
        keys = {_key(table) for table in _runners(doc)}
        if _drop(doc, removed):
            _save(path, doc)
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
    """Write the new tokens into the file as it is now; raise ConfigChanged for what cannot be."""
    lost: list[str] = []
    with config_locked(path):
        doc = _load(path, must_exist=False)
        for name, old, got, obtained in done:
            table = _section(doc, name, {old})
            if table is None:
                lost.append(
                    f"runner {name!r} is no longer there with the token that was reset (removed,"
                    f" renamed or given another token meanwhile): its new token"
                    f" {short_token(got.token)}... is not saved"
                )
            else:
                _set_token(table, got, obtained)
        if len(lost) < len(done):
            _save(path, doc)
    if lost:
        raise ConfigChanged(f"{path}: " + "; ".join(lost))


def _section(doc: TOMLDocument, name: str, tokens: Collection[str]) -> Table | InlineTable | None:
    """Return the section of runner `name` whose token is one of `tokens`, if there is one."""
    for table in _runners(doc):
        if str(table.get("name", "")) == name and str(table.get("token", "")) in tokens:
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

    The section is the one named `name` whose token is one this process held for that runner
    (an older one if an earlier save failed). Return False if there is none (the runner was
    removed, renamed or registered again); raise ConfigError if the file is broken,
    ConfigLocked if another process holds its lock for over LOCK_WAIT seconds, OSError if it
    cannot be replaced.
    """
    with config_locked(path):
        doc = _load(path, must_exist=True)
        table = _section(doc, name, held)
        if table is None:
            return False
        _set_token(table, got, obtained)
        _save(path, doc, warn)
        return True
