"""The plan a `.alloy-ci.yml` is read into: the jobs GitLab would create, and how they run."""

from __future__ import annotations

from dataclasses import dataclass

from alloy_runner.build.image import Image, Service
from alloy_runner.build.job import DEFAULT_TIMEOUT, Artifact, Cache, Step


@dataclass(frozen=True)
class JobSpec:
    """One job of the plan, with defaults, templates, rules and global variables applied."""

    name: str
    stage: str
    script: tuple[str, ...]  # before_script + script, as GitLab sends them in the "script" step
    after_script: tuple[str, ...]
    variables: tuple[tuple[str, str], ...]  # global, job, matrix and rule variables, in order
    timeout: int = DEFAULT_TIMEOUT
    allow_failure: bool = False
    when: str = "on_success"
    artifacts: Artifact | None = None
    cache: tuple[Cache, ...] = ()
    dependencies: tuple[str, ...] | None = None  # None: every job of the earlier stages
    needs: tuple[str, ...] | None = None  # None: no `needs`, the job waits for earlier stages
    raw_variables: tuple[str, ...] = ()  # `expand: false`
    start_in: int = 0  # seconds a `delayed` job waits once it may start
    retry: int = 0
    retry_when: tuple[str, ...] = ("always",)
    retry_exit_codes: tuple[int, ...] = ()
    resource_group: str | None = None
    interruptible: bool = False
    allow_failure_exit_codes: tuple[int, ...] = ()
    image: Image | None = None  # `image:`; None: the runner's default image
    services: tuple[Service, ...] = ()


@dataclass(frozen=True)
class PipelineSpec:
    """A pipeline's stages, its jobs in stage then file order, and what was ignored.

    `filtered` is set (and `jobs` empty) when `workflow:rules` creates no pipeline.
    """

    stages: tuple[str, ...]
    jobs: tuple[JobSpec, ...]
    warnings: tuple[str, ...] = ()
    name: str = ""
    filtered: str = ""
    variables: tuple[tuple[str, str], ...] = ()  # the pipeline's predefined variables
    auto_cancel: str = "conservative"  # workflow:auto_cancel:on_new_commit
    left_out: tuple[str, ...] = ()  # jobs the file has that this pipeline does not run


def job_steps(spec: JobSpec) -> tuple[Step, ...]:
    """Return the API v4 steps of a job: `script`, then `after_script` when it has one."""
    steps = [Step("script", spec.script, spec.timeout, "on_success", allow_failure=False)]
    if spec.after_script:
        steps.append(Step("after_script", spec.after_script, spec.timeout, "always", True))
    return tuple(steps)
