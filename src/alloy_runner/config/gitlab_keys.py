"""GitLab Runner's config.toml keys: the hooks, the cache, feature flags, and what is refused.

The rule: a key that would change what jobs run is implemented or refused (exit 2);
a key that changes nothing observable may be warned and ignored; the bookkeeping
keys GitLab writes itself (`id`, `token_obtained_at`, `token_expires_at`) are read
silently.
"""

from __future__ import annotations

import datetime
from urllib.parse import urlsplit

from alloy_runner.config.model import CacheConfig, CacheS3Config, HooksConfig
from alloy_runner.config.table import Table

# Keys of [[runners]] that GitLab Runner knows and that would change what a job runs.
REFUSED_RUNNER_KEYS = (
    "proxy_exec",
    "prepare_timeout",
    "get_sources_timeout",
    "safe_directory_checkout",
    "clean_git_config",
    "custom_build_dir",
    "referees",
    "artifact",
    "use_slot_cgroups",
    "slot_cgroup_template",
    "instance",
    "ssh",
    "parallels",
    "virtualbox",
    "kubernetes",
    "custom",
    "autoscaler",
    "step_runner_image",
    "tls-cert-file",
    "tls-key-file",
    "pre_clone_script",
    "post_clone_script",
    "experimental",
)
# Keys of [[runners]] that tune nothing a job or an operator can observe here.
WARNED_RUNNER_KEYS = (
    "labels",
    "monitoring",
    "strict_check_interval",
    "unhealthy_requests_limit",
    "unhealthy_interval",
    "job_status_final_update_retry_limit",
)
BOOKKEEPING_KEYS = ("id", "token_obtained_at", "token_expires_at", "system_id")

REFUSED_TOP_KEYS: tuple[str, ...] = ()
WARNED_TOP_KEYS = {
    "session_server": "the interactive web terminal is not supported; it is ignored",
    "sentry_dsn": "errors are not sent to Sentry; it is ignored",
    "connection_max_age": "connections are kept by the HTTP client; it is ignored",
    "labels": "runner labels are not reported; it is ignored",
    "machine": "it is ignored",
    "experimental": "it is ignored",
}

# GitLab Runner's feature flags (helpers/featureflags): accepted by name.
FEATURE_FLAGS = frozenset(
    [
        "FF_NETWORK_PER_BUILD",
        "FF_USE_LEGACY_KUBERNETES_EXECUTION_STRATEGY",
        "FF_USE_DIRECT_DOWNLOAD",
        "FF_USE_FASTZIP",
        "FF_DISABLE_UMASK_FOR_DOCKER_EXECUTOR",
        "FF_ENABLE_BASH_EXIT_CODE_CHECK",
        "FF_USE_WINDOWS_LEGACY_PROCESS_STRATEGY",
        "FF_USE_LEGACY_BASH_EVAL",
        "FF_USE_POWERSHELL_PATH_RESOLVER",
        "FF_USE_DYNAMIC_TRACE_FORCE_SEND_INTERVAL",
        "FF_SCRIPT_SECTIONS",
        "FF_ENABLE_JOB_CLEANUP",
        "FF_KUBERNETES_HONOR_ENTRYPOINT",
        "FF_POSIXLY_CORRECT_ESCAPES",
        "FF_RESOLVE_FULL_TLS_CHAIN",
        "FF_DISABLE_POWERSHELL_STDIN",
        "FF_USE_POD_ACTIVE_DEADLINE_SECONDS",
        "FF_USE_ADVANCED_POD_SPEC_CONFIGURATION",
        "FF_SECRET_RESOLVING_FAILS_IF_MISSING",
        "FF_PRINT_POD_EVENTS",
        "FF_USE_GIT_BUNDLE_URIS",
        "FF_USE_GIT_NATIVE_CLONE",
        "FF_USE_DUMB_INIT_WITH_KUBERNETES_EXECUTOR",
        "FF_USE_INIT_WITH_DOCKER_EXECUTOR",
        "FF_LOG_IMAGES_CONFIGURED_FOR_JOB",
        "FF_USE_DOCKER_AUTOSCALER_DIAL_STDIO",
        "FF_CLEAN_UP_FAILED_CACHE_EXTRACT",
        "FF_USE_WINDOWS_JOB_OBJECT",
        "FF_TIMESTAMPS",
        "FF_DISABLE_AUTOMATIC_TOKEN_ROTATION",
        "FF_USE_LEGACY_GCS_CACHE_ADAPTER",
        "FF_DISABLE_UMASK_FOR_KUBERNETES_EXECUTOR",
        "FF_USE_LEGACY_S3_CACHE_ADAPTER",
        "FF_GIT_URLS_WITHOUT_TOKENS",
        "FF_WAIT_FOR_POD_TO_BE_REACHABLE",
        "FF_MASK_ALL_DEFAULT_TOKENS",
        "FF_EXPORT_HIGH_CARDINALITY_METRICS",
        "FF_USE_FLEETING_ACQUIRE_HEARTBEATS",
        "FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY",
        "FF_USE_ADAPTIVE_REQUEST_CONCURRENCY",
        "FF_USE_GITALY_CORRELATION_ID",
        "FF_USE_GIT_PROACTIVE_AUTH",
        "FF_HASH_CACHE_KEYS",
        "FF_ENABLE_JOB_INPUTS_INTERPOLATION",
        "FF_USE_JOB_ROUTER",
        "FF_SCRIPT_TO_STEP_MIGRATION",
        "FF_USE_PARALLEL_CACHE_TRANSFER",
        "FF_USE_PARALLEL_ARTIFACT_TRANSFER",
        "FF_CONCRETE",
        "FF_SUSPENDABLE_ENVIRONMENTS",
        "FF_USE_NATIVE_CONTAINER_STOP",
    ]
)
# The flags this runner honours; every other one is accepted with one warning.
HONOURED_FLAGS = ("FF_ENABLE_JOB_CLEANUP", "FF_DISABLE_AUTOMATIC_TOKEN_ROTATION")


def hooks(table: Table) -> HooksConfig:
    """Read the four hook scripts of one [[runners]] table."""
    return HooksConfig(
        pre_get_sources_script=table.string("pre_get_sources_script", default=""),
        post_get_sources_script=table.string("post_get_sources_script", default=""),
        pre_build_script=table.string("pre_build_script", default=""),
        post_build_script=table.string("post_build_script", default=""),
    )


def clone_url(table: Table) -> str:
    url = table.string("clone_url", default="")
    if url and (not url.startswith(("http://", "https://")) or not urlsplit(url).hostname):
        raise table.error("clone_url", "an http:// or https:// URL", url)
    return url


def feature_flags(table: Table, warnings: list[str]) -> tuple[tuple[str, bool], ...]:
    """Read [runners.feature_flags]; warn once for each flag that changes nothing here."""
    flags = []
    for name in table.unread():
        value = table.boolean(name, False)
        if name not in FEATURE_FLAGS:
            raise table.error(name, "one of GitLab Runner's feature flag names", name)
        if name not in HONOURED_FLAGS:
            warnings.append(
                f"{table.where}: key '{table.key(name)}': this feature flag has no effect "
                "on this runner; it is ignored"
            )
        flags.append((name, value))
    return tuple(flags)


def cache(table: Table, nested: list[Table]) -> CacheConfig:
    """Read [runners.cache] and [runners.cache.s3]."""
    kind = table.string("Type", default="", choices=("", "s3"))
    s3_table = table.table("s3")
    nested.append(s3_table)
    for other in ("gcs", "azure"):
        if table.has(other):
            raise table.invalid(other, "only the s3 cache type is supported")
    s3 = CacheS3Config(
        server_address=s3_table.string("ServerAddress", default=""),
        access_key=s3_table.string("AccessKey", default=""),
        secret_key=s3_table.string("SecretKey", default=""),
        session_token=s3_table.string("SessionToken", default=""),
        bucket_name=s3_table.string("BucketName", default=""),
        bucket_location=s3_table.string("BucketLocation", default=""),
        insecure=s3_table.boolean("Insecure", False),
        authentication_type=s3_table.string(
            "AuthenticationType", default="access-key", choices=("access-key", "iam")
        ),
    )
    if kind == "s3" and not s3.bucket_name:
        raise s3_table.error("BucketName", "the bucket of the distributed cache", "")
    refuse(s3_table, ("ServerSideEncryption", "ServerSideEncryptionKeyID", "RoleARN"))
    refuse(s3_table, ("UploadRoleARN", "PathStyle", "DualStack", "Accelerate"))
    return CacheConfig(
        type=kind,
        path=table.string("Path", default="").strip("/"),
        shared=table.boolean("Shared", False),
        max_uploaded_archive_size=table.integer("MaxUploadedArchiveSize", 0, maximum=2**53),
        s3=s3,
    )


def token_time(table: Table, name: str) -> datetime.datetime | None:
    """Read `token_obtained_at` or `token_expires_at` (a TOML datetime; GitLab's zero: none)."""

    def check(key: str, value: object) -> datetime.datetime | None:
        if not isinstance(value, datetime.datetime):
            raise table.error(key, "a TOML date-time", value)
        if value.year <= 1:  # Go's zero time: the token does not expire
            return None
        return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)

    return table.get((name,), None, check)


def token_expiry(table: Table, expires_at: datetime.datetime | None) -> list[str]:
    """Warn about a runner token past its `token_expires_at`: the coordinator refuses it."""
    if expires_at is None or expires_at > datetime.datetime.now(datetime.UTC):
        return []
    return [
        f"{table.where}: key '{table.key('token_expires_at')}': the runner's token expired at "
        f"{expires_at.isoformat()}; register the runner again"
    ]


def refuse(table: Table, names: tuple[str, ...]) -> None:
    """Exit 2 (ConfigError) if `table` has one of `names` that nothing has read."""
    for name in names:
        if name in table.unread():
            raise table.invalid(
                name, "this GitLab Runner key would change what jobs run, and is not supported"
            )


def runner_policy(table: Table) -> list[str]:
    """Refuse, warn about or silently accept the GitLab keys of a [[runners]] no one read."""
    warnings = []
    refuse(table, REFUSED_RUNNER_KEYS)
    for name in table.unread():
        if name in WARNED_RUNNER_KEYS:
            warnings.append(f"{table.where}: key '{table.key(name)}' has no effect here; ignored")
            table.consume(name)
        elif name in BOOKKEEPING_KEYS:
            table.consume(name)
    return warnings


def top_policy(table: Table) -> list[str]:
    """The same for the top level of config.toml."""
    refuse(table, REFUSED_TOP_KEYS)
    warnings = []
    for name in table.unread():
        if name in WARNED_TOP_KEYS:
            warnings.append(f"{table.where}: key '{name}': {WARNED_TOP_KEYS[name]}")
            table.consume(name)
    return warnings
