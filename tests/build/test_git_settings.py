"""A job's GIT_* variables read as GitLab Runner reads them (common/build_settings.go): the
defaults, the warnings for values it cannot read, and the refusals, which fail the job
through a real Build before anything runs (runner_configuration_error)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from alloy_runner.build import git
from alloy_runner.build.build import Build, BuildPaths
from alloy_runner.build.job import GitInfo, Job, Variable
from alloy_runner.build.states import BuildState, FailureReason
from alloy_runner.config.model import RunnerConfig
from tests.support.fakes import FakeExecutor, FakeJobSource, RecordingMetrics, make_job


def test_the_defaults_are_gitlab_runners() -> None:
    got = git.read({}, depth=7)
    assert got == git.GitSettings(
        strategy="fetch",
        checkout=True,
        clean_flags=("-ffdx",),
        fetch_flags=("--prune", "--quiet"),
        submodule_strategy="none",
        submodule_depth=7,  # GIT_SUBMODULE_DEPTH defaults to the job's GIT_DEPTH
    )
    assert got.warnings == ()


def test_each_variable_is_read() -> None:
    got = git.read(
        {
            "GIT_STRATEGY": "clone",
            "GIT_CHECKOUT": "F",  # Go's strconv.ParseBool
            "GIT_CLEAN_FLAGS": "-ffdx -e cache/",
            "GIT_FETCH_EXTRA_FLAGS": "none",
            "GIT_SUBMODULE_STRATEGY": "recursive",
            "GIT_SUBMODULE_PATHS": "a  b",
            "GIT_SUBMODULE_DEPTH": "3",
            "GIT_SUBMODULE_UPDATE_FLAGS": "--remote --jobs 4",
            "GIT_LFS_SKIP_SMUDGE": "1",
        }
    )
    assert (got.strategy, got.checkout, got.clean_flags, got.fetch_flags) == (
        "clone",
        False,
        ("-ffdx", "-e", "cache/"),
        (),
    )
    assert (got.submodules, got.submodule_paths, got.submodule_depth) == (
        "recursive",
        ("a", "b"),
        3,
    )
    assert got.submodule_update_flags == ("--remote", "--jobs", "4")
    assert got.lfs_skip_smudge and got.warnings == ()


@pytest.mark.parametrize(
    ("name", "value", "warning"),
    [
        (
            "GIT_STRATEGY",
            "bogus",
            "GIT_STRATEGY: expected either 'clone', 'fetch', 'none' or 'empty' got \"bogus\","
            " using default value 'fetch'",
        ),
        ("GIT_CHECKOUT", "yes", 'GIT_CHECKOUT: expected bool got "yes", using default value: true'),
        (
            "GIT_SUBMODULE_DEPTH",
            "deep",
            'GIT_SUBMODULE_DEPTH: expected int got "deep", using default value: 0',
        ),
        (
            "GIT_LFS_SKIP_SMUDGE",
            "on",
            'GIT_LFS_SKIP_SMUDGE: expected bool got "on", using default value: false',
        ),
    ],
)
def test_a_value_gitlab_cannot_read_is_its_default_with_its_warning(
    name: str, value: str, warning: str
) -> None:
    got = git.read({name: value})
    assert got == git.GitSettings()
    assert got.warnings == (warning,)


def test_clone_extra_flags_change_nothing_and_say_so() -> None:
    got = git.read({"GIT_CLONE_EXTRA_FLAGS": "--reference /x"})
    assert got.warnings and got.warnings[0].startswith("GIT_CLONE_EXTRA_FLAGS: ignored")


def test_values_are_expanded_by_gitlabs_rules_except_raw_ones() -> None:
    job = make_job(
        variables=(
            Variable("FLAGS", "-ffdx -e keep"),
            Variable("GIT_CLEAN_FLAGS", "$FLAGS"),
            Variable("GIT_FETCH_EXTRA_FLAGS", "$FLAGS", raw=True),
        )
    )
    got = git.settings(job)
    assert got.clean_flags == ("-ffdx", "-e", "keep")
    assert got.fetch_flags == ("$FLAGS",)


def run(
    tmp_path: Path, environment: tuple[str, ...] = (), /, **variables: str
) -> tuple[BuildState, FailureReason | None, str, int]:
    job = make_job(
        git_info=GitInfo(repo_url="https://git.test/p.git", sha="a" * 40),
        variables=tuple(Variable(k, v) for k, v in variables.items()),
    )
    executor, source = FakeExecutor(), FakeJobSource([job])
    build = Build(
        job,
        RunnerConfig(name="r", environment=environment),
        executor=executor,
        source=source,
        metrics=RecordingMetrics(),
        paths=BuildPaths(tmp_path / "builds", tmp_path / "cache"),
    )
    result = asyncio.run(build.run())
    return result.state, result.failure_reason, source.log(job.id), executor.prepared


@pytest.mark.parametrize(
    ("variables", "error"),
    [
        (
            {"GIT_CLONE_PATH": "$CI_BUILDS_DIR/mine"},
            "setting GIT_CLONE_PATH is not allowed, enable `custom_build_dir` feature",
        ),
        (
            {"GIT_SUBMODULE_STRATEGY": "deep"},
            "unknown GIT_SUBMODULE_STRATEGY: expected either 'normal', 'recursive' or 'none'"
            ' got "deep"',
        ),
        (
            {"GIT_SUBMODULE_STRATEGY": "normal", "GIT_SUBMODULE_PATHS": "a :(exclude) b"},
            'GIT_SUBMODULE_PATHS: invalid submodule pathspec ["a" ":(exclude)" "b"]',
        ),
    ],
)
def test_what_gitlab_refuses_fails_the_job_before_it_runs(
    tmp_path: Path, variables: dict[str, str], error: str
) -> None:
    state, reason, log, prepared = run(tmp_path, **variables)
    assert (state, reason) == (BuildState.FAILED, FailureReason.RUNNER_CONFIGURATION_ERROR)
    assert f"ERROR: Preparation failed: {error}" in log
    assert prepared == 0


@pytest.mark.parametrize(
    "variables",
    [
        {"GIT_STRATEGY": "none", "GIT_SUBMODULE_STRATEGY": "deep"},  # no submodules with none
        {"GIT_SUBMODULE_PATHS": ":(exclude)"},  # read only with submodules
        {"GIT_SUBMODULE_FORCE_HTTPS": "true"},
        {"GIT_SUBMODULE_STRATEGY": "normal", "GIT_SUBMODULE_FORCE_HTTPS": "true"},
        {"GIT_CLONE_PATH": "$NOT_SET"},  # empty once expanded, as GitLab Runner reads it
    ],
)
def test_what_changes_nothing_runs(tmp_path: Path, variables: dict[str, str]) -> None:
    state, reason, _, _ = run(tmp_path, **variables)
    assert (state, reason) == (BuildState.SUCCESS, None)


def test_the_projects_strategy_is_the_default_allow_git_fetch() -> None:
    """GitLab sends the project's strategy as allow_git_fetch: false means clone by default."""
    assert git.read({}, allow_fetch=False).strategy == "clone"
    assert git.read({"GIT_STRATEGY": "fetch"}, allow_fetch=False).strategy == "fetch"
    got = git.read({"GIT_STRATEGY": "bogus"}, allow_fetch=False)
    assert got.strategy == "clone" and got.warnings[0].endswith("using default value 'clone'")
    job = make_job(allow_git_fetch=False)
    assert git.settings(job).strategy == "clone"
    payload = job.to_payload()
    assert payload["allow_git_fetch"] is False
    assert Job.from_payload(payload).allow_git_fetch is False
    del payload["allow_git_fetch"]
    assert Job.from_payload(payload).allow_git_fetch is True


def test_the_warnings_are_at_the_start_of_the_job_log_once(tmp_path: Path) -> None:
    state, _, log, _ = run(tmp_path, GIT_STRATEGY="bogus", GIT_CHECKOUT="yes")
    assert state is BuildState.SUCCESS
    warnings = [line for line in log.splitlines() if line.startswith("WARNING: GIT_")]
    assert warnings == [
        "WARNING: GIT_STRATEGY: expected either 'clone', 'fetch', 'none' or 'empty'"
        " got \"bogus\", using default value 'fetch'",
        'WARNING: GIT_CHECKOUT: expected bool got "yes", using default value: true',
    ]
    lines = log.splitlines()  # right after the header, before any stage
    assert lines.index(warnings[0]) == 1 + next(i for i, t in enumerate(lines) if "Running on" in t)


def test_the_runners_environment_sets_them_too_and_the_job_wins() -> None:
    """config.toml's `environment` comes before the job's variables, as in GitLab Runner."""
    environment = [
        "GIT_STRATEGY=clone",
        "GIT_DEPTH_OF_MINE=3",
        "GIT_SUBMODULE_DEPTH=$GIT_DEPTH_OF_MINE",
    ]
    assert git.settings(make_job(), environment).strategy == "clone"
    assert git.settings(make_job(), environment).submodule_depth == 3
    job = make_job(variables=(Variable("GIT_STRATEGY", "none"),))
    assert git.settings(job, environment).strategy == "none"


def test_git_clone_path_in_the_runners_environment_is_refused_too(tmp_path: Path) -> None:
    state, reason, log, _ = run(tmp_path, ("GIT_CLONE_PATH=/builds/mine",))
    assert (state, reason) == (BuildState.FAILED, FailureReason.RUNNER_CONFIGURATION_ERROR)
    assert "setting GIT_CLONE_PATH is not allowed" in log
