"""The real `alloy-runner run` process scraped over HTTP: what /metrics exposes, how it serves."""

from __future__ import annotations

import gzip
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.metrics_core import Metric

from alloy_runner import __version__
from alloy_runner.telemetry.catalog import instruments
from alloy_runner.telemetry.catalog.instruments import CATALOG, Family
from tests.support import (
    RunnerProcess,
    StartRunner,
    http_request,
    metric_value,
    parse_exposition,
    parse_openmetrics,
    promtool_check_metrics,
    raw_exchange,
    wait_until,
)

CONFIG = """
concurrent = 4

[[runners]]
name = "alpha"
"""

OPENMETRICS = "application/openmetrics-text; version=1.0.0"

# The families every `run` process exposes from its first scrape, whatever its config.
# (Histograms appear once they record something; job families need runners and jobs.)
ALWAYS_EXPOSED = (
    instruments.VERSION_INFO,
    instruments.CONCURRENT,
    instruments.ERRORS,
    instruments.CONFIG_LOADED,
    instruments.CONFIG_LOADING_ERRORS,
    instruments.CONFIG_SAVED,
    instruments.CONFIG_SAVING_ERRORS,
    instruments.PROCESS_CPU,
    instruments.PROCESS_MAX_FDS,
    instruments.PROCESS_OPEN_FDS,
    instruments.PROCESS_RSS,
    instruments.PROCESS_START,
    instruments.PROCESS_VMS,
    instruments.GC_COLLECTIONS,
    instruments.GC_COLLECTED,
    instruments.GC_UNCOLLECTABLE,
    instruments.THREADS,
    instruments.ASYNCIO_TASKS,
    instruments.ALLOCATED_BLOCKS,
    instruments.PYTHON_INFO,
)
SAMPLE_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
}


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunnerProcess]:
    """One runner shared by the tests of this module that only read from it."""
    with RunnerProcess(tmp_path_factory.mktemp("runner"), CONFIG) as process:
        yield process


@pytest.fixture
def families(runner: RunnerProcess) -> dict[str, Metric]:
    """One fresh scrape of the shared runner, parsed."""
    return runner.families()


def _label_names(family: Metric) -> set[frozenset[str]]:
    """Return the distinct label-name sets of a family's samples (without `le`/`quantile`)."""
    return {frozenset(s.labels) - {"le", "quantile"} for s in family.samples}


def _catalog_mismatches(family: Family, exposed: Metric) -> list[str]:
    """Return how an exposed family differs from its catalog entry (empty when it matches)."""
    problems = []
    if exposed.type != family.kind.prometheus_type:
        problems.append(f"type {exposed.type}, catalog {family.kind.prometheus_type}")
    if exposed.documentation != family.help:
        problems.append(f"HELP {exposed.documentation!r}, catalog {family.help!r}")
    if not exposed.samples:
        problems.append("no samples")
    if _label_names(exposed) - {frozenset(family.labels)}:
        problems.append(f"labels {_label_names(exposed)}, catalog {set(family.labels)}")
    allowed = {family.name + suffix for suffix in SAMPLE_SUFFIXES[exposed.type]}
    if stray := {s.name for s in exposed.samples} - allowed:
        problems.append(f"samples named {stray}")
    return [f"{family.name}: {problem}" for problem in problems]


def test_families_match_catalog(families: dict[str, Metric]) -> None:
    """Every catalog family that is exposed has the catalog's type, HELP text and label names."""
    present = [f for f in CATALOG if f.name in families]
    assert {f.name for f in ALWAYS_EXPOSED} <= {f.name for f in present}
    problems = [p for f in present for p in _catalog_mismatches(f, families[f.name])]
    assert problems == []


def test_nothing_outside_the_catalog(families: dict[str, Metric]) -> None:
    """Every exposed family is in the catalog, except `target_info` that names the process."""
    assert set(families) - {f.name for f in CATALOG} == {"target_info"}


def test_no_scope_labels(runner: RunnerProcess) -> None:
    """The exposition carries no `otel_scope_*` labels and no scope info family."""
    _, text = runner.scrape()
    assert "otel_scope" not in text
    for family in parse_exposition(text).values():
        for sample in family.samples:
            assert not any(name.startswith("otel_") for name in sample.labels), sample


def test_target_info_names_the_process(families: dict[str, Metric]) -> None:
    """`target_info` carries the service name, version, an instance UUID and the host name."""
    (sample,) = families["target_info"].samples
    assert sample.value == 1
    assert sample.labels["service_name"] == "alloy-runner"
    assert sample.labels["service_version"] == __version__
    assert uuid.UUID(sample.labels["service_instance_id"])
    assert sample.labels["host_name"] == socket.gethostname()


def test_otel_environment_names_the_process(start_runner: StartRunner) -> None:
    """OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES reach `target_info`; the name wins."""
    runner = start_runner(
        env={
            "OTEL_SERVICE_NAME": "runner-eu-1",
            "OTEL_RESOURCE_ATTRIBUTES": "service.name=ignored,deployment.environment=ci,team=ops",
        }
    )
    (sample,) = runner.families()["target_info"].samples
    assert sample.labels["service_name"] == "runner-eu-1"
    assert sample.labels["deployment_environment"] == "ci"
    assert sample.labels["team"] == "ops"


def test_version_info(families: dict[str, Metric]) -> None:
    """`ci_runner_version_info` is 1, names alloy-runner and leaves no build field empty."""
    (sample,) = families["ci_runner_version_info"].samples
    assert sample.value == 1
    assert sample.labels["name"] == "alloy-runner"
    assert all(sample.labels.values()), sample.labels


def test_promtool_finds_nothing(runner: RunnerProcess) -> None:
    """`promtool check metrics` on a scrape exits 0 and prints nothing."""
    _, text = runner.scrape()
    result = promtool_check_metrics(text)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_text_format_by_default(runner: RunnerProcess) -> None:
    """Without an Accept header the scrape is the Prometheus text format 0.0.4."""
    headers, text = runner.scrape()
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# EOF" not in text


def test_openmetrics_when_asked(runner: RunnerProcess) -> None:
    """An OpenMetrics Accept header gets OpenMetrics 1.0.0, ending with `# EOF`, that parses."""
    headers, text = runner.scrape(accept=OPENMETRICS)
    assert headers["content-type"].startswith(OPENMETRICS)
    assert text.endswith("# EOF\n")
    families = parse_openmetrics(text)
    assert families["ci_runner_errors"].type == "counter"
    assert families["ci_runner_concurrent"].samples[0].value == 4


def test_gzip_when_accepted(runner: RunnerProcess) -> None:
    """`Accept-Encoding: gzip` gets a gzip body whose length is the Content-Length."""
    reply = runner.request("GET", "/metrics", {"Accept-Encoding": "gzip"})
    assert reply.status == 200
    assert reply.headers["content-encoding"] == "gzip"
    assert int(reply.headers["content-length"]) == len(reply.body)
    assert "ci_runner_concurrent" in parse_exposition(gzip.decompress(reply.body).decode())


def test_no_gzip_unless_accepted(runner: RunnerProcess) -> None:
    """Without Accept-Encoding, or with gzip refused (q=0), the body is not compressed."""
    for headers in ({}, {"Accept-Encoding": "gzip;q=0"}):
        reply = runner.request("GET", "/metrics", headers)
        assert "content-encoding" not in reply.headers
        assert parse_exposition(reply.text)


def test_head_has_no_body(runner: RunnerProcess) -> None:
    """HEAD /metrics answers 200 with the headers of a GET and not one byte of body."""
    raw = raw_exchange(
        runner.host,
        runner.port,
        b"HEAD /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *fields = head.decode().split("\r\n")
    headers = dict(field.split(": ", 1) for field in fields)
    assert status.startswith("HTTP/1.1 200 ")
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert int(headers["Content-Length"]) > 1000  # what a GET would carry
    assert body == b""


@pytest.mark.parametrize("path", ["/-/healthy", "/-/ready"])
def test_health_routes(runner: RunnerProcess, path: str) -> None:
    """The health and readiness routes answer 200 while the runner runs."""
    reply = runner.request("GET", path)
    assert reply.status == 200, reply.text


def test_post_not_allowed(runner: RunnerProcess) -> None:
    """POST /metrics is refused with 405 and an Allow header listing GET and HEAD."""
    reply = runner.request("POST", "/metrics", body=b"x=1")
    assert reply.status == 405
    assert reply.headers["allow"] == "GET, HEAD"


def test_unknown_path(runner: RunnerProcess) -> None:
    """An unknown path is 404."""
    assert runner.request("GET", "/nope").status == 404


def test_silent_clients_do_not_block_scrapes(runner: RunnerProcess) -> None:
    """Clients that connect and send nothing do not delay a scrape from another client."""
    silent = [socket.create_connection((runner.host, runner.port), timeout=5) for _ in range(8)]
    try:
        started = time.monotonic()
        reply = runner.request("GET", "/metrics", timeout=3.0)
        assert reply.status == 200
        assert "ci_runner_concurrent" in parse_exposition(reply.text)
        assert time.monotonic() - started < 2.0
    finally:
        for sock in silent:
            sock.close()


def test_concurrent_scrapes(runner: RunnerProcess) -> None:
    """100 scrapes at once all succeed, each complete, parseable and without duplicate series."""
    clients = 100
    barrier = threading.Barrier(clients)

    def scrape(_: int) -> str:
        barrier.wait(timeout=10)
        reply = http_request(runner.host, runner.port, "GET", "/metrics", timeout=10.0)
        assert reply.status == 200, reply
        return reply.text

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        texts = list(pool.map(scrape, range(clients)))
    elapsed = time.monotonic() - started

    required = {f.name for f in ALWAYS_EXPOSED}
    for text in texts:
        families = parse_exposition(text)
        assert required <= set(families)
        series = Counter(
            (s.name, tuple(sorted(s.labels.items())))
            for family in families.values()
            for s in family.samples
        )
        assert [key for key, n in series.items() if n > 1] == []
        assert text.count("# TYPE ") == len(families)
    assert elapsed < 5.0, f"100 concurrent scrapes took {elapsed:.1f}s"


def test_concurrent_reflects_config(families: dict[str, Metric]) -> None:
    """`ci_runner_concurrent` is the config's `concurrent`."""
    assert metric_value(families, "ci_runner_concurrent") == 4


def test_errors_start_at_zero(families: dict[str, Metric]) -> None:
    """A clean start exposes every error level at 0."""
    for level in ("warning", "error", "fatal"):
        assert metric_value(families, "ci_runner_errors_total", {"level": level}) == 0


def test_unknown_key_counts_a_warning(start_runner: StartRunner) -> None:
    """An unknown config key is logged as a warning and counted in `ci_runner_errors_total`."""
    runner = start_runner(CONFIG + "\n[[runners]]\nname = 'beta'\nflavour = 'x'\n")
    assert any("unknown key 'runners[1].flavour' is ignored" in ln for ln in runner.stderr_lines)
    families = runner.families()
    assert metric_value(families, "ci_runner_errors_total", {"level": "warning"}) == 1
    assert metric_value(families, "ci_runner_errors_total", {"level": "error"}) == 0


def test_process_values_are_plausible(runner: RunnerProcess, families: dict[str, Metric]) -> None:
    """The process_* values describe the runner's own process, as the OS sees it."""
    value = {
        f.name: metric_value(families, f.exposed_name)
        for f in CATALOG
        if f.name.startswith("process_")
    }
    started, open_fds = os_view(runner.pid)
    assert value["process_start_time_seconds"] == pytest.approx(started, abs=1)
    assert time.time() - 300 < value["process_start_time_seconds"] <= time.time()
    assert value["process_resident_memory_bytes"] > 1_000_000
    assert value["process_virtual_memory_bytes"] >= value["process_resident_memory_bytes"]
    # The scrape's own connection comes and goes: allow a few descriptors either way.
    assert value["process_open_fds"] == pytest.approx(open_fds, abs=4)
    assert 0 < value["process_open_fds"] <= value["process_max_fds"]
    assert value["process_cpu_seconds"] > 0


def os_view(pid: int) -> tuple[float, int]:
    """Return the start time and open descriptors of `pid`, as /proc shows them from outside."""
    proc = Path("/proc")
    boot = next(ln for ln in (proc / "stat").read_text().splitlines() if ln.startswith("btime "))
    fields = (proc / str(pid) / "stat").read_text().rpartition(")")[2].split()
    started = int(boot.split()[1]) + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # proc(5) 22
    return started, len(os.listdir(proc / str(pid) / "fd"))


def test_python_runtime(families: dict[str, Metric]) -> None:
    """The runtime families show the main and server threads and the running interpreter."""
    assert metric_value(families, "python_threads") >= 2
    assert metric_value(families, "python_asyncio_tasks") >= 1
    assert metric_value(families, "python_info", {"implementation": "CPython"}) == 1


def test_ready_follows_the_loop(start_runner: StartRunner) -> None:
    """/-/ready turns 200 once the runner has started (polled: it may lag the log by a moment)."""
    runner = start_runner()
    wait_until(lambda: runner.request("GET", "/-/ready").status == 200, 5.0, what="ready")
