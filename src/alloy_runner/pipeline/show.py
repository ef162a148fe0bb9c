"""`submit --dry-run`: the jobs GitLab would create, as text, without queueing anything."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alloy_runner.build.expand import expand_all
from alloy_runner.build.job import Variable
from alloy_runner.pipeline.ci_yaml import JobSpec, PipelineSpec

MASK = "[MASKED]"


def show(spec: PipelineSpec, jobs: Sequence[JobSpec], run: Sequence[Variable]) -> str:
    """Describe `jobs` of `spec`: stage by stage, each with its when, needs and variables."""
    predefined = dict(spec.variables)
    ref = predefined.get("CI_COMMIT_REF_NAME", "")
    sha = predefined.get("CI_COMMIT_SHORT_SHA", "")
    title = f"pipeline {spec.name!r} " if spec.name else "pipeline "
    lines = [
        f"{title}for {ref} ({sha}), source {predefined.get('CI_PIPELINE_SOURCE', '')}:"
        f" {len(jobs)} job(s)"
    ]
    masked = {v.key for v in run if v.masked}
    for stage in spec.stages:
        in_stage = [j for j in jobs if j.stage == stage]
        if not in_stage:
            continue
        lines.append(f"stage {stage}")
        for job in in_stage:
            lines.extend(_job(job, predefined, run, masked))
    return "\n".join(lines) + "\n"


def show_json(
    spec: PipelineSpec, jobs: Sequence[JobSpec], run: Sequence[Variable]
) -> dict[str, Any]:
    """The `submit --dry-run --json` document: the pipeline, then each job GitLab would create."""
    predefined = dict(spec.variables)
    masked = {v.key for v in run if v.masked}
    out = []
    for job in jobs:
        values = _values(job, predefined, run)
        out.append(
            {
                "name": job.name,
                "stage": job.stage,
                "when": job.when,
                "allow_failure": job.allow_failure,
                "start_in": job.start_in,
                "needs": None if job.needs is None else list(job.needs),
                "variables": {k: MASK if k in masked else values[k] for k in _shown(job, run)},
            }
        )
    return {
        "pipeline": None,
        "name": spec.name,
        "ref": predefined.get("CI_COMMIT_REF_NAME", ""),
        "sha": predefined.get("CI_COMMIT_SHA", ""),
        "source": predefined.get("CI_PIPELINE_SOURCE", ""),
        "stages": [s for s in spec.stages if any(j.stage == s for j in jobs)],
        "jobs": out,
    }


def _values(job: JobSpec, predefined: dict[str, str], run: Sequence[Variable]) -> dict[str, str]:
    own = dict(job.variables)
    table = {**predefined, "CI_JOB_NAME": job.name, "CI_JOB_STAGE": job.stage, **own}
    table.update({v.key: v.value for v in run})
    return expand_all(table, frozenset(job.raw_variables), keep_unknown=True)


def _shown(job: JobSpec, run: Sequence[Variable]) -> list[str]:
    own = dict(job.variables)
    return [*own, *(v.key for v in run if v.key not in own)]


def _job(
    job: JobSpec, predefined: dict[str, str], run: Sequence[Variable], masked: set[str]
) -> list[str]:
    facts = [f"when {job.when}"]
    if job.start_in:
        facts.append(f"start_in {job.start_in}s")
    if job.allow_failure or job.allow_failure_exit_codes:
        codes = job.allow_failure_exit_codes
        facts.append(f"allow_failure {list(codes)}" if codes else "allow_failure")
    if job.retry:
        facts.append(f"retry {job.retry} ({', '.join(job.retry_when)})")
    if job.resource_group:
        facts.append(f"resource_group {job.resource_group}")
    if job.interruptible:
        facts.append("interruptible")
    needs = "stage order" if job.needs is None else ", ".join(job.needs) or "none"
    values = _values(job, predefined, run)
    lines = [f"  {job.name}: {'; '.join(facts)}", f"    needs: {needs}"]
    for key in _shown(job, run):
        lines.append(f"    {key}={MASK if key in masked else values[key]}")
    return lines
