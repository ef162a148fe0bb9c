"""Benchmark the docker executor on a real engine (podman's Docker-compatible API).

Run: .venv/bin/python benchmarks/bench_docker.py [--jobs N]
(needs `scripts/setup --test`: podman, runc and the alloy-test images.)

1. Per-job overhead: a trivial job (`true`) in a container, as the runner
   measures the job (result.json `duration`: prepare, the script, cleanup),
   against `podman run --rm IMAGE true` run directly, in the same run.
2. Time to first script line with one service (alloy-test/web, waited for on
   its exposed port): from the job's start to the first script line touching
   a file in a mounted directory.
Numbers are printed, not asserted; the machine is shared, so compare ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin" / "alloy-runner"
IMAGE = "alloy-test/busybox"


def start_engine(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    subprocess.run([str(ROOT / "scripts" / "container-images")], check=True)
    socket = work / "podman.sock"
    proc = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{socket}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not socket.exists():
        if time.monotonic() > deadline:
            raise SystemExit("the engine did not start")
        time.sleep(0.05)
    return proc, f"unix://{socket}"


def podman_run(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        began = time.monotonic()
        subprocess.run(["podman", "run", "--rm", IMAGE, "true"], check=True)
        times.append(time.monotonic() - began)
    return times


def run_jobs(work: Path, host: str, pipeline: str, count: int) -> list[dict[str, float]]:
    work.mkdir(parents=True)
    spool, shared = work / "spool", work / "shared"
    shared.mkdir()
    (work / "config.toml").write_text(
        f'concurrent = 1\nspool_dir = "{spool}"\n[[runners]]\nname = "bench"\n'
        f'builds_dir = "{work / "builds"}"\ncache_dir = "{work / "cache"}"\n'
        f'executor = "docker"\n[runners.docker]\nhost = "{host}"\nimage = "{IMAGE}"\n'
        f'pull_policy = "if-not-present"\nvolumes = ["{shared}:/shared"]\n'
    )
    (work / ".alloy-ci.yml").write_text(pipeline)
    env = {**os.environ, "HOME": str(work)}
    env.pop("CONFIG_FILE", None)
    runner = subprocess.Popen(
        [str(BIN), "run", "--config", str(work / "config.toml"), "--metrics-server", "127.0.0.1:0"],
        stderr=subprocess.PIPE,
        env=env,
    )
    threading.Thread(target=lambda: runner.stderr and runner.stderr.read(), daemon=True).start()
    try:
        for _ in range(count):
            subprocess.run(
                [
                    str(BIN),
                    "submit",
                    "--spool",
                    str(spool),
                    "--file",
                    str(work / ".alloy-ci.yml"),
                    "--wait",
                    "--timeout",
                    "300",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                env=env,
            )
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.wait(30)
    found = []
    for path in (spool / "done").glob("*/result.json"):
        result = json.loads(path.read_text())
        assert result["status"] == "success", result
        first = shared / f"first-{result['id']}"
        if first.exists():
            result["first_line"] = first.stat().st_mtime - result["started_at"]
        found.append(result)
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-docker-") as tmp:
        work = Path(tmp)
        engine, host = start_engine(work)
        try:
            podman_run(2)  # warm the image and the runtime
            direct = podman_run(args.jobs)
            trivial = run_jobs(work / "trivial", host, 't:\n  script: ["true"]\n', args.jobs)
            service = run_jobs(
                work / "service",
                host,
                's:\n  services: [alloy-test/web]\n  script: ["touch /shared/first-$CI_JOB_ID"]\n',
                args.jobs,
            )
        finally:
            engine.terminate()
            engine.wait(30)
    direct_median = statistics.median(direct)
    job_median = statistics.median(r["duration"] for r in trivial)
    first = statistics.median(r["first_line"] for r in service)
    whole = statistics.median(r["duration"] for r in service)
    print(f"podman run --rm {IMAGE} true, median of {len(direct)}: {direct_median * 1000:.0f} ms")
    print(
        f"trivial containerized job (runner's job duration), median of {len(trivial)}:"
        f" {job_median * 1000:.0f} ms"
    )
    print(f"ratio job / podman run: {job_median / direct_median:.2f}x (goal <= 2x)")
    print(
        f"time to first script line with one service, median of {len(service)}:"
        f" {first * 1000:.0f} ms (whole job {whole * 1000:.0f} ms)"
    )


if __name__ == "__main__":
    main()
