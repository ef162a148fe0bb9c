"""Benchmark the exposition: metric_names "both" against "alloyci", and the burst lag.

Run: .venv/bin/python benchmarks/bench_metrics.py [--burst 32] [--scrapes 200]

1. Scrape cost: two real runners, one per naming, run the same pipeline (jobs
   that pass and fail); then each is scraped over HTTP in turn. Printed: the
   median and p95 scrape time, the series count (sample lines) and bytes, and
   the ratios "both" / "alloyci".
2. Burst lag: a runner with concurrent = N takes N jobs submitted at once. The
   benchmark polls the spool's running/ and the runner's /debug/jobs/list as
   fast as it can and prints, per job, how long after its file appeared in
   running/ the runner listed it (the goal: under 50 ms at N = 32).
   The poll's own period is printed too: a lag below it reads as 0.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from bench_jobs import BIN, Runner, pct, submit, write_pipeline


def get(port: int, path: str, accept: str = "text/plain") -> bytes:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=10) as response:
        return bytes(response.read())


class NamedRunner(Runner):
    """A Runner started with $METRIC_NAMES set to `names`."""

    def __init__(self, work: Path, concurrent: int, names: str) -> None:
        self.names = names
        os.environ["METRIC_NAMES"] = names  # Runner starts the process with this environment
        try:
            super().__init__(work, concurrent)
        finally:
            del os.environ["METRIC_NAMES"]


def scrape_cost(root: Path, scrapes: int) -> None:
    pipeline = root / "pipeline.yml"
    lines = ["stages: [test]"]
    for n in range(12):
        script = '"true"' if n % 3 else '"exit 1"'
        lines += [f"job{n}:", "  stage: test", f"  script: [{script}]"]
    pipeline.write_text("\n".join(lines) + "\n")
    runners = {names: NamedRunner(root / names, 4, names) for names in ("alloyci", "both")}
    try:
        for runner in runners.values():  # some jobs fail: submit --wait then exits 1
            try:
                submit(runner.work, runner.spool, pipeline)
            except subprocess.CalledProcessError as exc:
                if exc.returncode != 1:
                    raise
        times: dict[str, list[float]] = {names: [] for names in runners}
        sizes: dict[str, tuple[int, int]] = {}
        for _ in range(scrapes):  # interleaved, so both see the same machine load
            for names, runner in runners.items():
                began = time.perf_counter()
                body = get(runner.port, "/metrics")
                times[names].append(time.perf_counter() - began)
                series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
                sizes[names] = (series, len(body))
        for names in runners:
            median = statistics.median(times[names]) * 1000
            p95 = pct(times[names], 0.95) * 1000
            series, size = sizes[names]
            print(
                f"{names:8s} scrape median {median:6.2f} ms  p95 {p95:6.2f} ms  "
                f"series {series:4d}  bytes {size:6d}"
            )
        a, b = "alloyci", "both"
        print(
            f"ratio both/alloyci: scrape median "
            f"{statistics.median(times[b]) / statistics.median(times[a]):.2f}x, "
            f"series {sizes[b][0] / sizes[a][0]:.2f}x, bytes {sizes[b][1] / sizes[a][1]:.2f}x"
        )
    finally:
        for runner in runners.values():
            runner.stop()


def burst_lag(root: Path, burst: int) -> None:
    runner = Runner(root / "burst", burst)
    try:
        pipeline = root / "burst.yml"
        write_pipeline(pipeline, burst, "sleep 4")
        running = runner.spool / "running"
        running.mkdir(parents=True, exist_ok=True)
        in_running: dict[int, float] = {}
        listed: dict[int, float] = {}
        polls: list[float] = []
        submitter = subprocess.Popen(
            [str(BIN), "submit", "--spool", str(runner.spool), "--file", str(pipeline)],
            stdout=subprocess.DEVNULL,
            env={**os.environ, "HOME": str(runner.work)},
        )
        deadline = time.monotonic() + 60
        while len(listed) < burst and time.monotonic() < deadline:
            began = time.monotonic()
            for entry in os.scandir(running):
                m = re.match(r"(\d+)", entry.name)
                if m:
                    in_running.setdefault(int(m.group(1)), began)
            seen = time.monotonic()
            for m in re.finditer(rb"\bid=(\d+)", get(runner.port, "/debug/jobs/list")):
                listed.setdefault(int(m.group(1)), seen)
            polls.append(time.monotonic() - began)
        submitter.wait(30)
        lags = [max(0.0, listed[j] - in_running.get(j, listed[j])) * 1000 for j in listed]
        print(
            f"burst of {burst}: {len(listed)} listed; lag behind running/ "
            f"median {statistics.median(lags):.1f} ms, p95 {pct(lags, 0.95):.1f} ms, "
            f"max {max(lags):.1f} ms (poll period median "
            f"{statistics.median(polls) * 1000:.1f} ms)"
        )
    finally:
        runner.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--burst", type=int, default=32)
    parser.add_argument("--scrapes", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        scrape_cost(root, args.scrapes)
        burst_lag(root, args.burst)


if __name__ == "__main__":
    main()
