"""OTEL_SDK_DISABLED never empties /metrics, and no runner OTEL_*/PYROSCOPE_* reaches a job."""

from __future__ import annotations

import re
import signal
import textwrap
from pathlib import Path

import pytest

from alloy_runner.coordinator.spool.store import Spool
from tests.support import RunnerProcess, StartRunner, run_cli, wait_until
from tests.support.fake_docker_machine import install_fake_docker_machine
from tests.support.otlp import OtlpReceiver
from tests.support.pyroscope import PyroscopeReceiver

SECRET = "collector-token-4f1d"
DUMP = 'dump:\n  script:\n    - env > "$DUMP_FILE"\n'


def submit(runner: RunnerProcess, pipeline: str, *variables: str) -> int:
    """Submit a one-job pipeline into the runner's spool; return the job's id."""
    (runner.home / ".alloy-ci.yml").write_text(pipeline)
    args = ["submit"]
    for variable in variables:
        args += ["--var", variable]
    done = run_cli(args, runner.home)
    assert done.returncode == 0, done.stderr
    (job,) = (int(n) for n in re.findall(r"^  job (\d+) ", done.stdout, re.MULTILINE))
    return job


def finished(runner: RunnerProcess, job: int) -> str:
    spool = Spool(runner.home / ".alloy-runner" / "spool")
    result = wait_until(lambda: spool.result(job), 30, what=f"job {job} finished")
    return str(result.status)


def otlp_config(endpoint: str, runner: str = '[[runners]]\nname = "shell"\n') -> str:
    return f'concurrent = 1\n{runner}\n[telemetry.otlp]\nendpoint = "{endpoint}"\ninterval = 0.2\n'


def test_sdk_disabled_keeps_every_family_on_metrics_and_sends_nothing(
    start_runner: StartRunner, tmp_path: Path
) -> None:
    """With OTEL_SDK_DISABLED=true, /metrics has the same families as without it after a job;
    neither metrics nor spans reach the collector, even at the final flush; the log says so."""
    with OtlpReceiver() as receiver:
        disabled = start_runner(
            otlp_config(receiver.endpoint),
            env={"OTEL_SDK_DISABLED": "true", "OTEL_BSP_SCHEDULE_DELAY": "50"},
        )
        plain = start_runner('concurrent = 1\n[[runners]]\nname = "shell"\n')
        for runner in (disabled, plain):
            job = submit(runner, DUMP, f"DUMP_FILE={tmp_path / 'env'}")
            assert finished(runner, job) == "success"
        wait_until(lambda: "ci_runner_jobs" in disabled.families(), 10, what="jobs counted")
        wait_until(lambda: "ci_runner_jobs" in plain.families(), 10, what="jobs counted")
        on, off = set(plain.families()), set(disabled.families())
        assert on == off
        assert len(off) > 10
        assert "ci_runner_jobs" in off and "process_cpu_seconds" in off
        disabled.signal(signal.SIGTERM)
        assert disabled.wait() == 0
        assert receiver.metric_requests() == [] and receiver.trace_requests() == []
    log = disabled.stderr_text
    assert "OTEL_SDK_DISABLED=true: no OTLP export" in log
    assert "/metrics is served as usual" in log


def machine_runner() -> str:
    return textwrap.dedent("""\
        [[runners]]
        name = "m"
        executor = "docker-ssh+machine"
        [runners.machine]
        IdleCount = 0
        MachineDriver = "virtualbox"
        MachineName = "auto-%s"
        """)


# docker-ssh+machine: the job's variables travel to the machine as `export` lines (docker+machine
# runs jobs in containers, and tests/e2e/docker checks that the host's environment stays out).
@pytest.mark.parametrize("executor", ["shell", "docker-ssh+machine"])
def test_no_runner_telemetry_setting_reaches_a_job(
    executor: str, start_runner: StartRunner, tmp_path: Path
) -> None:
    """A job that dumps its environment finds no OTEL_*/PYROSCOPE_* of the runner's (and not the
    collector's token), but does find the TRACEPARENT of its own span."""
    env: dict[str, str | None] = {}
    runner_table = '[[runners]]\nname = "shell"\n'
    if executor != "shell":
        env.update(install_fake_docker_machine(tmp_path / "bin", tmp_path / "docker-machine"))
        runner_table = machine_runner()
    with OtlpReceiver() as receiver, PyroscopeReceiver() as pyroscope:
        env.update(
            {
                "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer {SECRET}",
                "OTEL_SERVICE_NAME": "runner-under-test",
                "OTEL_RESOURCE_ATTRIBUTES": f"deployment.environment.name={SECRET}",
                "PYROSCOPE_SERVER_ADDRESS": pyroscope.url,
            }
        )
        runner = start_runner(otlp_config(receiver.endpoint, runner_table), env=env)
        dump = tmp_path / "env"
        job = submit(runner, DUMP, f"DUMP_FILE={dump}", "OTEL_JOB_OWN=kept")
        assert finished(runner, job) == "success"
        text = dump.read_text()
    names = {line.partition("=")[0] for line in text.splitlines() if "=" in line}
    assert SECRET not in text
    leaked = {n for n in names if n.startswith(("OTEL_", "PYROSCOPE_"))}
    assert leaked == {"OTEL_JOB_OWN"}  # the job's own variable is the job's
    assert re.search(r"^TRACEPARENT=00-[0-9a-f]{32}-[0-9a-f]{16}-0[0-3]$", text, re.MULTILINE), (
        runner.stderr_text
    )
