"""Benchmark the OTLP path's own costs: OTel renaming per export, the job environment filter,
and what loading each OTLP exporter costs a process.

Run from the repository root:

    .venv/bin/python benchmarks/bench_otlp.py

Each figure is a ratio against a baseline measured in the same run: the
renaming against encoding the same export into its protobuf request (which
every export pays), the filter against copying the environment (which every
job paid before), each import against importing alloy_runner alone. Not run
by pytest.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from alloy_runner.build.hostenv import host_environment
from alloy_runner.telemetry.catalog import instruments
from alloy_runner.telemetry.metrics.runtime import install_runtime
from alloy_runner.telemetry.metrics.setup import Telemetry
from alloy_runner.telemetry.otlp.names import otlp_named
from alloy_runner.version import build_info


def per_call(fn: Callable[[], object], rounds: int = 7, calls: int = 200) -> float:
    """Return the median seconds one call of `fn` takes."""
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - began) / calls)
    return statistics.median(times)


def import_seconds(module: str, rounds: int = 5) -> float:
    """Return the median wall time of a fresh interpreter importing `module`."""
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    reader = InMemoryMetricReader()
    telemetry = Telemetry(build_info(), extra_readers=(reader,))
    install_runtime(telemetry, lambda: None)
    jobs = telemetry.counter(instruments.JOBS)
    for runner in range(10):
        for state in ("success", "failed"):
            jobs.add(1, {"runner": f"r{runner}", "state": state})
    data = reader.get_metrics_data()
    assert data is not None
    encode = per_call(lambda: encode_metrics(data).SerializeToString())
    rename = per_call(lambda: otlp_named(data))
    families = sum(len(sm.metrics) for rm in data.resource_metrics for sm in rm.scope_metrics)
    print(f"one export, {families} families:")
    print(f"  encode to protobuf (baseline) {encode * 1e6:8.1f} us")
    ratio = rename / encode
    print(f"  rename to OTel names          {rename * 1e6:8.1f} us  ({ratio:.2f}x the encoding)")
    os.environ.update({f"OTEL_BENCH_{i}": "x" * 40 for i in range(20)})
    copy = per_call(lambda: dict(os.environ), calls=2000)
    scrub = per_call(host_environment, calls=2000)
    print(f"job environment, {len(os.environ)} variables:")
    print(f"  dict(os.environ) (baseline)   {copy * 1e6:8.1f} us")
    print(f"  host_environment()            {scrub * 1e6:8.1f} us  ({scrub / copy:.2f}x)")
    base = import_seconds("alloy_runner")
    print("a fresh interpreter importing:")
    print(f"  alloy_runner (baseline)       {base * 1e3:8.0f} ms")
    for module in (
        "alloy_runner.telemetry.otlp.exporters",
        "alloy_runner.telemetry.otlp.exporters_grpc",
    ):
        took = import_seconds(module)
        print(f"  {module.rsplit('.', 1)[1]:<29} {took * 1e3:8.0f} ms  ({took / base:.1f}x)")
    telemetry.shutdown(timeout=1.0)


if __name__ == "__main__":
    main()
