"""The real `alloy-runner run` with autoscaled machines: the fake docker-machine, and local ones.

docker+machine builds run in containers on the machine's engine: the fake's
`config NAME` names the real test engine (podman), so they run there for real.
"""

from __future__ import annotations

import json
import re
import signal
import textwrap
from pathlib import Path

import pytest

from alloy_runner.build.states import FailureReason
from alloy_runner.coordinator.spool.records import JobResult, SpoolStatus
from alloy_runner.coordinator.spool.store import Spool
from tests.support import (
    RunnerProcess,
    StartRunner,
    metric_value,
    run_cli,
    sample_value,
    wait_until,
)
from tests.support.engine import NOTHING, Engine, docker_config, leftovers
from tests.support.fake_docker_machine import calls, install_fake_docker_machine, machine_names

STATES = ("acquired", "creating", "idle", "removing", "used")
DOCKER = "ci_docker_machines"
SSH = "ci_ssh_docker_machines"

HELD = """\
held:
  script:
    - while [ ! -e "$GATE" ]; do sleep 0.05; done
    - echo "machine dir $(pwd)"
"""
QUICK = """\
one:
  script:
    - echo "machine dir $(pwd)"
two:
  script:
    - echo "machine dir $(pwd)"
"""
ONE = QUICK.split("two:", maxsplit=1)[0]


def config(
    *,
    executor: str = "docker+machine",
    driver: str = "virtualbox",
    options: tuple[str, ...] = ("virtualbox-memory=512",),
    idle_count: int = 2,
    idle_time: float = 60,
    max_builds: int = 0,
    limit: int = 3,
    concurrent: int = 2,
    engine: Engine | None = None,
    mount: Path | None = None,
) -> str:
    """Return a config.toml with one machine runner named `m` (and its engine, if given)."""
    quoted = ", ".join(f'"{o}"' for o in options)
    docker = ""
    if engine is not None:
        docker = docker_config("", engine.host).removeprefix('executor = "docker"\n')
        docker += f'volumes = ["{mount}:{mount}"]\n' if mount is not None else ""
    return (
        textwrap.dedent(f"""\
        concurrent = {concurrent}
        check_interval = 0.1
        [[runners]]
        name = "m"
        executor = "{executor}"
        limit = {limit}
        [runners.machine]
        IdleCount = {idle_count}
        IdleTime = {idle_time}
        MaxBuilds = {max_builds}
        MachineDriver = "{driver}"
        MachineName = "auto-%s"
        MachineOptions = [{quoted}]
        """)
        + docker
    )


@pytest.fixture
def fake_state(tmp_path: Path) -> Path:
    """Return the state directory of the fake docker-machine."""
    return tmp_path / "docker-machine"


@pytest.fixture
def fake_env(tmp_path: Path, fake_state: Path, tcp_engine: Engine) -> dict[str, str | None]:
    """Return the environment that puts the fake docker-machine first on PATH.

    Its machines' engine (`docker-machine config`) is the test engine on TCP,
    which the runner treats as remote, as a docker-machine machine is.
    """
    env: dict[str, str | None] = dict(install_fake_docker_machine(tmp_path / "bin", fake_state))
    (fake_state / "engine").write_text(tcp_engine.host)
    return env


def states(runner: RunnerProcess, family: str = DOCKER) -> dict[str, float]:
    """Scrape the runner and return its machines per state (every state must be there)."""
    families = runner.families()
    return {s: metric_value(families, f"{family}_provider", {"state": s}) for s in STATES}


def counters(runner: RunnerProcess, family: str = DOCKER) -> dict[str, float]:
    """Scrape the runner and return its machine counters by type."""
    families = runner.families()
    return {
        t: metric_value(families, f"{family}_total", {"type": t})
        for t in ("created", "removed", "used", "creation_failed")
    }


def submit(runner: RunnerProcess, pipeline: str, *variables: str) -> list[int]:
    """Submit `pipeline` into the runner's spool; return the job ids."""
    (runner.home / ".alloy-ci.yml").write_text(pipeline)
    args = ["submit", "--json"]
    for variable in variables:
        args += ["--var", variable]
    done = run_cli(args, runner.home)
    assert done.returncode == 0, done.stderr
    jobs = json.loads(done.stdout)["jobs"]
    assert jobs and all(job["status"] in ("waiting", "pending", "running") for job in jobs), jobs
    return [int(job["id"]) for job in jobs]


def result(runner: RunnerProcess, job_id: int, timeout: float = 30) -> JobResult:
    """Wait for job `job_id` to finish and return its result."""
    spool = Spool(runner.home / ".alloy-runner" / "spool")
    return wait_until(lambda: spool.result(job_id), timeout, what=f"job {job_id} finished")


def trace(runner: RunnerProcess, job_id: int) -> str:
    """Return the log of a finished job."""
    done = runner.home / ".alloy-runner" / "spool" / "done" / str(job_id)
    return (done / "trace.log").read_text()


def machine_of(log: str) -> str:
    """Return the machine a job ran on: its `Running on machine` line, or its `machine dir`."""
    match = re.search(
        r"^(?:machine dir .*/|Running on machine )(runner-m-auto-[0-9]+-[0-9a-f]{8})",
        log,
        re.MULTILINE,
    )
    assert match is not None, log
    return match[1]


def test_idle_machines_and_a_build_seen_in_every_scrape(
    start_runner: StartRunner,
    fake_env: dict[str, str | None],
    fake_state: Path,
    tmp_path: Path,
    engine: Engine,
) -> None:
    """IdleCount = 2 shows two idle machines; a held build shows used 1; afterwards it is idle."""
    runner = start_runner(
        config(idle_count=2, limit=3, engine=engine, mount=tmp_path), env=fake_env
    )
    wait_until(lambda: states(runner)["idle"] == 2, 15, what="two idle machines")
    assert len(machine_names(fake_state)) == 2
    gate = tmp_path / "gate"
    (job,) = submit(runner, HELD, f"GATE={gate}")
    held = wait_until(
        lambda: (s := states(runner))["used"] == 1 and s["idle"] == 2 and s,
        15,
        what="the build on a used machine, and a new idle one",
    )
    assert held == {"acquired": 0, "creating": 0, "idle": 2, "removing": 0, "used": 1}
    builds = {"stage": "build_script", "executor_stage": "docker_run"}
    # The machine is used from the build's prepare stage on; its script starts a moment later.
    in_script = wait_until(
        lambda: sample_value(runner.families(), "ci_runner_builds", builds),
        15,
        what="the build in its script on the machine",
    )
    assert in_script == 1
    gate.touch()
    assert result(runner, job).status == "success"
    wait_until(lambda: states(runner)["idle"] == 3, 10, what="the machine idle again")
    assert counters(runner) == {"created": 3, "removed": 0, "used": 1, "creation_failed": 0}
    assert machine_of(trace(runner, job)) in machine_names(fake_state)
    assert "machine dir /builds/m/0/" in trace(runner, job)  # in a container of the engine
    assert leftovers("m") == NOTHING
    assert counters(runner, SSH) == {"created": 0, "removed": 0, "used": 0, "creation_failed": 0}


def test_max_builds_one_gives_each_job_a_fresh_local_machine(
    start_runner: StartRunner, tmp_path: Path
) -> None:
    """With the local driver and MaxBuilds = 1, each job gets a new machine; the old is removed."""
    root = tmp_path / "machines"
    runner = start_runner(
        config(
            executor="docker-ssh+machine",
            driver="local",
            options=(f"local-root={root}",),
            idle_count=1,
            max_builds=1,
            limit=2,
            concurrent=1,
        )
    )
    wait_until(lambda: states(runner, SSH)["idle"] == 1, 15, what="one idle machine")
    first, second = submit(runner, QUICK)
    assert result(runner, first).status == "success"
    assert result(runner, second).status == "success"
    ran_on = {machine_of(trace(runner, first)), machine_of(trace(runner, second))}
    assert len(ran_on) == 2, "each job ran on a machine of its own"

    def settled() -> dict[str, float] | None:
        counted = counters(runner, SSH)
        return counted if counted["removed"] == 2 and states(runner, SSH)["idle"] == 1 else None

    final = wait_until(settled, 15, what="both used machines removed, one idle")
    assert final["used"] == 2
    left = sorted(p.name for p in root.iterdir())
    assert final["created"] - final["removed"] == len(left) == 1
    assert not ran_on & set(left), "the machines that ran jobs are gone"
    assert counters(runner, DOCKER)["created"] == 0


def test_failing_creation_fails_the_job_with_a_clear_reason(
    start_runner: StartRunner, fake_env: dict[str, str | None], fake_state: Path, engine: Engine
) -> None:
    """While docker-machine cannot create machines, a job waits, then fails as a system failure."""
    (fake_state / "machines").mkdir(parents=True, exist_ok=True)
    (fake_state / "fail-create").touch()
    runner = start_runner(config(idle_count=0, limit=1, engine=engine), env=fake_env)
    (job,) = submit(runner, ONE)
    waiting = {"runner": "m", "executor_stage": "docker_machine_use_machine"}
    wait_until(
        lambda: sample_value(runner.families(), "ci_runner_builds", waiting) == 1,
        10,
        what="the job waiting for a machine",
    )
    done = result(runner, job)
    assert (done.status, done.failure_reason) == (
        SpoolStatus.FAILED,
        FailureReason.RUNNER_SYSTEM_FAILURE,
    )
    log = trace(runner, job)
    assert "no machine could be created (3 attempts failed" in log
    assert "Error creating machine" in log
    assert counters(runner)["creation_failed"] >= 3
    failed = metric_value(
        runner.families(), "ci_docker_machines_failed_creation_duration_seconds_count"
    )
    assert failed == counters(runner)["creation_failed"]
    # What the failed creations left behind is removed, not leaked.
    wait_until(lambda: machine_names(fake_state) == [], 10, what="broken machines removed")
    assert counters(runner)["created"] == counters(runner)["removed"] == 0


def test_a_failing_removal_stays_visible_until_it_succeeds(
    start_runner: StartRunner, fake_env: dict[str, str | None], fake_state: Path, engine: Engine
) -> None:
    """A machine docker-machine fails to remove is `removing` in scrapes until a retry works."""
    runner = start_runner(config(idle_count=0, max_builds=1, limit=1, engine=engine), env=fake_env)
    (fake_state / "fail-remove").touch()
    (job,) = submit(runner, ONE)
    assert result(runner, job).status == "success"
    wait_until(lambda: states(runner)["removing"] == 1, 10, what="the machine seen removing")
    assert machine_names(fake_state) == [machine_of(trace(runner, job))]

    def refused() -> bool:  # rm was refused: the driver asked whether the machine is still there
        names = [c[0] for c in calls(fake_state)]
        return "rm" in names and "inspect" in names[names.index("rm") :]

    wait_until(refused, 10, what="a removal refused")
    assert states(runner)["removing"] == 1
    (fake_state / "fail-remove").unlink()
    wait_until(lambda: counters(runner)["removed"] == 1, 15, what="the removal retried")
    assert states(runner)["removing"] == 0
    # The removal that worked is timed; the failed attempts are not removals.
    families = runner.families()
    assert metric_value(families, "ci_docker_machines_removal_duration_seconds_count") == 1
    assert metric_value(families, "ci_docker_machines_removal_duration_seconds_sum") >= 0
    # Each attempt stops the machine first, as GitLab Runner does, and times that too.
    stops = [c for c in calls(fake_state) if c[0] == "stop"]
    stopped = metric_value(families, "ci_docker_machines_stopping_duration_seconds_count")
    assert stopped == len(stops) >= 2  # the refused attempt and the one that worked
    assert machine_names(fake_state) == []


def test_restart_adopts_the_machines_it_made(
    start_runner: StartRunner, fake_env: dict[str, str | None], fake_state: Path
) -> None:
    """After a restart, the machines made before are adopted: none duplicated, none leaked."""
    first = start_runner(config(idle_count=2), env=fake_env)
    wait_until(lambda: states(first)["idle"] == 2, 15, what="two idle machines")
    before = machine_names(fake_state)
    first.signal(signal.SIGTERM)
    assert first.wait(10) == 0
    assert machine_names(fake_state) == before, "machines outlive the process"
    second = start_runner(config(idle_count=2), env=fake_env)
    assert states(second)["idle"] == 2
    second.wait_for_line("adopted 2 existing machine", timeout=10)
    # That later reconcile rounds create nothing is proven over counted rounds in-process
    # (tests/machines/test_provider.py); here the adoption itself is checked.
    assert counters(second)["created"] == 0
    assert machine_names(fake_state) == before


def test_local_machines_run_builds_in_containers_of_the_local_engine(
    start_runner: StartRunner, tmp_path: Path, engine: Engine
) -> None:
    """docker+machine with the local driver: the build runs in a container; the metrics hold."""
    root = tmp_path / "machines"
    runner = start_runner(
        config(
            driver="local",
            options=(f"local-root={root}",),
            idle_count=1,
            limit=2,
            concurrent=1,
            engine=engine,
            mount=tmp_path,
        )
    )
    wait_until(lambda: states(runner)["idle"] == 1, 15, what="one idle machine")
    gate = tmp_path / "gate"
    pipeline = HELD.replace("machine dir $(pwd)", "in $(cat /etc/alloy-image-marker)")
    (job,) = submit(runner, pipeline, f"GATE={gate}")
    held = wait_until(
        lambda: (s := states(runner))["used"] == 1 and s["idle"] == 1 and s,
        15,
        what="the build on a used machine, and a new idle one",
    )
    assert held == {"acquired": 0, "creating": 0, "idle": 1, "removing": 0, "used": 1}
    running = {"stage": "build_script", "executor_stage": "docker_run"}
    wait_until(
        lambda: sample_value(runner.families(), "ci_runner_builds", running) == 1,
        15,
        what="the build in its script, in a container",
    )
    gate.touch()
    assert result(runner, job).status == "success"
    log = trace(runner, job)
    assert "in only in the image" in log
    machine = machine_of(log)
    assert (root / machine / "builds").is_dir(), "the build directory is the machine's"
    wait_until(lambda: states(runner)["idle"] == 2, 10, what="the machine idle again")
    assert counters(runner) == {"created": 2, "removed": 0, "used": 1, "creation_failed": 0}
    assert counters(runner, SSH)["created"] == 0
    assert leftovers("m") == NOTHING
