"""The Runner API v4 calls about runners themselves: register, verify, unregister, reset token.

Each takes an `ApiClient`; a refused token raises `TokenRefused` (exit 1), any other
answer the runner cannot use raises `CoordinatorError`.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import httpx

from alloy_runner.coordinator.api_metrics import Endpoint
from alloy_runner.coordinator.gitlab.api import ApiClient, runner_info
from alloy_runner.exceptions import CoordinatorError, TokenRefused

ACCESS_LEVELS = ("not_protected", "ref_protected")
AUTHENTICATION_TOKEN_PREFIX = "glrt-"  # noqa: S105 (a prefix, not a secret; GitLab 16+)


@dataclass(frozen=True)
class RunnerToken:
    """A runner's id and authentication token, as the coordinator returns them."""

    id: int
    token: str
    expires_at: datetime.datetime | None  # None: the token does not expire


@dataclass(frozen=True)
class RegisterParams:
    """What the legacy registration (`POST /runners`) tells the coordinator about the runner."""

    description: str
    tag_list: tuple[str, ...] = ()
    run_untagged: bool = True
    locked: bool = True
    paused: bool = False
    maintenance_note: str = ""
    access_level: str = ""  # "", not_protected or ref_protected
    maximum_timeout: int = 0  # seconds; 0: none
    executor: str = "shell"

    def body(self, registration_token: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "token": registration_token,
            "description": self.description,
            "info": runner_info(self.executor),
            "tag_list": ",".join(self.tag_list),
            "run_untagged": self.run_untagged,
            "locked": self.locked,
            "paused": self.paused,
        }
        if self.maintenance_note:
            body["maintenance_note"] = self.maintenance_note
        if self.access_level:
            body["access_level"] = self.access_level
        if self.maximum_timeout:
            body["maximum_timeout"] = self.maximum_timeout
        return body


def is_authentication_token(token: str) -> bool:
    return token.startswith(AUTHENTICATION_TOKEN_PREFIX)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _expiry(value: object) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def _token(what: str, response: httpx.Response, fallback: str = "") -> RunnerToken:
    data = _json(response)
    token = data.get("token") or fallback
    if not isinstance(token, str) or not token:
        raise CoordinatorError(f"{what}: the coordinator's answer has no runner token")
    runner_id = data.get("id")
    return RunnerToken(
        runner_id if isinstance(runner_id, int) else 0, token, _expiry(data.get("token_expires_at"))
    )


def _unexpected(what: str, response: httpx.Response) -> CoordinatorError:
    return CoordinatorError(f"{what}: the coordinator answered HTTP {response.status_code}")


async def register_runner(
    client: ApiClient, registration_token: str, params: RegisterParams
) -> RunnerToken:
    """`POST /runners` with a registration token (GitLab's deprecated flow)."""
    response = await client.call(
        Endpoint.REGISTER_RUNNER, "POST", "runners", json=params.body(registration_token)
    )
    if response.status_code == 201:
        return _token("register", response)
    if response.status_code == 403:
        raise TokenRefused("register: the coordinator refused the registration token (403)")
    raise _unexpected("register", response)


async def verify_runner(client: ApiClient, token: str, executor: str = "shell") -> RunnerToken:
    """`POST /runners/verify` with an authentication token: its id and expiry, or TokenRefused."""
    response = await client.call(
        Endpoint.VERIFY_RUNNER,
        "POST",
        "runners/verify",
        json={"token": token, "info": runner_info(executor)},
    )
    if response.status_code == 200:
        return _token("verify", response, fallback=token)
    if response.status_code in (401, 403):
        raise TokenRefused(f"verify: the coordinator refused the runner token {token[:8]}... (403)")
    raise _unexpected("verify", response)


async def unregister_runner(client: ApiClient, token: str) -> None:
    """`DELETE /runners`: the coordinator forgets the runner."""
    response = await client.call(
        Endpoint.UNREGISTER_RUNNER, "DELETE", "runners", json={"token": token}
    )
    if response.status_code == 204:
        return
    if response.status_code in (401, 403):
        raise TokenRefused(
            f"unregister: the coordinator refused the runner token {token[:8]}... (403)"
        )
    raise _unexpected("unregister", response)


async def reset_token(client: ApiClient, token: str) -> RunnerToken:
    """`POST /runners/reset_authentication_token`: a new token replaces `token`."""
    response = await client.call(
        Endpoint.RESET_TOKEN,
        "POST",
        "runners/reset_authentication_token",
        json={"token": token},
    )
    if response.status_code == 201:
        return _token("reset-token", response)
    if response.status_code in (401, 403):
        raise TokenRefused(
            f"reset-token: the coordinator refused the runner token {token[:8]}... "
            f"({response.status_code})"
        )
    raise _unexpected("reset-token", response)
