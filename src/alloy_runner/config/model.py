"""The configuration model: frozen dataclasses with their defaults."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from alloy_runner.config.address import is_http_url
from alloy_runner.config.paths import default_builds_dir, default_cache_dir, default_spool_dir
from alloy_runner.exceptions import ConfigError

LOG_LEVELS = ("debug", "info", "warn", "warning", "error", "fatal", "panic")
LOG_FORMATS = ("runner", "text", "json")  # runner: GitLab's default, like text
DEFAULT_METRICS_SERVER = "localhost:9252"
EMBEDDED_RUNNER_NAME = "embedded"
EXEC_RUNNER_NAME = "exec"


class ExecutorName(StrEnum):
    """A runner's `executor`: what runs its builds."""

    SHELL = "shell"
    DOCKER = "docker"
    DOCKER_MACHINE = "docker+machine"
    DOCKER_SSH_MACHINE = "docker-ssh+machine"


class SpoolRecovery(StrEnum):
    """`spool_recovery`: what a runner does with a job whose runner process died."""

    FAIL = "fail"
    REQUEUE = "requeue"


MACHINE_EXECUTORS = (ExecutorName.DOCKER_MACHINE, ExecutorName.DOCKER_SSH_MACHINE)
EXECUTORS = tuple(ExecutorName)
PULL_POLICIES = ("always", "if-not-present", "never")


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
class DockerConfig:
    """`[runners.docker]`: the containers of the docker and docker+machine executors.

    The keys are GitLab Runner's; sizes are bytes and `cpus` a number of CPUs.
    """

    image: str = ""  # the image of a job without `image:`
    privileged: bool = False
    volumes: tuple[str, ...] = ()  # "/container/path" or "/host:/container[:ro|rw]"
    pull_policy: tuple[str, ...] = ("always",)  # tried in order until one gives the image
    allowed_images: tuple[str, ...] = ()  # patterns; empty: any
    allowed_pull_policies: tuple[str, ...] = ()  # empty: those of `pull_policy`
    network_mode: str = ""  # empty: a network per build
    memory: int = 0
    cpus: float = 0.0
    shm_size: int = 0
    dns: tuple[str, ...] = ()
    extra_hosts: tuple[str, ...] = ()  # "host:ip"
    host: str = ""  # the engine's address; empty: $DOCKER_HOST, else the local socket
    tls_verify: bool = False
    tls_cert_path: str = ""  # holds ca.pem, cert.pem and key.pem
    disable_cache: bool = False  # no /cache volume kept between builds
    wait_for_services_timeout: float = 30.0


@dataclass(frozen=True)
class HooksConfig:
    """The operator's scripts around a job's stages (GitLab's keys; each one shell string)."""

    pre_get_sources_script: str = ""  # before the repository is fetched
    post_get_sources_script: str = ""  # after it is checked out
    pre_build_script: str = ""  # before the job's before_script and script
    post_build_script: str = ""  # after its script succeeded, before after_script


@dataclass(frozen=True)
class CacheS3Config:
    """`[runners.cache.s3]`: where a distributed cache keeps its archives."""

    server_address: str = ""  # host[:port]; empty: the AWS endpoint of the bucket's region
    access_key: str = ""
    secret_key: str = ""
    session_token: str = ""
    bucket_name: str = ""
    bucket_location: str = ""
    insecure: bool = False  # plain HTTP to server_address
    authentication_type: str = "access-key"  # or "iam": the SDK's own credential chain


@dataclass(frozen=True)
class CacheConfig:
    """`[runners.cache]`: an empty type keeps caches in cache_dir on this host only."""

    type: str = ""  # "" or "s3"
    path: str = ""  # a prefix of every object name
    shared: bool = False  # one cache for every runner, not one per runner token
    max_uploaded_archive_size: int = 0  # bytes; 0: no limit
    s3: CacheS3Config = field(default_factory=CacheS3Config)


@dataclass(frozen=True)
class QueuingDuration:
    """`[[runners.monitoring.job_queuing_durations]]`: how long a job may wait in the queue."""

    periods: tuple[str, ...]  # cron expressions, as [[runners.machine.autoscaling]] Periods
    timezone: str = ""  # IANA name; empty: local time
    threshold: float = 0.0  # seconds; 0: not watched
    jobs_running_for_project: str = ""  # a regular expression; empty: every job


@dataclass(frozen=True)
class RunnerConfig:
    """One `[[runners]]` entry."""

    name: str
    url: str = ""
    token: str = ""
    executor: ExecutorName = ExecutorName.SHELL
    limit: int = 0
    request_concurrency: int = 1
    builds_dir: Path = field(default_factory=default_builds_dir)  # `~` expanded, default applied
    cache_dir: Path = field(default_factory=default_cache_dir)
    shell: str = "bash"
    environment: tuple[str, ...] = ()
    output_limit: int = 4096  # KiB, GitLab Runner's default
    kill_timeout: float = 10.0  # seconds between TERM and KILL when a build is stopped
    tls_ca_file: str = ""  # `tls-ca-file`: extra CA certificates that verify the coordinator
    machine: MachineConfig | None = None  # `[runners.machine]`, for the machine executors
    docker: DockerConfig = field(default_factory=DockerConfig)  # `[runners.docker]`
    hooks: HooksConfig = field(default_factory=HooksConfig)
    clone_url: str = ""  # scheme and host that replace the coordinator's in the repository URL
    debug_trace_disabled: bool = False  # refuse CI_DEBUG_TRACE=true
    feature_flags: tuple[tuple[str, bool], ...] = ()  # `[runners.feature_flags]`
    cache: CacheConfig = field(default_factory=CacheConfig)  # `[runners.cache]`
    token_obtained_at: datetime | None = None  # written by register, as GitLab does
    token_expires_at: datetime | None = None  # None: the token does not expire
    job_queuing_durations: tuple[QueuingDuration, ...] = ()  # the last matching period wins

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
        if address and not is_http_url(address):
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
    metric_names: str = "alloyci"  # alloyci | gitlab | both: the names /metrics exposes
    shutdown_timeout: float = 30.0
    spool_dir: Path = field(default_factory=default_spool_dir)
    spool_recovery: SpoolRecovery = SpoolRecovery.FAIL
    runners: tuple[RunnerConfig, ...] = ()
    otlp: OtlpConfig = field(default_factory=OtlpConfig)
    profiling: ProfilingConfig = field(default_factory=ProfilingConfig)
    path: Path | None = None
    warnings: tuple[str, ...] = ()
    overrides: tuple[tuple[str, Any], ...] = ()
    user: str = ""  # `user` / `run --user`: shell jobs run as this user (the runner is root)
    service: str = "alloy-runner"  # `run --service`: the name the start-up line gives

    def with_overrides(self, **changes: Any) -> Config:
        """Return a copy with the given fields replaced (flags and env over the file).

        The changes are kept in `overrides`, so that a reload of the file applies them again.
        """
        return replace(self, **changes, overrides=(*self.overrides, *changes.items()))


METRIC_NAMES = ("alloyci", "gitlab", "both")


def embedded_default() -> Config:
    """Return the configuration used when there is no config file."""
    return Config(runners=(RunnerConfig(name=EMBEDDED_RUNNER_NAME),))


def exec_runner(builds_dir: Path | None = None) -> RunnerConfig:
    """Return the runner of `exec`: it builds in `builds_dir`, else in the default's `exec/`."""
    return RunnerConfig(
        name=EXEC_RUNNER_NAME,
        builds_dir=builds_dir if builds_dir is not None else default_builds_dir() / "exec",
    )
