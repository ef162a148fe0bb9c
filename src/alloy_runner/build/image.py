"""A job's `image` and `services`, shaped like GitLab Runner API v4's job payload."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alloy_runner.exceptions import JobPayloadError


def _strings(data: dict[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list):
        raise JobPayloadError(f"job payload: {key!r} must be a string or a list of strings")
    return tuple(str(v) for v in value)


def _entrypoint(data: dict[str, Any]) -> tuple[str, ...] | None:
    """Return the entrypoint asked for; None (absent, or null as GitLab sends it): the image's."""
    return _strings(data, "entrypoint") if data.get("entrypoint") is not None else None


@dataclass(frozen=True)
class Image:
    """The image a job's scripts run in (`name`, and optionally `entrypoint`, `pull_policy`).

    `entrypoint` None keeps the image's own; `()` or `("",)` clears it, as GitLab does.
    """

    name: str
    entrypoint: tuple[str, ...] | None = None
    pull_policy: tuple[str, ...] = ()

    @classmethod
    def from_payload(cls, data: Any) -> Image | None:
        if not data:
            return None
        if isinstance(data, str):
            return cls(name=data)
        if not isinstance(data, dict) or not isinstance(data.get("name", ""), str):
            raise JobPayloadError("job payload: 'image' must be a string or have a 'name'")
        if not data.get("name"):
            return None
        return cls(
            name=data["name"],
            entrypoint=_entrypoint(data),
            pull_policy=_strings(data, "pull_policy"),
        )

    def to_payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name}
        if self.entrypoint is not None:
            data["entrypoint"] = list(self.entrypoint)
        if self.pull_policy:
            data["pull_policy"] = list(self.pull_policy)
        return data


@dataclass(frozen=True)
class Service:
    """A service container of a job (`alias`, `command`, `entrypoint`, `variables`)."""

    name: str
    alias: str = ""
    command: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    variables: tuple[tuple[str, str], ...] = ()
    pull_policy: tuple[str, ...] = ()

    @property
    def aliases(self) -> tuple[str, ...]:
        """Return the aliases given (`alias` may hold several, separated by spaces or commas)."""
        return tuple(a for a in self.alias.replace(",", " ").split() if a)

    @classmethod
    def from_payload(cls, data: Any) -> Service:
        if isinstance(data, str):
            return cls(name=data)
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise JobPayloadError("job payload: each service must be a string or have a 'name'")
        variables = data.get("variables") or []
        if isinstance(variables, dict):  # .gitlab-ci.yml's mapping form
            pairs = tuple((str(k), str(v)) for k, v in variables.items())
        elif isinstance(variables, list):  # API v4: [{key, value}]
            pairs = tuple(
                (str(v.get("key", "")), str(v.get("value", "")))
                for v in variables
                if isinstance(v, dict)
            )
        else:
            raise JobPayloadError("job payload: a service's 'variables' must be a list")
        return cls(
            name=data["name"],
            alias=str(data.get("alias") or ""),
            command=_strings(data, "command"),
            entrypoint=_entrypoint(data),
            variables=pairs,
            pull_policy=_strings(data, "pull_policy"),
        )

    def to_payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name}
        if self.alias:
            data["alias"] = self.alias
        if self.command:
            data["command"] = list(self.command)
        if self.entrypoint is not None:
            data["entrypoint"] = list(self.entrypoint)
        if self.variables:
            data["variables"] = [{"key": k, "value": v} for k, v in self.variables]
        if self.pull_policy:
            data["pull_policy"] = list(self.pull_policy)
        return data


def services_from_payload(data: Any) -> tuple[Service, ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        raise JobPayloadError("job payload: 'services' must be a list")
    return tuple(Service.from_payload(s) for s in data)
