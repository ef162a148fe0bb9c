"""The download_artifacts stage's script: each dependency's artifacts fetched from the job's
source into the build's temporary directory, then extracted by the script."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from alloy_runner.build import script
from alloy_runner.exceptions import ArtifactsError

if TYPE_CHECKING:
    from alloy_runner.build.job import Job
    from alloy_runner.coordinator.base import JobSource
    from alloy_runner.executors.base import Workspace

FAILED = "exit 1\n"  # the stage fails, and the build with its failure reason


async def download_script(
    job: Job, source: JobSource, workspace: Workspace, log: Callable[[str], None]
) -> str | None:
    """Fetch the artifacts of `job`'s dependencies; return the script that extracts them
    (None: nothing to extract, FAILED: a fetch failed)."""
    archives = []
    for dep in job.dependencies:
        dest = workspace.tmp_dir / f"dependency-{dep.id}.zip"
        try:
            fetched = await source.fetch_artifacts(job, dep, dest)
        except ArtifactsError as exc:
            log(f"ERROR: Downloading artifacts failed: {exc}")
            return FAILED
        if fetched:
            archives.append(dest)
        else:
            log(f"No artifacts to download from {dep.name} ({dep.id})")
    return script.extract(archives, "artifacts") if archives else None
