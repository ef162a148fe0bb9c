"""What a build shows and gives its scripts: the log's frame, the job's environment, and when
after-build work applies to a result."""

from __future__ import annotations

import platform
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from alloy_runner.build import flags
from alloy_runner.build.expand import expand_all
from alloy_runner.build.hostenv import host_environment
from alloy_runner.build.job import ArtifactWhen
from alloy_runner.build.states import BuildState, FailureReason
from alloy_runner.config.feature_flags import FLAGS
from alloy_runner.executors import orphans
from alloy_runner.version import build_info

if TYPE_CHECKING:
    from alloy_runner.build.job import Artifact, Job
    from alloy_runner.executors.base import Workspace

CANCEL_STATES = (BuildState.CANCELED, BuildState.TERMINATED)


def header_lines(runner: str, executor: str) -> list[str]:
    """Return the first lines of every job log: the runner's version, name, host and executor."""
    info = build_info()
    return [
        f"Running with alloy-runner {info.version} (revision {info.revision})",
        f"  on {runner}",
        f"Running on {socket.gethostname()} with the {executor} executor...",
    ]


def footer_line(state: BuildState, reason: FailureReason | None, exit_code: int | None) -> str:
    """Return the last line of a job log: how the job ended."""
    if state is BuildState.SUCCESS:
        return "Job succeeded"
    if state is BuildState.FAILED and reason is FailureReason.SCRIPT_FAILURE:
        return f"ERROR: Job failed: exit code {exit_code}"
    what = reason.value if reason else state.value
    return f"ERROR: Job failed: {state.value} ({what})"


def job_status(state: BuildState) -> str:
    """Return `CI_JOB_STATUS` as after_script sees it: success, canceled or failed."""
    if state is BuildState.SUCCESS:
        return "success"
    if state in CANCEL_STATES:
        return "canceled"
    return "failed"


def artifact_wanted(when: ArtifactWhen, state: BuildState) -> bool:
    """Tell whether an artifact with `when` is archived after a build that ended in `state`."""
    if when is ArtifactWhen.ALWAYS:
        return True
    if when is ArtifactWhen.ON_FAILURE:
        return state is not BuildState.SUCCESS
    return state is BuildState.SUCCESS


def wanted_artifacts(job: Job, state: BuildState) -> list[Artifact]:
    """Return the job's artifacts to archive after a build that ended in `state`."""
    return [
        artifact
        for artifact in job.artifacts
        if artifact_wanted(artifact.when, state) and (artifact.paths or artifact.untracked)
    ]


@dataclass(frozen=True)
class BuildPaths:
    """Where builds and caches of a runner live on this host."""

    builds_root: Path
    cache_root: Path


@dataclass(frozen=True)
class BuildPlace:
    """Where and as whom a build runs: what the environment says of the runner."""

    runner: str
    project: str
    builds_root: Path
    slot: int
    job_url: str  # lets a restarted runner find this job's processes if this one dies
    environment: tuple[str, ...] = ()  # the runner's `environment` entries, KEY=VALUE
    feature_flags: tuple[tuple[str, bool], ...] = ()  # the runner's `[runners.feature_flags]`


def job_environment(
    job: Job, place: BuildPlace, workspace: Workspace, trace_context: Mapping[str, str]
) -> dict[str, str]:
    """Return the environment of the job's scripts: the runner's (less its own telemetry
    settings), every feature flag's resolved value, GitLab's CI_*, the job's own (less its
    FF_*), and the trace context of the job's span."""
    env = host_environment()
    # GitLab's GetAllVariables: every FF_* at its resolved value (config.toml's winning),
    # then the runner's `environment` as written, then the job's variables less its FF_*.
    resolved = flags.resolve(dict(place.feature_flags), flags.settings(job, place.environment))
    env.update({name: str(value).lower() for name, value in resolved.values.items()})
    for entry in place.environment:
        key, _, value = entry.partition("=")
        env[key] = value
    env.update(_job_variables(job, place.project))
    for variable in job.variables:
        if variable.key in FLAGS:
            continue
        if variable.file:
            path = workspace.tmp_dir / variable.key
            path.write_text(variable.value)
            env[variable.key] = str(path)
        else:
            env[variable.key] = variable.value
    env.update(_runner_variables(place, workspace))
    # GitLab Runner expands job variables (not `expand: false` ones) before the job starts.
    expandable = frozenset(v.key for v in job.variables if not v.raw and not v.file)
    env = expand_all(env, frozenset(env) - expandable)
    # The job's span, so that tools in the script can join it (TRACEPARENT and the rest of
    # what OTEL_PROPAGATORS carries).
    env.update(trace_context)
    return env


def _job_variables(job: Job, project: str) -> dict[str, str]:
    """GitLab's predefined variables of the job; the job's own variables may override them."""
    return {
        "CI": "true",
        "CI_SERVER": "yes",
        "ALLOY_CI": "true",
        "CI_JOB_ID": str(job.id),
        "CI_JOB_NAME": job.name,
        "CI_JOB_STAGE": job.stage,
        "CI_JOB_TIMEOUT": str(job.timeout),
        "CI_PROJECT_ID": str(job.project_id),
        "CI_PROJECT_NAME": project,
        "CI_COMMIT_SHA": job.git_info.sha,
        "CI_COMMIT_SHORT_SHA": job.git_info.sha[:8],
        "CI_COMMIT_BEFORE_SHA": job.git_info.before_sha,
        "CI_COMMIT_REF_NAME": job.git_info.ref,
        "CI_REPOSITORY_URL": job.git_info.repo_url,
    }


def _runner_variables(place: BuildPlace, workspace: Workspace) -> dict[str, str]:
    """The variables the runner sets last: no job variable overrides them."""
    info = build_info()
    return {
        "CI_PROJECT_DIR": str(workspace.project_dir),
        "CI_BUILDS_DIR": str(place.builds_root),
        "CI_CONCURRENT_ID": str(place.slot),
        "CI_CONCURRENT_PROJECT_ID": str(place.slot),
        "CI_RUNNER_DESCRIPTION": place.runner,
        "CI_RUNNER_VERSION": info.version,
        "CI_RUNNER_REVISION": info.revision,
        "CI_RUNNER_EXECUTABLE_ARCH": f"{info.os}/{info.architecture}",
        "CI_RUNNER_SHORT_TOKEN": "",
        "CI_SERVER_NAME": "alloy-runner",
        "CI_NODE_NAME": platform.node(),
        orphans.ENV_KEY: place.job_url,
    }
