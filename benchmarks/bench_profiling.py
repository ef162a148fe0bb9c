"""Benchmark what profiling costs the runner: CPU seconds of one busy job, with and without it.

Run from the repository root:

    .venv/bin/python benchmarks/bench_profiling.py

Each run starts a real `alloy-runner run` (HOME in a temporary directory,
metrics on 127.0.0.1 with an ephemeral port), submits one loud job whose
output (`--rounds` x 10 MB, with a masked secret on every line) passes
through the runner's trace code, and reads `process_cpu_seconds_total` from
/metrics before and after it. Modes, interleaved run by run:

- `off`: no profiling;
- `pyroscope`: pyroscope-io at 100 Hz pushing every 2 s to a local receiver
  that speaks the push API (the test suite's), through the runner's relay;
- `debug`: no Pyroscope, but a `/debug/pprof/profile` being taken during the
  job (the in-process sampler at 100 Hz).

Before the job, each run also measures the runner's CPU over `--idle` seconds
of doing nothing (in `debug` mode the sampler is already running then).

The process is always stopped (SIGKILL of its group) and its spool deleted.
Every wait is bounded. Not run by pytest.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.support

from tests.support import RunnerProcess, metric_value
from tests.support.loud_job import OUTPUT_LIMIT_KIB, remove_spool, submit_loud
from tests.support.pyroscope import PyroscopeReceiver

MODES = ("off", "pyroscope", "debug")
# Uploads every 2 s rather than the default 10 s, so that each run pushes a few times.
CONFIG = f"""
concurrent = 1

[profiling]
upload_interval = 2

[[runners]]
name = "bench"
output_limit = {OUTPUT_LIMIT_KIB}
"""


def cpu_seconds(runner: RunnerProcess) -> float:
    """Return the runner's process_cpu_seconds_total now."""
    return metric_value(runner.families(), "process_cpu_seconds_total")


def take_profile(runner: RunnerProcess) -> None:
    """Ask for a long CPU profile; the runner is killed before it ends, which is expected."""
    with contextlib.suppress(OSError):
        runner.request("GET", "/debug/pprof/profile?seconds=60", timeout=90)


def one_run(
    mode: str, rounds: int, idle: float, receiver: PyroscopeReceiver, work: Path
) -> tuple[float, float, float]:
    """Run one loud job in a fresh runner in `mode`; return (CPU seconds, wall seconds) of
    the job and the CPU seconds of `idle` seconds before it."""
    home = Path(tempfile.mkdtemp(prefix=f"bench-{mode}-", dir=work))
    args = ["--profiling-server", receiver.url] if mode == "pyroscope" else []
    runner = RunnerProcess(home, CONFIG, args=args)
    try:
        runner.start()
        time.sleep(1.0)  # let start-up CPU settle out of the measurement
        if mode == "debug":
            threading.Thread(target=take_profile, args=(runner,), daemon=True).start()
            time.sleep(0.2)
        idle_before = cpu_seconds(runner)
        time.sleep(idle)
        idle_cpu = cpu_seconds(runner) - idle_before
        before = cpu_seconds(runner)
        began = time.monotonic()
        result = submit_loud(home, rounds=rounds, stop_file=home / "never", wait=True)
        wall = time.monotonic() - began
        if result.returncode != 0 or "success" not in result.stdout:
            raise SystemExit(f"the job failed in mode {mode}: {result.stdout}{result.stderr}")
        return cpu_seconds(runner) - before, wall, idle_cpu
    finally:
        runner.stop()
        remove_spool(home)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="10 MB rounds of output per job")
    parser.add_argument("--repeats", type=int, default=4, help="runs per mode")
    parser.add_argument("--idle", type=float, default=5.0, help="idle seconds measured per run")
    options = parser.parse_args()
    results: dict[str, list[tuple[float, float, float]]] = {mode: [] for mode in MODES}
    with PyroscopeReceiver() as receiver, tempfile.TemporaryDirectory() as work:
        for repeat in range(options.repeats):
            for mode in MODES:
                cpu, wall, idle = one_run(mode, options.rounds, options.idle, receiver, Path(work))
                results[mode].append((cpu, wall, idle))
                line = f"run {repeat + 1} {mode:9s} cpu {cpu:5.2f}s wall {wall:5.2f}s"
                print(f"{line} idle {idle:4.2f}s")
        pushes = len(receiver.pushes)
    print()
    print(
        f"Python {platform.python_version()}, {platform.machine()}, {options.rounds} x 10 MB"
        f" of job output per run, {options.repeats} runs per mode"
    )
    base = statistics.median(c for c, _, _ in results["off"])
    header = ("mode", "CPU s (median)", "min", "max", "wall s", "ratio", "idle CPU %")
    print("{:10s} {:>15s} {:>6s} {:>6s} {:>7s} {:>6s} {:>11s}".format(*header))
    for mode in MODES:
        cpus = [c for c, _, _ in results[mode]]
        walls = [w for _, w, _ in results[mode]]
        idle = statistics.median(i for _, _, i in results[mode]) / options.idle * 100
        median = statistics.median(cpus)
        print(
            f"{mode:10s} {median:15.2f} {min(cpus):6.2f} {max(cpus):6.2f} "
            f"{statistics.median(walls):7.2f} {median / base:6.3f} {idle:11.1f}"
        )
    print(f"pushes received from the pyroscope runs: {pushes}")


if __name__ == "__main__":
    main()
