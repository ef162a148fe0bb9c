"""How a job's feature flags resolve, as GitLab Runner's getVariablesForFeatureFlagResolution
and populateFeatureFlags do: from the runner's `environment` and the job's variables (the last
wins, expanded; a value that does not parse is GitLab's default and a warning in the job log),
config.toml's `[runners.feature_flags]` winning; config-only flags never read from variables;
and every resolved flag in the job's environment (GetAllVariables). Through a real `Build`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from alloy_runner.build import operator, script
from alloy_runner.build.build import BuildResult
from alloy_runner.build.job import Job, Variable
from alloy_runner.build.states import BuildStage, BuildState, FailureReason
from alloy_runner.config.feature_flags import FLAGS
from alloy_runner.config.model import ExecutorName, RunnerConfig
from tests.build.test_job_feature_flags import job_with, run
from tests.support.fakes import FakeExecutor, make_job

REFUSED = (BuildState.FAILED, FailureReason.RUNNER_CONFIGURATION_ERROR)


def outcome(result: BuildResult) -> tuple[BuildState, FailureReason | None]:
    return result.state, result.failure_reason


def cleaned(executor: FakeExecutor) -> bool:
    return any(r.body == script.CLEANUP for r in executor.runs)


def variables_job(*variables: Variable) -> Job:
    return make_job(variables=variables)


# --- the runner's `environment` sets flags, as in GitLab Runner ----------------------------------


def test_a_flag_in_the_runner_environment_is_honoured(tmp_path: Path) -> None:
    runner = RunnerConfig(name="r", environment=("FF_ENABLE_JOB_CLEANUP=true",))
    result, executor, log = run(tmp_path, make_job(), runner)
    assert result.state is BuildState.SUCCESS, log
    assert cleaned(executor)
    assert not cleaned(run(tmp_path, make_job(), RunnerConfig(name="r"))[1])


def test_exit_code_check_from_the_runner_environment(tmp_path: Path) -> None:
    runner = RunnerConfig(name="r", environment=("FF_ENABLE_BASH_EXIT_CODE_CHECK=true",))
    body = operator.after_script(make_job(), runner, ("false && true", "touch reached"))
    done = subprocess.run(["bash", "-c", body], cwd=tmp_path, capture_output=True, check=False)
    assert done.returncode == 1
    assert not (tmp_path / "reached").exists()


def test_a_refused_value_in_the_runner_environment_fails_the_job(tmp_path: Path) -> None:
    runner = RunnerConfig(name="r", environment=("FF_SCRIPT_SECTIONS=true",))
    result, executor, log = run(tmp_path, make_job(), runner)
    assert outcome(result) == REFUSED
    assert executor.runs == []
    assert (
        "ERROR: Preparation failed: runner environment FF_SCRIPT_SECTIONS = true is not supported"
        in log
    )


def test_the_job_variable_comes_after_the_runner_environment(tmp_path: Path) -> None:
    """GitLab's order: the runner's `environment`, then the job's variables; the last wins."""
    runner = RunnerConfig(name="r", environment=("FF_SCRIPT_SECTIONS=true",))
    result, _, log = run(tmp_path, job_with(FF_SCRIPT_SECTIONS="false"), runner)
    assert result.state is BuildState.SUCCESS, log
    on = RunnerConfig(name="r", environment=("FF_ENABLE_JOB_CLEANUP=false",))
    assert cleaned(run(tmp_path, job_with(FF_ENABLE_JOB_CLEANUP="true"), on)[1])


def test_config_toml_wins_over_the_runner_environment(tmp_path: Path) -> None:
    runner = RunnerConfig(
        name="r",
        environment=("FF_ENABLE_JOB_CLEANUP=true", "FF_TIMESTAMPS=true"),
        feature_flags=(("FF_ENABLE_JOB_CLEANUP", False), ("FF_TIMESTAMPS", False)),
    )
    result, executor, log = run(tmp_path, make_job(), runner)
    assert result.state is BuildState.SUCCESS, log
    assert not cleaned(executor)


# --- config-only flags: a variable changes nothing -----------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FF_USE_JOB_ROUTER", "true"),  # ONE_VALUE: refused in config.toml, not from a job
        ("FF_USE_ADAPTIVE_REQUEST_CONCURRENCY", "false"),
        ("FF_DISABLE_AUTOMATIC_TOKEN_ROTATION", "true"),
    ],
)
def test_a_config_only_flag_as_a_job_variable_changes_nothing(
    tmp_path: Path, name: str, value: str
) -> None:
    assert FLAGS[name].config_only
    result, executor, log = run(tmp_path, job_with(**{name: value}), RunnerConfig(name="r"))
    assert result.state is BuildState.SUCCESS, log
    assert executor.prepared == 1
    env_runner = RunnerConfig(name="r", environment=(f"{name}={value}",))
    assert run(tmp_path, make_job(), env_runner)[0].state is BuildState.SUCCESS


# --- GitLab's parsing: expanded, the last value, a warning when it does not parse ----------------


def test_a_flag_value_is_expanded(tmp_path: Path) -> None:
    result, _, log = run(
        tmp_path, job_with(ON="true", FF_SCRIPT_SECTIONS="$ON"), RunnerConfig(name="r")
    )
    assert outcome(result) == REFUSED, log
    cleanup = job_with(CLEAN="true", FF_ENABLE_JOB_CLEANUP="${CLEAN}")
    assert cleaned(run(tmp_path, cleanup, RunnerConfig(name="r"))[1])


def test_a_raw_variable_is_not_expanded_and_does_not_parse(tmp_path: Path) -> None:
    job = variables_job(Variable("ON", "true"), Variable("FF_ENABLE_JOB_CLEANUP", "$ON", raw=True))
    result, executor, log = run(tmp_path, job, RunnerConfig(name="r"))
    assert result.state is BuildState.SUCCESS
    assert not cleaned(executor)
    assert (
        "WARNING: FF_ENABLE_JOB_CLEANUP: could not parse feature flag, expected bool, got $ON"
        in log
    )


def test_the_last_value_wins_even_when_it_does_not_parse(tmp_path: Path) -> None:
    """Go: variables.Get is the LAST value ("yes"); ParseBool fails: GitLab's default, and
    GitLab's warning at the top of the job log."""
    job = variables_job(
        Variable("FF_SCRIPT_SECTIONS", "true"), Variable("FF_SCRIPT_SECTIONS", "yes")
    )
    result, _, log = run(tmp_path, job, RunnerConfig(name="r"))
    assert result.state is BuildState.SUCCESS, log
    line = "WARNING: FF_SCRIPT_SECTIONS: could not parse feature flag, expected bool, got yes"
    assert line in log.splitlines()
    assert log.index(line) < log.index("Job succeeded")
    again = variables_job(Variable("FF_SCRIPT_SECTIONS", "no"), Variable("FF_SCRIPT_SECTIONS", "1"))
    assert outcome(run(tmp_path, again, RunnerConfig(name="r"))[0]) == REFUSED


def test_a_file_variable_does_not_set_a_flag(tmp_path: Path) -> None:
    job = variables_job(Variable("FF_ENABLE_JOB_CLEANUP", "true", file=True))
    result, executor, log = run(tmp_path, job, RunnerConfig(name="r"))
    assert result.state is BuildState.SUCCESS
    assert not cleaned(executor)
    assert "WARNING: FF_ENABLE_JOB_CLEANUP: could not parse feature flag, expected bool" in log


def test_values_that_parse_write_no_warning(tmp_path: Path) -> None:
    job = job_with(FF_ENABLE_JOB_CLEANUP="1", FF_SCRIPT_SECTIONS="F", FF_NOT_A_FLAG="yes")
    result, _, log = run(tmp_path, job, RunnerConfig(name="r"))
    assert result.state is BuildState.SUCCESS
    assert "could not parse" not in log


# --- FF_DISABLE_UMASK_FOR_DOCKER_EXECUTOR: refused only when set to false ------------------------


def test_the_umask_flag_is_refused_only_when_set_to_false(tmp_path: Path) -> None:
    docker = RunnerConfig(name="r", executor=ExecutorName.DOCKER)
    flag = "FF_DISABLE_UMASK_FOR_DOCKER_EXECUTOR"
    assert run(tmp_path, make_job(), docker)[0].state is BuildState.SUCCESS  # GitLab's default
    assert run(tmp_path, job_with(**{flag: "true"}), docker)[0].state is BuildState.SUCCESS
    result, _, log = run(tmp_path, job_with(**{flag: "false"}), docker)
    assert outcome(result) == REFUSED
    assert f"job variable {flag} = false is not supported" in log
    assert log.rstrip().endswith("remove it or set it to true")


# --- every resolved flag in the job's environment (GitLab's GetAllVariables) ---------------------


def _build_env(executor: FakeExecutor) -> dict[str, str]:
    return dict(next(r.env for r in executor.runs if r.stage is BuildStage.BUILD_SCRIPT))


def test_the_job_environment_has_every_flag_at_its_resolved_value(tmp_path: Path) -> None:
    runner = RunnerConfig(
        name="r",
        feature_flags=(("FF_ENABLE_JOB_CLEANUP", False),),
        environment=("FF_ENABLE_BASH_EXIT_CODE_CHECK=true",),
    )
    job = job_with(
        FF_ENABLE_JOB_CLEANUP="true",  # config.toml wins
        FF_LOG_IMAGES_CONFIGURED_FOR_JOB="1",  # resolved: written as GitLab does, "true"
        FF_USE_FASTZIP="maybe",  # does not parse: GitLab's default
        FF_NOT_A_FLAG="kept",
    )
    result, executor, log = run(tmp_path, job, runner)
    assert result.state is BuildState.SUCCESS, log
    env = _build_env(executor)
    assert {name for name in env if name in FLAGS} == set(FLAGS)
    assert env["FF_ENABLE_JOB_CLEANUP"] == "false"
    assert env["FF_LOG_IMAGES_CONFIGURED_FOR_JOB"] == "true"
    assert env["FF_USE_FASTZIP"] == "true"
    assert env["FF_TIMESTAMPS"] == "true"  # GitLab's default, unset
    assert env["FF_ENABLE_BASH_EXIT_CODE_CHECK"] == "true"
    assert env["FF_NOT_A_FLAG"] == "kept"


def test_a_runner_environment_entry_comes_after_the_resolved_flags(tmp_path: Path) -> None:
    """GitLab's GetAllVariables: resolved flags, then Runner.GetVariables() as written."""
    runner = RunnerConfig(
        name="r",
        feature_flags=(("FF_ENABLE_JOB_CLEANUP", False),),
        environment=("FF_ENABLE_JOB_CLEANUP=on",),
    )
    result, executor, _ = run(tmp_path, make_job(), runner)
    assert result.state is BuildState.SUCCESS
    assert _build_env(executor)["FF_ENABLE_JOB_CLEANUP"] == "on"
    assert not cleaned(executor)
