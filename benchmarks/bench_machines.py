"""Benchmark the machine pool at 1,000 machines: reconcile time and /metrics scrape latency.

Run: .venv/bin/python benchmarks/bench_machines.py [--machines N] [--scrapes N]

- Reconcile: the real MachinePool and MachineProvider with the in-memory
  driver (no I/O), so what is timed is the pool's own work: a reconcile
  that finds nothing to do with N machines, one that asks for N creations
  and carries them out, and an acquire/use/release cycle.
- Scrape: the real Telemetry (OpenTelemetry SDK, Prometheus reader) with
  both machine families observing a pool of N machines, rendered in-process
  and fetched from the real MetricsServer on 127.0.0.1 over HTTP, against
  the same with an empty pool.

Numbers are printed, not asserted; timings on a shared 2-core machine are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import itertools
import statistics
import time
from collections.abc import Callable

from alloy_runner.config.address import parse_address
from alloy_runner.machines.drivers.memory import MemoryDriver
from alloy_runner.machines.metrics import MachineState
from alloy_runner.machines.names import UNIQUE
from alloy_runner.machines.pool import MachinePool, PoolLimits
from alloy_runner.machines.provider import MachineProvider
from alloy_runner.machines.schedule import IdlePolicy
from alloy_runner.telemetry.metrics.machines import (
    install_machine_telemetry,
    observe_machine_states,
)
from alloy_runner.telemetry.metrics.setup import Telemetry
from alloy_runner.telemetry.web.server import MetricsServer
from alloy_runner.version import build_info


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(action: Callable[[], object], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        began = time.perf_counter()
        action()
        out.append(time.perf_counter() - began)
    return out


def ms(values: list[float]) -> str:
    return (
        f"median {statistics.median(values) * 1000:.4f} ms, "
        f"p99 {pct(values, 0.99) * 1000:.4f} ms (n={len(values)})"
    )


def make_pool(n: int) -> MachinePool:
    counter = itertools.count()
    return MachinePool(
        PoolLimits(limit=n),
        policy=lambda: IdlePolicy(n, 3600),
        new_name=lambda: f"runner-bench-auto-{next(counter)}-00000000",
    )


def bench_reconcile(n: int) -> None:
    import re

    async def scenario() -> None:
        pool = make_pool(n)
        provider = MachineProvider(
            pool, MemoryDriver(), name_filter=re.compile(f"runner-bench-auto-{UNIQUE}")
        )
        began = time.perf_counter()
        provider.reconcile()
        planned = time.perf_counter() - began
        while pool.snapshot()[MachineState.IDLE] < n:
            await asyncio.sleep(0)
        filled = time.perf_counter() - began
        print(f"reconcile that plans {n} creations: {planned * 1000:.1f} ms")
        print(f"  ... and carries them out (memory driver, 8 at a time): {filled * 1000:.1f} ms")
        print(f"steady reconcile, {n} idle machines: {ms(timed(provider.reconcile, 200))}")
        busy = [pool.acquire() for _ in range(n // 2)]
        for name in busy:
            assert name is not None
            pool.use(name)
        print(f"steady reconcile, {n // 2} used + {n - n // 2} idle: {ms(timed(pool.plan, 200))}")

        def cycle() -> None:
            name = pool.acquire()
            assert name is not None
            pool.use(name)
            pool.release(name)

        print(f"acquire + use + release with {n} machines: {ms(timed(cycle, 500))}")
        print(f"snapshot() with {n} machines: {ms(timed(pool.snapshot, 2000))}")
        await provider.shutdown(1.0)

    asyncio.run(scenario())


def bench_scrape(n: int, scrapes: int) -> None:
    from prometheus_client import generate_latest

    for size in (0, n):
        pool = make_pool(max(size, 1))
        if size:
            for name in pool.plan().create:
                pool.created(name)
        for _ in range(size // 3):  # a third of them run builds
            used = pool.acquire()
            assert used is not None
            pool.use(used)
        telemetry = Telemetry(build_info())
        install_machine_telemetry(telemetry)
        observe_machine_states(telemetry, lambda _executor, p=pool: p.snapshot())
        states = {k.value: v for k, v in pool.snapshot().items()}
        print(f"--- pool of {size} machines: {states}")
        body = generate_latest(telemetry.registry)
        print(f"in-process render ({len(body)} bytes): ", end="")
        print(ms(timed(lambda t=telemetry: generate_latest(t.registry), scrapes)))
        server = MetricsServer(parse_address("127.0.0.1:0"), telemetry.registry)
        host, port = server.start()

        def fetch(host: str = host, port: int = port) -> None:
            conn = http.client.HTTPConnection(host, port, timeout=5)
            conn.request("GET", "/metrics")
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            conn.close()

        fetch()
        print(f"GET /metrics over HTTP: {ms(timed(fetch, scrapes))}")
        server.shutdown(2.0)
        telemetry.shutdown(2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--machines", type=int, default=1000)
    parser.add_argument("--scrapes", type=int, default=300)
    args = parser.parse_args()
    bench_reconcile(args.machines)
    bench_scrape(args.machines, args.scrapes)


if __name__ == "__main__":
    main()
