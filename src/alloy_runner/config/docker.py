"""`[runners.docker]`: GitLab Runner's keys for the docker executors, read and checked."""

from __future__ import annotations

import re

from alloy_runner.config.model import PULL_POLICIES, DockerConfig
from alloy_runner.config.table import Table

_SIZE = re.compile(r"(\d+)\s*([bkmg]?)b?", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_HOST = re.compile(r"(unix|tcp|ssh|http|https)://.+")
# GitLab Runner's [runners.docker] keys that would change what a job runs, and that this
# runner does not implement: refused (exit 2) rather than silently ignored.
UNSUPPORTED = (
    *("helper_image", "helper_image_flavor", "user", "hostname", "runtime", "isolation"),
    *("cap_add", "cap_drop", "devices", "device_cgroup_rules", "gpus", "security_opt"),
    *("group_add", "sysctls", "ulimit", "userns_mode", "ipcmode", "mac_address"),
    *("cpuset_cpus", "cpuset_mems", "cpu_shares", "memory_swap", "memory_reservation"),
    *("oom_kill_disable", "oom_score_adjust", "pids_limit", "tmpfs", "services_tmpfs"),
    *("volumes_from", "volume_driver", "links", "services", "allowed_services"),
    *("services_privileged", "allowed_privileged_images", "allowed_privileged_services"),
    *("disable_entrypoint_overwrite", "network_mtu", "cache_dir", "container_labels"),
)


def _size(table: Table, name: str) -> int:
    def check(key: str, value: object) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        match = _SIZE.fullmatch(value.strip()) if isinstance(value, str) else None
        if match is None:
            raise table.error(key, "a size in bytes, or like 512m or 2g", value)
        return int(match[1]) * _UNITS[match[2].lower()]

    return table.get((name,), 0, check)


def _cpus(table: Table) -> float:
    def check(key: str, value: object) -> float:
        try:
            cpus = float(value) if isinstance(value, str | int | float) else -1.0
        except ValueError:
            cpus = -1.0
        if isinstance(value, bool) or cpus < 0:
            raise table.error(key, 'a number of CPUs, like "1.5"', value)
        return cpus

    return table.get(("cpus",), 0.0, check)


def _flag(table: Table, name: str) -> bool:
    def check(key: str, value: object) -> bool:
        if not isinstance(value, bool):
            raise table.error(key, "true or false", value)
        return value

    return table.get((name,), False, check)


def _policies(table: Table, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    def check(key: str, value: object) -> tuple[str, ...]:
        values = [value] if isinstance(value, str) else value
        if (
            not isinstance(values, list)
            or not values
            or any(v not in PULL_POLICIES for v in values)
        ):
            raise table.error(key, "one of, or a list of, " + ", ".join(PULL_POLICIES), value)
        return tuple(str(v) for v in values)

    return table.get((name,), default, check)


def _volumes(table: Table) -> tuple[str, ...]:
    volumes = table.strings("volumes")
    for volume in volumes:
        parts = volume.split(":")
        mode_ok = len(parts) < 3 or parts[2] in ("ro", "rw")
        if not (1 <= len(parts) <= 3 and parts[-1 if len(parts) < 3 else 1].startswith("/")):
            mode_ok = False
        if not mode_ok:
            raise table.error("volumes", "entries like /path or /host:/path[:ro|rw]", volume)
    return volumes


def read_docker(table: Table) -> DockerConfig:
    """Return the `[runners.docker]` of a runner; every bad value names its key."""
    host = table.string("host", default="")
    if host and not _HOST.fullmatch(host):
        raise table.error("host", "an engine address like unix:///path or tcp://host:2376", host)
    if table.has("helper_image"):
        raise table.invalid(
            "helper_image",
            "is not supported: git and the artifact/cache helper run on the runner's host"
            " against the mounted build directory (docs/executors.md)",
        )
    for key in UNSUPPORTED:
        if table.has(key):
            raise table.invalid(key, "is not supported by this runner (docs/configuration.md)")
    pull_policy = _policies(table, "pull_policy", ("always",))
    allowed = _policies(table, "allowed_pull_policies", ())
    if allowed and not set(pull_policy) & set(allowed):
        raise table.invalid("allowed_pull_policies", "holds none of the runner's pull_policy")
    for entry in table.strings("extra_hosts"):
        if ":" not in entry:
            raise table.error("extra_hosts", "entries like host:ip", entry)
    return DockerConfig(
        image=table.string("image", default=""),
        privileged=_flag(table, "privileged"),
        volumes=_volumes(table),
        pull_policy=pull_policy,
        allowed_images=table.strings("allowed_images"),
        allowed_pull_policies=allowed,
        network_mode=table.string("network_mode", default=""),
        memory=_size(table, "memory"),
        cpus=_cpus(table),
        shm_size=_size(table, "shm_size"),
        dns=table.strings("dns"),
        extra_hosts=table.strings("extra_hosts"),
        host=host,
        tls_verify=_flag(table, "tls_verify"),
        tls_cert_path=table.string("tls_cert_path", default=""),
        disable_cache=_flag(table, "disable_cache"),
        wait_for_services_timeout=table.seconds("wait_for_services_timeout", 30.0),
    )
