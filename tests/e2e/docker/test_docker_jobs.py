"""Jobs of the docker executor on a real engine: images, services, sources, caches, artifacts."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from tests.support.engine import (
    IMAGE,
    NOTHING,
    WEB,
    Engine,
    docker_config,
    leftovers,
    unique_runner,
)
from tests.support.jobs import JobsRig, pipeline

MARKER = "/etc/alloy-image-marker"  # a file of the test image that this host lacks


def start(rig: JobsRig, engine: Engine, name: str, **kwargs: str):  # type: ignore[no-untyped-def]
    return rig.runner(docker_config(rig.config(name=name), engine.host, **kwargs))


def test_scripts_run_in_the_job_image_or_the_default_one(rig: JobsRig, engine: Engine) -> None:
    """A job reads a file only its image has, has its own hostname, sees CI_* variables."""
    assert not Path(MARKER).exists()
    name = unique_runner()
    start(rig, engine, name)
    project = rig.project(
        "p",
        pipeline(
            chosen={
                "image": IMAGE,
                # TMPDIR is also the runner's own (the rig's): the job's setting still counts.
                "variables": {"GREETING": "hi there", "TMPDIR": str(rig.tmp)},
                "script": [
                    f"cat {MARKER}",
                    "hostname",
                    'echo "[$GREETING] $CI_JOB_NAME $PWD"',
                    'echo "tmp=$TMPDIR home=$HOME"',
                    "touch /tmp/only-in-the-build-container",
                ],
                "after_script": [
                    "test ! -e /tmp/only-in-the-build-container && echo in a fresh container",
                    "echo status=$CI_JOB_STATUS marker=$(cat /etc/alloy-image-marker)",
                ],
            },
            default_image={"script": [f"cat {MARKER}", "echo shell=$0"]},
        ),
    )
    ids = rig.submit(project).jobs
    results = rig.wait_results(ids.values(), timeout=60)
    assert {r["status"] for r in results.values()} == {"success"}
    chosen = rig.trace(ids["chosen"]).decode()
    assert "only in the image" in chosen
    lines = chosen.splitlines()
    hostname = lines[lines.index(next(x for x in lines if x.endswith("$ hostname\x1b[0;m"))) + 1]
    assert hostname and hostname != socket.gethostname()
    assert f"[hi there] chosen /builds/{name}/0/p" in chosen
    # The job's variables are the container's; the runner host's own (HOME) are not.
    assert f"tmp={rig.tmp} home=/root" in chosen
    assert "\nin a fresh container\n" in chosen
    assert "\nstatus=success marker=only in the image\n" in chosen
    default = rig.trace(ids["default_image"]).decode()
    assert f"Using Docker executor with image {IMAGE}" in default
    assert "only in the image" in default
    assert leftovers(name) == NOTHING


def test_services_answer_by_alias_and_by_derived_names(rig: JobsRig, engine: Engine) -> None:
    """alloy-test/web is reachable as `www`, `alloy-test-web` and `alloy-test__web`."""
    name = unique_runner()
    start(rig, engine, name)
    project = rig.project(
        "p",
        pipeline(
            j={
                "services": [{"name": WEB, "alias": "www"}],
                "script": [
                    f"wget -qO- http://{host}/index.html"
                    for host in ("www", "alloy-test-web", "alloy-test__web")
                ],
            }
        ),
    )
    (job_id,) = rig.submit(project).ids
    assert rig.wait_results([job_id], timeout=60)[job_id]["status"] == "success"
    trace = rig.trace(job_id).decode()
    assert trace.count("hello from web") == 3
    assert "Waiting for services to be up and running" in trace
    assert leftovers(name) == NOTHING


def test_a_service_that_dies_is_reported_with_its_log(rig: JobsRig, engine: Engine) -> None:
    """The service exits before its port answers: its log is shown and the job fails."""
    name = unique_runner()
    start(rig, engine, name)
    dying = {"name": WEB, "alias": "db", "command": ["sh", "-c", "echo db-is-dying; exit 3"]}
    project = rig.project(
        "p", pipeline(j={"services": [dying], "script": ["wget -qO- -T 2 http://db/"]})
    )
    (job_id,) = rig.submit(project).ids
    result = rig.wait_results([job_id], timeout=90)[job_id]
    assert (result["status"], result["failure_reason"]) == ("failed", "script_failure")
    trace = rig.trace(job_id).decode()
    assert f"*** WARNING: Service {WEB} probably didn't start properly." in trace
    assert "the service container exited with code 3" in trace
    assert "db-is-dying" in trace
    assert leftovers(name) == NOTHING


@pytest.mark.parametrize("which", ["engine", "tcp_engine"])
def test_sources_caches_and_artifacts_with_an_image_without_git(
    rig: JobsRig, which: str, request: pytest.FixtureRequest
) -> None:
    """The image has no git: sources are checked out, artifacts pass on, a cache survives.

    On the TCP engine, which the runner treats as remote, the build directory is
    a volume that the runner copies to and from through the Engine API.
    """
    engine = request.getfixturevalue(which)
    name = unique_runner()
    start(rig, engine, name)
    project = rig.project(
        "p",
        pipeline(
            stages=["build", "test"],
            make={
                "stage": "build",
                "script": [
                    "! command -v git",
                    "echo volume-at-builds=$(grep -c ' /builds ' /proc/mounts)",
                    "cat tracked.txt",
                    "echo built-in-container > made.txt",
                    "mkdir -p deps && echo cached-$CI_JOB_ID > deps/stamp",
                ],
                "artifacts": {"paths": ["made.txt"]},
                "cache": {"key": "k", "paths": ["deps/"]},
            },
            use={
                "stage": "test",
                "script": ["cat made.txt", "cat deps/stamp"],
                "cache": {"key": "k", "paths": ["deps/"], "policy": "pull"},
            },
        ),
    )
    (project.path / "tracked.txt").write_text("from the repository\n")
    project.git_init().commit("first")
    ids = rig.submit(project).jobs
    results = rig.wait_results(ids.values(), timeout=90)
    assert {r["status"] for r in results.values()} == {"success"}, rig.trace(ids["make"])
    make = rig.trace(ids["make"]).decode()
    assert "from the repository" in make
    # Local: the build directory is bind-mounted; "remote": /builds is the build's volume.
    assert f"volume-at-builds={1 if which == 'tcp_engine' else 0}\n" in make
    use = rig.trace(ids["use"]).decode()
    assert "built-in-container" in use
    assert f"cached-{ids['make']}" in use
    assert leftovers(name) == NOTHING


def test_runner_options_entrypoint_and_service_variables(rig: JobsRig, engine: Engine) -> None:
    """memory, shm_size, privileged, extra_hosts reach the container; entrypoint, variables apply.

    (`dns` is left out: on podman it replaces the network's name server, so that
    services would no longer be found by name; its create option is unit-tested.)
    """
    name = unique_runner()
    extra = (
        'memory = "256m"\nshm_size = "32m"\nprivileged = true\n'
        'extra_hosts = ["alloy-extra.test:10.1.2.3"]\n'
    )
    start(rig, engine, name, extra=extra)
    entrypoint = ["sh", "-c", 'echo set-by-entrypoint > /tmp/ep; exec "$@"', "ep"]
    service = {
        "name": WEB,
        "alias": "greeter",
        "variables": {"GREETING": "hello-from-variables"},
        "command": ["sh", "-c", "echo $GREETING > /www/index.html; exec httpd -f -p 80 -h /www"],
    }
    project = rig.project(
        "p",
        pipeline(
            j={
                "image": {"name": IMAGE, "entrypoint": entrypoint},
                "services": [service],
                "script": [
                    "cat /tmp/ep",
                    "grep alloy-extra.test /etc/hosts",
                    "cat /sys/fs/cgroup/memory/memory.limit_in_bytes"
                    " || cat /sys/fs/cgroup/memory.max",
                    "df -k /dev/shm | tail -1",
                    "grep CapEff /proc/self/status",
                    "wget -qO- http://greeter/",
                ],
            }
        ),
    )
    (job_id,) = rig.submit(project).ids
    result = rig.wait_results([job_id], timeout=60)[job_id]
    trace = rig.trace(job_id).decode()
    assert result["status"] == "success", trace
    assert "set-by-entrypoint" in trace
    assert "10.1.2.3" in trace
    assert str(256 * 1024 * 1024) in trace
    assert " 32768 " in trace  # /dev/shm, in KiB
    caps = re.search(r"CapEff:\s+([0-9a-f]+)", trace)
    assert caps is not None and bin(int(caps[1], 16)).count("1") >= 36, "privileged: all caps"
    assert "hello-from-variables" in trace
    assert leftovers(name) == NOTHING


@pytest.mark.parametrize("which", ["engine", "tcp_engine"])
def test_a_slow_service_is_waited_for(
    rig: JobsRig, which: str, request: pytest.FixtureRequest
) -> None:
    """The script starts once the service's port listens, on a local and on a remote engine.

    Locally the runner connects to the port; on the TCP engine, whose network it
    treats as out of reach, it reads the service's /proc/net/tcp.
    """
    engine = request.getfixturevalue(which)
    name = unique_runner()
    start(rig, engine, name)
    slow = {
        "name": WEB,
        "alias": "slow",
        "command": ["sh", "-c", "sleep 3; exec httpd -f -p 80 -h /www"],
    }
    project = rig.project(
        "p", pipeline(j={"services": [slow], "script": ["wget -qO- http://slow/index.html"]})
    )
    (job_id,) = rig.submit(project).ids
    result = rig.wait_results([job_id], timeout=60)[job_id]
    trace = rig.trace(job_id).decode()
    assert result["status"] == "success", trace
    assert "hello from web" in trace and "WARNING" not in trace
    assert leftovers(name) == NOTHING
