"""What the coordinator client reports about its API calls; telemetry implements it."""

from __future__ import annotations

from enum import Enum
from typing import Protocol


class Endpoint(Enum):
    """The Runner API v4 calls (`ci_runner_api_request_*{endpoint}`)."""

    REGISTER_RUNNER = "register_runner"
    VERIFY_RUNNER = "verify_runner"
    UNREGISTER_RUNNER = "unregister_runner"
    RESET_TOKEN = "reset_token"  # noqa: S105 (a label: GitLab Runner's, for reset_authentication_token)
    REQUEST_JOB = "request_job"
    UPDATE_JOB = "update_job"
    PATCH_TRACE = "patch_trace"
    UPLOAD_ARTIFACTS = "upload_artifacts"
    DOWNLOAD_ARTIFACTS = "download_artifacts"


class TransportFailure(Enum):
    """The `status` of a call that got no HTTP response; with the status codes, a closed set."""

    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"


def status_label(status: int | TransportFailure) -> str:
    """Return the `status` label of an HTTP status code or a transport failure."""
    if isinstance(status, TransportFailure):
        return status.value
    return str(status) if 100 <= status <= 599 else "invalid"


class ApiMetrics(Protocol):
    """Events of the coordinator client, recorded when a call ends."""

    def request_done(
        self, runner: str, endpoint: Endpoint, status: int | TransportFailure, seconds: float
    ) -> None:
        """A call to `endpoint` ended with an HTTP `status` (or none) after `seconds`."""

    def request_retried(self, runner: str, endpoint: Endpoint) -> None:
        """A call to `endpoint` failed and is made again (the same request, retried)."""


class NoApiMetrics:
    """An ApiMetrics that records nothing (`register`, `verify`)."""

    def request_done(
        self, runner: str, endpoint: Endpoint, status: int | TransportFailure, seconds: float
    ) -> None:
        pass

    def request_retried(self, runner: str, endpoint: Endpoint) -> None:
        pass
