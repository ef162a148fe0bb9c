"""The real `alloy-runner run` process taking jobs from the fake coordinator, end to end."""

from __future__ import annotations

import math
import time
import zlib

from prometheus_client.metrics_core import Metric

from alloy_runner.telemetry.catalog.naming import gitlab_short_token
from tests.support import (
    StartRunner,
    parse_exposition,
    sample_value,
    wait_until,
)
from tests.support.fake_coordinator import FakeJob, StartFake, StartGitlabRunner, gitlab_config

LINE = "line %06g of a deterministic job log, the same on every run"


def printed(count: int) -> bytes:
    """Return what `seq -f LINE 1 count` prints."""
    return b"".join(
        f"line {i:06d} of a deterministic job log, the same on every run\n".encode()
        for i in range(1, count + 1)
    )


def seq(count: int) -> str:
    return f"seq -f '{LINE}' 1 {count}"


def assert_whole(job: FakeJob, expected: bytes) -> None:
    """The job ran once, its trace holds `expected` once, and matches the runner's checksum."""
    trace = bytes(job.trace)
    assert job.picked == 1, f"job {job.id} was handed out {job.picked} times"
    assert trace.count(expected) == 1, f"job {job.id}: its output is not in its trace once"
    assert job.final is not None
    assert job.final["output"] == {
        "checksum": f"crc32:{zlib.crc32(trace):08x}",
        "bytesize": len(trace),
    }
    assert trace.endswith(b"Job succeeded\n")


def test_jobs_run_and_their_trace_arrives_byte_for_byte(
    start_fake: StartFake, start_gitlab_runner: StartGitlabRunner
) -> None:
    """Every job runs once to success, and the coordinator holds exactly the log it printed."""
    fake = start_fake(long_poll=5.0, trace_interval=1)
    runner = start_gitlab_runner(fake)
    jobs = [fake.add_job(f"job-{n}", [seq(n)]) for n in (1, 2000, 60000)]  # 60000 lines: 3.7 MB
    fake.wait_done(jobs, timeout=60)
    for job, n in zip(jobs, (1, 2000, 60000), strict=True):
        assert job.status == "success", bytes(job.trace)[-500:]
        assert_whole(job, printed(n))
    big = jobs[-1]
    assert len(big.patches) >= 4  # sent in PATCHes of at most 1 MiB, one after the other
    ends = [start + size for start, size in big.patches]
    assert all(start == end for (start, _), end in zip(big.patches[1:], ends, strict=False))
    assert "Traceback" not in runner.stderr_text


def test_artifacts_are_uploaded_and_a_later_job_downloads_them(
    start_fake: StartFake, start_gitlab_runner: StartGitlabRunner
) -> None:
    """A job's artifacts reach the coordinator, and a dependent job gets them back."""
    fake = start_fake(long_poll=5.0)
    start_gitlab_runner(fake)
    producer = fake.add_job(
        "producer", ["mkdir -p out", "echo made-by-producer > out/result.txt"], artifacts=["out"]
    )
    fake.wait_done([producer], timeout=30)
    assert producer.status == "success", bytes(producer.trace).decode()
    assert len(producer.artifacts) == 1
    assert producer.artifacts[0].data.startswith(b"PK")
    consumer = fake.add_job("consumer", ["cat out/result.txt"], dependencies=[producer])
    fake.wait_done([consumer], timeout=30)
    assert consumer.status == "success", bytes(consumer.trace).decode()
    assert b"\nmade-by-producer\n" in consumer.trace
    assert producer.downloads == [(producer.id, producer.token)]


def test_an_archive_the_coordinator_refuses_fails_the_job(
    start_fake: StartFake, start_gitlab_runner: StartGitlabRunner
) -> None:
    """A 413 on the artifacts upload fails the job as a system failure, with the reason logged."""
    fake = start_fake(long_poll=5.0, max_artifact_size=10)
    start_gitlab_runner(fake)
    job = fake.add_job("big-artifact", ["seq 1 1000 > out.txt"], artifacts=["out.txt"])
    fake.wait_done([job], timeout=30)
    assert job.status == "failed"
    assert job.final is not None
    assert job.final["failure_reason"] == "runner_system_failure"
    assert b"ERROR: Uploading artifacts failed: the coordinator refused the archive" in job.trace


def test_a_cancel_on_the_coordinator_stops_the_build(
    start_fake: StartFake, start_gitlab_runner: StartGitlabRunner
) -> None:
    """`Job-Status: canceling` stops the running build, and the job ends canceled."""
    fake = start_fake(long_poll=5.0, trace_interval=0.5)
    start_gitlab_runner(fake)
    job = fake.add_job("forever", ["while true; do echo tick; sleep 0.1; done"])
    wait_until(lambda: b"tick" in job.trace, 20, what="the job's first output")
    asked = time.monotonic()
    fake.cancel(job)
    fake.wait_done([job], timeout=20)
    assert job.status == "canceled"
    assert job.final is not None
    assert job.final["state"] == "failed"
    assert job.final["failure_reason"] == "job_canceled"
    assert time.monotonic() - asked < 10
    assert b"ERROR: Job was canceled" in job.trace


def test_a_coordinator_outage_loses_no_job_byte_or_result(
    start_fake: StartFake, start_gitlab_runner: StartGitlabRunner
) -> None:
    """500s, stalls, resets and lost replies for a while: every job runs once, nothing is lost."""
    fake = start_fake(long_poll=2.0, trace_interval=0.5)
    runner = start_gitlab_runner(fake)
    sizes = [300, 500, 800, 1200, 1600, 2000]
    script = "for i in 1 2 3 4 5 6 7 8; do {seq}; sleep 0.4; done"
    jobs = [fake.add_job(f"job-{n}", [script.format(seq=seq(n))]) for n in sizes]
    wait_until(lambda: all(j.picked for j in jobs[:4]), 20, what="the first jobs running")
    fake.fail(["500", "stall", "reset", "503", "lose_reply"], seconds=4.0, stall=1.0)
    began = time.monotonic()
    while time.monotonic() - began < 3.0:  # the metrics server answers through the outage
        reply = runner.request("GET", "/metrics", timeout=2.0)
        assert reply.status == 200
        time.sleep(0.5)
    fake.wait_done(jobs, timeout=90)
    assert set(fake.faults_injected) == {"500", "stall", "reset", "503", "lose_reply"}
    for job, n in zip(jobs, sizes, strict=True):
        assert job.status == "success", bytes(job.trace)[-300:]
        assert_whole(job, printed(n) * 8)  # eight rounds, back to back, once
    families = parse_exposition(runner.scrape()[1])
    statuses = families["ci_runner_api_request_statuses"].samples
    for status in ("500", "503", "connection_error"):
        # Summed over the endpoints: the expected ones are there at 0 from the start.
        counted = sum(s.value for s in statuses if s.labels["status"] == status)
        assert counted > 0, status


def test_a_rejected_token_is_logged_once(
    start_fake: StartFake, start_gitlab_runner: StartGitlabRunner
) -> None:
    """A runner whose token the coordinator refuses stops asking, and logs it once, not per poll."""
    fake = start_fake()
    # A second runner with a good token polls every check_interval (0.2 s): its requests
    # count the rounds in which the rejected one would have asked again.
    witness = f'[[runners]]\nname = "ok"\nurl = "{fake.url}"\ntoken = "{fake.runner_token}"\n'
    runner = start_gitlab_runner(fake, token="glrt-revoked-token-0123", extra=witness)
    runner.wait_for_line("rejected the runner's token", timeout=10)
    polled = fake.count("request_job", "204")
    wait_until(lambda: fake.count("request_job", "204") >= polled + 7, 20, what="seven polls")
    assert fake.count("request_job", "403") == 1
    assert sum("rejected" in line for line in runner.stderr_lines) == 1
    assert "glrt-revoked-token-0123" not in runner.stderr_text


def test_api_calls_and_queue_time_are_exposed_as_metrics(
    start_fake: StartFake, start_gitlab_runner: StartGitlabRunner
) -> None:
    """API calls are counted by endpoint and status, timed, and the job's queue time observed."""
    fake = start_fake(long_poll=5.0)
    runner = start_gitlab_runner(fake)
    job = fake.add_job("quick", ["echo hi"])
    fake.wait_done([job], timeout=30)

    def families() -> dict[str, Metric] | None:
        found = parse_exposition(runner.scrape()[1])
        counted = sample_value(
            found,
            "ci_runner_api_request_statuses_total",
            {"runner": "gl", "endpoint": "update_job", "status": "200"},
        )
        return found if counted else None

    found = wait_until(families, 10, what="the final update counted")
    labels = {"runner": "gl", "endpoint": "request_job", "status": "201"}
    assert sample_value(found, "ci_runner_api_request_statuses_total", labels) == 1
    count = sample_value(
        found,
        "ci_runner_api_request_duration_seconds_count",
        {"runner": "gl", "endpoint": "patch_trace"},
    )
    assert count is not None and count >= 1
    queued = sample_value(found, "ci_runner_job_queue_duration_seconds_count", {"runner": "gl"})
    assert queued == 1


def test_tokens_and_masked_values_stay_out_of_logs_metrics_and_debug_pages(
    start_fake: StartFake, start_gitlab_runner: StartGitlabRunner, tmp_path: object
) -> None:
    """The runner token, job tokens and masked variables appear in no log, metric or /debug page."""
    fake = start_fake(long_poll=5.0, trace_interval=0.5)
    runner = start_gitlab_runner(fake, top='log_level = "debug"')
    secret = "masked-value-9f8e7d"
    job = fake.add_job(
        "secretive",
        ['echo "the secret is $SECRET"', "sleep 3"],
        variables=[{"key": "SECRET", "value": secret, "masked": True, "public": False}],
    )
    wait_until(lambda: b"the secret is" in job.trace, 20, what="the job's output")
    pages = [runner.request("GET", path).text for path in ("/debug/jobs/list", "/metrics")]
    fake.wait_done([job], timeout=30)
    assert b"the secret is [MASKED]" in job.trace
    assert "id=" in pages[0]
    seen = "\n".join([*pages, runner.stderr_text])
    for value in (fake.runner_token, job.token, secret):
        assert value not in seen
        assert value.encode() not in job.trace


def test_request_limits_excess_requests_and_retries_move_under_both_names(
    start_fake: StartFake, start_runner: StartRunner
) -> None:
    """Long polls fill the one request slot while there is room: excess requests are counted.

    A result the coordinator refuses twice with 503 is retried, and counted as retries.
    """
    fake = start_fake(long_poll=5.0)
    runner = start_runner(gitlab_config(fake, top='metric_names = "both"'))
    short = gitlab_short_token(fake.runner_token)
    retries = {"runner": "gl", "endpoint": "update_job"}
    first = parse_exposition(runner.scrape()[1])  # at 0 before any retry
    assert sample_value(first, "ci_runner_api_request_retries_total", retries) == 0
    # The statuses the calls are expected to answer exist at 0, under both names.
    for endpoint, status, method in (
        ("request_job", "409", "post"),
        ("update_job", "412", "put"),
        ("patch_trace", "416", "patch"),
        ("download_artifacts", "401", "get"),
    ):
        ci = {"runner": "gl", "endpoint": endpoint, "status": status}
        gl = {**ci, "runner": short, "method": method}
        assert sample_value(first, "ci_runner_api_request_statuses_total", ci) == 0
        assert sample_value(first, "gitlab_runner_api_request_statuses_total", gl) == 0

    def exceeded() -> float | None:
        found = parse_exposition(runner.scrape()[1])
        ours = sample_value(found, "ci_runner_request_concurrency_exceeded_total", {"runner": "gl"})
        theirs = sample_value(
            found, "gitlab_runner_request_concurrency_exceeded_total", {"runner": short}
        )
        return ours if ours and ours >= 2 and theirs and theirs >= ours else None

    wait_until(exceeded, 10, what="excess requests counted under both names")
    found = parse_exposition(runner.scrape()[1])
    for name in ("hard_limit", "used_limit"):
        assert sample_value(found, f"ci_runner_request_concurrency_{name}", {"runner": "gl"}) == 1
        theirs = sample_value(found, f"gitlab_runner_request_concurrency_{name}", {"runner": short})
        assert theirs == 1
    fake.fail(["503"], count=2, endpoints=["update_job"])
    sent = {"project_jobs_running_on_instance_runners_count": "2"}
    job = fake.add_job("quick", ["true"], job_info=sent)
    fake.wait_done([job], timeout=30)

    def retried() -> dict[str, Metric] | None:
        found = parse_exposition(runner.scrape()[1])
        ours = {"runner": "gl", "endpoint": "update_job"}
        count = sample_value(found, "ci_runner_api_request_retries_total", ours)
        return found if count == 2 else None

    found = wait_until(retried, 10, what="two retries of the result")
    path = {"path": "/api/v4/jobs/:id", "method": "put"}
    assert sample_value(found, "gitlab_runner_api_request_retries_total", path) == 2
    # GitLab's queue-duration histogram is labelled with what the coordinator sent;
    # the ci_* one keeps its one label.
    queued = {"runner": short, "project_jobs_running": "2"}
    assert sample_value(found, "gitlab_runner_job_queue_duration_seconds_count", queued) == 1
    ci_labels = [
        s.labels
        for s in found["ci_runner_job_queue_duration_seconds"].samples
        if s.name.endswith("_count")
    ]
    assert ci_labels == [{"runner": "gl"}]


def test_the_adaptive_request_limit_grows_with_jobs_taken_and_bounds_requests(
    start_fake: StartFake, start_runner: StartRunner
) -> None:
    """As GitLab Runner's: 1 at first, x1.1 per job taken; the requests in flight stay under it."""
    fake = start_fake(long_poll=5.0)
    config = gitlab_config(fake, extra="request_concurrency = 4\n", top='metric_names = "both"')
    runner = start_runner(config)
    short = gitlab_short_token(fake.runner_token)

    def limits(found: dict[str, Metric]) -> tuple[float | None, ...]:
        return tuple(
            sample_value(found, f"{prefix}_request_concurrency_{kind}_limit", labels)
            for prefix, labels in (
                ("ci_runner", {"runner": "gl"}),
                ("gitlab_runner", {"runner": short}),
            )
            for kind in ("hard", "adaptive", "used")
        )

    assert limits(parse_exposition(runner.scrape()[1])) == (4, 1, 1) * 2
    jobs = [fake.add_job(f"j{n}", ["sleep 1"]) for n in range(5)]
    fake.wait_done(jobs, timeout=30)

    def grown() -> tuple[float | None, ...] | None:
        found = parse_exposition(runner.scrape()[1])
        seen = limits(found)
        in_flight = sample_value(found, "ci_runner_request_concurrency", {"runner": "gl"})
        assert in_flight is not None and seen[2] is not None and in_flight <= seen[2]
        return seen if seen[1] is not None and seen[1] > 1 else None

    seen = wait_until(grown, 10, what="the adaptive limit grown by the jobs taken")
    assert seen[:3] == seen[3:]  # the same under both names
    adaptive, used = seen[1], seen[2]
    assert adaptive is not None and used is not None
    assert 1 < adaptive <= 1.1**5 + 1e-9  # five jobs taken, and some empty answers since
    assert used == math.ceil(adaptive)
