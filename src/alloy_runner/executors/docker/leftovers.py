"""Remove what a runner that died (kill -9, a crash) left on an engine.

Every container, network and volume a build makes carries the runner's name
and its maker's mark (host, pid, process start time). At start, a runner
removes the objects of its runners whose maker is no longer alive on this
host; objects of live runner processes, and cache volumes, stay.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import docker
import docker.errors

from alloy_runner.executors.docker.engine import (
    KIND,
    MANAGED,
    OWNER,
    RUNNER,
    UNREACHABLE,
    EngineAddress,
    call,
    connect,
    owner_is_dead,
)

if TYPE_CHECKING:
    from alloy_runner.config.model import RunnerConfig

log = logging.getLogger(__name__)


def _dead(labels: Mapping[str, Any] | None) -> bool:
    labels = labels or {}
    return labels.get(KIND) != "cache" and owner_is_dead(str(labels.get(OWNER, "")))


def remove_dead(client: docker.DockerClient, runner: str) -> int:
    """Remove the objects of `runner` whose maker died; return how many (blocking)."""
    filters: dict[str, Any] = {"label": [f"{MANAGED}=true", f"{RUNNER}={runner}"]}
    removed = 0
    for container in client.containers.list(all=True, filters=filters):
        if _dead(container.labels):
            try:
                container.remove(force=True, v=True)
                removed += 1
            except docker.errors.NotFound:
                pass
    for network in client.networks.list(filters=filters):
        if _dead(network.attrs.get("Labels")):
            try:
                network.remove()
                removed += 1
            except docker.errors.NotFound:
                pass
    for volume in client.volumes.list(filters=filters):
        if _dead(volume.attrs.get("Labels")):
            try:
                volume.remove(force=True)
                removed += 1
            except docker.errors.NotFound:
                pass
    return removed


async def remove_leftovers(address: EngineAddress, runner: str) -> None:
    """Remove what dead processes of `runner` left on the engine; log, never raise."""
    try:
        client = await connect(address)
        removed = await call(remove_dead, client, runner)
    except (*UNREACHABLE, docker.errors.APIError) as exc:
        log.warning("runner %s: cannot look for leftover containers: %s", runner, exc)
        return
    except Exception:
        log.warning("runner %s: cannot look for leftover containers", runner, exc_info=True)
        return
    if removed:
        log.warning(
            "runner %s: removed %d container(s), network(s) or volume(s) a dead runner left",
            runner,
            removed,
        )


def leftover_sweeps(runners: Iterable[RunnerConfig]) -> list[Coroutine[Any, Any, None]]:
    """Return the removals of leftovers on the engines of docker runners (and local machines)."""
    sweeps = []
    for runner in runners:
        local_machines = runner.machine is not None and runner.machine.machine_driver == "local"
        if runner.executor == "docker" or (runner.executor == "docker+machine" and local_machines):
            docker = runner.docker
            address = EngineAddress(docker.host, docker.tls_verify, docker.tls_cert_path)
            sweeps.append(remove_leftovers(address, runner.name))
    return sweeps
