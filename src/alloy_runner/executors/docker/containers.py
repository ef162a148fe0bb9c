"""The build container: how it is made from `[runners.docker]`, and what it used."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container
from docker.types import Mount

from alloy_runner.config.model import DockerConfig
from alloy_runner.executors.base import ResourceUsage

# The build container idles until the runner execs a stage script in it.
KEEP_ALIVE = ["sh", "-c", "while :; do sleep 3600; done"]
# A stage script runs with bash when the image has it, else with sh (as GitLab detects).
SHELL = (
    'if command -v bash >/dev/null 2>&1; then exec bash --noprofile --norc "$@"; fi; exec sh "$@"'
)


def inside_env(
    env: Mapping[str, str],
    job_keys: Collection[str],
    host_dirs: Sequence[str],
    inside_dirs: Sequence[str],
) -> dict[str, str]:
    """Return the job's variables as a container sees them: no host env, the inside paths.

    A variable whose value is the runner host's own is left out unless the job
    or the runner's `environment` set it; host build paths become `/builds/...`.
    """
    out = {}
    for key, value in env.items():
        if key not in job_keys and os.environ.get(key) == value:
            continue  # the runner host's own environment stays on the host
        mapped = value
        for host, inside in zip(host_dirs, inside_dirs, strict=True):
            if value == host or value.startswith(host + "/"):
                mapped = inside + value[len(host) :]
        out[key] = mapped
    out["CI_BUILDS_DIR"] = "/builds"
    return out


def resources(config: DockerConfig) -> dict[str, Any]:
    """Return the create options of [runners.docker] that every container of a build gets."""
    options: dict[str, Any] = {"privileged": config.privileged}
    if config.memory:
        options["mem_limit"] = config.memory
    if config.cpus:
        options["nano_cpus"] = int(config.cpus * 1e9)
    if config.shm_size:
        options["shm_size"] = config.shm_size
    if config.dns:
        options["dns"] = list(config.dns)
    if config.extra_hosts:
        options["extra_hosts"] = dict(h.split(":", 1) for h in config.extra_hosts)
    if config.network_mode:
        options["network_mode"] = config.network_mode
    return options


def start_build(
    client: docker.DockerClient, image: str, name: str, options: dict[str, Any]
) -> Container:
    """Create and start a build container that idles until scripts are exec'd (blocking)."""
    container = client.containers.create(image, KEEP_ALIVE, name=name, detach=True, **options)
    try:
        container.start()
    except docker.errors.APIError:
        container.remove(force=True, v=True)
        raise
    return container


def cache_volume_name(runner: str, project: str, path: str) -> str:
    digest = hashlib.sha256(f"{project}\0{path}".encode()).hexdigest()[:16]
    return f"alloy-{runner}-cache-{digest}"


def user_volumes(
    config: DockerConfig, runner: str, project: str, build_prefix: str
) -> tuple[list[str], list[Mount], list[str], list[str]]:
    """Return (binds, mounts, cache volume names, build volume names) of `volumes`.

    `/host:/path` is a bind; `/path` is a volume kept between builds of the
    project (a cache, as GitLab does), or, with `disable_cache`, a volume of
    the build alone, named `build_prefix-<hash>` and removed with it.
    """
    binds: list[str] = []
    mounts: list[Mount] = []
    caches: list[str] = []
    scratch: list[str] = []
    for volume in config.volumes:
        if ":" in volume:
            binds.append(volume)
            continue
        if config.disable_cache:
            name = f"{build_prefix}-{hashlib.sha256(volume.encode()).hexdigest()[:8]}"
            scratch.append(name)
        else:
            name = cache_volume_name(runner, project, volume)
            caches.append(name)
        mounts.append(Mount(target=volume, source=name, type="volume"))
    return binds, mounts, caches, scratch


def ensure_volume(client: docker.DockerClient, name: str, labels: dict[str, str]) -> None:
    try:
        client.volumes.get(name)
    except docker.errors.NotFound:
        with contextlib.suppress(docker.errors.APIError):  # made meanwhile by another build
            client.volumes.create(name, labels=labels)


def remove_network_and_volumes(
    client: docker.DockerClient, network: str | None, volumes: list[str]
) -> None:
    """Remove a build's network and its own volumes, once its containers are gone (blocking)."""
    if network is not None:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_network(network)
    for volume in volumes:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_volume(volume, force=True)


# --- what a container used: its cgroup on this host, else the engine's stats ----------


def _cgroup_paths(pid: int) -> dict[str, str]:
    paths = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else ["unified"]:
            paths[controller] = path
    return paths


def _read_int(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().split()[0])
    return None


def _cgroup_usage(pid: int, container_id: str) -> ResourceUsage | None:
    """Read the cgroup of a container's process, if it runs on this host (v1 or v2)."""
    try:
        paths = _cgroup_paths(pid)
    except OSError:
        return None
    root = Path("/sys/fs/cgroup")
    if container_id[:12] in paths.get("memory", ""):  # cgroup v1
        memory = root / "memory" / paths["memory"].lstrip("/")
        cpu = next((root / d for d in ("cpuacct", "cpu,cpuacct") if (root / d).is_dir()), None)
        peak = _read_int(memory / "memory.max_usage_in_bytes")
        used = _read_int(cpu / paths["cpuacct"].lstrip("/") / "cpuacct.usage") if cpu else None
        if peak is None or used is None:
            return None
        return ResourceUsage(used / 1e9, peak)
    if container_id[:12] in paths.get("unified", ""):  # cgroup v2
        group = root / paths["unified"].lstrip("/")
        peak = _read_int(group / "memory.peak")
        stat = dict(line.split() for line in (group / "cpu.stat").read_text().splitlines() if line)
        if peak is None or "usage_usec" not in stat:
            return None
        return ResourceUsage(int(stat["usage_usec"]) / 1e6, peak)
    return None


def usage_of(container: Container, local: bool) -> ResourceUsage | None:
    """Return what a running container used so far (blocking); None when it cannot tell."""
    container.reload()
    pid = int(container.attrs.get("State", {}).get("Pid") or 0)
    if local and pid:
        found = _cgroup_usage(pid, container.id or "")
        if found is not None:
            return found
    stats = container.stats(stream=False, one_shot=True)
    assert isinstance(stats, dict)
    cpu = stats.get("cpu_stats", {}).get("cpu_usage", {}).get("total_usage")
    memory = stats.get("memory_stats", {})
    peak = memory.get("max_usage") or memory.get("usage")
    if cpu is None or peak is None:
        return None
    return ResourceUsage(cpu / 1e9, int(peak))
