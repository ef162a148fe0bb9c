"""A job's `image:` and `services:` in GitLab CI YAML, read into the job payload's shapes.

A malformed value raises PipelineError with what is wrong; the reader adds the file and line.
"""

from __future__ import annotations

from typing import Any

from alloy_runner.build.image import Image, Service
from alloy_runner.exceptions import PipelineError

IMAGE_KEYS = ("name", "entrypoint", "pull_policy")
SERVICE_KEYS = ("name", "alias", "command", "entrypoint", "variables", "pull_policy")
PULL_POLICIES = ("always", "if-not-present", "never")


def _words(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise PipelineError(f"{what} must be a string or a list of strings")


def _policies(value: Any, what: str) -> tuple[str, ...]:
    policies = _words(value, what)
    for policy in policies:
        if policy not in PULL_POLICIES:
            raise PipelineError(f"{what} must be one of {', '.join(PULL_POLICIES)}")
    return policies


def _check_keys(value: dict[str, Any], allowed: tuple[str, ...], what: str) -> None:
    for key in value:
        if key not in allowed:
            raise PipelineError(f"{what}: unknown key {key!r} (known: {', '.join(allowed)})")
    if not isinstance(value.get("name"), str) or not value["name"]:
        raise PipelineError(f"{what} needs a name")


def read_image(value: Any) -> Image | None:
    """Return the `image:` of a job (a name, or a mapping of IMAGE_KEYS)."""
    if value is None:
        return None
    if isinstance(value, str):
        return Image(value) if value else None
    if not isinstance(value, dict):
        raise PipelineError("image must be an image name or a mapping with a name")
    _check_keys(value, IMAGE_KEYS, "image")
    return Image(
        name=value["name"],
        entrypoint=_words(value["entrypoint"], "image:entrypoint")
        if "entrypoint" in value
        else None,
        pull_policy=_policies(value.get("pull_policy", []), "image:pull_policy"),
    )


def _service(value: Any) -> Service:
    if isinstance(value, str) and value:
        return Service(value)
    if not isinstance(value, dict):
        raise PipelineError("each service must be an image name or a mapping with a name")
    _check_keys(value, SERVICE_KEYS, "services")
    variables = value.get("variables") or {}
    if not isinstance(variables, dict) or isinstance(variables.get("value"), dict):
        raise PipelineError("services:variables must be a mapping of names to values")
    alias = value.get("alias", "")
    if not isinstance(alias, str):
        raise PipelineError("services:alias must be a string")
    return Service(
        name=value["name"],
        alias=alias,
        command=_words(value.get("command", []), "services:command"),
        entrypoint=_words(value["entrypoint"], "services:entrypoint")
        if "entrypoint" in value
        else None,
        variables=tuple((str(k), str(v)) for k, v in variables.items()),
        pull_policy=_policies(value.get("pull_policy", []), "services:pull_policy"),
    )


def read_services(value: Any) -> tuple[Service, ...]:
    """Return the `services:` of a job (a list of names or mappings of SERVICE_KEYS)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise PipelineError("services must be a list")
    return tuple(_service(v) for v in value)
