"""How the docker executor fails, with GitLab's failure reasons, on a real engine."""

from __future__ import annotations

from tests.support.engine import NOTHING, Engine, docker_config, leftovers, unique_runner
from tests.support.jobs import JobsRig, pipeline


def test_missing_image_with_pull_policy_never_is_image_pull_failure(
    rig: JobsRig, engine: Engine
) -> None:
    name = unique_runner()
    rig.runner(
        docker_config(
            rig.config(name=name),
            engine.host,
            pull_policy='"never"',
            extra='allowed_pull_policies = ["never", "always"]\n',
        )
    )
    project = rig.project(
        "p",
        pipeline(
            absent={"image": "alloy-test/not-built-anywhere:1", "script": ["true"]},
            unpullable={
                "image": {"name": "localhost:1/nothing/here:1", "pull_policy": "always"},
                "script": ["true"],
            },
        ),
    )
    ids = rig.submit(project).jobs
    results = rig.wait_results(ids.values(), timeout=60)
    for job in ("absent", "unpullable"):
        result = results[ids[job]]
        assert (result["status"], result["failure_reason"]) == ("failed", "image_pull_failure")
    absent = rig.trace(ids["absent"]).decode()
    assert (
        "ERROR: Preparation failed: failed to pull image 'alloy-test/not-built-anywhere:1':"
        " it is not present and pull_policy is never"
    ) in absent
    assert "pull_policy always:" in rig.trace(ids["unpullable"]).decode()
    assert leftovers(name) == NOTHING


def test_disallowed_image_or_pull_policy_is_a_configuration_error(
    rig: JobsRig, engine: Engine
) -> None:
    name = unique_runner()
    rig.runner(
        docker_config(
            rig.config(name=name), engine.host, extra='allowed_images = ["alloy-test/*"]\n'
        )
    )
    project = rig.project(
        "p",
        pipeline(
            other={"image": "debian:12", "script": ["true"]},
            nested={"image": "alloy-test/deep/er", "script": ["true"]},
            policy={
                "image": {"name": "alloy-test/busybox", "pull_policy": "always"},
                "script": ["true"],
            },
            allowed={"image": "alloy-test/busybox", "script": ["true"]},
        ),
    )
    ids = rig.submit(project).jobs
    results = rig.wait_results(ids.values(), timeout=60)
    for job in ("other", "nested", "policy"):
        result = results[ids[job]]
        assert (result["status"], result["failure_reason"]) == (
            "failed",
            "runner_configuration_error",
        ), job
    assert results[ids["allowed"]]["status"] == "success"
    assert "is not allowed by [runners.docker] allowed_images" in rig.trace(ids["other"]).decode()
    assert "not one of the runner's allowed pull policies" in rig.trace(ids["policy"]).decode()


def test_an_unreachable_engine_fails_jobs_and_the_runner_keeps_serving(rig: JobsRig) -> None:
    runner = rig.runner(
        docker_config(rig.config(name=unique_runner(), concurrent=1), f"unix://{rig.root}/no.sock")
    )
    project = rig.project("p", pipeline(a={"script": ["true"]}, b={"script": ["true"]}))
    ids = rig.submit(project).ids
    results = rig.wait_results(ids, timeout=30)
    for job in ids:
        assert (results[job]["status"], results[job]["failure_reason"]) == (
            "failed",
            "runner_system_failure",
        )
        assert "cannot be reached" in rig.trace(job).decode()
    assert runner.scrape()[1]  # still serving
    assert runner._proc is not None and runner._proc.poll() is None
