"""Idle resident memory of `alloy-runner run`: a baseline install against a candidate, side by side.

Each side is its own venv with alloy-runner installed the way a user installs
it (`pip install DIR`, runtime dependencies only), so that a dependency one
side dropped is really absent. From the repository root:

    for rev in main HEAD; do
        rm -rf /tmp/rss-$rev && mkdir -p /tmp/rss-$rev && git archive $rev | tar -x -C /tmp/rss-$rev
        python3 -m venv /tmp/rss-$rev/venv && /tmp/rss-$rev/venv/bin/pip install -q /tmp/rss-$rev
    done
    .venv/bin/python benchmarks/bench_idle_rss.py /tmp/rss-main/venv /tmp/rss-HEAD/venv

Every runner runs on the embedded default configuration (HOME is a temporary
directory, CONFIG_FILE and METRICS_SERVER are unset) with
`--metrics-server 127.0.0.1:0`. The runs alternate (baseline, candidate,
baseline, ...) so that load on the machine falls on both alike. VmRSS is read
from /proc/PID/status `--settle` seconds after the first 200 from /metrics.
Every process is stopped (SIGTERM, then SIGKILL). Not run by pytest.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_process
from bench_process import (
    GO_RUNNER_RSS_MB,
    GOAL_RSS_MB,
    Runner,
    first_scrape,
    load,
    mb,
    vm_rss_bytes,
)


def idle_rss(venv: Path, settle: float) -> int:
    """Start `venv`'s runner, wait for /metrics and `settle` seconds more; return its VmRSS."""
    script = venv / "bin" / "alloy-runner"
    bench_process.runner_command = lambda: [str(script)]
    with tempfile.TemporaryDirectory(prefix="bench-rss-") as home:
        runner = Runner(home)
        try:
            first_scrape(runner)
            time.sleep(settle)
            return vm_rss_bytes(runner.proc.pid)
        finally:
            runner.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path, help="venv of the baseline install")
    parser.add_argument("candidate", type=Path, help="venv of the candidate install")
    parser.add_argument("--runs", type=int, default=5, help="runs of each side (default 5)")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before reading RSS")
    args = parser.parse_args()
    sides = {"baseline": args.baseline, "candidate": args.candidate}
    for venv in sides.values():
        if not (venv / "bin" / "alloy-runner").is_file():
            parser.error(f"{venv} has no bin/alloy-runner")

    print(f"idle VmRSS of `alloy-runner run`, {time.strftime('%Y-%m-%d %H:%M:%S %z')}")
    print(f"{os.cpu_count()} CPUs; load average at start {load()}")
    results: dict[str, list[int]] = {name: [] for name in sides}
    for _ in range(args.runs):
        for name, venv in sides.items():
            results[name].append(idle_rss(venv, args.settle))
    for name, values in results.items():
        spread = f"min {mb(min(values)).strip()}, max {mb(max(values)).strip()}"
        print(
            f"    {name:9} {mb(statistics.median(values))} median  ({spread}; {len(values)} runs)"
        )
    base = statistics.median(results["baseline"])
    now = statistics.median(results["candidate"])
    print(f"    candidate - baseline {mb(now - base)}   ratio {now / base:.3f}")
    met = "meets" if now / 1e6 <= GOAL_RSS_MB else "MISSES"
    print(f"    goal <= {GOAL_RSS_MB:.0f} MB: {met} goal (Go runner: {GO_RUNNER_RSS_MB:.0f} MB)")
    print(f"load average at end: {load()}")


if __name__ == "__main__":
    main()
