"""config.toml: the model, its defaults, and loading with errors that name the key."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from alloy_runner.exceptions import ConfigError

T = TypeVar("T")

LOG_LEVELS = ("debug", "info", "warn", "warning", "error", "fatal", "panic")
LOG_FORMATS = ("text", "json")
DEFAULT_METRICS_SERVER = "localhost:9252"
EMBEDDED_RUNNER_NAME = "embedded"
MACHINE_EXECUTORS = ("docker+machine", "docker-ssh+machine")
EXECUTORS = ("shell", *MACHINE_EXECUTORS)


def default_home() -> Path:
    """Return the directory of the default config file and spool for this user."""
    if os.geteuid() == 0:
        return Path("/etc/alloy-runner")
    return Path.home() / ".alloy-runner"


def default_config_path() -> Path:
    """Return where `run` looks for config.toml when no `--config` is given."""
    return default_home() / "config.toml"


def default_spool_dir() -> Path:
    """Return the spool of the embedded default: `~/.alloy-runner/spool`."""
    return Path.home() / ".alloy-runner" / "spool"


def default_builds_dir() -> Path:
    """Return where builds run when a runner sets no `builds_dir`."""
    return Path.home() / ".alloy-runner" / "builds"


def default_cache_dir() -> Path:
    """Return where caches are kept when a runner sets no `cache_dir`."""
    return Path.home() / ".alloy-runner" / "cache"


@dataclass(frozen=True)
class AutoscalingConfig:
    """One `[[runners.machine.autoscaling]]` period: IdleCount and IdleTime while it matches."""

    periods: tuple[str, ...]  # cron expressions (see machines/cron.py)
    timezone: str = ""  # IANA name; empty: the host's local time
    idle_count: int = 0
    idle_time: float = 0.0


@dataclass(frozen=True)
class MachineConfig:
    """`[runners.machine]`: the autoscaled machines of a docker+machine runner (GitLab's keys)."""

    machine_driver: str = ""  # `MachineDriver`: docker-machine's --driver, or `local`
    machine_name: str = ""  # `MachineName`: a template with one %s
    machine_options: tuple[str, ...] = ()  # `MachineOptions`: `--` is prepended to each
    idle_count: int = 0  # `IdleCount`: machines kept idle, waiting for jobs
    idle_time: float = 0.0  # `IdleTime`: seconds an extra idle machine lives
    max_builds: int = 0  # `MaxBuilds`: builds after which a machine is removed; 0: no limit
    autoscaling: tuple[AutoscalingConfig, ...] = ()  # the last matching period wins


@dataclass(frozen=True)
class RunnerConfig:
    """One `[[runners]]` entry."""

    name: str
    url: str = ""
    token: str = ""
    executor: str = "shell"
    limit: int = 0
    request_concurrency: int = 1
    builds_dir: str = ""
    cache_dir: str = ""
    shell: str = "bash"
    environment: tuple[str, ...] = ()
    output_limit: int = 4096  # KiB, GitLab Runner's default
    kill_timeout: float = 10.0  # seconds between TERM and KILL when a build is stopped
    tls_ca_file: str = ""  # `tls-ca-file`: extra CA certificates that verify the coordinator
    machine: MachineConfig | None = None  # `[runners.machine]`, for the machine executors

    @property
    def uses_spool(self) -> bool:
        """Tell whether this runner takes jobs from the local spool (it has no `url`)."""
        return self.url == ""


@dataclass(frozen=True)
class OtlpConfig:
    """`[telemetry.otlp]`: push metrics and traces over OTLP/HTTP; off while `endpoint` is empty."""

    endpoint: str = ""  # base URL; /v1/metrics and /v1/traces are appended
    headers: tuple[tuple[str, str], ...] = ()
    interval: float = 60.0  # seconds between metric exports
    timeout: float = 10.0  # seconds one export may take, retries included


@dataclass(frozen=True)
class ProfilingConfig:
    """`[profiling]`: continuous profiling into Pyroscope; off while `server_address` is empty."""

    server_address: str = ""  # Pyroscope's base URL, e.g. http://localhost:4040
    application_name: str = "alloy-runner"  # the profiles' service_name
    sample_rate: int = 100  # Hz
    upload_interval: int = 10  # seconds between uploads
    tags: tuple[tuple[str, str], ...] = ()
    basic_auth_username: str = ""
    basic_auth_password: str = ""
    tenant_id: str = ""  # sent as X-Scope-OrgID
    http_headers: tuple[tuple[str, str], ...] = ()

    @property
    def enabled(self) -> bool:
        return self.server_address != ""

    def with_server(self, address: str, where: str) -> ProfilingConfig:
        """Return a copy pushing to `address` (a flag or env value named by `where`; empty: off)."""
        if address and not address.startswith(("http://", "https://")):
            raise ConfigError(f"{where}: expected an http:// or https:// URL, got {address!r}")
        return replace(self, server_address=address)


@dataclass(frozen=True)
class Config:
    """The whole, validated configuration of one runner process."""

    concurrent: int = 1
    check_interval: float = 3.0
    log_level: str = "info"
    log_format: str = "text"
    metrics_server: str = DEFAULT_METRICS_SERVER
    metrics_web_config: Path | None = None  # exporter-toolkit web config: TLS, basic auth
    shutdown_timeout: float = 30.0
    spool_dir: Path = field(default_factory=default_spool_dir)
    spool_recovery: str = "fail"
    runners: tuple[RunnerConfig, ...] = ()
    otlp: OtlpConfig = field(default_factory=OtlpConfig)
    profiling: ProfilingConfig = field(default_factory=ProfilingConfig)
    path: Path | None = None
    warnings: tuple[str, ...] = ()
    overrides: tuple[tuple[str, Any], ...] = ()

    def with_overrides(self, **changes: Any) -> Config:
        """Return a copy with the given fields replaced (flags and env over the file).

        The changes are kept in `overrides`, so that a reload of the file applies them again.
        """
        return replace(self, **changes, overrides=(*self.overrides, *changes.items()))


def embedded_default() -> Config:
    """Return the configuration used when there is no config file."""
    return Config(runners=(RunnerConfig(name=EMBEDDED_RUNNER_NAME),))


class _Table:
    """Typed access to one TOML table that reports the full key on every error."""

    def __init__(self, data: Mapping[str, Any], where: str, prefix: str = "") -> None:
        self._data = data
        self._where = where
        self._prefix = prefix
        self._seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self._prefix}{name}"

    def error(self, name: str, expected: str, value: object) -> ConfigError:
        return ConfigError(
            f"{self._where}: key '{self.key(name)}': expected {expected}, got {value!r}"
        )

    def invalid(self, name: str, message: str) -> ConfigError:
        return ConfigError(f"{self._where}: key '{self.key(name)}': {message}")

    def has(self, name: str) -> bool:
        return name in self._data

    def get(self, names: tuple[str, ...], default: T, check: Callable[[str, object], T]) -> T:
        present = [n for n in names if n in self._data]
        self._seen.update(names)
        if len(present) > 1:
            raise ConfigError(
                f"{self._where}: keys {' and '.join(map(self.key, present))} are aliases; "
                "give only one"
            )
        if not present:
            return default
        return check(present[0], self._data[present[0]])

    def integer(self, name: str, default: int, minimum: int = 0) -> int:
        def check(key: str, value: object) -> int:
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise self.error(key, f"an integer >= {minimum}", value)
            return value

        return self.get((name,), default, check)

    def seconds(self, name: str, default: float) -> float:
        def check(key: str, value: object) -> float:
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise self.error(key, "a number of seconds >= 0", value)
            return float(value)

        return self.get((name,), default, check)

    def string(self, *names: str, default: str, choices: tuple[str, ...] = ()) -> str:
        def check(key: str, value: object) -> str:
            if not isinstance(value, str):
                raise self.error(key, "a string", value)
            if choices and value not in choices:
                raise self.error(key, "one of " + ", ".join(choices), value)
            return value

        return self.get(names, default, check)

    def strings(self, name: str) -> tuple[str, ...]:
        def check(key: str, value: object) -> tuple[str, ...]:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise self.error(key, "a list of strings", value)
            return tuple(value)

        return self.get((name,), (), check)

    def positive_seconds(self, name: str, default: float) -> float:
        def check(key: str, value: object) -> float:
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise self.error(key, "a number of seconds > 0", value)
            return float(value)

        return self.get((name,), default, check)

    def string_table(self, name: str) -> tuple[tuple[str, str], ...]:
        def check(key: str, value: object) -> tuple[tuple[str, str], ...]:
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise self.error(key, "a table of strings", value)
            return tuple(value.items())

        return self.get((name,), (), check)

    def table(self, name: str) -> _Table:
        value = self._data.get(name, {})
        self._seen.add(name)
        if not isinstance(value, dict):
            raise self.error(name, f"a table ([{self.key(name)}])", value)
        return _Table(value, self._where, f"{self.key(name)}.")

    def tables(self, name: str) -> list[_Table]:
        value = self._data.get(name, [])
        self._seen.add(name)
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(name, f"an array of tables ([[{self.key(name)}]])", value)
        return [_Table(v, self._where, f"{self.key(name)}[{i}].") for i, v in enumerate(value)]

    def unknown(self) -> list[str]:
        return [
            f"{self._where}: unknown key '{self.key(k)}' is ignored"
            for k in self._data
            if k not in self._seen
        ]


def _runner(table: _Table, index: int, nested: list[_Table]) -> RunnerConfig:
    name = table.string("name", default=f"runner-{index}")
    executor = table.string("executor", default="shell", choices=EXECUTORS)
    machine = _machine(table, executor, nested)
    url = table.string("url", default="")
    if url and not url.startswith(("http://", "https://")):
        raise table.error("url", "an http:// or https:// URL of the coordinator", url)
    token = table.string("token", default="")
    if url and not token:
        raise table.error("token", "the runner's token (a runner with a url needs one)", token)
    return RunnerConfig(
        name=name,
        url=url,
        token=token,
        tls_ca_file=table.string("tls-ca-file", default=""),
        executor=executor,
        machine=machine,
        limit=table.integer("limit", 0),
        request_concurrency=table.integer("request_concurrency", 1, minimum=1),
        builds_dir=table.string("builds_dir", default=""),
        cache_dir=table.string("cache_dir", default=""),
        shell=table.string("shell", default="bash", choices=("bash", "sh")),
        environment=table.strings("environment"),
        output_limit=table.integer("output_limit", 4096, minimum=1),
        kill_timeout=table.seconds("kill_timeout", 10.0),
    )


_MACHINE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")


def _machine(runner: _Table, executor: str, nested: list[_Table]) -> MachineConfig | None:
    if not runner.has("machine") and executor not in MACHINE_EXECUTORS:
        return None
    table = runner.table("machine")
    nested.append(table)
    name = table.string("MachineName", default="")
    if executor in MACHINE_EXECUTORS or name:
        bare = name.replace("%s", "x", 1)
        if name.count("%s") != 1 or "%" in bare or not _MACHINE_NAME.fullmatch(bare):
            raise table.error(
                "MachineName", "a machine name with exactly one %s, of letters, digits, . and -",
                name,
            )  # fmt: skip
    driver = table.string("MachineDriver", default="")
    if executor in MACHINE_EXECUTORS and not driver:
        raise table.error("MachineDriver", "a docker-machine driver name, or local", driver)
    periods = table.tables("autoscaling")
    nested.extend(periods)
    return MachineConfig(
        machine_driver=driver,
        machine_name=name,
        machine_options=table.strings("MachineOptions"),
        idle_count=table.integer("IdleCount", 0),
        idle_time=table.seconds("IdleTime", 0.0),
        max_builds=table.integer("MaxBuilds", 0),
        autoscaling=tuple(_autoscaling(t) for t in periods),
    )


def _autoscaling(table: _Table) -> AutoscalingConfig:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from alloy_runner.machines.cron import parse_cron

    periods = table.strings("Periods")
    if not periods:
        raise table.error("Periods", "a non-empty list of cron expressions", list(periods))
    for period in periods:
        try:
            parse_cron(period)
        except ConfigError as exc:
            raise table.invalid("Periods", str(exc)) from None
    timezone = table.string("Timezone", default="")
    if timezone:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise table.error("Timezone", "an IANA time zone name", timezone) from None
    return AutoscalingConfig(
        periods=periods,
        timezone=timezone,
        idle_count=table.integer("IdleCount", 0),
        idle_time=table.seconds("IdleTime", 0.0),
    )


def _otlp(table: _Table) -> OtlpConfig:
    endpoint = table.string("endpoint", default="")
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise table.error("endpoint", "an http:// or https:// URL", endpoint)
    return OtlpConfig(
        endpoint=endpoint,
        headers=table.string_table("headers"),
        interval=table.positive_seconds("interval", 60.0),
        timeout=table.positive_seconds("timeout", 10.0),
    )


_TAG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_RESERVED_TAGS = ("service_name",)  # set from application_name


def _profiling(table: _Table) -> ProfilingConfig:
    server = table.string("server_address", default="")
    if server and not server.startswith(("http://", "https://")):
        raise table.error("server_address", "an http:// or https:// URL", server)
    name = table.string("application_name", default="alloy-runner")
    if not name.strip():
        raise table.error("application_name", "a non-empty string", name)
    tags = table.string_table("tags")
    for key, _ in tags:
        if not _TAG_NAME.fullmatch(key) or key.startswith("__") or key in _RESERVED_TAGS:
            raise table.error(
                "tags", "tag names like [A-Za-z_][A-Za-z0-9_.]* (not __* or service_name)", key
            )
    headers = table.string_table("http_headers")
    for key, _ in headers:
        if not _HEADER_NAME.fullmatch(key):
            raise table.error("http_headers", "HTTP header names", key)
    return ProfilingConfig(
        server_address=server,
        application_name=name,
        sample_rate=table.integer("sample_rate", 100, minimum=1),
        upload_interval=table.integer("upload_interval", 10, minimum=1),
        tags=tags,
        basic_auth_username=table.string("basic_auth_username", default=""),
        basic_auth_password=table.string("basic_auth_password", default=""),
        tenant_id=table.string("tenant_id", default=""),
        http_headers=headers,
    )


def parse_config(text: str, where: str) -> Config:
    """Parse and validate the text of a config.toml; `where` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: TOML syntax error: {exc}") from None
    top = _Table(data, where)
    spool = top.string("spool_dir", default="")
    web_config = top.string("metrics_web_config", default="")
    runner_tables = top.tables("runners")
    telemetry = top.table("telemetry")
    otlp_table = telemetry.table("otlp")
    profiling_table = top.table("profiling")
    nested: list[_Table] = []  # [runners.machine] and its periods, for unknown keys
    runners = tuple(_runner(t, i, nested) for i, t in enumerate(runner_tables))
    names = [r.name for r in runners]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"{where}: two [[runners]] are named {name!r}; names must be unique")
    config = Config(
        concurrent=top.integer("concurrent", 1, minimum=1),
        check_interval=top.seconds("check_interval", 3.0),
        log_level=top.string("log_level", default="info", choices=LOG_LEVELS),
        log_format=top.string("log_format", default="text", choices=LOG_FORMATS),
        metrics_server=top.string(
            "metrics_server", "listen_address", default=DEFAULT_METRICS_SERVER
        ),
        metrics_web_config=Path(web_config).expanduser() if web_config else None,
        shutdown_timeout=top.seconds("shutdown_timeout", 30.0),
        spool_dir=Path(spool).expanduser() if spool else default_spool_dir(),
        spool_recovery=top.string("spool_recovery", default="fail", choices=("fail", "requeue")),
        runners=runners,
        otlp=_otlp(otlp_table),
        profiling=_profiling(profiling_table),
    )
    warnings = top.unknown()
    for table in (*runner_tables, *nested, telemetry, otlp_table, profiling_table):
        warnings += table.unknown()
    return replace(config, warnings=tuple(warnings))


def load_config(path: Path) -> Config:
    """Read and validate config.toml at `path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    config = replace(parse_config(text, str(path)), path=path)
    web_config = config.metrics_web_config
    if web_config is not None and not web_config.is_absolute():
        # A path in the file is relative to the file, as the paths in a web config are.
        config = replace(config, metrics_web_config=path.parent / web_config)
    return config


def find_and_load(explicit: Path | None) -> Config:
    """Load `explicit`, else `$CONFIG_FILE`, else the default path, else the embedded default."""
    if explicit is not None:
        return load_config(explicit)
    env = os.environ.get("CONFIG_FILE")
    if env:
        return load_config(Path(env))
    path = default_config_path()
    if path.is_file():
        return load_config(path)
    return embedded_default()
