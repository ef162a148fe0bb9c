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


# The statuses of the calls a `run` process makes, per call: what GitLab declares
# for the endpoint (the `http_codes` of lib/api/ci/runner.rb), what GitLab's code
# answers besides (409 to a job request that lost a race for the job), and what
# GitLab Runner's client handles by name (network/gitlab.go: 503 to a job request,
# 404 and 412 to an update, 404 to a trace patch, 307 and 503 to an upload, 302,
# 307 and 401 to a download; 201 and 403 to a token reset, which `run` makes when it
# rotates a token that expires). A closed set: the series of these statuses, and of
# the TransportFailures, exist at 0 from the start for every runner with a
# coordinator (`ci_runner_api_request_statuses_total`), so `increase()` sees the
# first of them, also the first after a restart. Other statuses appear when seen.
EXPECTED_STATUSES: dict[Endpoint, tuple[int, ...]] = {
    Endpoint.RESET_TOKEN: (201, 403),
    Endpoint.REQUEST_JOB: (201, 204, 403, 409, 503),
    Endpoint.UPDATE_JOB: (200, 202, 400, 403, 404, 412),
    Endpoint.PATCH_TRACE: (202, 400, 403, 404, 416),
    Endpoint.UPLOAD_ARTIFACTS: (201, 307, 400, 403, 405, 413, 503),
    Endpoint.DOWNLOAD_ARTIFACTS: (200, 302, 307, 401, 403, 404),
}


def expected_statuses() -> list[tuple[Endpoint, str]]:
    """Return every (endpoint, `status` label) whose series exists at 0 from the start."""
    return [
        (endpoint, label)
        for endpoint, codes in EXPECTED_STATUSES.items()
        for label in (*(str(code) for code in codes), *(f.value for f in TransportFailure))
    ]


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
