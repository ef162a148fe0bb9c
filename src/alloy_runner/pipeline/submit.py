"""Turn a pipeline plan into API v4 jobs: for the spool (`submit`) and for `exec`."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from alloy_runner.build.job import Dependency, GitInfo, Job, Variable
from alloy_runner.build.ports import PIPELINE_TRACEPARENT, TRACEPARENT
from alloy_runner.coordinator.spool.runs import RunTrace
from alloy_runner.coordinator.spool.store import PipelineJob, Spool
from alloy_runner.exceptions import PipelineError
from alloy_runner.pipeline.ci_yaml import JobSpec, PipelineSpec, job_steps


def _git(project_dir: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(project_dir), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_info_of(project_dir: Path) -> GitInfo:
    """Describe the repository at `project_dir` as the coordinator would; empty if none.

    Jobs fetch the committed state of HEAD, as GitLab's do: uncommitted changes
    are not part of a pipeline.
    """
    top = _git(project_dir, "rev-parse", "--show-toplevel")
    sha = _git(project_dir, "rev-parse", "HEAD") if top else None
    if not top or not sha:
        return GitInfo()
    ref = _git(project_dir, "symbolic-ref", "--short", "-q", "HEAD") or sha
    return GitInfo(
        repo_url=Path(top).as_uri(),
        ref=ref,
        sha=sha,
        refspecs=("+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"),
    )


def select(spec: PipelineSpec, names: Sequence[str]) -> list[JobSpec]:
    """Return the jobs called `names` (all when empty); raise for an unknown name."""
    if not names:
        return list(spec.jobs)
    known = {j.name for j in spec.jobs}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise PipelineError(f"no job called {', '.join(map(repr, unknown))} in the pipeline")
    return [j for j in spec.jobs if j.name in names]


def _dependencies(
    job: JobSpec, chosen: list[JobSpec], ids: dict[str, int]
) -> tuple[Dependency, ...]:
    names = job.dependencies if job.dependencies is not None else job.needs
    if names is None:
        earlier = {j.stage for j in chosen if j.stage != job.stage}
        order = [j.stage for j in chosen]
        names = tuple(
            j.name
            for j in chosen
            if j.stage in earlier and order.index(j.stage) < order.index(job.stage)
        )
    return tuple(Dependency(id=ids[n], name=n) for n in names if n in ids)


@dataclass(frozen=True)
class Planned:
    job: Job
    spec: JobSpec


def plan_jobs(
    chosen: list[JobSpec],
    ids: Sequence[int],
    *,
    pipeline_id: int,
    git: GitInfo,
    project: str,
    variables: Sequence[Variable] = (),
) -> list[Planned]:
    """Return the API v4 jobs of `chosen`, numbered by `ids`."""
    by_name = {spec.name: job_id for spec, job_id in zip(chosen, ids, strict=True)}
    planned = []
    for spec, job_id in zip(chosen, ids, strict=True):
        predefined = [
            Variable("CI_PIPELINE_ID", str(pipeline_id)),
            Variable("CI_JOB_ID", str(job_id)),
            Variable("CI_COMMIT_SHA", git.sha),
            Variable("CI_COMMIT_REF_NAME", git.ref),
            Variable("CI_PROJECT_NAME", project),
        ]
        job = Job(
            id=job_id,
            token=secrets.token_hex(16),
            name=spec.name,
            stage=spec.stage,
            project_id=0,
            project_name=project,
            git_info=git,
            timeout=spec.timeout,
            variables=(
                *predefined,
                *(Variable(k, v) for k, v in spec.variables),
                *variables,
            ),
            steps=job_steps(spec),
            artifacts=(spec.artifacts,) if spec.artifacts is not None else (),
            cache=spec.cache,
            dependencies=_dependencies(spec, chosen, by_name),
            image=spec.image,
            services=spec.services,
        )
        planned.append(Planned(job, spec))
    return planned


def submit(
    spool: Spool,
    spec: PipelineSpec,
    project_dir: Path,
    *,
    names: Sequence[str] = (),
    variables: Sequence[Variable] = (),
) -> tuple[int, list[Planned]]:
    """Put a pipeline of `spec` into the spool; return its id and its jobs."""
    chosen = select(spec, names)
    if not chosen:
        raise PipelineError("the pipeline has no jobs")
    pipeline_id, *ids = spool.allocate_ids(len(chosen) + 1)
    given = [v.value for v in variables if v.key == TRACEPARENT]
    run = RunTrace.new(given[-1] if given else None)
    project = project_dir.resolve().name
    pipeline_url = (spool.dir("pipelines") / f"{pipeline_id}.json").as_uri()
    planned = plan_jobs(
        chosen,
        ids,
        pipeline_id=pipeline_id,
        git=git_info_of(project_dir),
        project=project,
        variables=(
            Variable("CI_PIPELINE_URL", pipeline_url),
            *variables,
            Variable(PIPELINE_TRACEPARENT, run.traceparent),
        ),
    )
    stages = [
        (
            stage,
            [
                PipelineJob(p.job.id, p.job.name, p.spec.allow_failure, p.spec.when)
                for p in planned
                if p.job.stage == stage
            ],
        )
        for stage in spec.stages
        if any(p.job.stage == stage for p in planned)
    ]
    spool.add_pipeline(
        pipeline_id,
        stages,
        {p.job.id: p.job.to_payload() for p in planned},
        {"name": project, "trace": vars(run)},
    )
    return pipeline_id, planned
