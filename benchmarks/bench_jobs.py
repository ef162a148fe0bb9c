"""Benchmark the job path: per-job overhead, pickup latency, throughput, memory under load.

Run: .venv/bin/python benchmarks/bench_jobs.py [--jobs N]

Everything runs for real: the `alloy-runner run` process on a temporary spool,
`alloy-runner submit`, bash. Numbers are printed, not asserted; compare the
ratios, since timings on a shared 2-core machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin" / "alloy-runner"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Runner:
    """The real runner process on a private spool, always killed at exit."""

    def __init__(self, work: Path, concurrent: int) -> None:
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.spool = work / "spool"
        config = work / "config.toml"
        config.write_text(
            f'concurrent = {concurrent}\nspool_dir = "{self.spool}"\nlog_level = "info"\n'
            f'[[runners]]\nname = "bench"\nbuilds_dir = "{work / "builds"}"\n'
            f'cache_dir = "{work / "cache"}"\n'
        )
        env = {**os.environ, "HOME": str(work)}
        env.pop("CONFIG_FILE", None)
        self.proc = subprocess.Popen(
            [str(BIN), "run", "--config", str(config), "--metrics-server", "127.0.0.1:0"],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 10
        self.port = 0
        while time.monotonic() < deadline and not self.port:
            line = self.proc.stderr.readline()
            if m := re.search(r"listening on [^ ]*:(\d+)", line):
                self.port = int(m.group(1))
        if not self.port:
            self.stop()
            raise SystemExit("runner did not start")
        # Keep reading its log so a full pipe never blocks the runner.
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        kb = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        return kb / 1024

    def cpu_seconds(self) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            text = r.read().decode()
        return float(re.search(r"^process_cpu_seconds_total (\S+)", text, re.M).group(1))  # type: ignore[union-attr]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def write_pipeline(path: Path, jobs: int, script: str) -> None:
    lines = ["stages: [test]"]
    for n in range(jobs):
        lines += [f"job{n}:", "  stage: test", f"  script: [{json.dumps(script)}]"]
    path.write_text("\n".join(lines) + "\n")


def submit(work: Path, spool: Path, pipeline: Path, wait: bool = True) -> float:
    started = time.monotonic()
    subprocess.run(
        [
            str(BIN),
            "submit",
            "--spool",
            str(spool),
            "--file",
            str(pipeline),
            *(["--wait", "--timeout", "600"] if wait else []),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "HOME": str(work)},
    )
    return time.monotonic() - started


def results(spool: Path) -> list[dict[str, float]]:
    return [json.loads(p.read_text()) for p in (spool / "done").glob("*/result.json")]


def baseline_stage_processes(work: Path, runs: int) -> float:
    """Time the processes a trivial job's stages start, run directly: bash on the script."""
    sys.path.insert(0, str(ROOT / "src"))
    from alloy_runner.build.script import commands

    script = work / "direct.sh"
    script.write_text(commands(["true"]))
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(
            ["bash", "--noprofile", "--norc", str(script)], check=True, stdout=subprocess.DEVNULL
        )
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=200, help="trivial jobs for throughput")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="alloy-bench-"))
    try:
        print(f"alloy-runner job benchmarks ({os.cpu_count()} cores)")
        direct = baseline_stage_processes(work, 50)
        print(f"stage processes run directly (bash + `true`): {direct * 1000:.1f} ms per job")

        # 1. Overhead and pickup: one trivial job at a time, concurrent = 1.
        runner = Runner(work / "serial", concurrent=1)
        try:
            pipeline = work / "one.yml"
            write_pipeline(pipeline, 1, "true")
            submit(runner.work, runner.spool, pipeline)  # warm-up
            shutil.rmtree(runner.spool / "done")
            (runner.spool / "done").mkdir()
            e2e = []
            for _ in range(40):
                # submit -> done, measured by the job's own timestamps: pending file to result
                e2e.append(submit(runner.work, runner.spool, pipeline))
            rs = results(runner.spool)
            inside = [r["finished_at"] - r["started_at"] + r["queued_seconds"] for r in rs]
            pickup = [r["queued_seconds"] for r in rs]
        finally:
            runner.stop()
        per_job = statistics.median(inside)
        print(f"trivial job, pending -> done (median of {len(inside)}): {per_job * 1000:.1f} ms")
        print(
            f"  overhead beyond the stage processes: {(per_job - direct) * 1000:.1f} ms "
            f"(goal < 50 ms); ratio to direct: {per_job / direct:.1f}x"
        )
        print(
            f"  `submit --wait` round trip (incl. two CLI starts): "
            f"{statistics.median(e2e) * 1000:.0f} ms"
        )
        print(
            f"pickup latency p50 {pct(pickup, 0.5) * 1000:.1f} ms, "
            f"p99 {pct(pickup, 0.99) * 1000:.1f} ms (goal p50 < 100 ms)"
        )

        # 2. Throughput at concurrent = 4.
        runner = Runner(work / "throughput", concurrent=4)
        try:
            pipeline = work / "many.yml"
            write_pipeline(pipeline, args.jobs, "true")
            cpu0 = runner.cpu_seconds()
            elapsed = submit(runner.work, runner.spool, pipeline)
            cpu = runner.cpu_seconds() - cpu0
        finally:
            runner.stop()
        print(
            f"throughput, {args.jobs} trivial jobs at concurrent = 4: "
            f"{args.jobs / elapsed:.1f} jobs/s (goal 20); runner CPU "
            f"{cpu / args.jobs * 1000:.1f} ms per job"
        )

        # 3. Resident memory with 50 jobs running at once.
        runner = Runner(work / "memory", concurrent=50)
        try:
            idle = runner.rss_mb()
            gate = work / "gate"
            pipeline = work / "fifty.yml"
            write_pipeline(pipeline, 50, f"while [ ! -e {gate} ]; do sleep 0.05; done")
            submit(runner.work, runner.spool, pipeline, wait=False)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if len(list((runner.spool / "running").glob("*.json"))) == 50:
                    break
                time.sleep(0.1)
            time.sleep(0.5)
            busy = runner.rss_mb()
            gate.touch()
        finally:
            runner.stop()
        print(
            f"resident memory: idle {idle:.1f} MB, 50 jobs running {busy:.1f} MB "
            f"(+{(busy - idle) / 50 * 1024:.0f} KB per running job)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
