"""The connection to a Docker engine, through the Docker SDK for Python.

The SDK is blocking. Its calls run on a pool of threads of their own (`call`),
so that a build that streams a long script's output does not take a thread of
the event loop's default pool, which is small and shared with everything else.
aiodocker would avoid the threads, but it is less kept than the SDK and lacks
its handling of DOCKER_HOST, TLS and the engine API's quirks, which podman's
compatible API needs.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import docker.tls
import requests.exceptions

from alloy_runner.exceptions import ExecutorError
from alloy_runner.executors.procfs import start_time

T = TypeVar("T")

DEFAULT_HOST = "unix:///var/run/docker.sock"
API_TIMEOUT = 120  # seconds one engine API call may take (a pull or a stream is longer)
_POOL = ThreadPoolExecutor(max_workers=64, thread_name_prefix="docker-engine")

# Labels on every container, network and volume the runner makes.
LABEL = "com.alloy-runner"
MANAGED = f"{LABEL}.managed"
RUNNER = f"{LABEL}.runner"
JOB = f"{LABEL}.job.id"
OWNER = f"{LABEL}.owner"  # host/pid/start time of the runner process that made it
KIND = f"{LABEL}.type"  # build, service, network, cache

UNREACHABLE = (
    docker.errors.DockerException,
    requests.exceptions.ConnectionError,
    ConnectionError,
    FileNotFoundError,
)


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking engine call on the engine's threads."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    bound = functools.partial(context.run, fn, *args, **kwargs)
    return await loop.run_in_executor(_POOL, bound)


@dataclass(frozen=True)
class EngineAddress:
    """Where an engine listens, and the TLS to reach it with (docker-machine gives both)."""

    host: str = ""  # empty: $DOCKER_HOST, else DEFAULT_HOST
    tls_verify: bool = False
    tls_cert_path: str = ""  # ca.pem, cert.pem, key.pem

    def resolved(self) -> EngineAddress:
        host = self.host or os.environ.get("DOCKER_HOST") or DEFAULT_HOST
        if self.host:
            return EngineAddress(host, self.tls_verify, self.tls_cert_path)
        verify = self.tls_verify or os.environ.get("DOCKER_TLS_VERIFY", "") not in ("", "0")
        return EngineAddress(
            host, verify, self.tls_cert_path or os.environ.get("DOCKER_CERT_PATH", "")
        )

    @property
    def is_local(self) -> bool:
        """Tell whether the engine's containers run on this host (a unix socket)."""
        return self.resolved().host.startswith("unix://")


def _tls(address: EngineAddress) -> docker.tls.TLSConfig | bool:
    if not address.tls_verify and not address.tls_cert_path:
        return False
    certs = Path(address.tls_cert_path).expanduser()
    client = (str(certs / "cert.pem"), str(certs / "key.pem")) if address.tls_cert_path else None
    ca = str(certs / "ca.pem") if address.tls_cert_path and address.tls_verify else None
    return docker.tls.TLSConfig(client_cert=client, ca_cert=ca, verify=address.tls_verify)


_clients: dict[EngineAddress, docker.DockerClient] = {}


def client_for(address: EngineAddress) -> docker.DockerClient:
    """Return a client of the engine at `address` (one per address, shared by builds)."""
    resolved = address.resolved()
    client = _clients.get(resolved)
    if client is None:
        host = resolved.host
        tls = _tls(resolved)
        if host.startswith("tcp://") and tls:
            host = "https://" + host.removeprefix("tcp://")
        try:
            client = docker.DockerClient(
                base_url=host, tls=tls, timeout=API_TIMEOUT, max_pool_size=64
            )
        except docker.errors.DockerException as exc:
            raise ExecutorError(
                f"the Docker engine at {resolved.host} cannot be reached: {_short(exc)}"
            ) from None
        _clients[resolved] = client
    return client


async def connect(address: EngineAddress) -> docker.DockerClient:
    """Return a client of the engine at `address` once it answers a ping."""
    client = await call(client_for, address)
    try:
        await call(client.ping)
    except UNREACHABLE as exc:
        where = address.resolved().host
        raise ExecutorError(
            f"the Docker engine at {where} cannot be reached: {_short(exc)}"
        ) from None
    return client


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


@functools.cache
def owner() -> str:
    """Return this runner process's mark: host, pid and start time (pids are reused)."""
    return f"{socket.gethostname()}/{os.getpid()}/{int(start_time() * 100)}"


def owner_is_dead(mark: str) -> bool:
    """Tell whether the runner process that made an object is gone (on this host only)."""
    host, _, rest = mark.partition("/")
    pid, _, started = rest.partition("/")
    if host != socket.gethostname() or not pid.isdecimal():
        return False
    try:
        return str(int(start_time(int(pid)) * 100)) != started
    except ProcessLookupError:
        return True
    except OSError:
        return False


def labels(runner: str, job_id: int | None, kind: str) -> dict[str, str]:
    marks = {MANAGED: "true", RUNNER: runner, OWNER: owner(), KIND: kind}
    if job_id is not None:
        marks[JOB] = str(job_id)
    return marks
