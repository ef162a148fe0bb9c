"""The operator's hooks (GitLab's pre_get_sources_script, pre_build_script, post_build_script)
run where GitLab Runner runs them, and fail the job closed, in a real runner process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.jobs import JobsRig, pipeline
from tests.support.runner import RunnerProcess

HOOKS = {
    "pre_get_sources_script": (
        'echo "pre_get_sources git=$(test -d .git && echo yes || echo no)"'
        ' >> "$OUT/order-$CI_JOB_ID"'
    ),
    "post_get_sources_script": (
        'echo "post_get_sources git=$(test -d .git && echo yes || echo no)"'
        ' >> "$OUT/order-$CI_JOB_ID"'
    ),
    "pre_build_script": 'echo pre_build >> "$OUT/order-$CI_JOB_ID"\n[ -z "$FAIL_PRE" ]',
    "post_build_script": 'echo post_build >> "$OUT/order-$CI_JOB_ID"\n[ -z "$FAIL_POST" ]',
}


def _toml(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[JobsRig, RunnerProcess]]:
    rig = JobsRig(tmp_path_factory.mktemp("hooks"))
    config = rig.config(concurrent=2) + "".join(f"{k} = {_toml(v)}\n" for k, v in HOOKS.items())
    try:
        yield rig, rig.runner(config)
    finally:
        rig.stop_all()


def _run(rig: JobsRig, name: str, **job: object) -> tuple[dict[str, object], list[str]]:
    project = rig.project(name, pipeline(only=job))
    project.git_init().commit("init")
    job_id = rig.submit(project).jobs["only"]
    result = rig.wait_results([job_id])[job_id]
    order = rig.out / f"order-{job_id}"
    return result, order.read_text().splitlines() if order.exists() else []


def test_hooks_run_in_gitlab_order_around_the_job(hooked: tuple[JobsRig, RunnerProcess]) -> None:
    """pre_get_sources before the fetch, post_get_sources after it, pre_build before
    before_script, post_build after script and before after_script."""
    rig, _ = hooked
    result, order = _run(
        rig,
        "ordered",
        before_script=['echo before_script >> "$OUT/order-$CI_JOB_ID"'],
        script=['echo script >> "$OUT/order-$CI_JOB_ID"'],
        after_script=['echo after_script >> "$OUT/order-$CI_JOB_ID"'],
    )
    assert result["status"] == "success", result
    assert order == [
        "pre_get_sources git=no",
        "post_get_sources git=yes",
        "pre_build",
        "before_script",
        "script",
        "post_build",
        "after_script",
    ]


def test_failing_pre_build_script_fails_the_job_before_its_script(
    hooked: tuple[JobsRig, RunnerProcess],
) -> None:
    rig, _ = hooked
    result, order = _run(
        rig,
        "pre-fails",
        variables={"FAIL_PRE": "1"},
        script=['echo script >> "$OUT/order-$CI_JOB_ID"'],
        after_script=['echo after_script >> "$OUT/order-$CI_JOB_ID"'],
    )
    assert (result["status"], result["failure_reason"]) == ("failed", "script_failure")
    assert order[-2:] == ["pre_build", "after_script"]
    assert "script" not in order


def test_failing_post_build_script_fails_the_job(hooked: tuple[JobsRig, RunnerProcess]) -> None:
    rig, _ = hooked
    result, order = _run(
        rig, "post-fails", variables={"FAIL_POST": "1"}, script=["true"], after_script=["true"]
    )
    assert (result["status"], result["failure_reason"]) == ("failed", "script_failure")
    assert order[-1] == "post_build"


def test_post_build_script_does_not_run_after_a_failed_script(
    hooked: tuple[JobsRig, RunnerProcess],
) -> None:
    rig, _ = hooked
    result, order = _run(rig, "script-fails", script=["exit 3"])
    assert (result["status"], result["exit_code"]) == ("failed", 3)
    assert order[-1] == "pre_build"


def test_failing_pre_get_sources_script_fails_the_job_before_the_fetch(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    rig = JobsRig(tmp_path_factory.mktemp("pre-get-sources"))
    try:
        rig.runner(
            rig.config(concurrent=1) + 'pre_get_sources_script = "echo policy says no; exit 4"\n'
        )
        project = rig.project("refused", pipeline(only={"script": ['touch "$OUT/ran"']}))
        project.git_init().commit("init")
        job_id = rig.submit(project).jobs["only"]
        result = rig.wait_results([job_id])[job_id]
        assert (result["status"], result["failure_reason"]) == ("failed", "script_failure")
        assert b"policy says no" in rig.trace(job_id)
        assert not (rig.out / "ran").exists()
        assert not list(rig.builds.rglob(".git"))
    finally:
        rig.stop_all()


def test_job_cleanup_flag_leaves_only_the_repository(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """FF_ENABLE_JOB_CLEANUP (an honoured flag): files the job made are gone after it."""
    rig = JobsRig(tmp_path_factory.mktemp("cleanup"))
    try:
        rig.runner(
            rig.config(concurrent=1) + "[runners.feature_flags]\nFF_ENABLE_JOB_CLEANUP = true\n"
        )
        project = rig.project("cleaned", pipeline(only={"script": ["touch made-by-the-job"]}))
        project.git_init().commit("init")
        job_id = rig.submit(project).jobs["only"]
        assert rig.wait_results([job_id])[job_id]["status"] == "success"
        assert b"Cleaning up project directory" in rig.trace(job_id)
        gits = list(rig.builds.rglob(".git"))
        assert len(gits) == 1
        assert not (gits[0].parent / "made-by-the-job").exists()
        assert (gits[0].parent / ".alloy-ci.yml").exists()
    finally:
        rig.stop_all()


@pytest.mark.parametrize("disabled", [False, True])
def test_ci_debug_trace_obeys_debug_trace_disabled(
    tmp_path_factory: pytest.TempPathFactory, disabled: bool
) -> None:
    """CI_DEBUG_TRACE=true traces the script's commands, unless the runner disables it."""
    rig = JobsRig(tmp_path_factory.mktemp("debug-trace"))
    try:
        rig.runner(rig.config(concurrent=1) + f"debug_trace_disabled = {str(disabled).lower()}\n")
        project = rig.project(
            "traced",
            pipeline(only={"variables": {"CI_DEBUG_TRACE": "true"}, "script": ["true marker-cmd"]}),
        )
        job = rig.submit(project).jobs["only"]
        assert rig.wait_results([job])[job]["status"] == "success"
        trace = rig.trace(job)
    finally:
        rig.stop_all()
    assert (b"+ true marker-cmd" in trace) is not disabled
    assert (b"CI_DEBUG_TRACE: usage is disabled on this Runner" in trace) is disabled
