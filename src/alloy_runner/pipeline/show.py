"""`submit --dry-run`: the jobs GitLab would create, as text, without queueing anything."""

from __future__ import annotations

from collections.abc import Sequence

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
    own = dict(job.variables)
    table = {**predefined, "CI_JOB_NAME": job.name, "CI_JOB_STAGE": job.stage, **own}
    table.update({v.key: v.value for v in run})
    values = expand_all(table, frozenset(job.raw_variables), keep_unknown=True)
    shown = [*own, *(v.key for v in run if v.key not in own)]
    lines = [f"  {job.name}: {'; '.join(facts)}", f"    needs: {needs}"]
    for key in shown:
        lines.append(f"    {key}={MASK if key in masked else values[key]}")
    return lines
