"""Turn a pipeline plan into API v4 jobs: for the spool (`submit`) and for `exec`."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from alloy_runner.build.job import Dependency, GitInfo, Job, Variable
from alloy_runner.build.ports import PIPELINE_TRACEPARENT, TRACEPARENT
from alloy_runner.coordinator.spool.runs import RunTrace
from alloy_runner.coordinator.spool.store import PipelineJob, Spool
from alloy_runner.exceptions import PipelineError
from alloy_runner.pipeline.ci_yaml import JobSpec, PipelineSpec, job_steps
from alloy_runner.pipeline.repo import Repo, slug


def git_info_of(repo: Repo) -> GitInfo:
    """Describe the commit as the coordinator would; empty outside a git repository.

    Jobs fetch the committed state, as GitLab's do: uncommitted changes are not
    part of a pipeline.
    """
    if not repo.in_git:
        return GitInfo()
    return GitInfo(
        repo_url=repo.root.as_uri(),
        ref=repo.ref,
        sha=repo.sha,
        ref_type="tag" if repo.is_tag else "branch",
        refspecs=("+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"),
    )


def git_depth(variables: Sequence[Variable]) -> int:
    """The job's GIT_DEPTH, as GitLab turns it into the payload's git_info.depth (Ruby's
    `to_i`: the leading integer, else 0; no GIT_DEPTH: 0, a full fetch)."""
    values = [v.value for v in variables if v.key == "GIT_DEPTH"]
    # Ruby's to_i: ASCII blanks, a sign, digits with single underscores between them.
    number = re.match(r"[ \t\n\v\f\r]*[+-]?[0-9]+(?:_[0-9]+)*", values[-1]) if values else None
    return int(number.group().replace("_", "")) if number else 0


def select(spec: PipelineSpec, names: Sequence[str]) -> list[JobSpec]:
    """Return the jobs called `names` (all when empty); raise for an unknown name."""
    if not names:
        return list(spec.jobs)
    known = {j.name for j in spec.jobs}
    unknown = [n for n in names if n not in known]
    left_out = [n for n in unknown if n in spec.left_out]
    if left_out:
        where = dict(spec.variables)
        ref, source = where.get("CI_COMMIT_REF_NAME", ""), where.get("CI_PIPELINE_SOURCE", "")
        raise PipelineError(
            f"job {left_out[0]!r} is not in the pipeline for {ref} ({source}):"
            " its rules, only/except or when: never leave it out"
        )
    if unknown:
        raise PipelineError(f"no job called {', '.join(map(repr, unknown))} in the pipeline")
    return [j for j in spec.jobs if j.name in names]


def _dependencies(
    job: JobSpec, chosen: list[JobSpec], ids: dict[str, int]
) -> tuple[Dependency, ...]:
    names = job.dependencies
    if names is None:
        order = [j.stage for j in chosen]
        names = tuple(j.name for j in chosen if order.index(j.stage) < order.index(job.stage))
    return tuple(Dependency(id=ids[n], name=n) for n in names if n in ids)


@dataclass(frozen=True)
class Planned:
    job: Job
    spec: JobSpec


def job_variables(
    spec: JobSpec, job_id: int, pipeline: Sequence[tuple[str, str]], run: Sequence[Variable]
) -> tuple[Variable, ...]:
    """A job's variables in GitLab's precedence order (a later one wins)."""
    own = {
        "CI_JOB_ID": str(job_id),
        "CI_JOB_NAME": spec.name,
        "CI_JOB_NAME_SLUG": slug(spec.name),
        "CI_JOB_STAGE": spec.stage,
        "CI_JOB_MANUAL": "true" if spec.when == "manual" else "",
    }
    raw = set(spec.raw_variables)
    return (
        *(Variable(k, v) for k, v in pipeline),
        *(Variable(k, v) for k, v in own.items() if v),
        *(Variable(k, v, raw=k in raw) for k, v in spec.variables),
        *run,
    )


def plan_jobs(
    chosen: list[JobSpec],
    ids: Sequence[int],
    *,
    pipeline_id: int,
    repo: Repo,
    variables: Sequence[Variable] = (),
    pipeline_variables: Sequence[tuple[str, str]] = (),
) -> list[Planned]:
    """Return the API v4 jobs of `chosen`, numbered by `ids`."""
    by_name = {spec.name: job_id for spec, job_id in zip(chosen, ids, strict=True)}
    git = git_info_of(repo)
    pipeline = {**dict(pipeline_variables), **repo.predefined(pipeline_id)}
    planned = []
    for spec, job_id in zip(chosen, ids, strict=True):
        job_vars = job_variables(spec, job_id, list(pipeline.items()), variables)
        job = Job(
            id=job_id,
            token=secrets.token_hex(16),
            name=spec.name,
            stage=spec.stage,
            project_id=0,
            project_name=repo.predefined()["CI_PROJECT_NAME"],
            git_info=replace(git, depth=git_depth(job_vars)) if git.repo_url else git,
            timeout=spec.timeout,
            variables=job_vars,
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
    repo: Repo,
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
    project = repo.predefined()["CI_PROJECT_NAME"]
    pipeline_url = (spool.dir("pipelines") / f"{pipeline_id}.json").as_uri()
    planned = plan_jobs(
        chosen,
        ids,
        pipeline_id=pipeline_id,
        repo=repo,
        variables=(
            Variable("CI_PIPELINE_URL", pipeline_url),
            *variables,
            Variable(PIPELINE_TRACEPARENT, run.traceparent),
        ),
        pipeline_variables=spec.variables,
    )
    by_name = {p.spec.name: p.job.id for p in planned}
    stages = [
        (stage, [_pipeline_job(p, by_name) for p in planned if p.job.stage == stage])
        for stage in spec.stages
        if any(p.job.stage == stage for p in planned)
    ]
    about: dict[str, Any] = {"name": project, "trace": vars(run)}
    if repo.in_git:  # what auto-cancel compares with the pipelines that came before
        about.update(ref=repo.ref, sha=repo.sha, auto_cancel=spec.auto_cancel)
    payloads = {p.job.id: p.job.to_payload() for p in planned}
    spool.add_pipeline(pipeline_id, stages, payloads, about)
    return pipeline_id, planned


def _pipeline_job(p: Planned, by_name: dict[str, int]) -> PipelineJob:
    spec = p.spec
    needs = None if spec.needs is None else [by_name[n] for n in spec.needs if n in by_name]
    return PipelineJob(
        p.job.id,
        p.job.name,
        spec.allow_failure,
        spec.when,
        needs=needs,
        start_in=spec.start_in,
        retry=spec.retry,
        retry_when=list(spec.retry_when),
        retry_exit_codes=list(spec.retry_exit_codes),
        resource_group=spec.resource_group,
        allow_failure_exit_codes=list(spec.allow_failure_exit_codes),
        interruptible=spec.interruptible,
    )
