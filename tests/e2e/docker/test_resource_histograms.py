"""ci_runner_job_cpu_seconds and ci_runner_job_memory_peak_bytes, for docker and shell jobs.

The job burns about a second of CPU (md5 of 400 MB of zeros) and holds a 100 MiB
buffer (dd's block), so its CPU lands above 0.5 s and its peak between 64 and 128 MiB.
"""

from __future__ import annotations

import pytest

from tests.support.engine import Engine, docker_config, unique_runner
from tests.support.jobs import JobsRig, pipeline
from tests.support.runner import RunnerProcess

BURN = [
    "head -c 400000000 /dev/zero | md5sum",
    "dd if=/dev/zero of=/dev/null bs=100M count=1",
]
MIB = 1024 * 1024


def buckets(runner: RunnerProcess, family: str, name: str, executor: str) -> dict[float, float]:
    metric = runner.families()[family]
    return {
        float(s.labels["le"]): s.value
        for s in metric.samples
        if s.name == f"{family}_bucket"
        and s.labels.get("runner") == name
        and s.labels.get("executor") == executor
    }


@pytest.mark.parametrize("executor", ["docker", "shell"])
def test_a_job_lands_in_the_right_cpu_and_memory_buckets(
    rig: JobsRig, engine: Engine, executor: str
) -> None:
    name = unique_runner()
    base = rig.config(name=name)
    runner = rig.runner(docker_config(base, engine.host) if executor == "docker" else base)
    job = rig.submit(rig.project("p", pipeline(burn={"script": BURN}))).jobs["burn"]
    assert rig.wait_results([job], timeout=120)[job]["status"] == "success"
    cpu = buckets(runner, "ci_runner_job_cpu_seconds", name, executor)
    assert (cpu[0.5], cpu[5.0], cpu[float("inf")]) == (0, 1, 1), cpu
    memory = buckets(runner, "ci_runner_job_memory_peak_bytes", name, executor)
    assert (memory[64 * MIB], memory[128 * MIB]) == (0, 1), memory
