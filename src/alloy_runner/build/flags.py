"""A job's feature flags, resolved as GitLab Runner's populateFeatureFlags does.

`[runners.feature_flags]` wins; else the last variable of the flag's name among the runner's
`environment` entries and then the job's variables (GitLab's getVariablesForFeatureFlagResolution
order), its value expanded; else GitLab's default. What this runner does with each value is
config/feature_flags.py's table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from alloy_runner.build.expand import expand_all
from alloy_runner.config.feature_flags import FLAGS, GO_BOOLS, configured_on, problem
from alloy_runner.config.model import ExecutorName

if TYPE_CHECKING:
    from alloy_runner.build.job import Job
    from alloy_runner.config.model import RunnerConfig

JOB = "job variable"
ENVIRONMENT = "runner environment"  # config.toml's `environment = ["FF_X=true"]`


@dataclass(frozen=True)
class Setting:
    """A variable that may set a flag: an `environment` entry of the runner or a job's."""

    key: str
    value: str
    source: str = JOB  # JOB or ENVIRONMENT
    raw: bool = False  # `expand: false`
    file: bool = False  # a file variable: its value is a path (GitLab's tmp file)


@dataclass(frozen=True)
class Resolved:
    """Every flag's value for one job, as GitLab Runner's populateFeatureFlags makes it."""

    values: Mapping[str, bool]
    sources: Mapping[str, str]  # the flags a variable set: where it came from
    errors: tuple[str, ...]  # GitLab's "could not parse feature flag" lines


def resolve(configured: Mapping[str, bool], settings: Sequence[Setting]) -> Resolved:
    """Resolve every flag as GitLab Runner does: `[runners.feature_flags]` wins; else the LAST
    variable of that name (the runner's `environment`, then the job's), its value expanded,
    read with Go's ParseBool; a value that does not parse is GitLab's default and an error
    line; a file variable's value is a path, which never parses."""
    last = {s.key: s for s in settings}
    plain = {s.key: s.value for s in settings if not s.file}
    defaults = {name: str(flag.gitlab_default).lower() for name, flag in FLAGS.items()}
    raw = frozenset(s.key for s in settings if s.raw)
    expanded = expand_all({**defaults, **plain}, raw | frozenset(defaults) - frozenset(plain))
    values, sources, errors = {}, {}, []
    for name, flag in FLAGS.items():
        values[name] = flag.gitlab_default
        if name in configured:
            values[name] = configured[name]
            continue
        setting = last.get(name)
        if setting is None:
            continue
        text = f"<the path of file variable {name}>" if setting.file else expanded[name]
        if text in GO_BOOLS:
            values[name], sources[name] = GO_BOOLS[text], setting.source
        else:
            errors.append(f"{name}: could not parse feature flag, expected bool, got {text}")
    return Resolved(values, sources, tuple(errors))


def job_problem(resolved: Resolved, executor: ExecutorName) -> str | None:
    """Return why the flags a job's variables (or the runner's `environment`) set ask for what
    this runner does not do, or None. Config-only flags are never refused from there."""
    for name, source in resolved.sources.items():
        if FLAGS[name].config_only:
            continue
        if why := problem(name, resolved.values[name], executor):
            return f"{source} {why}"
    return None


def settings(job: Job, environment: Sequence[str]) -> list[Setting]:
    """The variables that may set a job's flags, in GitLab's order: the runner's
    `environment`, then the job's own."""
    found = []
    for entry in environment:
        key, _, value = entry.partition("=")
        found.append(Setting(key, value, ENVIRONMENT))
    found += [Setting(v.key, v.value, JOB, v.raw, v.file) for v in job.variables]
    return found


def for_job(job: Job, runner: RunnerConfig) -> Resolved:
    """Resolve every flag for `job` on `runner`."""
    return resolve(dict(runner.feature_flags), settings(job, runner.environment))


def is_on(name: str, job: Job, runner: RunnerConfig) -> bool:
    """Return whether flag `name` is on for `job`. A config-only flag is read from config.toml
    alone, as GitLab Runner does (a job variable does not change what it does)."""
    configured = dict(runner.feature_flags)
    if FLAGS[name].config_only:
        return configured_on(name, configured)
    return for_job(job, runner).values[name]
