"""The JobSource of a `[[runners]]` entry with a `url`: a GitLab or AlloyCI coordinator (API v4).

While the coordinator is down the runner keeps running the builds it has:
their logs wait in memory and their results are retried, with backoff, until
the coordinator takes them; job requests back off the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from alloy_runner.build.job import Job
from alloy_runner.build.states import BuildState, FailureReason
from alloy_runner.coordinator.api_metrics import ApiMetrics, Endpoint
from alloy_runner.coordinator.gitlab.api import (
    LONG_POLL_TIMEOUT,
    ApiClient,
    Backoff,
    is_transient,
    runner_info,
)
from alloy_runner.coordinator.gitlab.log_sender import (
    FORCE_INTERVAL,
    INTERVAL_HEADER,
    TRACE_INTERVAL,
    TraceSender,
)
from alloy_runner.exceptions import ArtifactsError, JobPayloadError, Unreachable

if TYPE_CHECKING:
    from alloy_runner.build.build import BuildResult
    from alloy_runner.build.job import Artifact, Dependency
    from alloy_runner.build.joblog import Sink
    from alloy_runner.config.model import RunnerConfig

log = logging.getLogger(__name__)

TOKEN_REJECTED_PAUSE = 3600.0  # seconds a runner whose token was refused stops asking
ARTIFACTS_RETRY_FOR = 600.0  # seconds an artifacts transfer is retried while unreachable
MAX_REDIRECTS = 3
LAST_UPDATE_HEADER = "X-GitLab-Last-Update"


@dataclass
class _Running:
    job: Job
    sender: TraceSender


def _wire_state(state: BuildState) -> str:
    return "success" if state is BuildState.SUCCESS else "failed"


class GitlabSource:
    """Take jobs from a coordinator for one runner, and send their logs and results back."""

    def __init__(
        self,
        runner: RunnerConfig,
        *,
        metrics: ApiMetrics | None = None,
        check_interval: float = 3.0,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff: Backoff | None = None,
        trace_interval: float = TRACE_INTERVAL,
        force_interval: float = FORCE_INTERVAL,
        token_pause: float = TOKEN_REJECTED_PAUSE,
        artifacts_retry_for: float = ARTIFACTS_RETRY_FOR,
        timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runner = runner.name
        self.token = runner.token  # a token rotation (rotation.py) replaces it; requests use it
        self.resetting = False  # a rotation is under way: a 403 is the old token's, not a refusal
        self._url = runner.url.rstrip("/")
        extra = {} if timeout is None else {"timeout": timeout}
        self.client = ApiClient(
            runner.url,
            runner=runner.name,
            metrics=metrics,
            tls_ca_file=runner.tls_ca_file,
            transport=transport,
            clock=clock,
            **extra,
        )
        self._long_poll = LONG_POLL_TIMEOUT if timeout is None else max(timeout, 1.0)
        self._check_interval = check_interval
        self._backoff = backoff if backoff is not None else Backoff()
        self._trace_interval = trace_interval
        self._force_interval = force_interval
        self._token_pause = token_pause
        self._artifacts_retry_for = artifacts_retry_for
        self._clock = clock
        self._info = runner_info(runner.executor, runner.shell)
        self._last_update = ""
        self._next_request_at = 0.0
        self._failures = 0  # consecutive job requests that got no usable answer
        self._rejected = False
        self._running: dict[int, _Running] = {}
        self._reports: set[asyncio.Task[None]] = set()

    async def aclose(self) -> None:
        """Close the connections to the coordinator."""
        await self.client.aclose()

    # --- asking for jobs ---------------------------------------------------------------

    async def request(self) -> Job | None:
        began = self._clock()
        if began < self._next_request_at:
            return None
        body: dict[str, Any] = {"token": self.token, "info": self._info}
        if self._last_update:
            body["last_update"] = self._last_update
        try:
            response = await self.client.call(
                Endpoint.REQUEST_JOB, "POST", "jobs/request", json=body, timeout=self._long_poll
            )
        except Unreachable as exc:
            self._request_failed(str(exc))
            return None
        self._last_update = response.headers.get(LAST_UPDATE_HEADER, self._last_update)
        status = response.status_code
        if is_transient(status):
            self._request_failed(f"HTTP {status}")
            return None
        job = self._job_from(response) if status == 201 else None
        if status == 201 and job is None:
            return None  # a malformed job backs off as a server error does
        if self._failures:
            log.info("runner %s: the coordinator answers again", self.runner)
            self._failures = 0
        if status == 403:
            self._token_rejected(body["token"])
            return None
        if self._rejected:
            log.info("runner %s: the coordinator accepts its token again", self.runner)
            self._rejected = False
        if job is not None:
            return job
        if status not in (204, 409):  # 409: another request took the job; ask again later
            log.warning(
                "runner %s: the coordinator answered HTTP %d to a job request", self.runner, status
            )
        self._next_request_at = began + self._check_interval
        return None

    def _request_failed(self, why: str, what: str = "cannot reach the coordinator") -> None:
        self._failures += 1
        if self._failures == 1:  # once per outage; "answers again" ends it
            log.warning("runner %s: %s (%s); retrying with backoff", self.runner, what, why)
        self._next_request_at = self._clock() + self._backoff.delay(self._failures)

    def _token_rejected(self, sent: str) -> None:
        if sent != self.token or self.resetting:  # the token was just rotated: ask again
            self._next_request_at = self._clock() + self._check_interval
            return
        if not self._rejected:
            log.error(
                "runner %s: the coordinator rejected the runner's token (403 Forbidden); "
                "not asking for jobs with it for %.0f minutes",
                self.runner,
                self._token_pause / 60,
            )
        self._rejected = True
        self._next_request_at = self._clock() + self._token_pause

    def _job_from(self, response: httpx.Response) -> Job | None:
        data: Any = None
        try:
            data = response.json()
            return Job.from_payload(data)
        except (ValueError, JobPayloadError) as exc:
            self._request_failed(str(exc), "the coordinator sent a malformed job")
        # The coordinator now counts the job as running here: tell it that it failed.
        if isinstance(data, dict) and isinstance(data.get("id"), int) and data.get("token"):
            job = Job(data["id"], str(data["token"]), "", "")
            body = {
                "token": job.token,
                "state": "failed",
                "info": self._info,
                "failure_reason": FailureReason.RUNNER_SYSTEM_FAILURE.value,
            }
            task = asyncio.create_task(self._report(job, body, None))
            self._reports.add(task)
            task.add_done_callback(self._reports.discard)
        return None

    async def wait_for_jobs(self, timeout: float) -> None:
        # Long polling happens inside request(); here the runner only keeps its pace.
        await asyncio.sleep(min(timeout, max(0.0, self._next_request_at - self._clock())))

    def job_url(self, job: Job) -> str:
        """Return the job's page: the project's URL without credentials, then /-/jobs/ID."""
        repo = urlsplit(job.git_info.repo_url)
        if repo.scheme in ("http", "https") and repo.hostname:
            host = repo.hostname if repo.port is None else f"{repo.hostname}:{repo.port}"
            path = repo.path.removesuffix(".git").rstrip("/")
            return urlunsplit((repo.scheme, host, f"{path}/-/jobs/{job.id}", "", ""))
        return f"{self._url}/-/jobs/{job.id}"

    # --- running a job -----------------------------------------------------------------

    def trace_sink(self, job: Job) -> Sink:
        sender = TraceSender(
            self.client,
            job.id,
            job.token,
            interval=self._trace_interval,
            force_interval=self._force_interval,
            backoff=self._backoff,
            info=self._info,
        )
        self._running[job.id] = _Running(job, sender)
        sender.start()
        return sender.write

    async def started(self, job: Job) -> None:
        return None

    async def watch_cancel(self, job: Job) -> None:
        running = self._running.get(job.id)
        if running is None:
            await asyncio.Event().wait()  # never canceled: the job has no log stream yet
            return
        await running.sender.canceled.wait()

    async def fetch_artifacts(self, job: Job, dependency: Dependency, dest: Path) -> bool:
        token = dependency.token or job.token
        url = f"jobs/{dependency.id}/artifacts"
        headers = {"JOB-TOKEN": token}
        deadline = self._clock() + self._artifacts_retry_for
        failures = redirects = 0
        while True:
            try:
                response = await self.client.download(
                    Endpoint.DOWNLOAD_ARTIFACTS, url, headers, dest
                )
            except Unreachable as exc:
                failures = await self._retry_transfer(job, "download", str(exc), failures, deadline)
                continue
            status = response.status_code
            if status == 200:
                return True
            if status == 404:
                return False
            location = response.headers.get("Location")
            if status in (301, 302, 303, 307, 308) and location and redirects < MAX_REDIRECTS:
                redirects += 1
                url = str(response.url.join(location))
                # Object storage gets a pre-signed URL, never the job's token.
                headers = headers if self.client.same_origin(url) else {}
                continue
            if is_transient(status):
                why = f"HTTP {status}"
                failures = await self._retry_transfer(job, "download", why, failures, deadline)
                continue
            raise ArtifactsError(
                f"the coordinator answered HTTP {status} for the artifacts of job {dependency.id}"
            )

    async def upload_artifacts(self, job: Job, artifact: Artifact, archive: Path) -> None:
        fields = {
            "artifact_format": artifact.artifact_format,
            "artifact_type": artifact.artifact_type,
        }
        if artifact.expire_in:
            fields["expire_in"] = artifact.expire_in
        deadline = self._clock() + self._artifacts_retry_for
        failures = 0
        while True:
            try:
                with open(archive, "rb") as handle:
                    response = await self.client.call(
                        Endpoint.UPLOAD_ARTIFACTS,
                        "POST",
                        f"jobs/{job.id}/artifacts",
                        headers={"JOB-TOKEN": job.token},
                        data=fields,
                        files={"file": (f"{artifact.name}.zip", handle, "application/zip")},
                    )
            except Unreachable as exc:
                failures = await self._retry_transfer(job, "upload", str(exc), failures, deadline)
                continue
            status = response.status_code
            if status == 201:
                return
            if is_transient(status):
                why = f"HTTP {status}"
                failures = await self._retry_transfer(job, "upload", why, failures, deadline)
                continue
            if status == 413:
                raise ArtifactsError("the coordinator refused the archive as too large (413)")
            raise ArtifactsError(f"the coordinator answered HTTP {status} to the upload")

    async def _retry_transfer(
        self, job: Job, what: str, why: str, failures: int, deadline: float
    ) -> int:
        """Wait before trying an artifacts transfer again; raise once its time is up."""
        failures += 1
        if self._clock() >= deadline:
            raise ArtifactsError(f"artifacts {what} failed: {why}")
        self.client.retrying(
            Endpoint.UPLOAD_ARTIFACTS if what == "upload" else Endpoint.DOWNLOAD_ARTIFACTS
        )
        if failures == 1:
            log.warning("job %d: artifacts %s failed (%s); retrying", job.id, what, why)
        await asyncio.sleep(self._backoff.delay(failures))
        return failures

    async def finish(self, job: Job, result: BuildResult) -> None:
        running = self._running.pop(job.id, None)
        sender = running.sender if running is not None else None
        if sender is not None:
            await sender.close()
        body: dict[str, Any] = {
            "token": job.token,
            "state": _wire_state(result.state),
            "info": self._info,
        }
        if result.state is not BuildState.SUCCESS:
            body["failure_reason"] = (result.failure_reason or FailureReason.UNKNOWN_FAILURE).value
        if result.exit_code is not None:
            body["exit_code"] = result.exit_code
        await self._report(job, body, sender)

    async def _report(self, job: Job, body: dict[str, Any], sender: TraceSender | None) -> None:
        """PUT the final state until the coordinator accepts it (or says the job is not ours)."""
        failures = resends = 0
        while True:
            if sender is not None:
                body["output"] = sender.output()
            try:
                response = await self.client.call(
                    Endpoint.UPDATE_JOB, "PUT", f"jobs/{job.id}", json=body
                )
            except Unreachable as exc:
                failures += 1
                self.client.retrying(Endpoint.UPDATE_JOB)
                if failures == 1:
                    log.warning(
                        "job %d: cannot report its result (%s); retrying until it is taken",
                        job.id,
                        exc,
                    )
                await asyncio.sleep(self._backoff.delay(failures))
                continue
            status = response.status_code
            if status == 200:
                if failures:
                    log.info("job %d: its result reached the coordinator", job.id)
                return
            if status == 202:  # accepted, not yet complete: ask again after the interval
                failures = 0
                await asyncio.sleep(_interval(response, self._trace_interval))
                continue
            if status == 412 and sender is not None and resends < 3:
                resends += 1
                log.warning(
                    "job %d: the coordinator's copy of the log is damaged; resending it", job.id
                )
                await sender.resend_all()
                continue
            if status in (403, 404):
                log.warning(
                    "job %d: the coordinator no longer takes its result (HTTP %d)", job.id, status
                )
                return
            if is_transient(status) or status == 409:
                failures += 1
                self.client.retrying(Endpoint.UPDATE_JOB)
                await asyncio.sleep(self._backoff.delay(failures))
                continue
            log.error("job %d: the coordinator refused its result (HTTP %d)", job.id, status)
            return


def _interval(response: httpx.Response, default: float) -> float:
    try:
        return min(FORCE_INTERVAL, max(0.1, float(response.headers.get(INTERVAL_HEADER, default))))
    except ValueError:
        return default
