"""`unregister` and `reset-token`: a runner's token at the coordinator and in config.toml.

`write_rotated` writes the token `run` rotated itself (rotation.py). All edit the file
as `register` does (tomlkit: comments and layout kept; checked by the loader `run`
uses; replaced atomically).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from tomlkit.items import AoT, Array, InlineTable, Table

from alloy_runner.coordinator.gitlab.api import ApiClient, short_token
from alloy_runner.coordinator.gitlab.registration import (
    NO_EXPIRY,
    Transport,
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
from alloy_runner.exceptions import ConfigError


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
    removed: list[str] = []
    try:
        for table in tables:

            async def call(table: Table | InlineTable = table) -> None:
                client = _client(table, transport)
                try:
                    await unregister_runner(client, str(table.get("token", "")))
                finally:
                    await client.aclose()

            _run(call)
            removed.append(str(table.get("name", "")))
    finally:
        if removed:
            _drop(doc, set(removed))
            _save(path, doc)
    return removed


def _delete(url: str, token: str, transport: Transport) -> None:
    async def call() -> None:
        client = ApiClient(url, runner="", transport=transport)
        try:
            await unregister_runner(client, token)
        finally:
            await client.aclose()

    _run(call)


def _drop(doc: object, names: set[str]) -> None:
    assert isinstance(doc, dict)
    runners = doc["runners"]
    assert isinstance(runners, AoT | Array)
    for index in reversed(range(len(runners))):
        if str(runners[index].get("name", "")) in names:
            del runners[index]
    if not len(runners):
        del doc["runners"]


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
    done: list[tuple[str, str]] = []
    try:
        for table in tables:

            async def call(table: Table | InlineTable = table) -> RunnerToken:
                client = _client(table, transport)
                try:
                    return await reset_token(client, str(table.get("token", "")))
                finally:
                    await client.aclose()

            got = _run(call)
            _set_token(table, got, datetime.datetime.now(datetime.UTC).replace(microsecond=0))
            done.append((str(table.get("name", "")), short_token(got.token)))
    finally:
        if done:  # the old tokens are dead now: keep every new one, even if a later call failed
            _save(path, doc)
    return done


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
    removed, renamed or registered again); raise ConfigError if the file is broken, OSError
    if it cannot be replaced.
    """
    doc = _load(path, must_exist=True)
    for table in _runners(doc):
        if str(table.get("name", "")) == name and str(table.get("token", "")) in held:
            _set_token(table, got, obtained)
            _save(path, doc, warn)
            return True
    return False
