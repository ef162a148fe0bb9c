"""GitLab feature flags in a real `alloy-runner` process: a flag at a value that would change
what a job runs is refused (exit 2, one line); a job's `FF_*` variable asking for it fails
the job before it runs (runner_configuration_error)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import StartRunner, run_cli
from tests.support.jobs import JobsRig, pipeline

RUNNER = '[[runners]]\nname = "a"\n[runners.feature_flags]\n'


def test_a_refused_flag_value_exits_2_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(RUNNER + "FF_TIMESTAMPS = true\n", encoding="utf-8")
    done = run_cli(["run", "-c", str(path)], home=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f"alloy-runner: error: {path}: key 'runners[0].feature_flags.FF_TIMESTAMPS': "
        "FF_TIMESTAMPS = true is not supported: this runner does not timestamp job log lines; "
        "remove it or set it to false"
    ]


def test_the_value_this_runner_works_as_starts_without_a_warning(
    start_runner: StartRunner,
) -> None:
    runner = start_runner(RUNNER + "FF_TIMESTAMPS = false\nFF_USE_FASTZIP = true\n")
    assert runner.scrape()[0]["content-type"].startswith("text/plain")
    flagged = [line for line in runner.stderr_lines if "feature_flags" in line]
    assert len(flagged) == 1, runner.stderr_text  # FF_USE_FASTZIP's warning only
    assert "FF_USE_FASTZIP" in flagged[0]
    assert "has no effect on this runner" in flagged[0]


def test_job_variables_set_flags_as_in_gitlab_runner(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    rig = JobsRig(tmp_path_factory.mktemp("job-flags"))
    try:
        rig.runner(rig.config(concurrent=2))
        jobs = pipeline(
            refused={"variables": {"FF_SCRIPT_SECTIONS": "true"}, "script": ["touch ran-1"]},
            accepted={"variables": {"FF_SCRIPT_SECTIONS": "false"}, "script": ["true"]},
            checked={
                "variables": {"FF_ENABLE_BASH_EXIT_CODE_CHECK": "true"},
                "script": ["false && true", "touch ran-2"],
            },
        )
        project = rig.project("flagged", jobs)
        project.git_init().commit("init")
        ids = rig.submit(project).jobs
        results = rig.wait_results(ids.values())
        refused, accepted = results[ids["refused"]], results[ids["accepted"]]
        assert (refused["status"], refused["failure_reason"]) == (
            "failed",
            "runner_configuration_error",
        )
        assert accepted["status"] == "success"
        trace = rig.trace(ids["refused"]).decode()
        assert (
            "ERROR: Preparation failed: job variable FF_SCRIPT_SECTIONS = true is not supported"
            in trace
        )
        assert not list(rig.builds.rglob("ran-1"))
        checked = results[ids["checked"]]  # an honoured flag, set by the job
        assert (checked["status"], checked["failure_reason"]) == ("failed", "script_failure")
        assert not list(rig.builds.rglob("ran-2"))
    finally:
        rig.stop_all()


def test_a_refused_flag_in_the_runner_environment_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[[runners]]\nname = "a"\nenvironment = ["FF_TIMESTAMPS=1"]\n')
    done = run_cli(["run", "-c", str(path)], home=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"alloy-runner: error: {path}: key 'runners[0].environment': FF_TIMESTAMPS=1: "
        "FF_TIMESTAMPS = true is not supported: this runner does not timestamp job log lines; "
        "remove it or set it to false"
    ]


def test_flags_resolve_as_in_gitlab_runner(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The runner's `environment` sets a flag; a config-only flag as a job variable changes
    nothing; a value that does not parse is GitLab's warning in the job log; every resolved
    flag is in the job's environment; commands are trimmed as GitLab's writeCommands does."""
    rig = JobsRig(tmp_path_factory.mktemp("env-flags"))
    try:
        config = rig.config(concurrent=2).replace(
            'environment = ["', 'environment = ["FF_ENABLE_BASH_EXIT_CODE_CHECK=true", "'
        )
        rig.runner(config)
        jobs = pipeline(
            env_checked={"script": ["false && true", "touch ran-1"]},
            exported={
                "variables": {"FF_SCRIPT_SECTIONS": "0", "FF_USE_JOB_ROUTER": "true"},
                "script": [
                    'test "$FF_TIMESTAMPS" = true',
                    'test "$FF_SCRIPT_SECTIONS" = false',
                    'test "$FF_ENABLE_BASH_EXIT_CODE_CHECK" = true',
                    'test "$FF_USE_JOB_ROUTER" = true',
                ],
            },
            unparsed={"variables": {"FF_ENABLE_JOB_CLEANUP": "yes"}, "script": ["true"]},
            heredoc={"script": ["cat <<EOF\nhi\nEOF ", "false", "touch ran-2"]},
        )
        project = rig.project("env-flagged", jobs)
        project.git_init().commit("init")
        ids = rig.submit(project).jobs
        results = rig.wait_results(ids.values())
        status = {name: results[i]["status"] for name, i in ids.items()}
        assert status == {
            "env_checked": "failed",
            "exported": "success",
            "unparsed": "success",
            "heredoc": "failed",
        }, {name: rig.trace(i).decode()[-400:] for name, i in ids.items()}
        assert results[ids["env_checked"]]["failure_reason"] == "script_failure"
        assert results[ids["heredoc"]]["failure_reason"] == "script_failure"
        assert not list(rig.builds.rglob("ran-*"))
        trace = rig.trace(ids["unparsed"]).decode()
        assert (
            "WARNING: FF_ENABLE_JOB_CLEANUP: could not parse feature flag, expected bool, got yes"
            in trace
        )
    finally:
        rig.stop_all()
