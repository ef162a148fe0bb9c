"""The CI/CD semantic conventions (`model/cicd/` of the registry) for jobs and pipeline runs.

A job is a pipeline *task run* (span kind INTERNAL); a spool pipeline is a
*pipeline run* (span kind SERVER, emitted by the runner as its controller).
The names come from opentelemetry-semantic-conventions' constants.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from opentelemetry.semconv._incubating.attributes.cicd_attributes import (
    CICD_PIPELINE_NAME,
    CICD_PIPELINE_RUN_ID,
    CICD_PIPELINE_RUN_URL_FULL,
    CICD_PIPELINE_TASK_NAME,
    CICD_PIPELINE_TASK_RUN_ID,
    CICD_PIPELINE_TASK_RUN_URL_FULL,
    CICD_PIPELINE_TASK_TYPE,
    CICD_WORKER_ID,
    CICD_WORKER_NAME,
    CicdPipelineTaskTypeValues,
)
from opentelemetry.semconv._incubating.attributes.vcs_attributes import (
    VCS_REF_HEAD_NAME,
    VCS_REF_HEAD_REVISION,
    VCS_REF_HEAD_TYPE,
    VCS_REPOSITORY_URL_FULL,
)

if TYPE_CHECKING:
    from opentelemetry.util.types import AttributeValue

    from alloy_runner.build.job import Job

_TASK_TYPES = {t.value: t.value for t in CicdPipelineTaskTypeValues}
_REF_TYPES = ("branch", "tag")


def public_url(url: str) -> str:
    """Return `url` without user and password (a clone URL carries the job's token)."""
    parts = urlsplit(url)
    if not parts.scheme or parts.hostname is None:
        return "" if "@" in url else url
    host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if ":" in parts.hostname:
        host = f"[{host}]" if parts.port is None else f"[{parts.hostname}]:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


def variable(job: Job, key: str) -> str | None:
    """Return the job's variable `key` (the last definition wins, as in its environment)."""
    values = [v.value for v in job.variables if v.key == key and not v.file]
    return values[-1] if values else None


def pipeline_name(job: Job) -> str:
    return job.project_name or f"project-{job.project_id}"


def task_type(stage: str) -> str | None:
    """Return `cicd.pipeline.task.type` for a job of `stage`: build, test or deploy, if it is."""
    return _TASK_TYPES.get(stage.strip().lower())


def job_attributes(
    job: Job, *, worker_name: str, worker_id: str, url: str
) -> dict[str, AttributeValue]:
    """Return the attributes of a task-run span: every required and recommended one known."""
    attributes: dict[str, AttributeValue] = {
        CICD_PIPELINE_NAME: pipeline_name(job),
        CICD_PIPELINE_TASK_NAME: job.name,
        CICD_PIPELINE_TASK_RUN_ID: str(job.id),
        CICD_WORKER_ID: worker_id or worker_name,
        CICD_WORKER_NAME: worker_name,
    }
    optional: dict[str, str | None] = {
        CICD_PIPELINE_TASK_RUN_URL_FULL: public_url(url) if url else variable(job, "CI_JOB_URL"),
        CICD_PIPELINE_RUN_ID: variable(job, "CI_PIPELINE_ID"),
        CICD_PIPELINE_RUN_URL_FULL: variable(job, "CI_PIPELINE_URL"),
        CICD_PIPELINE_TASK_TYPE: task_type(job.stage),
        VCS_REF_HEAD_NAME: job.git_info.ref,
        VCS_REF_HEAD_REVISION: job.git_info.sha,
        VCS_REF_HEAD_TYPE: job.git_info.ref_type if job.git_info.ref_type in _REF_TYPES else None,
        VCS_REPOSITORY_URL_FULL: public_url(job.git_info.repo_url),
    }
    attributes.update({k: v for k, v in optional.items() if v})
    return attributes
