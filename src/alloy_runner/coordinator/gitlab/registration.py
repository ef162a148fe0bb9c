"""`register`, `verify` and `list`: the `[[runners]]` of config.toml, edited with its comments kept.

The file is edited with tomlkit, so the user's comments, order and layout
survive; it is checked with the same loader `run` uses before it replaces the
old one (atomically, and readable only by its owner since it holds tokens).
Every edit is made under config.toml's write lock (config_lock.py) to the file
as read under it, after the coordinator has answered: what another writer saved
meanwhile (a token `run` rotated, a runner registered at the same time) is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import tomlkit
from tomlkit.items import AoT, Array, InlineTable, Table
from tomlkit.toml_document import TOMLDocument

from alloy_runner.config.load import parse_config
from alloy_runner.config.paths import default_config_path
from alloy_runner.coordinator.gitlab.api import (
    ApiClient,
    api_base,
    short_token,
)
from alloy_runner.coordinator.gitlab.config_lock import config_locked
from alloy_runner.coordinator.gitlab.runners_api import (
    RegisterParams,
    RunnerToken,
    is_authentication_token,
    register_runner,
    unregister_runner,
    verify_runner,
)
from alloy_runner.exceptions import ConfigError, CoordinatorError, Unreachable

log = logging.getLogger(__name__)
T = TypeVar("T")
NO_EXPIRY = datetime.datetime(1, 1, 1, tzinfo=datetime.UTC)  # GitLab writes Go's zero time
Transport = httpx.AsyncBaseTransport | None


@dataclass(frozen=True)
class Verified:
    """What the coordinator said of one runner's token: True alive, False removed, None unknown."""

    name: str
    alive: bool | None
    why: str = ""


def config_path(explicit: Path | None) -> Path:
    """Return the file to edit: `--config`, else `$CONFIG_FILE`, else the default path."""
    if explicit is not None:
        return explicit
    env = os.environ.get("CONFIG_FILE")
    return Path(env) if env else default_config_path()


def _load(path: Path, *, must_exist: bool) -> TOMLDocument:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if must_exist:
            raise ConfigError(f"{path}: config file does not exist") from None
        return tomlkit.document()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    parse_config(text, str(path))  # the same checks, and messages, as `run`
    return tomlkit.parse(text)


def _save(path: Path, doc: TOMLDocument, warn: Callable[[str], None] | None = None) -> None:
    """Replace `path` with `doc`, atomically; `warn` (default: stderr) hears of a mode change."""
    text = tomlkit.dumps(doc)
    parse_config(text, str(path))  # never write a file that `run` would refuse
    if path.is_symlink():  # replace the file it points to, not the link
        path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    if mode & 0o077:  # the file holds runner tokens: nobody else may read it
        why = f"{path}: permissions tightened from {mode:04o} to 0600"
        why += " (the file holds runner tokens)"
        if warn is None:
            print(f"alloy-runner: {why}", file=sys.stderr)
        else:
            warn(why)
        mode &= 0o700
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk, say: no half-written copy is left behind
        raise


def _runners(doc: TOMLDocument) -> list[Table | InlineTable]:
    runners = doc.get("runners")
    return list(runners) if isinstance(runners, AoT | Array) else []


def _run(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    try:
        return asyncio.run(make())
    except Unreachable as exc:
        raise CoordinatorError(f"cannot reach the coordinator: {exc}") from None


@dataclass(frozen=True)
class NewRunner:
    """What `register` asks the coordinator for and writes into the runner's section."""

    url: str
    name: str
    token: str = ""  # a runner authentication token (glrt-...): verified, not registered
    registration_token: str = ""  # GitLab's deprecated flow: the coordinator makes a token
    params: RegisterParams | None = None  # for the deprecated flow; description = name
    reserved_given: tuple[str, ...] = ()  # server-side flags given (refused with --token)
    executor: str = "shell"
    limit: int = 0
    request_concurrency: int = 1
    tls_ca_file: str = ""
    builds_dir: str = ""
    cache_dir: str = ""
    docker_image: str = ""
    leave_runner: bool = False  # keep a newly registered runner if the file cannot be written


def _obtain(new: NewRunner, transport: Transport) -> tuple[RunnerToken, bool]:
    """Verify or register with the coordinator; return the token and whether it is new."""
    token = new.token or (
        new.registration_token if is_authentication_token(new.registration_token) else ""
    )
    if token and new.reserved_given:
        if new.token:
            raise ConfigError(
                "runner configuration other than name and executor ("
                + ", ".join(new.reserved_given)
                + ") is set on the GitLab server and cannot be given with --token"
            )
        log.warning(
            "an authentication token was given as --registration-token: %s are ignored",
            ", ".join(new.reserved_given),
        )
    if not token and not new.registration_token:
        raise ConfigError("--token or --registration-token: a token is needed to register")

    async def call() -> RunnerToken:
        client = ApiClient(
            new.url, runner=new.name, tls_ca_file=new.tls_ca_file, transport=transport
        )
        try:
            if token:
                return await verify_runner(client, token, new.executor)
            params = new.params or RegisterParams(description=new.name)
            return await register_runner(client, new.registration_token, params)
        finally:
            await client.aclose()

    return _run(call), not token


def _entry(new: NewRunner, got: RunnerToken, now: datetime.datetime) -> Table:
    entry = tomlkit.table()
    entry.add("name", new.name)
    entry.add("url", new.url)
    entry.add("id", got.id)
    entry.add("token", got.token)
    entry.add("token_obtained_at", now)
    entry.add("token_expires_at", got.expires_at or NO_EXPIRY)
    if new.tls_ca_file:
        entry.add("tls-ca-file", new.tls_ca_file)
    entry.add("executor", new.executor)
    entry.add("limit", new.limit)
    entry.add("request_concurrency", new.request_concurrency)
    for key, value in (("builds_dir", new.builds_dir), ("cache_dir", new.cache_dir)):
        if value:
            entry.add(key, value)
    if new.docker_image:
        docker = tomlkit.table()
        docker.add("image", new.docker_image)
        entry.add("docker", docker)
    return entry


def register(path: Path, new: NewRunner, *, transport: Transport = None) -> str:
    """Register or verify a runner, append it to `path`; return its short token.

    A runner the coordinator made for this call is unregistered again if the file cannot be
    written, as GitLab Runner does.
    """
    api_base(new.url)
    if not new.name.strip():
        raise ConfigError("--name: a runner needs a name")
    _name_free(_load(path, must_exist=False), new.name, path)  # before asking the coordinator
    got, made = _obtain(new, transport)
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    try:
        with config_locked(path):  # read again: what was saved meanwhile is kept
            doc = _load(path, must_exist=False)
            _name_free(doc, new.name, path, " (added while this one was registered)")
            _append_runner(doc, _entry(new, got, now), path)
            _save(path, doc)
    except BaseException:
        if made and not new.leave_runner:
            with contextlib.suppress(CoordinatorError):
                _unregister(new.url, new.name, got.token, new.tls_ca_file, transport)
        raise
    return short_token(got.token)


def _name_free(doc: TOMLDocument, name: str, path: Path, why: str = "") -> None:
    if any(str(t.get("name", "")) == name for t in _runners(doc)):
        raise ConfigError(f"{path}: a runner named {name!r} is already configured{why}")


def _unregister(url: str, name: str, token: str, ca_file: str, transport: Transport) -> None:
    async def call() -> None:
        client = ApiClient(url, runner=name, tls_ca_file=ca_file, transport=transport)
        try:
            await unregister_runner(client, token)
        finally:
            await client.aclose()

    _run(call)


def _append_runner(doc: TOMLDocument, entry: Table, path: Path) -> None:
    """Append a `[[runners]]` table after the others, keeping the file's layout."""
    runners = doc.get("runners")
    if isinstance(runners, AoT):
        if len(runners) and not tomlkit.dumps(doc).endswith("\n\n"):
            runners[-1].add(tomlkit.nl())
        runners.append(entry)
    elif runners:
        raise ConfigError(f"{path}: write runners as [[runners]] tables to let register add one")
    else:
        doc.pop("runners", None)
        if "concurrent" not in doc:
            doc.add("concurrent", 1)
        aot = tomlkit.aot()
        aot.append(entry)
        doc.add(tomlkit.nl())
        doc.add("runners", aot)


def verify(path: Path, *, delete: bool = False, transport: Transport = None) -> list[Verified]:
    """Ask the coordinator about each runner's token; with `delete`, drop the removed ones.

    A removed runner whose section holds another token by the time the file is edited
    (reset, rotated or registered again meanwhile) is kept, and reported as unknown.
    """
    results: list[Verified] = []
    dead: set[tuple[str, str]] = set()  # (name, token) of each runner the coordinator removed
    for table in _runners(_load(path, must_exist=True)):
        name, url = str(table.get("name", "")), str(table.get("url", ""))
        if not url:
            continue
        token, ca_file = str(table.get("token", "")), str(table.get("tls-ca-file", ""))

        async def call(
            url: str = url, name: str = name, token: str = token, ca_file: str = ca_file
        ) -> bool:
            client = ApiClient(url, runner=name, tls_ca_file=ca_file, transport=transport)
            try:
                return await client.verify(token)
            finally:
                await client.aclose()

        try:
            alive = _run(call)
        except CoordinatorError as exc:
            results.append(Verified(name, None, str(exc)))
            continue
        results.append(Verified(name, alive))
        if not alive:
            dead.add((name, token))
    if not (delete and dead):
        return results
    changed = _delete_removed(path, dead)
    why = f"its token in {path} changed while it was verified (reset, rotated or registered"
    why += " again): not deleted"
    return [
        Verified(r.name, None, why) if r.alive is False and r.name in changed else r
        for r in results
    ]


def _delete_removed(path: Path, dead: set[tuple[str, str]]) -> set[str]:
    """Delete the sections of `dead` (name, token); return the names now with another token."""
    with config_locked(path):  # read again: only what is still the removed runner goes
        doc = _load(path, must_exist=True)
        keys = {_key(table) for table in _runners(doc)}
        names = {name for name, _token in keys}
        if _drop(doc, dead):
            _save(path, doc)
    return {name for name, token in dead if (name, token) not in keys and name in names}


def _key(table: Table | InlineTable) -> tuple[str, str]:
    return str(table.get("name", "")), str(table.get("token", ""))


def _drop(doc: TOMLDocument, which: set[tuple[str, str]]) -> int:
    """Delete the runners whose (name, token) is in `which`; return how many went."""
    runners = doc.get("runners")
    if not isinstance(runners, AoT | Array):
        return 0
    dropped = 0
    for index in reversed(range(len(runners))):
        if _key(runners[index]) in which:
            del runners[index]
            dropped += 1
    if dropped and not len(runners):
        del doc["runners"]
    return dropped


@dataclass(frozen=True)
class ListedRunner:
    """One runner of config.toml as `list` shows it: its token cut to what GitLab shows."""

    name: str
    executor: str
    short_token: str  # empty: the runner has no token
    url: str  # empty: the runner takes jobs from the local spool

    def line(self) -> str:
        url = self.url or "(local spool)"
        return f"{self.name}\tExecutor={self.executor} Token={self.short_token or '-'} URL={url}"

    def to_json(self) -> dict[str, str | None]:
        return {
            "name": self.name,
            "executor": self.executor,
            "token": self.short_token or None,
            "url": self.url or None,
        }


def list_runners(path: Path) -> list[ListedRunner]:
    """Return the configured runners, each token cut to what GitLab shows (8 chars)."""
    doc = _load(path, must_exist=True)
    return [
        ListedRunner(
            name=str(table.get("name", "")),
            executor=str(table.get("executor", "shell")),
            short_token=short_token(str(table.get("token", ""))),
            url=str(table.get("url", "")),
        )
        for table in _runners(doc)
    ]
