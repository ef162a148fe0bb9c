"""Stages, states and failure reasons: enum values are the wire and label values."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class BuildState(Enum):
    """Where a build is in its life (`ci_runner_builds{state}`, `ci_runner_jobs_total{state}`)."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELED = "canceled"
    TERMINATED = "terminated"
    TIMEDOUT = "timedout"

    @property
    def is_final(self) -> bool:
        return self not in (BuildState.PENDING, BuildState.RUNNING)


FINAL_STATES = tuple(s for s in BuildState if s.is_final)


class BuildStage(Enum):
    """The stages of a build, in the order they run."""

    PREPARE_SCRIPT = "prepare_script"
    GET_SOURCES = "get_sources"
    RESTORE_CACHE = "restore_cache"
    DOWNLOAD_ARTIFACTS = "download_artifacts"
    BUILD_SCRIPT = "build_script"
    AFTER_SCRIPT = "after_script"
    ARCHIVE_CACHE = "archive_cache"
    UPLOAD_ARTIFACTS = "upload_artifacts"


class ExecutorStage(Enum):
    """What the executor is doing for a build (`ci_runner_builds{executor_stage}`)."""

    CREATED = "created"
    PREPARE = "prepare"
    FINISH = "finish"
    CLEANUP = "cleanup"
    DOCKER_PREPARE = "docker_prepare"
    DOCKER_PULLING_IMAGE = "docker_pulling_image"
    DOCKER_CREATING_BUILD_VOLUMES = "docker_creating_build_volumes"
    DOCKER_CREATING_SERVICES = "docker_creating_services"
    DOCKER_CREATING_USER_VOLUMES = "docker_creating_user_volumes"
    DOCKER_RUN = "docker_run"
    DOCKER_CLEANUP = "docker_cleanup"
    DOCKER_MACHINE_USE_MACHINE = "docker_machine_use_machine"
    DOCKER_MACHINE_RELEASE_MACHINE = "docker_machine_release_machine"


class FailureReason(Enum):
    """Why a build failed; the same value goes to the coordinator and to metrics."""

    SCRIPT_FAILURE = "script_failure"
    RUNNER_SYSTEM_FAILURE = "runner_system_failure"
    JOB_EXECUTION_TIMEOUT = "job_execution_timeout"
    RUNNER_CONFIGURATION_ERROR = "runner_configuration_error"
    RUNNER_EXTERNAL_DEPENDENCY_FAILURE = "runner_external_dependency_failure"
    RUNNER_INTERRUPTED = "runner_interrupted"
    JOB_CANCELED = "job_canceled"
    IMAGE_PULL_FAILURE = "image_pull_failure"
    UNKNOWN_FAILURE = "unknown_failure"

    @classmethod
    def of(cls, exc: BaseException) -> FailureReason:
        """Return the reason an executor's error names (ExecutorError), else a system failure."""
        return cls(getattr(exc, "failure_reason", cls.RUNNER_SYSTEM_FAILURE.value))


# Which failure reason a failed stage gives the build, and a stop of each kind.
STAGE_FAILURE = {
    BuildStage.PREPARE_SCRIPT: FailureReason.RUNNER_SYSTEM_FAILURE,
    BuildStage.GET_SOURCES: FailureReason.SCRIPT_FAILURE,
    BuildStage.DOWNLOAD_ARTIFACTS: FailureReason.RUNNER_EXTERNAL_DEPENDENCY_FAILURE,
    BuildStage.BUILD_SCRIPT: FailureReason.SCRIPT_FAILURE,
    BuildStage.UPLOAD_ARTIFACTS: FailureReason.RUNNER_SYSTEM_FAILURE,
}
STOP_FAILURE = {
    BuildState.CANCELED: FailureReason.JOB_CANCELED,
    BuildState.TERMINATED: FailureReason.RUNNER_INTERRUPTED,
    BuildState.TIMEDOUT: FailureReason.JOB_EXECUTION_TIMEOUT,
    BuildState.FAILED: FailureReason.RUNNER_SYSTEM_FAILURE,  # the runner cannot go on (disk full)
}


@dataclass(frozen=True)
class BuildResult:
    """How a build ended."""

    state: BuildState
    failure_reason: FailureReason | None
    duration: float
    stage_durations: dict[BuildStage, float] = field(default_factory=dict)
    exit_code: int | None = None


IDLE = "idle"  # the stage, state and executor_stage of the per-runner idle series
