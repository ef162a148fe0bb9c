"""GET_SOURCES_ATTEMPTS in a real runner: a get_sources stage that fails the first time (its
pre_get_sources_script hook, through a marker file) runs again, as GitLab Runner's does."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.support.jobs import JobsRig, pipeline
from tests.support.runner import RunnerProcess

pytestmark = pytest.mark.e2e

# Fails the first get_sources of each job: the marker file tells a later attempt apart.
FIRST_FAILS = (
    'if [ ! -e "$OUT/tried-$CI_JOB_ID" ]; then touch "$OUT/tried-$CI_JOB_ID"; '
    "echo first fetch breaks; exit 7; fi; echo fetch goes on"
)


@pytest.fixture(scope="module")
def flaky(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[JobsRig, RunnerProcess]]:
    rig = JobsRig(tmp_path_factory.mktemp("attempts"))
    try:
        yield (
            rig,
            rig.runner(rig.config(concurrent=2) + f"pre_get_sources_script = {FIRST_FAILS!r}\n"),
        )
    finally:
        rig.stop_all()


def _run(rig: JobsRig, name: str, variables: dict[str, str]) -> tuple[int, dict[str, object], str]:
    """Run a one-job pipeline; return its id, result and log (without colours)."""
    job = {"variables": variables, "script": ['echo the script ran > "$OUT/ran-$CI_JOB_ID"']}
    project = rig.project(name, pipeline(only=job))
    project.git_init().commit("init")
    job_id = rig.submit(project).jobs["only"]
    result = rig.wait_results([job_id], timeout=60.0)[job_id]
    return job_id, result, re.sub(r"\x1b\[[0-9;]*m", "", rig.trace(job_id).decode())


def test_a_get_sources_that_fails_once_succeeds_with_two_attempts(
    flaky: tuple[JobsRig, RunnerProcess],
) -> None:
    rig, _ = flaky
    job_id, result, log = _run(rig, "retried", {"GET_SOURCES_ATTEMPTS": "2"})
    assert result["status"] == "success", (result, log)
    lines = log.splitlines()
    first, retrying, clear, again = (
        lines.index("first fetch breaks"),  # the hook's output, not its echoed command
        lines.index("WARNING: Retrying..."),
        lines.index("Deleting tracked and untracked files..."),
        lines.index("fetch goes on"),
    )
    assert first < retrying < clear < again < lines.index("Fetching changes...")
    assert lines.count("WARNING: Retrying...") == 1
    assert (rig.out / f"ran-{job_id}").exists()


def test_without_attempts_the_same_failure_fails_the_job(
    flaky: tuple[JobsRig, RunnerProcess],
) -> None:
    rig, _ = flaky
    job_id, result, log = _run(rig, "once", {})
    assert (result["status"], result["failure_reason"]) == ("failed", "script_failure"), log
    assert "Retrying" not in log
    assert "fetch goes on" not in log.splitlines()
    assert not (rig.out / f"ran-{job_id}").exists()


def test_an_invalid_value_is_warned_about_at_the_start_of_the_log(
    flaky: tuple[JobsRig, RunnerProcess],
) -> None:
    rig, _ = flaky
    _, result, log = _run(rig, "invalid", {"GET_SOURCES_ATTEMPTS": "many"})
    assert result["status"] == "failed", log
    warning = 'WARNING: GET_SOURCES_ATTEMPTS: expected int got "many", using default value: 1'
    assert log.index(warning) < log.index("first fetch breaks")
    assert "Retrying" not in log
