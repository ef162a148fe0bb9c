"""The GitLab Runner API v4 over HTTP: one client per runner, every call bounded, timed, counted.

Tokens travel only in request bodies and `JOB-TOKEN` headers, never in a URL,
and no header or body is logged; errors name the endpoint and the status.
"""

from __future__ import annotations

import contextlib
import random
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from alloy_runner.config.address import is_http_url
from alloy_runner.coordinator.api_metrics import (
    ApiMetrics,
    Endpoint,
    NoApiMetrics,
    TransportFailure,
)
from alloy_runner.exceptions import ConfigError, CoordinatorError, TokenRefused, Unreachable
from alloy_runner.version import build_info

DEFAULT_TIMEOUT = 30.0  # seconds for any one call (each of connect, read, write, pool)
CONNECT_TIMEOUT = 10.0
# A coordinator behind Workhorse holds a job request for up to ~50 s (long polling).
LONG_POLL_TIMEOUT = 65.0
DOWNLOAD_CHUNK = 1 << 16

# What this runner can do, as the coordinator asks in `info.features` (GitLab's names).
FEATURES: dict[str, bool] = {
    "variables": True,
    "image": False,
    "services": False,
    "artifacts": True,
    "cache": True,
    "shared": False,
    "upload_multiple_artifacts": True,
    "upload_raw_artifacts": False,
    "session": False,
    "terminal": False,
    "refspecs": True,
    "masking": True,
    "proxy": False,
    "raw_variables": True,
    "artifacts_exclude": True,
    "multi_build_steps": True,
    "trace_reset": True,
    "trace_checksum": True,
    "trace_size": True,
    "vault_secrets": False,
    "cancelable": True,
    "return_exit_code": True,
    "service_variables": False,
}


def is_transient(status: int) -> bool:
    """Tell whether an HTTP status says "try again later" rather than "no"."""
    return status >= 500 or status in (408, 429)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: the n-th failure waits about base * 2**(n-1), capped."""

    base: float = 0.5
    cap: float = 15.0

    def delay(self, failures: int) -> float:
        """Return how long to wait after `failures` consecutive failures (>= 1)."""
        ceiling = min(self.cap, self.base * 2.0 ** max(0, min(failures, 32) - 1))
        # "Equal jitter": never less than half the step, so a failing server is not hammered.
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - not for security


def api_base(url: str) -> str:
    """Return the API v4 root of a coordinator `url`; raise ConfigError if it is not http(s)."""
    if not is_http_url(url.strip()):  # also `http://[::1`, which urlsplit cannot even split
        raise ConfigError(f"url {url!r}: expected an http:// or https:// URL of the coordinator")
    parts = urlsplit(url.strip())
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError(f"url {url!r}: credentials, a query or a fragment do not belong in it")
    root = url.strip().rstrip("/")
    return root.removesuffix("/api/v4") + "/api/v4"


def tls_verify(ca_file: str) -> ssl.SSLContext | bool:
    """Return how to verify the coordinator's certificate: the system's CAs, plus `ca_file`."""
    if not ca_file:
        return True
    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cafile=str(Path(ca_file).expanduser()))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"tls-ca-file {ca_file}: cannot load certificates: {exc}") from None
    return context


def runner_info(executor: str = "shell", shell: str = "bash") -> dict[str, Any]:
    """Return the `info` object the runner sends with job requests and registration."""
    build = build_info()
    return {
        "name": build.name,
        "version": build.version,
        "revision": build.revision,
        "platform": build.os,
        "architecture": build.architecture,
        "executor": executor,
        "shell": shell,
        "features": dict(FEATURES),
    }


def short_token(token: str) -> str:
    """Return the part of a token that may be shown: its first 8 characters, as GitLab does."""
    return token[:8]


def _why(exc: httpx.TransportError) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ApiClient:
    """Call one coordinator for one runner; report every call to `metrics`.

    `transport` replaces the network (httpx.MockTransport in tests). A call
    that gets no HTTP response raises `Unreachable`; any response is returned
    for the caller to judge, after it is counted.
    """

    def __init__(
        self,
        url: str,
        *,
        runner: str,
        metrics: ApiMetrics | None = None,
        tls_ca_file: str = "",
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base = api_base(url)
        self.runner = runner
        self._metrics = metrics if metrics is not None else NoApiMetrics()
        self._clock = clock
        build = build_info()
        self._http = httpx.AsyncClient(
            base_url=self.base + "/",
            timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)),
            verify=tls_verify(tls_ca_file),
            transport=transport,
            follow_redirects=False,
            headers={
                "User-Agent": f"{build.name} {build.version} ({build.os}; {build.architecture})"
            },
        )

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    def retrying(self, endpoint: Endpoint) -> None:
        """Count that a failed call to `endpoint` is about to be made again."""
        self._metrics.request_retried(self.runner, endpoint)

    def _done(self, endpoint: Endpoint, status: int | TransportFailure, began: float) -> None:
        self._metrics.request_done(self.runner, endpoint, status, self._clock() - began)

    @contextlib.contextmanager
    def _reaching(self, endpoint: Endpoint, began: float) -> Iterator[None]:
        """Count a call begun at `began` that gets no HTTP response, and raise `Unreachable`."""
        try:
            yield
        except httpx.TimeoutException:
            self._done(endpoint, TransportFailure.TIMEOUT, began)
            raise Unreachable(endpoint, "timed out") from None
        except httpx.TransportError as exc:
            self._done(endpoint, TransportFailure.CONNECTION_ERROR, began)
            raise Unreachable(endpoint, _why(exc)) from None

    async def call(
        self,
        endpoint: Endpoint,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        files: Any = None,
        data: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send one request to `path` (relative to /api/v4) and return its response, read."""
        began = self._clock()
        with self._reaching(endpoint, began):
            response = await self._http.request(
                method,
                path,
                json=json,
                content=content,
                headers=headers,
                files=files,
                data=data,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        self._done(endpoint, response.status_code, began)
        return response

    async def download(
        self, endpoint: Endpoint, url: str, headers: Mapping[str, str], dest: Path
    ) -> httpx.Response:
        """GET `url` (relative, or absolute after a redirect); on 200 write the body to `dest`."""
        began = self._clock()
        with self._reaching(endpoint, began):
            async with self._http.stream("GET", url, headers=headers) as response:
                if response.status_code == 200:
                    with open(dest, "wb") as handle:
                        async for chunk in response.aiter_bytes(DOWNLOAD_CHUNK):
                            handle.write(chunk)
                else:
                    await response.aread()
        self._done(endpoint, response.status_code, began)
        return response

    def same_origin(self, url: str) -> bool:
        """Tell whether an absolute `url` is on the coordinator (so it may see a job token)."""
        mine, theirs = urlsplit(self.base), urlsplit(url)
        return (mine.scheme, mine.netloc) == (theirs.scheme, theirs.netloc)

    # --- runner registration ---------------------------------------------------------

    async def register(
        self, registration_token: str, *, description: str, executor: str = "shell"
    ) -> str:
        """Register a runner with `registration_token`; return the runner's token."""
        response = await self.call(
            Endpoint.REGISTER_RUNNER,
            "POST",
            "runners",
            json={
                "token": registration_token,
                "description": description,
                "info": runner_info(executor),
                "run_untagged": True,
                "locked": False,
            },
        )
        if response.status_code == 201:
            token = _json(response).get("token")
            if isinstance(token, str) and token:
                return token
            raise CoordinatorError("register: the coordinator's answer has no runner token")
        if response.status_code == 403:
            raise TokenRefused("register: the coordinator refused the registration token (403)")
        raise CoordinatorError(f"register: the coordinator answered HTTP {response.status_code}")

    async def verify(self, token: str) -> bool:
        """Tell whether the coordinator knows the runner `token` (False: it was removed)."""
        response = await self.call(
            Endpoint.VERIFY_RUNNER, "POST", "runners/verify", json={"token": token}
        )
        if response.status_code == 200:
            return True
        if response.status_code in (401, 403):
            return False
        raise CoordinatorError(f"verify: the coordinator answered HTTP {response.status_code}")


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
