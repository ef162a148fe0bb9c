"""Profiling of the real `alloy-runner run` process: Pyroscope pushes and /debug/pprof/."""

from __future__ import annotations

import gzip
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from alloy_runner.telemetry.profiling.proto import profile_pb2
from tests.support import RunnerProcess, StartRunner, free_port, metric_value, wait_until
from tests.support.loopback import SilentListener
from tests.support.loud_job import BUSY_FUNCTIONS, OUTPUT_LIMIT_KIB, remove_spool, submit_loud
from tests.support.pyroscope import PUSH_PATH, PyroscopeReceiver, function_weights

SHUTDOWN_TIMEOUT = 3.0
MARGIN = 1.0  # seconds of process exit beyond shutdown_timeout that a test accepts
CONFIG = f"""
concurrent = 1
shutdown_timeout = {SHUTDOWN_TIMEOUT}

[[runners]]
name = "alpha"
output_limit = {OUTPUT_LIMIT_KIB}

[profiling]
upload_interval = 1
tags = {{ team = "ci" }}
"""
UPLOAD_FAILED = "profiling: upload to "
FAILED_AGAIN = "failed again: "  # the debug line of each failure after the first


@pytest.fixture
def receiver() -> Iterator[PyroscopeReceiver]:
    """A Pyroscope stand-in that takes every push."""
    with PyroscopeReceiver() as r:
        yield r


def _start(start_runner: StartRunner, server: str | None, config: str = CONFIG) -> RunnerProcess:
    args = ["--profiling-server", server] if server is not None else []
    return start_runner(config, args=args)


def _busy(weights: dict[str, int]) -> set[str]:
    return {name for name, weight in weights.items() if weight > 0} & BUSY_FUNCTIONS


def _stop_within_bound(runner: RunnerProcess, sig: signal.Signals) -> float:
    """Signal `runner`, wait for it to exit 0, and return how long the exit took."""
    began = time.monotonic()
    runner.signal(sig)
    assert runner.wait(timeout=SHUTDOWN_TIMEOUT + 10) == 0, runner.stderr_text
    took = time.monotonic() - began
    assert took < SHUTDOWN_TIMEOUT + MARGIN, f"shutdown took {took:.1f}s\n{runner.stderr_text}"
    assert "Traceback" not in runner.stderr_text
    return took


def test_pushes_carry_labels_and_the_busy_function(
    start_runner: StartRunner, receiver: PyroscopeReceiver, tmp_path: Path
) -> None:
    """Pyroscope gets pprof pushes labelled with the service, host, version, runners and file
    tags, whose samples include the trace code a loud job keeps the runner busy in."""
    runner = _start(start_runner, receiver.url)
    stop = tmp_path / "stop"
    result = submit_loud(runner.home, rounds=30, stop_file=stop, wait=False)
    assert result.returncode == 0, result.stderr
    try:
        runner.wait_for_line(r"job \d+ \(loud\) started", timeout=15)

        def busy_seen() -> set[str]:
            weights: dict[str, int] = {}
            for series in receiver.series():
                for profile in series.profiles:
                    for name, weight in function_weights(profile).items():
                        weights[name] = weights.get(name, 0) + weight
            return _busy(weights)

        assert wait_until(busy_seen, 20.0, interval=0.5, what="busy trace code in a push")
    finally:
        stop.touch()
    push = receiver.pushes[0]
    assert push.path == PUSH_PATH
    assert push.headers["content-type"] == "application/proto"
    assert "x-alloy-relay-token" not in push.headers  # the relay's own token stays local
    labels = push.series[0].labels
    version = runner.families()["ci_runner_version_info"].samples[0].labels["version"]
    assert labels["service_name"] == "alloy-runner"
    assert labels["__name__"] == "process_cpu"
    assert labels["hostname"] == socket.gethostname()
    assert labels["version"] == version
    assert labels["runners"] == "alpha"
    assert labels["team"] == "ci"
    assert not any("job" in name or "job" in value for name, value in labels.items())
    _stop_within_bound(runner, signal.SIGTERM)
    remove_spool(runner.home)


def test_debug_profile_is_pprof_with_the_busy_function(
    start_runner: StartRunner, tmp_path: Path
) -> None:
    """/debug/pprof/profile?seconds=2 answers a gzipped pprof CPU profile holding the trace
    code that a loud job keeps the runner busy in."""
    runner = _start(start_runner, None)
    stop = tmp_path / "stop"
    assert submit_loud(runner.home, rounds=40, stop_file=stop, wait=False).returncode == 0
    try:
        runner.wait_for_line(r"job \d+ \(loud\) started", timeout=15)
        began = time.monotonic()
        reply = runner.request("GET", "/debug/pprof/profile?seconds=2", timeout=10)
        took = time.monotonic() - began
    finally:
        stop.touch()
    assert reply.status == 200, reply.body[:200]
    assert reply.headers["content-type"] == "application/octet-stream"
    assert 2.0 <= took < 5.0
    profile = profile_pb2.Profile.FromString(gzip.decompress(reply.body))
    strings = profile.string_table
    assert [(strings[t.type], strings[t.unit]) for t in profile.sample_type] == [
        ("samples", "count"),
        ("cpu", "nanoseconds"),
    ]
    assert profile.period == 10_000_000
    assert 1.9e9 <= profile.duration_nanos < 4e9
    assert _busy(function_weights(profile)), function_weights(profile).most_common(15)
    runner.wait_for_line(r"job \d+ \(loud\) finished: success", timeout=30)
    remove_spool(runner.home)


def test_goroutine_dump_names_threads_and_tasks(start_runner: StartRunner) -> None:
    """goroutine?debug=2 lists the main and metrics-server threads and the feeder tasks,
    each with a stack."""
    runner = _start(start_runner, None)
    reply = runner.request("GET", "/debug/pprof/goroutine?debug=2")
    assert reply.status == 200
    text = reply.text
    assert 'thread "MainThread"' in text
    assert 'thread "metrics-server"' in text
    assert 'task "feed-alpha-0" [pending]:' in text
    assert "in Scheduler._feed" in text
    assert "in BaseEventLoop.run_forever" in text


def test_goroutine_profile_counts_threads_and_tasks(start_runner: StartRunner) -> None:
    """goroutine?debug=0 is a pprof profile with one count per thread and per task."""
    runner = _start(start_runner, None)
    reply = runner.request("GET", "/debug/pprof/goroutine")
    assert reply.status == 200
    profile = profile_pb2.Profile.FromString(gzip.decompress(reply.body))
    strings = profile.string_table
    assert strings[profile.sample_type[0].type] == "goroutine"
    labels = {(strings[label.key], strings[label.str]) for s in profile.sample for label in s.label}
    assert ("thread", "metrics-server") in labels
    assert ("task", "feed-alpha-0") in labels


@pytest.mark.parametrize("seconds", ["0", "61", "abc", "1.5", "-3", "%C2%B2"])
def test_profile_seconds_out_of_bounds(start_runner: StartRunner, seconds: str) -> None:
    """A `seconds` that is not a whole number from 1 to 60 is refused with 400 and says so."""
    runner = _start(start_runner, None)
    reply = runner.request("GET", f"/debug/pprof/profile?seconds={seconds}")
    assert reply.status == 400
    assert "seconds must be a whole number from 1 to 60" in reply.text


def test_second_profile_at_once_is_refused(start_runner: StartRunner) -> None:
    """While one CPU profile is being taken, a second request gets 409 with the reason;
    the first still completes."""
    runner = _start(start_runner, None)
    first: dict[str, int] = {}

    def take() -> None:
        first["status"] = runner.request("GET", "/debug/pprof/profile?seconds=3", timeout=10).status

    def first_is_sampling() -> bool:
        return (
            "in CpuProfiler._sample" in runner.request("GET", "/debug/pprof/goroutine?debug=2").text
        )

    taker = threading.Thread(target=take)
    taker.start()
    wait_until(first_is_sampling, 10.0, interval=0.05, what="the first profile being taken")
    second = runner.request("GET", "/debug/pprof/profile?seconds=1")
    taker.join(10)
    assert second.status == 409
    assert "already being taken" in second.text
    assert first["status"] == 200


def test_index_without_pyroscope(start_runner: StartRunner) -> None:
    """/debug/pprof/ lists the endpoints and says that continuous profiling is off."""
    runner = _start(start_runner, None)
    reply = runner.request("GET", "/debug/pprof/")
    assert reply.status == 200
    assert "goroutine?debug=2" in reply.text
    assert "profile?seconds=30" in reply.text
    assert "Continuous profiling is off" in reply.text
    assert "/debug/pprof/" in runner.request("GET", "/debug/").text


def test_index_with_pyroscope_hides_credentials(
    start_runner: StartRunner, receiver: PyroscopeReceiver
) -> None:
    """/debug/pprof/ names the Pyroscope server (without a password in its URL) and the
    service name profiles go under."""
    url = receiver.url.replace("http://", "http://user:s3cret@")
    runner = _start(start_runner, url)
    text = runner.request("GET", "/debug/pprof/").text
    assert receiver.url in text
    assert "s3cret" not in text
    assert "alloy-runner" in text
    assert "s3cret" not in runner.stderr_text


@pytest.mark.parametrize(
    ("source", "expected"),
    [("flag", "flag"), ("env", "env"), ("file", "file")],
)
def test_server_address_precedence(
    start_runner: StartRunner, receiver: PyroscopeReceiver, source: str, expected: str
) -> None:
    """--profiling-server wins over PYROSCOPE_SERVER_ADDRESS, which wins over the file."""
    urls = {name: f"{receiver.url}/{name}" for name in ("flag", "env", "file")}
    config = CONFIG + f'server_address = "{urls["file"]}"\n'
    env = {"PYROSCOPE_SERVER_ADDRESS": urls["env"]} if source in ("flag", "env") else {}
    args = ["--profiling-server", urls["flag"]] if source == "flag" else []
    runner = start_runner(config, args=args, env=env)
    line = runner.wait_for_line(r"profiling: pushing to (\S+) ")
    assert line[1] == urls[expected]


def test_empty_flag_turns_profiling_off(start_runner: StartRunner) -> None:
    """An empty --profiling-server turns off profiling that the file configures."""
    runner = start_runner(
        CONFIG + 'server_address = "http://127.0.0.1:9"\n',
        args=[
            "--profiling-server",
            "",
        ],
    )
    assert not any("profiling:" in line for line in runner.stderr_lines)
    assert "Continuous profiling is off" in runner.request("GET", "/debug/pprof/").text


def _failed_again(runner: RunnerProcess) -> int:
    """Return how many uploads failed after the first, as the runner logged them at debug."""
    return sum(UPLOAD_FAILED in line and FAILED_AGAIN in line for line in runner.stderr_lines)


def _job_passes(runner: RunnerProcess, tmp_path: Path) -> None:
    result = submit_loud(runner.home, rounds=1, stop_file=tmp_path / "never", wait=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "success" in result.stdout


@pytest.mark.parametrize(
    ("fault", "sig"),
    [("refused", signal.SIGTERM), ("http-500", signal.SIGQUIT)],
    ids=["refused-SIGTERM", "http500-SIGQUIT"],
)
def test_failing_pyroscope_is_logged_once(
    start_runner: StartRunner, tmp_path: Path, fault: str, sig: signal.Signals
) -> None:
    """With Pyroscope refusing connections or answering 500, jobs pass, the failure is logged
    once (one warning counted) however many uploads fail, and shutdown stays in its bound."""
    with PyroscopeReceiver(status=500) as failing:
        url = failing.url if fault == "http-500" else f"http://127.0.0.1:{free_port()}"
        # At debug level each later failure logs one line: they count the failed uploads.
        runner = _start(start_runner, url, config='log_level = "debug"\n' + CONFIG)
        stop = tmp_path / "stop"
        # An idle runner has no samples to upload: a loud job keeps the uploads coming.
        result = submit_loud(
            runner.home, rounds=400, stop_file=stop, wait=False, chunk=1_000_000, pause=0.1
        )
        assert result.returncode == 0, result.stderr
        try:
            runner.wait_for_line(UPLOAD_FAILED, timeout=20)
            # Three more uploads fail, however slow the machine is.
            wait_until(lambda: _failed_again(runner) >= 3, 30.0, what="three more failures")
            if fault == "http-500":
                wait_until(lambda: len(failing.pushes) >= 4, 30.0, what="three more pushes")
        finally:
            stop.touch()
        runner.wait_for_line(r"job \d+ \(loud\) finished: success", timeout=30)
        if fault == "http-500":
            assert len(failing.pushes) >= 4
        warnings = [
            line
            for line in runner.stderr_lines
            if UPLOAD_FAILED in line and FAILED_AGAIN not in line
        ]
        assert len(warnings) == 1, warnings
        assert "WARNING" in warnings[0]
        assert ("HTTP 500" in warnings[0]) == (fault == "http-500")
        families = runner.families()
        assert metric_value(families, "ci_runner_errors_total", {"level": "warning"}) == 1
        _stop_within_bound(runner, sig)
    remove_spool(runner.home)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGQUIT], ids=["SIGTERM", "SIGQUIT"])
def test_silent_pyroscope_does_not_hold_shutdown(
    start_runner: StartRunner, tmp_path: Path, sig: signal.Signals
) -> None:
    """With Pyroscope accepting connections and never answering, jobs pass and shutdown,
    with an upload hanging, still ends within shutdown_timeout."""
    with SilentListener() as silent:
        runner = _start(start_runner, silent.url)
        _job_passes(runner, tmp_path)
        wait_until(lambda: silent.accepted >= 1, 10.0, what="an upload to the silent server")
        _stop_within_bound(runner, sig)
    remove_spool(runner.home)


@pytest.mark.slow
def test_silent_pyroscope_is_logged_once(start_runner: StartRunner, tmp_path: Path) -> None:
    """An upload that Pyroscope never answers times out, is logged as one warning and counted."""
    with SilentListener() as silent:
        runner = _start(start_runner, silent.url)
        stop = tmp_path / "stop"
        result = submit_loud(
            runner.home, rounds=400, stop_file=stop, wait=False, chunk=1_000_000, pause=0.1
        )
        assert result.returncode == 0, result.stderr
        try:
            runner.wait_for_line(UPLOAD_FAILED, timeout=20)
        finally:
            stop.touch()
        warnings = [
            line
            for line in runner.stderr_lines
            if UPLOAD_FAILED in line and FAILED_AGAIN not in line
        ]
        assert len(warnings) == 1
        assert "timed out" in warnings[0]
        families = runner.families()
        assert metric_value(families, "ci_runner_errors_total", {"level": "warning"}) == 1
        assert silent.accepted >= 1
        _stop_within_bound(runner, signal.SIGTERM)
    remove_spool(runner.home)
