"""What an operator's config.toml adds around a job's stages, as GitLab Runner does: the hooks
(`pre_get_sources_script`, ...), `clone_url`, `debug_trace_disabled`, the feature flags
FF_ENABLE_JOB_CLEANUP and FF_LOG_IMAGES_CONFIGURED_FOR_JOB, and the refusal of a job's
`FF_*` variable this runner does not work as, or of a GIT_* variable GitLab Runner refuses."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from alloy_runner.build import flags, git, git_script, script
from alloy_runner.config.model import ExecutorName
from alloy_runner.exceptions import ExecutorConfigError

if TYPE_CHECKING:
    from alloy_runner.build.build import Build
    from alloy_runner.build.job import Job
    from alloy_runner.config.model import RunnerConfig
    from alloy_runner.executors.base import Workspace

log = logging.getLogger(__name__)

CLEANUP_TIMEOUT = 300  # seconds, as after_script's
EXIT_CODE_CHECK = "FF_ENABLE_BASH_EXIT_CODE_CHECK"

Log = Callable[[str], None]


def sources_script(job: Job, runner: RunnerConfig, log: Log) -> str | None:
    """The get_sources stage: pre_get_sources_script, the fetch (through clone_url) as the
    job's GIT_* variables ask, then post_get_sources_script; None when there is nothing to
    run. As in GitLab Runner, the hooks do not run with GIT_STRATEGY none or empty. (The
    settings' warnings are in the job log already: feature_flags_at_start.)"""
    values = git.job_values(job, runner.environment)
    settings = git.read(values, job.git_info.depth, job.allow_git_fetch)
    sources = None
    if not job.git_info.repo_url:
        log("Skipping Git repository setup: the job has no repository")
    else:
        url = script.with_clone_url(job.git_info.repo_url, runner.clone_url)
        rewrites: tuple[tuple[str, str], ...] = ()
        if settings.submodule_force_https:
            rewrites = git.submodule_https(url, runner.clone_url or runner.url, values)
        clean_config = runner.executor is not ExecutorName.SHELL
        info = replace(job.git_info, repo_url=url)
        sources = git_script.sources(info, settings, rewrites, clean_config)
    hooks = runner.hooks
    pre, post = hooks.pre_get_sources_script, hooks.post_get_sources_script
    if not settings.fetches:
        pre = post = ""
    return script.around(sources, pre, post, _exit_code_check(job, runner))


def build_script(job: Job, runner: RunnerConfig, log: Log) -> str | None:
    """The build stage: pre_build_script, the job's before_script and script, post_build_script."""
    step = job.step("script")
    if step is None:
        return None
    hooks = runner.hooks
    return script.user_script(
        step.script,
        hooks.pre_build_script,
        hooks.post_build_script,
        _xtrace(job, runner, log),
        _exit_code_check(job, runner),
    )


def after_script(job: Job, runner: RunnerConfig, lines: tuple[str, ...]) -> str:
    """The after_script stage's script (its commands' exit codes checked with
    FF_ENABLE_BASH_EXIT_CODE_CHECK)."""
    return script.commands(lines, _exit_code_check(job, runner))


def _exit_code_check(job: Job, runner: RunnerConfig) -> bool:
    return flags.is_on(EXIT_CODE_CHECK, job, runner)


def _xtrace(job: Job, runner: RunnerConfig, log: Log) -> bool:
    """Tell whether CI_DEBUG_TRACE asks for a shell trace that this runner allows."""
    asked = any(v.key == "CI_DEBUG_TRACE" and v.value == "true" for v in job.variables)
    if asked and runner.debug_trace_disabled:
        log("WARNING: CI_DEBUG_TRACE: usage is disabled on this Runner")
        return False
    return asked


def feature_flags_at_start(job: Job, runner: RunnerConfig, job_log: Log | None = None) -> None:
    """What a job's feature flags do before it starts. A flag value that does not parse is
    GitLab's warning in the job log (`job_log`). A job's `FF_*` variable (or the runner's
    `environment` entry) asking for what this runner does not do raises ExecutorConfigError
    (runner_configuration_error, as GitLab Runner fails a job whose settings it refuses);
    `[runners.feature_flags]` wins over both, as in GitLab Runner. A job's GIT_* variables are
    read here too (build/git.py): GitLab's warnings in the job log, and what GitLab Runner
    refuses (GIT_CLONE_PATH, ...) raises ExecutorConfigError as well.
    FF_LOG_IMAGES_CONFIGURED_FOR_JOB logs the job's image and service images in the
    runner's log."""
    resolved = flags.for_job(job, runner)
    if resolved.errors and job_log is not None:
        job_log("WARNING: " + "\n".join(resolved.errors))
    if why := flags.job_problem(resolved, runner.executor):
        raise ExecutorConfigError(why)
    git_settings = git.settings(job, runner.environment)
    if job_log is not None:
        for warning in git_settings.warnings:
            job_log(f"WARNING: {warning}")
    if why := git.problem(git_settings):
        raise ExecutorConfigError(why)
    if runner.executor is not ExecutorName.SHELL and (why := git.host_problem(git_settings)):
        raise ExecutorConfigError(why)
    if runner.executor is not ExecutorName.SHELL:
        _check_git_environment(job, job_log)
    if not resolved.values["FF_LOG_IMAGES_CONFIGURED_FOR_JOB"]:
        return
    fields = {"job": job.id, "runner": runner.name}
    if job.image is not None:
        log.info(
            "job %d: image configured for job: %s",
            job.id,
            job.image.name,
            extra={**fields, "image_name": job.image.name},
        )
    for service in job.services:
        log.info(
            "job %d: service image configured for job: %s",
            job.id,
            service.name,
            extra={**fields, "image_name": service.name},
        )


# Variables of git's own that change how a fetch goes (git(1), "ENVIRONMENT VARIABLES").
# A container job's sources are fetched on the runner's host, where the job's variables
# never reach git (build/hostenv.py): a job that sets one is refused rather than fetched
# otherwise than it asked. Others (GIT_AUTHOR_NAME, ...) reach its containers as before.
FETCH_CHANGING = frozenset(
    (
        "GIT_SSL_NO_VERIFY",
        "GIT_SSL_CAINFO",
        "GIT_SSL_CAPATH",
        "GIT_SSL_CERT",
        "GIT_SSL_KEY",
        "GIT_SSL_VERSION",
        "GIT_SSL_CIPHER_LIST",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_SSH_VARIANT",
        "GIT_PROXY_COMMAND",
        "GIT_PROXY_SSL_CERT",
        "GIT_PROXY_SSL_KEY",
        "GIT_PROXY_SSL_CAINFO",
        "GIT_HTTP_USER_AGENT",
        "GIT_HTTP_LOW_SPEED_LIMIT",
        "GIT_HTTP_LOW_SPEED_TIME",
        "GIT_HTTP_MAX_REQUESTS",
        "GIT_ASKPASS",
        "GIT_CONFIG_COUNT",
        "GIT_CONFIG_PARAMETERS",
        "GIT_CONFIG_GLOBAL",
        "GIT_CONFIG_SYSTEM",
        "GIT_CONFIG_NOSYSTEM",
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_COMMON_DIR",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_ALLOW_PROTOCOL",
        "GIT_PROTOCOL_FROM_USER",
    )
)
# Those that only make git's own log more verbose: warned, since nothing else changes.
LOG_ONLY_PREFIXES = ("GIT_TRACE", "GIT_CURL_VERBOSE", "GIT_REDACT_COOKIES")


def _check_git_environment(job: Job, job_log: Log | None) -> None:
    """Refuse a container job's git variable that would change its fetch; warn for one that
    would only have made git's log more verbose."""
    names = {v.key for v in job.variables}
    if refused := sorted(names & FETCH_CHANGING):
        raise ExecutorConfigError(
            f"{', '.join(refused)}: a container job's sources are fetched on the runner's "
            "host, where the job's git variables are not passed; remove it (an operator sets "
            "git options with GIT_CONFIG_* in the runner's environment)"
        )
    for name in sorted(n for n in names if n.startswith(LOG_ONLY_PREFIXES)):
        if job_log is not None:
            job_log(
                f"WARNING: {name}: a container job's sources are fetched on the runner's host, "
                "where the job's git variables are not passed; git's log is not more verbose"
            )


async def cleanup(
    build: Build, workspace: Workspace, env: dict[str, str], cancel: asyncio.Event
) -> None:
    """FF_ENABLE_JOB_CLEANUP: leave only the repository in the project directory. Not a
    stage: it runs after the job's result is known, and cannot change it."""
    if not flags.is_on("FF_ENABLE_JOB_CLEANUP", build.job, build.runner_config):
        return
    await build.executor.run(
        script.CLEANUP,
        workspace=workspace,
        env=env,
        output=build.trace.write,
        timeout=float(CLEANUP_TIMEOUT),
        cancel=cancel,
    )
