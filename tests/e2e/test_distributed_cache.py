"""The distributed cache: two runner processes on separate build and cache directories share
caches through an S3-compatible server (moto, as a subprocess on loopback); a store that
fails is a warning in the job's log, and the job succeeds."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.http_client import free_port
from tests.support.jobs import JobsRig, pipeline
from tests.support.runner import RunnerProcess
from tests.support.s3 import MotoS3

BUCKET = "runner-cache"
CACHE = {"key": "deps", "paths": ["vendor/"]}


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoS3]:
    with MotoS3() as server:
        server.client().create_bucket(Bucket=BUCKET)
        yield server


@pytest.fixture
def rigs(tmp_path: Path) -> Iterator[tuple[JobsRig, JobsRig]]:
    first, second = JobsRig(tmp_path / "host-a"), JobsRig(tmp_path / "host-b")
    try:
        yield first, second
    finally:
        first.stop_all()
        second.stop_all()


def _histogram_count(runner: RunnerProcess, operation: str, result: str) -> float:
    family = runner.families()["ci_runner_cache_transfer_duration_seconds"]
    return sum(
        float(s.value)
        for s in family.samples
        if s.name.endswith("_count")
        and s.labels.get("operation") == operation
        and s.labels.get("result") == result
    )


def test_a_job_on_a_second_runner_restores_what_the_first_saved(
    s3: MotoS3, rigs: tuple[JobsRig, JobsRig]
) -> None:
    first, second = rigs
    token = secrets.token_hex(8)
    saver = first.runner(first.config(concurrent=1) + s3.cache_config(BUCKET))
    loader = second.runner(second.config(concurrent=1) + s3.cache_config(BUCKET))
    save = first.project(
        "shared-project",
        pipeline(
            build={"script": [f"mkdir -p vendor && echo {token} > vendor/dep"], "cache": CACHE}
        ),
    )
    job = first.submit(save).jobs["build"]
    assert first.wait_results([job])[job]["status"] == "success"
    assert b"Uploaded the cache ci/project/shared-project/deps" in first.trace(job)
    stored = s3.client().get_object(Bucket=BUCKET, Key="ci/project/shared-project/deps")
    assert stored["ContentLength"] > 0
    assert _histogram_count(saver, "upload", "success") == 1

    assert not list(second.cache.rglob("*.zip"))  # the second host has no local copy
    load = second.project(
        "shared-project",
        pipeline(
            test={
                "script": ['cat vendor/dep > "$OUT/restored"'],
                "cache": {**CACHE, "policy": "pull"},
            }
        ),
    )
    job = second.submit(load).jobs["test"]
    assert second.wait_results([job])[job]["status"] == "success", second.trace(job)
    assert (second.out / "restored").read_text() == f"{token}\n"
    assert b"Downloaded the cache ci/project/shared-project/deps" in second.trace(job)
    assert _histogram_count(loader, "download", "success") == 1


@pytest.mark.parametrize("fault", ["dead-store", "no-such-bucket", "wrong-key"])
def test_a_failing_store_is_a_warning_and_the_job_succeeds(
    s3: MotoS3, rigs: tuple[JobsRig, JobsRig], fault: str
) -> None:
    with contextlib.ExitStack() as stack:
        _failing_store(s3, rigs[0], fault, stack)


def _failing_store(s3: MotoS3, rig: JobsRig, fault: str, stack: contextlib.ExitStack) -> None:
    if fault == "dead-store":
        cache = s3.cache_config(BUCKET).replace(s3.address, f"127.0.0.1:{free_port()}")
    elif fault == "wrong-key":
        locked = MotoS3(check_keys=True).start()  # knows no key at all
        stack.callback(locked.stop)
        cache = locked.cache_config(BUCKET)
    else:
        cache = s3.cache_config("no-such-bucket-here")
    runner = rig.runner(rig.config(concurrent=1) + cache)
    project = rig.project(
        "failing-store",
        pipeline(job={"script": ["mkdir -p vendor && echo x > vendor/dep"], "cache": CACHE}),
    )
    job = rig.submit(project).jobs["job"]
    result = rig.wait_results([job], timeout=60)[job]
    assert result["status"] == "success", rig.trace(job)
    trace = rig.trace(job)
    assert b"WARNING: Failed to download the cache ci/project/failing-store/deps" in trace
    assert b"WARNING: Failed to upload the cache ci/project/failing-store/deps" in trace
    assert trace.endswith(b"Job succeeded\n")
    assert _histogram_count(runner, "download", "failure") == 1
    assert _histogram_count(runner, "upload", "failure") == 1


def test_an_archive_over_max_uploaded_archive_size_is_not_uploaded(
    s3: MotoS3, rigs: tuple[JobsRig, JobsRig]
) -> None:
    rig, _ = rigs
    cache = s3.cache_config(BUCKET, extra="MaxUploadedArchiveSize = 64\n")
    rig.runner(rig.config(concurrent=1) + cache)
    project = rig.project(
        "too-big",
        pipeline(
            job={
                "script": ["mkdir -p vendor && head -c 4096 /dev/urandom > vendor/dep"],
                "cache": CACHE,
            }
        ),
    )
    job = rig.submit(project).jobs["job"]
    assert rig.wait_results([job])[job]["status"] == "success"
    assert b"over MaxUploadedArchiveSize (64); not uploaded" in rig.trace(job)
    listed = s3.client().list_objects_v2(Bucket=BUCKET, Prefix="ci/project/too-big/")
    assert listed["KeyCount"] == 0
