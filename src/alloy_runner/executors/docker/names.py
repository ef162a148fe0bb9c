"""Names of what a build makes on the engine, and the host names of its services."""

from __future__ import annotations

import re

from alloy_runner.executors.docker.images import split_name

_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]+")


def service_hostnames(image: str) -> tuple[str, ...]:
    """Return the names GitLab derives from a service's image.

    `postgres:16` is reachable as `postgres`; `tutum/wordpress` as
    `tutum-wordpress` and `tutum__wordpress`.
    """
    repo, _ = split_name(image.partition("@")[0])
    host, slash, path = repo.partition("/")
    if slash and (":" in host or "." in host):  # a registry: its port is no part of a name
        repo = f"{host.partition(':')[0]}/{path}"
    names = [repo.replace("/", "__"), repo.replace("/", "-")]
    return tuple(dict.fromkeys(n for n in names if n))


def object_name(runner: str, job_id: int, suffix: str) -> str:
    """Return an engine object's name: it says which runner and job made it."""
    return _UNSAFE.sub("-", f"alloy-{runner}-job-{job_id}-{suffix}").strip("-")[:200]
