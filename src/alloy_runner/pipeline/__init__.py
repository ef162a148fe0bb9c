"""Pipelines: reading `.alloy-ci.yml` into the jobs GitLab would create for a commit."""

from __future__ import annotations

from alloy_runner.pipeline.ci_yaml import (
    JobSpec,
    PipelineSpec,
    job_steps,
    load_pipeline,
    parse_duration,
    parse_pipeline,
)

__all__ = [
    "JobSpec",
    "PipelineSpec",
    "job_steps",
    "load_pipeline",
    "parse_duration",
    "parse_pipeline",
]
