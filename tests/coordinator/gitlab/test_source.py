"""GitlabSource in-process against the fake coordinator: requests, reports, faults, metrics."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from alloy_runner.build.build import BuildResult
from alloy_runner.build.job import Artifact, Dependency, GitInfo, Job
from alloy_runner.build.states import BuildState, FailureReason
from alloy_runner.config.model import RunnerConfig
from alloy_runner.coordinator.api_metrics import status_label
from alloy_runner.coordinator.gitlab.api import Backoff
from alloy_runner.coordinator.gitlab.source import GitlabSource
from alloy_runner.exceptions import ArtifactsError
from tests.support import free_port
from tests.support.fake_coordinator import FakeCoordinator, StartFake
from tests.support.fakes import RecordingMetrics

T = TypeVar("T")
FAST = Backoff(base=0.02, cap=0.1)
SUCCESS = BuildResult(BuildState.SUCCESS, None, 1.0)


def labels(metrics: RecordingMetrics) -> list[tuple[str, str, str]]:
    """Return the (runner, endpoint, status) labels of each recorded API call."""
    assert all(c.seconds >= 0 for c in metrics.api_calls)
    return [(c.runner, c.endpoint.value, status_label(c.status)) for c in metrics.api_calls]


def source_for(
    fake: FakeCoordinator | str, *, token: str | None = None, **kwargs: Any
) -> GitlabSource:
    url = fake if isinstance(fake, str) else fake.url
    default = "" if isinstance(fake, str) else fake.runner_token
    runner = RunnerConfig(name="gl", url=url, token=token if token is not None else default)
    options: dict[str, Any] = {
        "check_interval": 0.05,
        "backoff": FAST,
        "trace_interval": 0.05,
        **kwargs,
    }
    return GitlabSource(runner, **options)


def run(make: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await make()

    return asyncio.run(main())


async def take(source: GitlabSource, timeout: float = 5.0) -> Job:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        job = await source.request()
        if job is not None:
            return job
        await source.wait_for_jobs(0.05)
    raise AssertionError("no job")


def test_job_requests_carry_info_and_echo_last_update(start_fake: StartFake) -> None:
    """The runner describes itself in `info` and sends back the last `X-GitLab-Last-Update`."""
    fake = start_fake()

    async def main() -> None:
        source = source_for(fake)
        assert await source.request() is None
        await source.wait_for_jobs(1.0)
        assert await source.request() is None
        await source.aclose()

    run(main)
    first, second = fake.request_bodies[:2]
    assert "last_update" not in first
    assert second["last_update"] == fake.version
    info = first["info"]
    assert {"name", "version", "revision", "platform", "architecture", "executor", "features"} <= (
        info.keys()
    )
    assert info["executor"] == "shell"
    assert info["features"]["trace_checksum"] is True


def test_long_polling_hands_over_a_job_queued_while_the_request_is_held(
    start_fake: StartFake,
) -> None:
    """A held job request returns the job as soon as the coordinator queues it."""
    fake = start_fake(long_poll=10.0)

    async def main() -> tuple[Job | None, float]:
        source = source_for(fake)
        assert await source.request() is None  # learns last_update
        await source.wait_for_jobs(1.0)
        threading.Timer(0.3, lambda: fake.add_job("late", ["true"])).start()
        loop = asyncio.get_running_loop()
        began = loop.time()
        job = await source.request()
        took = loop.time() - began
        await source.aclose()
        return job, took

    job, took = run(main)
    assert job is not None and job.name == "late"
    assert 0.2 < took < 3.0
    assert job.queued_seconds is not None and job.queued_seconds < 3.0


def test_rejected_token_pauses_the_runner_and_is_logged_once(
    start_fake: StartFake, caplog: pytest.LogCaptureFixture
) -> None:
    """After a 403 on jobs/request the runner stops asking for an hour, and says so once."""
    fake = start_fake()

    async def main() -> None:
        source = source_for(fake, token="glrt-revoked")
        for _ in range(10):
            assert await source.request() is None
            await source.wait_for_jobs(0.01)
        await source.aclose()

    with caplog.at_level(logging.INFO, logger="alloy_runner"):
        run(main)
    assert fake.count("request_job") == 1
    rejected = [r for r in caplog.records if "rejected the runner's token" in r.getMessage()]
    assert len(rejected) == 1
    assert "glrt-revoked" not in caplog.text


def test_an_unreachable_coordinator_is_retried_with_backoff_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Job requests to a coordinator that is down back off, and the outage is logged once."""
    metrics = RecordingMetrics()

    async def main() -> None:
        source = source_for(
            f"http://127.0.0.1:{free_port()}",
            token="t",
            metrics=metrics,
            backoff=Backoff(base=0.1, cap=0.4),
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 0.6
        while loop.time() < deadline:
            assert await source.request() is None
            await source.wait_for_jobs(0.05)
        await source.aclose()

    with caplog.at_level(logging.WARNING, logger="alloy_runner"):
        run(main)
    attempts = [c for c in labels(metrics) if c[1] == "request_job"]
    # Without backoff that is ~12 requests; with it the waits grow 0.05-0.1, 0.1-0.2, 0.2-0.4 s.
    assert 2 <= len(attempts) <= 6
    assert {c[2] for c in attempts} == {"connection_error"}
    assert sum("cannot reach the coordinator" in r.getMessage() for r in caplog.records) == 1


def test_final_state_and_every_log_byte_survive_errors_resets_and_stalls(
    start_fake: StartFake,
) -> None:
    """5xx, resets, stalls and lost replies on the way back lose no byte and no final state."""
    fake = start_fake()
    fake_job = fake.add_job("work", ["true"])
    metrics = RecordingMetrics()

    async def main() -> bytes:
        source = source_for(fake, metrics=metrics, timeout=0.5)
        job = await take(source)
        write = source.trace_sink(job)
        fake.fail(
            ["500", "reset", "stall", "503", "lose_reply"],
            count=15,
            endpoints={"patch_trace", "update_job"},
            stall=1.0,
        )
        for i in range(200):
            write(f"line {i:05d}\n".encode())
            if i % 20 == 0:
                await asyncio.sleep(0.02)
        await source.finish(
            job, BuildResult(BuildState.FAILED, FailureReason.SCRIPT_FAILURE, 1.0, exit_code=3)
        )
        await source.aclose()
        return b"".join(f"line {i:05d}\n".encode() for i in range(200))

    expected = run(main)
    assert bytes(fake_job.trace) == expected
    assert fake_job.status == "failed"
    assert fake_job.final is not None
    assert fake_job.final["failure_reason"] == "script_failure"
    assert fake_job.final["exit_code"] == 3
    assert set(fake.faults_injected) == {"500", "reset", "stall", "503", "lose_reply"}
    statuses = {c[2] for c in labels(metrics)}
    assert {"500", "503", "timeout", "connection_error"} <= statuses


def test_a_damaged_trace_is_sent_again_in_full(start_fake: StartFake) -> None:
    """When the final update's checksum fails (412), the whole log is sent again, then the state."""
    fake = start_fake()
    fake_job = fake.add_job("work", ["true"])

    async def main() -> None:
        source = source_for(fake)
        job = await take(source)
        write = source.trace_sink(job)
        write(b"0123456789" * 100)
        running = source._running[job.id].sender
        while running.sent < 1000:
            await asyncio.sleep(0.01)
        with fake.lock:
            fake_job.trace[0:4] = b"XXXX"  # the coordinator's copy is corrupted
        await source.finish(job, SUCCESS)
        await source.aclose()

    run(main)
    assert fake_job.checksum_mismatches == 1
    assert bytes(fake_job.trace) == b"0123456789" * 100
    assert fake_job.status == "success"


def test_a_forbidden_final_update_is_given_up(
    start_fake: StartFake, caplog: pytest.LogCaptureFixture
) -> None:
    """A 403 on the final update means the job is not the runner's any more: stop retrying."""
    fake = start_fake()
    fake.add_job("work", ["true"])

    async def main() -> None:
        source = source_for(fake)
        job = await take(source)
        stolen = Job(job.id, "not-the-token", job.name, job.stage)
        await asyncio.wait_for(source.finish(stolen, SUCCESS), 5)
        await source.aclose()

    with caplog.at_level(logging.WARNING, logger="alloy_runner"):
        run(main)
    assert fake.count("update_job", "403") == 1
    assert "no longer takes its result" in caplog.text


def test_artifacts_travel_with_the_job_token_and_dependency_token(
    start_fake: StartFake, tmp_path: Path
) -> None:
    """Upload uses the job's token and multipart fields; download uses the dependency's token."""
    fake = start_fake()
    producer = fake.add_job("producer", ["true"])
    archive = tmp_path / "a.zip"
    archive.write_bytes(b"PK\x05\x06" + b"\0" * 18)

    async def main() -> tuple[bool, bool]:
        source = source_for(fake)
        job = await take(source)
        source.trace_sink(job)
        await source.upload_artifacts(job, Artifact(paths=("x",), expire_in="2 days"), archive)
        await source.finish(job, SUCCESS)
        consumer = fake.add_job("consumer", ["true"], dependencies=[producer])
        job2 = await take(source)
        assert job2.id == consumer.id
        dest = tmp_path / "dep.zip"
        got = await source.fetch_artifacts(job2, job2.dependencies[0], dest)
        assert dest.read_bytes() == archive.read_bytes()
        missing = Dependency(id=consumer.id, name="consumer", token=consumer.token)
        none = await source.fetch_artifacts(job2, missing, tmp_path / "none.zip")
        await source.aclose()
        return got, none

    got, none = run(main)
    assert (got, none) == (True, False)
    stored = producer.artifacts[0]
    assert stored.fields == {
        "artifact_format": "zip",
        "artifact_type": "archive",
        "expire_in": "2 days",
    }
    assert producer.downloads == [(producer.id, producer.token)]


def test_a_refused_upload_raises_artifacts_error(start_fake: StartFake, tmp_path: Path) -> None:
    """A 413 on upload is not retried: the build learns the archive is too large."""
    fake = start_fake(max_artifact_size=10)
    fake.add_job("producer", ["true"])
    archive = tmp_path / "a.zip"
    archive.write_bytes(b"x" * 1000)

    async def main() -> None:
        source = source_for(fake)
        job = await take(source)
        with pytest.raises(ArtifactsError, match="too large"):
            await source.upload_artifacts(job, Artifact(paths=("x",)), archive)
        await source.aclose()

    run(main)
    assert fake.count("upload_artifacts") == 1


def test_redirected_downloads_never_carry_the_token_to_another_host(tmp_path: Path) -> None:
    """A download redirected to object storage goes there without the JOB-TOKEN header."""
    seen: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.host, request.headers.get("JOB-TOKEN")))
        if request.url.host == "coordinator.test":
            return httpx.Response(302, headers={"Location": "https://storage.test/a?sig=1"})
        return httpx.Response(200, content=b"zip")

    async def main() -> None:
        source = source_for(
            "http://coordinator.test", token="t", transport=httpx.MockTransport(handler)
        )
        job = Job(1, "job-token", "j", "test")
        assert await source.fetch_artifacts(
            job, Dependency(2, "dep", "dep-token"), tmp_path / "d.zip"
        )
        await source.aclose()

    run(main)
    assert seen == [("coordinator.test", "dep-token"), ("storage.test", None)]


def test_job_url_never_shows_credentials() -> None:
    """The job's URL (in /debug/jobs/list) drops the CI token that the repository URL carries."""
    source = source_for("https://ci.example.test/", token="t")
    job = Job(
        77,
        "secret-job-token",
        "j",
        "test",
        git_info=GitInfo(
            repo_url="https://gitlab-ci-token:secret-job-token@ci.example.test/g/p.git"
        ),
    )
    assert source.job_url(job) == "https://ci.example.test/g/p/-/jobs/77"
    assert source.job_url(Job(78, "x", "j", "test")) == "https://ci.example.test/-/jobs/78"
    asyncio.run(source.aclose())


def test_every_call_is_reported_with_its_endpoint_and_status(start_fake: StartFake) -> None:
    """Each API call reaches ApiMetrics with the runner, its endpoint and the HTTP status."""
    fake = start_fake()
    fake.add_job("work", ["true"])
    metrics = RecordingMetrics()

    async def main() -> None:
        source = source_for(fake, metrics=metrics)
        job = await take(source)
        source.trace_sink(job)(b"hello\n")
        await source.finish(job, SUCCESS)
        await source.aclose()

    run(main)
    assert ("gl", "request_job", "201") in labels(metrics)
    assert ("gl", "patch_trace", "202") in labels(metrics)
    assert labels(metrics)[-1] == ("gl", "update_job", "200")


def test_a_malformed_job_is_reported_failed_not_left_running(start_fake: StartFake) -> None:
    """A job payload the runner cannot read is reported failed, so it does not hang there."""
    fake = start_fake()
    job = fake.add_job("broken", ["true"])
    job.payload["steps"] = "not a list"

    async def main() -> None:
        source = source_for(fake)
        assert await source.request() is None
        for _ in range(100):
            if job.done:
                break
            await asyncio.sleep(0.02)
        await source.aclose()

    run(main)
    assert job.status == "failed"
    assert job.final is not None and job.final["failure_reason"] == "runner_system_failure"


def test_malformed_201_answers_back_off_and_log_once(
    start_fake: StartFake, caplog: pytest.LogCaptureFixture
) -> None:
    """A 201 whose body is no job backs off like a server error, with one warning per outage."""
    fake = start_fake()
    fake.fail(["bad_201"], endpoints=["request_job"])
    slow = Backoff(base=0.2, cap=0.4)

    async def main() -> None:
        source = source_for(fake, backoff=slow)
        loop = asyncio.get_running_loop()
        end = loop.time() + 1.5
        while loop.time() < end:
            assert await source.request() is None
            await source.wait_for_jobs(0.05)
        fake.recover()
        job = fake.add_job("fine", ["true"])
        assert (await take(source)).id == job.id
        await source.aclose()

    with caplog.at_level(logging.INFO, logger="alloy_runner"):
        run(main)
    asked = fake.count("request_job")
    # Without backoff the source asks every check_interval (0.05 s): about 30 times.
    assert 3 <= asked <= 10, asked
    warnings = [r for r in caplog.records if "malformed job" in r.getMessage()]
    assert len(warnings) == 1
    assert any("answers again" in r.getMessage() for r in caplog.records)
