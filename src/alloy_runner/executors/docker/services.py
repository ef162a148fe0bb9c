"""A build's services: containers on the build's network, reachable by alias and image name."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from alloy_runner.build.image import Service
from alloy_runner.executors.docker.engine import call
from alloy_runner.executors.docker.names import service_hostnames

LOG_LIMIT = 64 * 1024  # bytes of a dead service's log shown in the job's log
PROBE_TIMEOUT = 1.0


@dataclass
class Running:
    """A started service container and the names it answers to."""

    service: Service
    container: Container
    hostnames: tuple[str, ...]


def hostnames(service: Service) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*service_hostnames(service.name), *service.aliases)))


def create(
    client: docker.DockerClient,
    service: Service,
    *,
    name: str,
    network: str | None,
    env: dict[str, str],
    options: dict[str, Any],
) -> Running:
    """Create and start one service container (blocking)."""
    names = hostnames(service)
    kwargs: dict[str, Any] = dict(options)
    if network is not None:
        kwargs["network"] = network
        kwargs["networking_config"] = {
            network: client.api.create_endpoint_config(aliases=list(names))
        }
    if service.entrypoint is not None:
        kwargs["entrypoint"] = [e for e in service.entrypoint if e] or [""]
    container = client.containers.create(
        service.name,
        list(service.command) or None,
        name=name,
        environment={**env, **dict(service.variables)},
        detach=True,
        **kwargs,
    )
    container.start()
    return Running(service, container, names)


def _ports(container: Container) -> list[int]:
    exposed = container.attrs.get("Config", {}).get("ExposedPorts") or {}
    return sorted(int(p.split("/")[0]) for p in exposed if p.endswith("/tcp"))


def _address(container: Container, network: str | None) -> str:
    networks = container.attrs.get("NetworkSettings", {}).get("Networks") or {}
    chosen = networks.get(network) if network else next(iter(networks.values()), None)
    return str((chosen or {}).get("IPAddress") or "")


def _answers(address: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((address, port), PROBE_TIMEOUT):
        return True
    return False


def _listening(container: Container) -> set[int] | None:
    """Return the TCP ports the container listens on, from its /proc/net/tcp (None: unknown)."""
    try:
        code, out = container.exec_run(["cat", "/proc/net/tcp", "/proc/net/tcp6"], demux=False)
    except docker.errors.APIError:
        return None
    if code != 0 and not out:
        return None  # no `cat` in the image
    ports = set()
    text = out.decode("ascii", "replace") if isinstance(out, bytes) else ""
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[3] == "0A":  # LISTEN
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def wait_one(
    running: Running, network: str | None, deadline: float, local: bool = True
) -> str | None:
    """Wait until every exposed TCP port of a service answers; return why not (blocking).

    On an engine of this host, the probe connects from here to the service's
    address on the build network. On a remote engine, whose networks are out of
    reach, it asks the service which ports it listens on (its /proc/net/tcp,
    read with `cat` in the service's container); a service image without `cat`
    is not waited for.
    """
    container = running.container
    while True:
        container.reload()
        if container.status in ("exited", "dead"):
            code = container.attrs.get("State", {}).get("ExitCode")
            return f"the service container exited with code {code}"
        ports, address = _ports(container), _address(container, network)
        if not ports or (local and not address):
            return None
        if local:
            waiting = [p for p in ports if not _answers(address, p)]
        else:
            listening = _listening(container)
            if listening is None:
                return None
            waiting = [p for p in ports if p not in listening]
        if not waiting:
            return None
        if time.monotonic() > deadline:
            return f"port(s) {', '.join(map(str, waiting))}/tcp did not answer in time"
        time.sleep(0.1)


def logs_of(container: Container) -> str:
    try:
        data: bytes = container.logs(stdout=True, stderr=True, tail=1000)
    except docker.errors.APIError as exc:
        return f"(cannot read its log: {exc.explanation})"
    return data[-LOG_LIMIT:].decode("utf-8", "replace")


async def wait_all(
    running: Sequence[Running],
    network: str | None,
    timeout: float,
    log: Callable[[str], None],
    *,
    local: bool = True,
) -> None:
    """Wait for every service; a service that dies or stays silent is reported with its log."""
    deadline = time.monotonic() + timeout
    reasons = await asyncio.gather(*(call(wait_one, r, network, deadline, local) for r in running))
    for run, reason in zip(running, reasons, strict=True):
        if reason is None:
            continue
        log(f"*** WARNING: Service {run.service.name} probably didn't start properly.")
        log("")
        log(f"Health check error: {reason}")
        log("")
        log("Service container logs:")
        for line in (await call(logs_of, run.container)).splitlines():
            log(line)
        log("")
        log("*********")
