"""A job's `FF_*` variables, as GitLab Runner reads them, through a real `Build` with fakes.

A job asking for a flag value this runner does not work as fails before anything runs
(runner_configuration_error); config.toml's `[runners.feature_flags]` wins over the job.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
from pathlib import Path

import pytest

from alloy_runner.build import operator, script
from alloy_runner.build.build import Build, BuildPaths, BuildResult
from alloy_runner.build.image import Image, Service
from alloy_runner.build.job import Job, Variable
from alloy_runner.build.states import BuildState, FailureReason
from alloy_runner.config.model import ExecutorName, RunnerConfig
from tests.support.fakes import FakeExecutor, FakeJobSource, RecordingMetrics, make_job


def run(tmp_path: Path, job: Job, runner: RunnerConfig) -> tuple[BuildResult, FakeExecutor, str]:
    """Run `job` on `runner` with a FakeExecutor; return its result, the executor and the log."""
    executor = FakeExecutor()
    source = FakeJobSource([job])
    build = Build(
        job,
        runner,
        executor=executor,
        source=source,
        metrics=RecordingMetrics(),
        paths=BuildPaths(tmp_path / "builds", tmp_path / "cache"),
    )
    result = asyncio.run(build.run())
    return result, executor, source.log(job.id)


def job_with(**variables: str) -> Job:
    return make_job(variables=tuple(Variable(k, v) for k, v in variables.items()))


@pytest.mark.parametrize(
    ("name", "value"),
    [("FF_SCRIPT_SECTIONS", "true"), ("FF_TIMESTAMPS", "1"), ("FF_MASK_ALL_DEFAULT_TOKENS", "T")],
)
def test_a_job_flag_this_runner_does_not_work_as_fails_the_job_before_it_runs(
    tmp_path: Path, name: str, value: str
) -> None:
    result, executor, log = run(tmp_path, job_with(**{name: value}), RunnerConfig(name="r"))
    assert (result.state, result.failure_reason) == (
        BuildState.FAILED,
        FailureReason.RUNNER_CONFIGURATION_ERROR,
    )
    assert executor.prepared == 0
    assert executor.runs == []
    line = f"ERROR: Preparation failed: job variable {name} = true is not supported: "
    assert line in log
    assert log.rstrip().endswith("remove it or set it to false")


def test_a_docker_only_flag_fails_a_docker_job_and_not_a_shell_one(tmp_path: Path) -> None:
    job = job_with(FF_USE_INIT_WITH_DOCKER_EXECUTOR="true")
    docker = RunnerConfig(name="r", executor=ExecutorName.DOCKER)
    assert run(tmp_path, job, docker)[0].failure_reason is FailureReason.RUNNER_CONFIGURATION_ERROR
    result, executor, _ = run(tmp_path, job, RunnerConfig(name="r"))
    assert result.state is BuildState.SUCCESS
    assert executor.prepared == 1


@pytest.mark.parametrize(
    "variables",
    [
        {"FF_SCRIPT_SECTIONS": "false", "FF_TIMESTAMPS": "false"},  # the values this runner is
        {"FF_USE_FASTZIP": "false", "FF_PRINT_POD_EVENTS": "true"},  # change nothing here
        {"FF_SCRIPT_SECTIONS": "yes"},  # not a Go boolean: no setting, as in GitLab Runner
        {"FF_NOT_A_FLAG": "true", "FF_DISABLE_AUTOMATIC_TOKEN_ROTATION": "true"},
    ],
)
def test_job_flags_that_change_nothing_here_let_the_job_run(
    tmp_path: Path, variables: dict[str, str]
) -> None:
    result, executor, log = run(tmp_path, job_with(**variables), RunnerConfig(name="r"))
    assert result.state is BuildState.SUCCESS, log
    assert executor.prepared == 1


def test_config_toml_wins_over_the_job(tmp_path: Path) -> None:
    """`[runners.feature_flags]` sets the flag: the job's value is not read (GitLab's order)."""
    runner = RunnerConfig(name="r", feature_flags=(("FF_TIMESTAMPS", False),))
    result, _, log = run(tmp_path, job_with(FF_TIMESTAMPS="true"), runner)
    assert result.state is BuildState.SUCCESS, log


def _cleaned(executor: FakeExecutor) -> bool:
    return any(r.body == script.CLEANUP for r in executor.runs)


def test_a_job_can_turn_on_job_cleanup_unless_config_toml_turns_it_off(tmp_path: Path) -> None:
    """FF_ENABLE_JOB_CLEANUP is honoured from a job variable; config.toml's value wins."""
    job = job_with(FF_ENABLE_JOB_CLEANUP="true")
    result, executor, _ = run(tmp_path, job, RunnerConfig(name="r"))
    assert result.state is BuildState.SUCCESS
    assert _cleaned(executor)
    off = RunnerConfig(name="r", feature_flags=(("FF_ENABLE_JOB_CLEANUP", False),))
    assert not _cleaned(run(tmp_path, job, off)[1])
    assert not _cleaned(run(tmp_path, make_job(), RunnerConfig(name="r"))[1])


def _images_logged(caplog: pytest.LogCaptureFixture) -> list[tuple[str, object]]:
    return [
        (record.getMessage(), getattr(record, "image_name", None))
        for record in caplog.records
        if "configured for job" in record.getMessage()
    ]


@pytest.mark.parametrize("where", ["config", "job", "nowhere"])
def test_log_images_configured_for_job_names_the_images_in_the_runner_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    """FF_LOG_IMAGES_CONFIGURED_FOR_JOB, from config.toml or a job variable: one record for
    the image and one per service, each with `image_name`; off by default."""
    flag = "FF_LOG_IMAGES_CONFIGURED_FOR_JOB"
    variables = (Variable(flag, "true"),) if where == "job" else ()
    job = make_job(7, image=Image("alpine:3"), services=(Service("redis:7"),), variables=variables)
    runner = RunnerConfig(name="r", feature_flags=((flag, True),) if where == "config" else ())
    caplog.set_level(logging.INFO, logger="alloy_runner.build.operator")
    assert run(tmp_path, job, runner)[0].state is BuildState.SUCCESS
    expected = [
        ("job 7: image configured for job: alpine:3", "alpine:3"),
        ("job 7: service image configured for job: redis:7", "redis:7"),
    ]
    assert _images_logged(caplog) == ([] if where == "nowhere" else expected)


@pytest.mark.parametrize("where", ["config", "job", "nowhere"])
def test_bash_exit_code_check_stops_at_a_failure_set_e_lets_pass(
    tmp_path: Path, where: str
) -> None:
    """FF_ENABLE_BASH_EXIT_CODE_CHECK: `false && true` ends the script with its exit code, in
    real bash, in the build stage and in after_script; without it, `set -e` lets it pass."""
    flag = "FF_ENABLE_BASH_EXIT_CODE_CHECK"
    variables = (Variable(flag, "true"),) if where == "job" else ()
    job = make_job(script=["false && true", "touch reached"], variables=variables)
    runner = RunnerConfig(name="r", feature_flags=((flag, True),) if where == "config" else ())
    build = operator.build_script(job, runner, lambda _line: None)
    after = operator.after_script(job, runner, ("false && true", "touch after-reached"))
    assert build is not None
    done = [
        subprocess.run(["bash", "-c", body], cwd=tmp_path, capture_output=True, check=False)
        for body in (build, after)
    ]
    checked = where != "nowhere"
    assert [d.returncode for d in done] == ([1, 1] if checked else [0, 0])
    assert (tmp_path / "reached").exists() is not checked
    assert (tmp_path / "after-reached").exists() is not checked
