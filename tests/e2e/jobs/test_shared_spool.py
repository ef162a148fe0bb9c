"""Runner processes that share one spool: each job runs once, and a dead runner loses nothing."""

from __future__ import annotations

import signal
from collections import Counter

from tests.support.exposition import parse_exposition, sample_value
from tests.support.jobs import BLOCK, RECORD_PGID, STARTED, JobsRig, pipeline, process_alive
from tests.support.polling import wait_until

RECORD_RUN = (
    'flock "$OUT/ran.lock" sh -c \'echo "$CI_JOB_ID $CI_RUNNER_DESCRIPTION" >> "$OUT/ran.log"\''
)


def _ran(rig: JobsRig) -> list[tuple[int, str]]:
    """Return the (job id, runner) lines jobs appended to `$OUT/ran.log`."""
    log = rig.out / "ran.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [(int(job), runner) for job, runner in (line.split() for line in lines)]


def test_two_runners_on_one_spool_run_every_job_exactly_once(rig: JobsRig) -> None:
    """30 jobs taken by two runner processes at once: each runs exactly once, all end."""
    runners = [
        rig.runner(rig.config(concurrent=2, name=name, builds=rig.root / f"builds-{name}"))
        for name in ("alpha", "beta")
    ]
    assert runners[0].port != runners[1].port
    jobs = {f"job-{n:02d}": {"script": ["sleep 0.05", RECORD_RUN]} for n in range(30)}
    submitted = rig.submit(rig.project("many", pipeline(None, **jobs)))
    results = rig.wait_results(submitted.ids, timeout=60)

    assert {r["status"] for r in results.values()} == {"success"}
    ran = _ran(rig)
    assert Counter(job for job, _ in ran) == Counter(submitted.ids)
    for job, runner in ran:
        assert results[job]["runner"] == runner
    assert {runner for _, runner in ran} == {"alpha", "beta"}, "both runners took jobs"
    rig.wait_counts({"waiting": 0, "pending": 0, "running": 0, "done": 30})


def _kill_runner_during_a_job(rig: JobsRig, config: str) -> tuple[dict[str, int], int]:
    """Start a runner, let it take job `held` of 3, and kill -9 it.

    Return the jobs by name and the process group of `held`, which outlives its runner.
    """
    runner = rig.runner(config)
    project = rig.project(
        "crash",
        pipeline(
            held={"script": [RECORD_PGID, STARTED, BLOCK, RECORD_RUN]},
            after1={"script": [RECORD_RUN]},
            after2={"script": [RECORD_RUN]},
        ),
    )
    jobs = rig.submit(project).jobs
    rig.wait_started([jobs["held"]])
    runner.signal(signal.SIGKILL)
    assert runner.wait(10) == -signal.SIGKILL

    # Nothing is lost: the job stays in running/, the others in pending/.
    assert rig.in_dir("running") == {jobs["held"]}
    assert rig.in_dir("pending") == {jobs["after1"], jobs["after2"]}
    assert rig.counts()["done"] == 0
    # The job's shell outlives its runner: it leads its own session. The restarted runner
    # must stop it before it reports or reruns the job.
    pgid = int((rig.out / f"pgid-{jobs['held']}").read_text())
    assert process_alive(pgid)
    (rig.out / f"pgid-{jobs['held']}").unlink()
    return jobs, pgid


def test_job_of_a_killed_runner_fails_as_runner_system_failure_after_restart(
    rig: JobsRig,
) -> None:
    """After kill -9, the restarted runner ends its job as runner_system_failure; none lost."""
    config = rig.config(concurrent=1)
    jobs, orphan = _kill_runner_during_a_job(rig, config)

    restarted = rig.runner(config)
    # The first scrape sees the failure counters at 0 (so increase() will see the failure).
    first = parse_exposition(restarted.scrape()[1])
    reason = {"runner": rig.runner_name, "failure_reason": "runner_system_failure"}
    assert sample_value(first, "ci_runner_failed_jobs_total", reason) == 0.0
    wait_until(lambda: not process_alive(orphan), 10, 0.05, "the orphaned job stopped")
    # Every job is somewhere at every moment (directories read in the order jobs move through).
    while any(rig.result(job) is None for job in jobs.values()):
        seen = set().union(*(rig.in_dir(d) for d in ("waiting", "pending", "running", "done")))
        assert seen == set(jobs.values())
    results = rig.wait_results(jobs.values())
    held = results[jobs["held"]]
    assert (held["status"], held["failure_reason"]) == ("failed", "runner_system_failure")
    assert b"the runner running it died" in rig.trace(jobs["held"])
    assert results[jobs["after1"]]["status"] == "success"
    assert results[jobs["after2"]]["status"] == "success"
    rig.wait_counts({"waiting": 0, "pending": 0, "running": 0, "done": 3})
    assert sorted(job for job, _ in _ran(rig)) == sorted([jobs["after1"], jobs["after2"]])

    families = parse_exposition(restarted.scrape()[1])
    labels = {"runner": rig.runner_name}
    assert sample_value(families, "ci_runner_jobs_total", {**labels, "state": "failed"}) == 1.0
    assert sample_value(families, "ci_runner_failed_jobs_total", reason) == 1.0


def test_job_of_a_killed_runner_runs_again_with_requeue_recovery(rig: JobsRig) -> None:
    """With `spool_recovery = "requeue"`, the job of a kill -9'd runner runs again to success."""
    config = rig.config(concurrent=1, spool_recovery="requeue")
    jobs, orphan = _kill_runner_during_a_job(rig, config)
    (rig.out / f"started-{jobs['held']}").unlink()

    rig.runner(config)
    wait_until(lambda: not process_alive(orphan), 10, 0.05, "the orphaned job stopped")
    rig.wait_started([jobs["held"]])
    rig.release(jobs["held"])
    results = rig.wait_results(jobs.values())
    assert {name: results[job]["status"] for name, job in jobs.items()} == {
        "held": "success",
        "after1": "success",
        "after2": "success",
    }
    assert results[jobs["held"]]["failure_reason"] is None
    rig.wait_counts({"waiting": 0, "pending": 0, "running": 0, "done": 3})
    assert Counter(job for job, _ in _ran(rig)) == Counter(jobs.values())
