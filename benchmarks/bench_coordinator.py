"""Benchmark a runner taking jobs from a coordinator: idle polling cost and trace throughput.

Run from the repository root:

    .venv/bin/python benchmarks/bench_coordinator.py

The coordinator is the protocol-faithful fake of the tests
(`tests/support/fake_coordinator.py`), in this process on 127.0.0.1; the
runner is the real `alloy-runner run` process, configured with one
`[[runners]]` entry whose `url` points at it, HOME in a temporary directory.

1. Idle cost: for `--idle-seconds` (default 20) with no job queued, the job
   requests the fake answers and the CPU time the runner process spends
   (utime + stime from /proc, in 10 ms ticks), for a coordinator that answers
   204 at once and for one that long-polls (holds each request `--hold`
   seconds, default 5, where GitLab's Workhorse holds ~50 s). A runner with no
   `[[runners]]` is the baseline. The request rate comes from the mean gap
   between requests; CPU is extrapolated to one minute (x 60 / idle-seconds).
2. Trace throughput: one job prints `--trace-mb` MB (default 50) of 100-byte
   lines; timed from the moment the fake queues it to its final state there.

Every process is stopped (SIGTERM, then SIGKILL); every wait has a deadline.
Not run by pytest.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.fake_coordinator import FakeCoordinator  # noqa: E402

STARTED = re.compile(r"alloy-runner \S+ started: ")
TICKS = os.sysconf("SC_CLK_TCK")


def runner_command() -> list[str]:
    script = Path(sys.executable).parent / "alloy-runner"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "alloy_runner.cli"]


class Runner:
    """One `alloy-runner run` process with `config`; stderr drained on a thread."""

    def __init__(self, home: Path, config: str) -> None:
        (home / "config.toml").write_text(config)
        env = {k: v for k, v in os.environ.items() if k not in ("CONFIG_FILE", "METRICS_SERVER")}
        env["HOME"] = str(home)
        self.proc = subprocess.Popen(
            [
                *runner_command(),
                "run",
                "--config",
                str(home / "config.toml"),
                "--metrics-server",
                "127.0.0.1:0",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=home,
            start_new_session=True,
        )
        self.log: list[str] = []
        self._started = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()
        if not self._started.wait(15):
            self.stop()
            raise RuntimeError("runner did not start:\n" + "".join(self.log))

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            if STARTED.search(line):
                self._started.set()

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def runner_config(fake: FakeCoordinator | None, extra: str = "") -> str:
    if fake is None:
        return ""
    return (
        f'[[runners]]\nname = "bench"\nurl = "{fake.url}"\ntoken = "{fake.runner_token}"\n{extra}'
    )


def idle(seconds: float, fake: FakeCoordinator | None, top: str = "") -> tuple[int, float, float]:
    """Return (job requests, requests a minute, runner CPU s) over `seconds` of idling.

    The rate is taken from the mean gap between the requests answered in the
    window, so it does not depend on where in a polling cycle the window began.
    """
    with tempfile.TemporaryDirectory(prefix="bench-coord-") as home:
        runner = Runner(Path(home), top + runner_config(fake))
        try:
            time.sleep(1.0)  # let start-up settle
            began = time.monotonic()
            cpu = runner.cpu_seconds()
            time.sleep(seconds)
            cpu = runner.cpu_seconds() - cpu
        finally:
            runner.stop()
    times = [s.at for s in fake.seen if s.at >= began] if fake else []
    rate = 60 * (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return len(times), rate, cpu


def throughput(megabytes: int) -> dict[str, float]:
    """Run one job printing `megabytes` MB through the runner; return timings and rates."""
    size = megabytes * 1_000_000
    line = "x" * 99 + "\n"  # what `fold -w 99` makes of the zeros turned into x
    with FakeCoordinator(long_poll=5.0) as fake, tempfile.TemporaryDirectory() as home:
        limit_kib = size // 1024 + 1024
        runner = Runner(Path(home), runner_config(fake, f"output_limit = {limit_kib}\n"))
        try:
            script = f"head -c {size // 100 * 99} /dev/zero | tr '\\0' x | fold -w 99; echo"
            job = fake.add_job("big", [script], timeout=600)
            cpu = runner.cpu_seconds()
            began = time.monotonic()
            fake.wait_done([job], timeout=600)
            took = time.monotonic() - began
            cpu = runner.cpu_seconds() - cpu
            trace = bytes(job.trace)
            assert job.status == "success", trace[-500:]
            assert job.final is not None
            assert job.final["output"]["checksum"] == f"crc32:{zlib.crc32(trace):08x}"
            assert trace.count(line.encode()) == size // 100
            patches = fake.count("patch_trace")
        finally:
            runner.stop()
    return {
        "bytes": len(trace),
        "seconds": took,
        "cpu": cpu,
        "patches": patches,
        "mb_per_s": len(trace) / 1e6 / took,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--hold", type=float, default=5.0)
    parser.add_argument("--trace-mb", type=int, default=50)
    args = parser.parse_args()
    scale = 60.0 / args.idle_seconds
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
    )

    _, _, base_cpu = idle(args.idle_seconds, None)
    print(f"baseline (no runners): CPU {base_cpu * scale:.3f} s/min")
    # The fast mode runs first: its CPU per request prices the slower modes, whose own CPU
    # use over the window is below the resolution of /proc's 10 ms ticks.
    modes = (
        ("no long polling, check_interval 0.1 s (to time one request)", 0.0, 0.1),
        ("no long polling, check_interval 3 s (default)", 0.0, 3.0),
        (f"long polling {args.hold:g} s, check_interval 3 s", args.hold, 3.0),
    )
    per_request = float("nan")
    for label, hold, interval in modes:
        with FakeCoordinator(long_poll=hold) as fake:
            requests, rate, cpu = idle(args.idle_seconds, fake, f"check_interval = {interval}\n")
        if interval < 1:
            per_request = max(0.0, cpu - base_cpu) / requests
        print(
            f"{label}: {rate:.1f} requests/min ({requests} seen), measured CPU "
            f"{cpu * scale:.3f} s/min; at {per_request * 1000:.2f} ms CPU per request: "
            f"{rate * per_request:.3f} s/min for the requests"
        )
    result = throughput(args.trace_mb)
    print(
        f"trace: {result['bytes'] / 1e6:.1f} MB in {result['seconds']:.2f} s = "
        f"{result['mb_per_s']:.1f} MB/s delivered, {result['patches']:.0f} PATCHes, "
        f"runner CPU {result['cpu']:.2f} s"
    )


if __name__ == "__main__":
    main()
