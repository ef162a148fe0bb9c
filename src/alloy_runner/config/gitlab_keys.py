"""GitLab Runner's config.toml keys: the hooks, the cache, feature flags, and what is refused.

Feature flags are treated flag by flag: see config/feature_flags.py.

The rule: a key that would change what jobs run is implemented or refused (exit 2);
a key that changes nothing observable may be warned and ignored; the bookkeeping
keys GitLab writes itself (`id`, `token_obtained_at`, `token_expires_at`) are read
silently.
"""

from __future__ import annotations

import datetime
from urllib.parse import urlsplit

from alloy_runner.config import feature_flags as feature_flag_table
from alloy_runner.config.model import CacheConfig, CacheS3Config, ExecutorName, HooksConfig
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


def feature_flags(
    table: Table, executor: ExecutorName, warnings: list[str]
) -> tuple[tuple[str, bool], ...]:
    """Read [runners.feature_flags] by config/feature_flags.py's table: refuse (exit 2) a
    value this runner does not work as; warn once for each flag that changes nothing here."""
    flags = []
    for name in table.unread():
        value = table.boolean(name, False)
        if name not in feature_flag_table.FLAGS:
            raise table.error(name, "one of GitLab Runner's feature flag names", name)
        if why := feature_flag_table.problem(name, value, executor):
            raise table.invalid(name, why)
        if note := feature_flag_table.warning(name, executor):
            warnings.append(f"{table.where}: key '{table.key(name)}': {note}")
        flags.append((name, value))
    return tuple(flags)


def environment_flags(
    table: Table, executor: ExecutorName, flags: tuple[tuple[str, bool], ...]
) -> None:
    """Refuse (exit 2) an `environment` entry that sets a feature flag to a value this runner
    does not work as: GitLab Runner reads flags from the runner's `environment` too."""
    entries = table.strings("environment")
    if why := feature_flag_table.environment_problem(entries, dict(flags), executor):
        raise table.invalid("environment", why)


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
