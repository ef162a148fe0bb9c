"""How real jobs end: success, failure, timeout, cancel, and what the next stage does then."""

from __future__ import annotations

import secrets

from tests.support.jobs import (
    BLOCK,
    RECORD_PGID,
    STARTED,
    JobsRig,
    pgrep,
    pipeline,
    process_alive,
)
from tests.support.polling import wait_until
from tests.support.runner import RunnerProcess

Shared = tuple[JobsRig, RunnerProcess]


def test_passing_job_succeeds_with_its_output_in_the_log(shared: Shared) -> None:
    """A job whose script exits 0 ends `success` with no failure reason, its output logged."""
    rig, _ = shared
    project = rig.project("passing", pipeline(ok={"script": ["echo hello-from-the-job"]}))
    job = rig.submit(project).jobs["ok"]
    result = rig.wait_results([job])[job]
    assert result["status"] == "success"
    assert result["failure_reason"] is None
    assert result["runner"] == rig.runner_name
    trace = rig.trace(job)
    assert b"\nhello-from-the-job\n" in trace
    assert trace.endswith(b"Job succeeded\n")


def test_failing_job_records_exit_code_and_script_failure(shared: Shared) -> None:
    """A script that exits 7 ends `failed`, reason `script_failure`, exit code 7 in result.json."""
    rig, _ = shared
    project = rig.project("failing", pipeline(bad={"script": ["echo before", "exit 7"]}))
    job = rig.submit(project).jobs["bad"]
    result = rig.wait_results([job])[job]
    assert (result["status"], result["failure_reason"], result["exit_code"]) == (
        "failed",
        "script_failure",
        7,
    )
    assert rig.trace(job).endswith(b"ERROR: Job failed: exit code 7\n")


def test_job_past_its_timeout_is_timedout_and_its_process_group_is_killed(shared: Shared) -> None:
    """`timeout: 2s` ends a job `timedout` (job_execution_timeout) and kills what it started."""
    rig, _ = shared
    marker = f"alloy-timeout-{secrets.token_hex(6)}"
    project = rig.project(
        "timeout",
        pipeline(
            slow={
                "timeout": "2s",
                "script": [
                    f"(exec -a {marker} sleep 1000) &",
                    'echo $! > "$OUT/child-$CI_JOB_ID"',
                    "wait",
                ],
            }
        ),
    )
    job = rig.submit(project).jobs["slow"]
    child_file = rig.out / f"child-{job}"
    child = int(
        wait_until(
            lambda: child_file.read_text().strip() if child_file.exists() else None,
            10,
            0.05,
            "the child",
        )
    )
    wait_until(lambda: pgrep(marker) == [child], 5, 0.05, "the marked child running")

    result = rig.wait_results([job], timeout=15)[job]
    assert (result["status"], result["failure_reason"]) == ("timedout", "job_execution_timeout")
    assert 2.0 <= result["duration"] < 10.0
    wait_until(lambda: not process_alive(child), 5, 0.05, "the sleep child gone")
    assert pgrep(marker) == []


def test_canceling_a_running_job_stops_it_as_canceled(shared: Shared) -> None:
    """`alloy-runner cancel ID` on a running job ends it `canceled` (job_canceled), group gone."""
    rig, _ = shared
    project = rig.project(
        "cancel-running", pipeline(held={"script": [RECORD_PGID, STARTED, BLOCK]})
    )
    job = rig.submit(project).jobs["held"]
    rig.wait_started([job])
    pgid = int((rig.out / f"pgid-{job}").read_text())
    assert rig.cancel(job) == {"id": job, "result": "canceling", "status": "running"}
    result = rig.wait_results([job], timeout=15)[job]
    assert (result["status"], result["failure_reason"]) == ("canceled", "job_canceled")
    assert b"ERROR: Job was canceled" in rig.trace(job)
    wait_until(lambda: not process_alive(pgid), 5, 0.05, "the job's shell gone")


def test_canceling_pending_and_waiting_jobs_means_they_never_run(rig: JobsRig) -> None:
    """A job canceled while pending or waiting for its stage ends `canceled` and never runs."""
    runner = rig.runner(rig.config(concurrent=1))
    project = rig.project(
        "cancel-early",
        pipeline(
            ["build", "test"],
            first={"stage": "build", "script": [STARTED, BLOCK]},
            queued={"stage": "build", "script": [STARTED]},
            later={"stage": "test", "script": [STARTED], "when": "always"},
        ),
    )
    jobs = rig.submit(project).jobs
    rig.wait_started([jobs["first"]])
    assert rig.in_dir("pending") == {jobs["queued"]}
    assert rig.in_dir("waiting") == {jobs["later"]}

    for job in (jobs["queued"], jobs["later"]):
        assert rig.cancel(job) == {"id": job, "result": "canceled", "status": "canceled"}
    for job in (jobs["queued"], jobs["later"]):
        result = rig.result(job)
        assert result is not None, "a canceled waiting job has its result at once"
        assert (result["status"], result["failure_reason"]) == ("canceled", "job_canceled")

    rig.release(jobs["first"])
    results = rig.wait_results(jobs.values())
    assert results[jobs["first"]]["status"] == "success"
    assert not (rig.out / f"started-{jobs['queued']}").exists()
    assert not (rig.out / f"started-{jobs['later']}").exists()
    rig.wait_counts({"waiting": 0, "pending": 0, "running": 0, "done": 3})
    assert runner.wait_for_line(rf"job {jobs['first']} \(first\) finished: success")


def test_allowed_failure_lets_the_next_stage_run(shared: Shared) -> None:
    """A failed job with `allow_failure: true` does not stop the next stage."""
    rig, _ = shared
    project = rig.project(
        "allow-failure",
        pipeline(
            ["build", "test"],
            flaky={"stage": "build", "script": ["exit 1"], "allow_failure": True},
            check={"stage": "test", "script": ["true"]},
        ),
    )
    jobs = rig.submit(project).jobs
    results = rig.wait_results(jobs.values())
    assert results[jobs["flaky"]]["status"] == "failed"
    assert results[jobs["flaky"]]["failure_reason"] == "script_failure"
    assert results[jobs["check"]]["status"] == "success"


def test_failed_stage_skips_the_next_stage(shared: Shared) -> None:
    """When a job fails, the jobs of later stages are `skipped` and never run."""
    rig, _ = shared
    project = rig.project(
        "failed-stage",
        pipeline(
            ["build", "test"],
            broken={"stage": "build", "script": ["exit 2"]},
            never={"stage": "test", "script": [STARTED]},
        ),
    )
    jobs = rig.submit(project).jobs
    results = rig.wait_results(jobs.values())
    assert results[jobs["broken"]]["status"] == "failed"
    assert results[jobs["never"]]["status"] == "skipped"
    assert not (rig.out / f"started-{jobs['never']}").exists()


def test_on_failure_and_always_jobs_run_after_a_failure(shared: Shared) -> None:
    """After a failed stage, `when: on_failure` and `when: always` jobs run; others are skipped."""
    rig, _ = shared
    project = rig.project(
        "when-failed",
        pipeline(
            ["build", "test", "cleanup"],
            broken={"stage": "build", "script": ["exit 1"]},
            tests={"stage": "test", "script": [STARTED]},
            notify={"stage": "test", "script": [STARTED], "when": "on_failure"},
            tidy={"stage": "cleanup", "script": [STARTED], "when": "always"},
        ),
    )
    jobs = rig.submit(project).jobs
    results = rig.wait_results(jobs.values())
    statuses = {name: results[job]["status"] for name, job in jobs.items()}
    assert statuses == {
        "broken": "failed",
        "tests": "skipped",
        "notify": "success",
        "tidy": "success",
    }


def test_on_failure_job_is_skipped_and_always_job_runs_after_success(shared: Shared) -> None:
    """When every job succeeds, a `when: on_failure` job is skipped and `when: always` runs."""
    rig, _ = shared
    project = rig.project(
        "when-passed",
        pipeline(
            ["build", "cleanup"],
            good={"stage": "build", "script": ["true"]},
            notify={"stage": "cleanup", "script": [STARTED], "when": "on_failure"},
            tidy={"stage": "cleanup", "script": [STARTED], "when": "always"},
        ),
    )
    jobs = rig.submit(project).jobs
    results = rig.wait_results(jobs.values())
    statuses = {name: results[job]["status"] for name, job in jobs.items()}
    assert statuses == {"good": "success", "notify": "skipped", "tidy": "success"}
    assert not (rig.out / f"started-{jobs['notify']}").exists()


def test_submit_wait_passes_a_pipeline_whose_only_failure_was_allowed(shared: Shared) -> None:
    """`submit --wait` exits 0 when the only failed job had `allow_failure: true`, 1 otherwise."""
    rig, _ = shared
    allowed = rig.project(
        "wait-allowed",
        pipeline(
            ["build", "test"],
            flaky={"stage": "build", "script": ["exit 1"], "allow_failure": True},
            check={"stage": "test", "script": ["true"]},
        ),
    )
    done = rig.cli(
        "submit",
        "--file",
        str(allowed.file),
        "--spool",
        str(rig.spool),
        "--wait",
        "--timeout",
        "60",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "flaky: failed (allowed to fail)" in done.stdout
    assert "check: success" in done.stdout

    failing = rig.project("wait-failing", pipeline(broken={"script": ["exit 1"]}))
    done = rig.cli(
        "submit",
        "--file",
        str(failing.file),
        "--spool",
        str(rig.spool),
        "--wait",
        "--timeout",
        "60",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "broken: failed" in done.stdout
