"""The JobSource protocol: the spool and the GitLab API v4 both stand behind it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from alloy_runner.build.build import BuildResult
    from alloy_runner.build.job import Artifact, Dependency, Job
    from alloy_runner.build.joblog import Sink


class JobSource(Protocol):
    """Hand out jobs for one runner and take back their logs, artifacts and results."""

    async def request(self) -> Job | None:
        """Take the next job, or return None when there is none now."""

    async def wait_for_jobs(self, timeout: float) -> None:
        """Return when a job may be available, or after `timeout` seconds."""

    def job_url(self, job: Job) -> str:
        """Return where an operator finds the job (no token in it)."""

    def trace_sink(self, job: Job) -> Sink:
        """Return where the job's (already masked) log goes as it is written."""

    async def started(self, job: Job) -> None:
        """The build began running."""

    async def watch_cancel(self, job: Job) -> None:
        """Return only when the job is canceled at the source."""

    async def fetch_artifacts(self, job: Job, dependency: Dependency, dest: Path) -> bool:
        """Write the artifacts archive of `dependency` to `dest`; False when it has none."""

    async def upload_artifacts(self, job: Job, artifact: Artifact, archive: Path) -> None:
        """Keep the artifacts archive the build produced."""

    async def finish(self, job: Job, result: BuildResult) -> None:
        """Record the final state; after this returns the job is done at the source."""
