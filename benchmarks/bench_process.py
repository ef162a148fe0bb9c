"""Benchmark the `alloy-runner run` process: start-up, idle memory, and /metrics latency.

Run from the repository root:

    .venv/bin/python benchmarks/bench_process.py

Every runner process is started on 127.0.0.1 with an ephemeral port
(`--metrics-server 127.0.0.1:0`, port read from its log) on the embedded
default configuration (HOME is a temporary directory, CONFIG_FILE and
METRICS_SERVER are unset), and is always stopped: SIGTERM, then SIGKILL.
Every loop is bounded by a count and a deadline. Not run by pytest.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import queue
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import alloy_runner

GOAL_START_S = 1.0
GOAL_RSS_MB = 33.0  # issue 11 (it was 35)
GO_RUNNER_RSS_MB = 23.0
LISTENING = re.compile(r"metrics server listening on 127\.0\.0\.1:(\d+) ")
STARTED_TIMEOUT = 15.0
SCRAPE_TIMEOUT = 10.0
BASELINE_WAIT = 2.0  # the baselines sleep 5 s; their RSS is read after this many seconds


def runner_command() -> list[str]:
    """Return the command that starts the runner, as a user runs it."""
    script = Path(sys.executable).parent / "alloy-runner"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "alloy_runner.cli"]


class Runner:
    """One `alloy-runner run` process; its stderr is drained on a thread so it never blocks."""

    def __init__(self, home: str) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("CONFIG_FILE", "METRICS_SERVER")}
        env["HOME"] = home
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [*runner_command(), "run", "--metrics-server", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        self._port: int | None = None
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            self.lines.put(line)

    def port(self) -> int:
        """Wait for the log line that names the bound port; return the port."""
        if self._port is not None:
            return self._port
        deadline = time.monotonic() + STARTED_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"runner exited {self.proc.returncode}: {''.join(self.log)}")
            try:
                line = self.lines.get(timeout=0.05)
            except queue.Empty:
                continue
            match = LISTENING.search(line)
            if match:
                self._port = int(match.group(1))
                return self._port
        raise RuntimeError(f"runner did not report its port in {STARTED_TIMEOUT}s")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within 5 seconds."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@contextmanager
def running() -> Iterator[Runner]:
    with tempfile.TemporaryDirectory(prefix="bench-home-") as home:
        runner = Runner(home)
        try:
            yield runner
        finally:
            runner.stop()


def get(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read()


def first_scrape(runner: Runner, path: str = "/metrics") -> float:
    """Poll `path` until it answers 200; return seconds since the process was started."""
    port = runner.port()
    deadline = time.monotonic() + STARTED_TIMEOUT
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=SCRAPE_TIMEOUT)
        try:
            status, _ = get(conn, path)
            if status == 200:
                return time.perf_counter() - runner.started
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.005)
    raise RuntimeError(f"{path} did not answer 200 within {STARTED_TIMEOUT}s")


def vm_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU time of `pid` from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def idle_python_rss(code: str, settle: float) -> int:
    """Return the RSS of `python -c code`, `settle` seconds after it started (it must still run)."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL)
    try:
        time.sleep(settle)
        if proc.poll() is not None:
            raise RuntimeError(f"baseline exited early: {code}")
        return vm_rss_bytes(proc.pid)
    finally:
        proc.kill()
        proc.wait(5)


def pct(values: list[float], q: int) -> float:
    """Return the q-th percentile (inclusive method) of `values`."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


def mb(n: float) -> str:
    return f"{n / 1e6:6.1f} MB ({n / 2**20:5.1f} MiB)"


def verdict(ok: bool) -> str:
    return "meets goal" if ok else "MISSES goal"


def sequential_scrapes(port: int, count: int, budget: float) -> list[float]:
    """Scrape /metrics `count` times over one keep-alive connection; return the latencies."""
    latencies: list[float] = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=SCRAPE_TIMEOUT)
    deadline = time.monotonic() + budget
    try:
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            t = time.perf_counter()
            status, _ = get(conn, "/metrics")
            latencies.append(time.perf_counter() - t)
            if status != 200:
                raise RuntimeError(f"/metrics answered {status}")
    finally:
        conn.close()
    return latencies


def concurrent_scrapes(
    port: int, clients: int, per_client: int, budget: float
) -> tuple[list[float], int, float]:
    """Run `clients` threads, each scraping up to `per_client` times on its own connection.

    Return the latencies, the number of failed requests, and the wall time.
    """
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1, timeout=SCRAPE_TIMEOUT)
    deadline = time.monotonic() + budget

    def client() -> None:
        nonlocal failures
        mine: list[float] = []
        failed = 0
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=SCRAPE_TIMEOUT)
        try:
            barrier.wait()
            for _ in range(per_client):
                if time.monotonic() > deadline:
                    break
                t = time.perf_counter()
                try:
                    status, _ = get(conn, "/metrics")
                except (OSError, http.client.HTTPException):
                    failed += 1
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=SCRAPE_TIMEOUT)
                    continue
                if status == 200:
                    mine.append(time.perf_counter() - t)
                else:
                    failed += 1
        finally:
            conn.close()
            with lock:
                latencies.extend(mine)
                failures += failed

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + SCRAPE_TIMEOUT)
    return latencies, failures, time.perf_counter() - started


def in_process_render(count: int) -> tuple[list[float], int]:
    """Time `MetricsServer.dispatch('/metrics', ...)` on the daemon's own set of instruments."""
    from alloy_runner.app.wiring import wire
    from alloy_runner.config.address import parse_address
    from alloy_runner.config.model import embedded_default
    from alloy_runner.telemetry.web.server import MetricsServer

    with tempfile.TemporaryDirectory(prefix="bench-spool-") as spool:
        # The embedded default, as the runner process has it; its scheduler is never started.
        config = embedded_default().with_overrides(
            metrics_server="", log_level="warning", spool_dir=Path(spool)
        )
        parts = wire(config)
        address = parse_address("127.0.0.1:0")
        assert address is not None
        registry = parts.observability.telemetry.registry
        server = MetricsServer(address, registry)  # never started: no socket
        try:
            size = len(server.dispatch("/metrics", {}, {}).body)
            latencies = []
            for _ in range(count):
                t = time.perf_counter()
                server.dispatch("/metrics", {}, {})
                latencies.append(time.perf_counter() - t)
            return latencies, size
        finally:
            parts.observability.shutdown(1.0)
            parts.runner.close()


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="start-up runs (default 10)")
    parser.add_argument("--scrapes", type=int, default=500, help="sequential scrapes")
    parser.add_argument("--clients", type=int, default=50, help="concurrent scrapers")
    parser.add_argument("--per-client", type=int, default=40, help="scrapes per scraper")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before reading RSS")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU measured")
    parser.add_argument("--budget", type=float, default=60.0, help="time cap per latency phase")
    args = parser.parse_args()

    print(f"alloy-runner process benchmark, {time.strftime('%Y-%m-%d %H:%M:%S %z')}")
    print(
        f"python {platform.python_version()} ({sys.executable}), {platform.platform()}, "
        f"{os.cpu_count()} CPUs"
    )
    print(f"runner: {' '.join(runner_command())} run --metrics-server 127.0.0.1:0")
    print(f"alloy_runner imported from {Path(alloy_runner.__file__).parent}")
    print(f"load average at start: {load()} (other work on the machine skews every figure)")
    print()

    # (1) Start to first scrape.
    starts: list[float] = []
    readies: list[float] = []
    for _ in range(args.runs):
        with running() as runner:
            starts.append(first_scrape(runner))
            readies.append(first_scrape(runner, "/-/ready"))
    p50, worst = statistics.median(starts), max(starts)
    print(f"(1) Popen to first 200 from /metrics, {len(starts)} runs")
    print(f"    p50 {ms(p50)}   max {ms(worst)}   goal < {ms(GOAL_START_S).strip()}: ", end="")
    print(verdict(worst < GOAL_START_S))
    print(f"    (Popen to first 200 from /-/ready: p50 {ms(statistics.median(readies)).strip()})")
    print()

    # (2) Idle RSS, and (3) latency over HTTP, on one runner.
    with running() as runner:
        first_scrape(runner)
        port = runner.port()
        time.sleep(args.settle)
        rss = vm_rss_bytes(runner.proc.pid)
        bare = idle_python_rss("import time; time.sleep(5)", BASELINE_WAIT)
        imports = idle_python_rss(
            "import alloy_runner.app.daemon, time; time.sleep(5)", BASELINE_WAIT
        )
        print(f"(2) Idle resident memory (VmRSS), {args.settle:.0f} s after the first scrape")
        print(f"    runner              {mb(rss)}   goal < {GOAL_RSS_MB:.0f} MB: ", end="")
        print(f"{verdict(rss / 1e6 < GOAL_RSS_MB)} (Go runner: {GO_RUNNER_RSS_MB:.0f} MB)")
        print(f"    bare python sleep   {mb(bare)}")
        print(
            f"    python + imports    {mb(imports)}   (import alloy_runner.app.daemon, no server)"
        )
        print(f"    runner - bare       {mb(rss - bare)}   ratio runner / bare {rss / bare:.2f}")
        cpu0, t0 = cpu_seconds(runner.proc.pid), time.monotonic()
        time.sleep(args.idle)
        busy = (cpu_seconds(runner.proc.pid) - cpu0) / (time.monotonic() - t0)
        print(f"    idle CPU            {busy * 100:5.2f} % of one core over {args.idle:.0f} s")
        print()

        seq = sequential_scrapes(port, args.scrapes, args.budget)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=SCRAPE_TIMEOUT)
        try:
            size = len(get(conn, "/metrics")[1])
        finally:
            conn.close()
        print(f"(3) /metrics latency over HTTP/1.1 keep-alive (http.client), 127.0.0.1:{port}")
        print(
            f"    idle, sequential, {len(seq)} scrapes:      "
            f"p50 {ms(statistics.median(seq))}   p99 {ms(pct(seq, 99))}   ({size} bytes)"
        )
        conc, failures, wall = concurrent_scrapes(port, args.clients, args.per_client, args.budget)
        if conc:
            print(
                f"    {args.clients} concurrent scrapers, {len(conc)} scrapes: "
                f"p50 {ms(statistics.median(conc))}   p99 {ms(pct(conc, 99))}   "
                f"max {ms(max(conc)).strip()}"
            )
        print(
            f"    under load: {failures} failed, {len(conc) / wall:.0f} scrapes/s over {wall:.1f} s"
        )
        after = vm_rss_bytes(runner.proc.pid)
        print(f"    runner RSS after the load: {mb(after)}")
        if runner.proc.poll() is not None:
            print(f"    runner exited {runner.proc.returncode} during the benchmark!")

    render, size = in_process_render(args.scrapes)
    print(
        f"    baseline, in-process dispatch('/metrics'), {len(render)} calls: "
        f"p50 {ms(statistics.median(render))}   p99 {ms(pct(render, 99))}   ({size} bytes)"
    )
    print(f"load average at end: {load()}")


if __name__ == "__main__":
    main()
