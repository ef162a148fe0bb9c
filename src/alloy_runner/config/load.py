"""Load config.toml into a `Config`; every error names the file and the key."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from alloy_runner.config import gitlab_keys
from alloy_runner.config.address import is_http_url
from alloy_runner.config.model import (
    DEFAULT_METRICS_SERVER,
    EXECUTORS,
    LOG_FORMATS,
    LOG_LEVELS,
    MACHINE_EXECUTORS,
    METRIC_NAMES,
    AutoscalingConfig,
    Config,
    DockerConfig,
    ExecutorName,
    MachineConfig,
    OtlpConfig,
    ProfilingConfig,
    QueuingDuration,
    RunnerConfig,
    SpoolRecovery,
    embedded_default,
)
from alloy_runner.config.paths import (
    default_builds_dir,
    default_cache_dir,
    default_config_path,
    default_spool_dir,
)
from alloy_runner.config.table import MAX_SECONDS, Table
from alloy_runner.exceptions import ConfigError

# Upper bounds of the counts in config.toml: far above any real runner, and low enough that
# no value makes the process allocate or loop without end (docs/configuration.md).
MAX_BUILDS = 10_000  # concurrent, limit
MAX_REQUEST_CONCURRENCY = 100
MAX_OUTPUT_LIMIT_KB = 16 * 1024 * 1024  # 16 GiB of job log: a counter, nothing is allocated
MAX_IDLE_COUNT = 1_000
MAX_MACHINE_BUILDS = 1_000_000
MAX_IDLE_TIME = 30 * 24 * 3600.0
MAX_SAMPLE_RATE = 1_000


def _runner(table: Table, index: int, nested: list[Table], warnings: list[str]) -> RunnerConfig:
    name = table.string("name", default=f"runner-{index}")
    if not name or _CONTROL.search(name):
        raise table.error("name", "a name without control characters (newline, NUL, ...)", name)
    executor = ExecutorName(table.string("executor", default="shell", choices=EXECUTORS))
    machine = _machine(table, executor, nested)
    docker = _docker(table, nested)
    url = table.string("url", default="")
    if url and not is_http_url(url):
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
        docker=docker,
        limit=table.integer("limit", 0, maximum=MAX_BUILDS),
        request_concurrency=table.integer(
            "request_concurrency", 1, minimum=1, maximum=MAX_REQUEST_CONCURRENCY
        ),
        builds_dir=_directory(table, "builds_dir", default_builds_dir),
        cache_dir=_directory(table, "cache_dir", default_cache_dir),
        shell=table.string("shell", default="bash", choices=("bash", "sh")),
        environment=_environment(table),
        output_limit=table.integer("output_limit", 4096, minimum=1, maximum=MAX_OUTPUT_LIMIT_KB),
        kill_timeout=table.seconds("kill_timeout", 10.0),
        **_gitlab_runner_keys(table, nested, warnings, executor),
        job_queuing_durations=_queuing(table, nested),
    )


def _directory(table: Table, key: str, default: Callable[[], Path]) -> Path:
    """Return the directory `key` names, `~` expanded, or `default()` when it is not set."""
    value = table.string(key, default="")
    return Path(value).expanduser() if value else default()


def _docker(runner: Table, nested: list[Table]) -> DockerConfig:
    from alloy_runner.config.docker import read_docker

    table = runner.table("docker")
    nested.append(table)
    return read_docker(table)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _environment(table: Table) -> tuple[str, ...]:
    entries = table.strings("environment")
    for entry in entries:
        name, sep, value = entry.partition("=")
        if not sep or not _ENV_NAME.fullmatch(name) or "\0" in value:
            raise table.error("environment", "a list of KEY=VALUE strings", entry)
    return entries


def _gitlab_runner_keys(
    table: Table, nested: list[Table], warnings: list[str], executor: ExecutorName
) -> dict[str, Any]:
    """The GitLab Runner keys of one [[runners]]: hooks, cache, flags, token times; then policy."""
    flags_table = table.table("feature_flags")
    cache_table = table.table("cache")
    nested += (flags_table, cache_table)
    expires_at = gitlab_keys.token_time(table, "token_expires_at")
    flags = gitlab_keys.feature_flags(flags_table, executor, warnings)
    gitlab_keys.environment_flags(table, executor, flags)
    keys = {
        "hooks": gitlab_keys.hooks(table),
        "clone_url": gitlab_keys.clone_url(table),
        "debug_trace_disabled": table.boolean("debug_trace_disabled", False),
        "feature_flags": flags,
        "cache": gitlab_keys.cache(cache_table, nested),
        "token_obtained_at": gitlab_keys.token_time(table, "token_obtained_at"),
        "token_expires_at": expires_at,
    }
    warnings += gitlab_keys.runner_policy(table)
    warnings += gitlab_keys.token_expiry(table, expires_at)
    return keys


_GO_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)(h|m|s|ms))+")
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def _time_zone(table: Table, key: str) -> str:
    """Read an IANA time zone name ("" for the host's zone); refuse one that is not known."""
    timezone = table.string(key, default="")
    if not timezone:
        return ""
    # zoneinfo (and the sysconfig it reads its path from) loads only for a zone named.
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise table.error(key, "an IANA time zone name", timezone) from None
    return timezone


def _queuing(runner: Table, nested: list[Table]) -> tuple[QueuingDuration, ...]:
    """Read `[[runners.monitoring.job_queuing_durations]]` (GitLab Runner's keys)."""
    from alloy_runner.machines.cron import parse_cron

    monitoring = runner.table("monitoring")
    entries = monitoring.tables("job_queuing_durations")
    nested += [monitoring, *entries]
    out = []
    for table in entries:
        periods = table.strings("periods")
        for period in periods:
            try:
                parse_cron(period)
            except ConfigError as exc:
                raise table.invalid("periods", str(exc)) from None
        timezone = _time_zone(table, "timezone")
        pattern = table.string("jobs_running_for_project", default="")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise table.invalid("jobs_running_for_project", str(exc)) from None
        threshold = table.get(("threshold",), 0.0, _duration(table))
        out.append(QueuingDuration(periods or ("* * * * * * *",), timezone, threshold, pattern))
    return tuple(out)


def _duration(table: Table) -> Callable[[str, object], float]:
    """Check a duration: seconds as a number, or a Go duration string such as "5m" or "1h30m"."""

    def check(key: str, value: object) -> float:
        seconds = -1.0
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
        elif isinstance(value, str) and _GO_DURATION.fullmatch(value):
            parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", value)
            seconds = sum(float(n) * _GO_UNITS[unit] for n, unit in parts)
        if not 0 <= seconds <= MAX_SECONDS:  # nan and inf fail too
            raise table.error(key, 'a duration (seconds, or a string such as "5m")', value)
        return seconds

    return check


_MACHINE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")


def _machine(runner: Table, executor: ExecutorName, nested: list[Table]) -> MachineConfig | None:
    if not runner.has("machine") and executor not in MACHINE_EXECUTORS:
        return None
    table = runner.table("machine")
    nested.append(table)
    name = table.string("MachineName", default="")
    if executor in MACHINE_EXECUTORS or name:
        bare = name.replace("%s", "x", 1)
        if name.count("%s") != 1 or "%" in bare or not _MACHINE_NAME.fullmatch(bare):
            raise table.error(
                "MachineName",
                "a machine name with exactly one %s, of letters, digits, . and -",
                name,
            )
    driver = table.string("MachineDriver", default="")
    if executor in MACHINE_EXECUTORS and not driver:
        raise table.error("MachineDriver", "a docker-machine driver name, or local", driver)
    periods = table.tables("autoscaling")
    nested.extend(periods)
    return MachineConfig(
        machine_driver=driver,
        machine_name=name,
        machine_options=table.strings("MachineOptions"),
        idle_count=table.integer("IdleCount", 0, maximum=MAX_IDLE_COUNT),
        idle_time=table.seconds("IdleTime", 0.0, maximum=MAX_IDLE_TIME),
        max_builds=table.integer("MaxBuilds", 0, maximum=MAX_MACHINE_BUILDS),
        autoscaling=tuple(_autoscaling(t) for t in periods),
    )


def _autoscaling(table: Table) -> AutoscalingConfig:
    from alloy_runner.machines.cron import parse_cron

    periods = table.strings("Periods")
    if not periods:
        raise table.error("Periods", "a non-empty list of cron expressions", list(periods))
    for period in periods:
        try:
            parse_cron(period)
        except ConfigError as exc:
            raise table.invalid("Periods", str(exc)) from None
    timezone = _time_zone(table, "Timezone")
    return AutoscalingConfig(
        periods=periods,
        timezone=timezone,
        idle_count=table.integer("IdleCount", 0, maximum=MAX_IDLE_COUNT),
        idle_time=table.seconds("IdleTime", 0.0, maximum=MAX_IDLE_TIME),
    )


def _otlp(table: Table) -> OtlpConfig:
    endpoint = table.string("endpoint", default="")
    if endpoint and not is_http_url(endpoint):
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


def _profiling(table: Table) -> ProfilingConfig:
    server = table.string("server_address", default="")
    if server and not is_http_url(server):
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
        sample_rate=table.integer("sample_rate", 100, minimum=1, maximum=MAX_SAMPLE_RATE),
        upload_interval=table.integer("upload_interval", 10, minimum=1, maximum=3600),
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
    except RecursionError:  # tomllib recurses per level of nesting
        raise ConfigError(f"{where}: arrays or tables are nested too deeply") from None
    top = Table(data, where)
    spool = top.string("spool_dir", default="")
    web_config = top.string("metrics_web_config", default="")
    runner_tables = top.tables("runners")
    telemetry = top.table("telemetry")
    otlp_table = telemetry.table("otlp")
    profiling_table = top.table("profiling")
    nested: list[Table] = []  # [runners.machine] and its periods, for unknown keys
    warnings: list[str] = []
    runners = tuple(_runner(t, i, nested, warnings) for i, t in enumerate(runner_tables))
    names = [r.name for r in runners]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"{where}: two [[runners]] are named {name!r}; names must be unique")
    config = Config(
        concurrent=top.integer("concurrent", 1, minimum=1, maximum=MAX_BUILDS),
        check_interval=top.seconds("check_interval", 3.0, maximum=3600.0),
        log_level=top.string("log_level", default="info", choices=LOG_LEVELS),
        log_format=top.string("log_format", default="text", choices=LOG_FORMATS),
        metrics_server=top.string(
            "metrics_server", "listen_address", default=DEFAULT_METRICS_SERVER
        ),
        metrics_web_config=Path(web_config).expanduser() if web_config else None,
        metric_names=top.string("metric_names", default="alloyci", choices=METRIC_NAMES),
        shutdown_timeout=top.seconds("shutdown_timeout", 30.0),
        spool_dir=Path(spool).expanduser() if spool else default_spool_dir(),
        spool_recovery=SpoolRecovery(
            top.string("spool_recovery", default="fail", choices=tuple(SpoolRecovery))
        ),
        runners=runners,
        otlp=_otlp(otlp_table),
        profiling=_profiling(profiling_table),
        user=top.string("user", default=""),
    )
    warnings += gitlab_keys.top_policy(top)
    warnings += top.unknown()
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
