"""Benchmark the distributed cache: upload and download of a cache archive through an
S3-compatible server (moto, a subprocess on loopback), against copying the file on local
disk (what a local cache costs).

Run: .venv/bin/python benchmarks/bench_cache.py [--rounds N]

The store is moto, not a real S3: the figures measure the runner's side (boto3, the
threads, the file writes) plus a loopback HTTP server in Python, an upper bound for the
client's own cost. Numbers are printed, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from alloy_runner.build.ports import NoMetrics
from alloy_runner.cache.remote import RemoteCache
from alloy_runner.cache.s3 import S3Store
from alloy_runner.config.model import CacheConfig, CacheS3Config, RunnerConfig

SIZES = (64 * 1024, 1024 * 1024, 16 * 1024 * 1024)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_moto(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto did not start")


def timed(action: Callable[[], object], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        began = time.perf_counter()
        action()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)


def measure(cache: RemoteCache, source: Path, work: Path, rounds: int) -> tuple[float, ...]:
    """Return the median seconds of a local copy, an upload and a download of `source`."""
    copy_to, fetched = work / "copy.zip", work / "fetched.zip"
    name = cache.object_name("bench", source.stem)
    metrics = NoMetrics()
    local = timed(lambda: shutil.copyfile(source, copy_to), rounds)
    up = timed(lambda: asyncio.run(cache.upload(name, source, metrics)), rounds)
    down = timed(lambda: asyncio.run(cache.download(name, fetched, metrics)), rounds)
    assert fetched.read_bytes() == source.read_bytes()
    return local, up, down


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    port = free_port()
    proc = start_moto(port)
    work = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    try:
        s3 = CacheS3Config(
            server_address=f"127.0.0.1:{port}",
            access_key="bench",
            secret_key="bench",
            bucket_name="bench",
            insecure=True,
        )
        config = CacheConfig(type="s3", shared=True, s3=s3)
        store = S3Store(s3)
        store._s3().create_bucket(Bucket="bench")
        cache = RemoteCache(config, RunnerConfig(name="bench"), store)
        print(
            f"{'archive':>10} {'local copy':>12} {'S3 upload':>12} {'S3 download':>12}"
            f" {'up/copy':>8} {'down/copy':>10}"
        )
        for size in SIZES:
            source = work / f"cache-{size}.zip"
            source.write_bytes(os.urandom(size))
            local, up, down = measure(cache, source, work, args.rounds)
            print(
                f"{size // 1024:>8}Ki {local * 1e3:>10.2f}ms {up * 1e3:>10.2f}ms"
                f" {down * 1e3:>10.2f}ms {up / local:>8.0f}x {down / local:>9.0f}x"
            )
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
