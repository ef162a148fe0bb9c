"""With Pyroscope and traces on, the CPU profile of a job's work carries the job's span id."""

from __future__ import annotations

from pathlib import Path

from tests.support import StartRunner, wait_until
from tests.support.loud_job import remove_spool, submit_loud
from tests.support.otlp import OtlpReceiver, attributes
from tests.support.pyroscope import PyroscopeReceiver, sample_labels

OUTPUT_LIMIT_KIB = 1_048_576  # the largest output_limit: the loud job's 30 x 10 MB stay under it
CONFIG = f"""
concurrent = 1
shutdown_timeout = 3

[[runners]]
name = "alpha"
output_limit = {OUTPUT_LIMIT_KIB}

[profiling]
upload_interval = 1
"""


def test_a_profile_pushed_during_a_job_carries_its_span_id(
    start_runner: StartRunner, tmp_path: Path
) -> None:
    """A loud job keeps the runner's loop busy; the samples pushed meanwhile are in a series
    labelled with the span id that the job's span names as `pyroscope.profile.id`, and the
    profiles' service name is OTEL_SERVICE_NAME."""
    with PyroscopeReceiver() as pyroscope, OtlpReceiver() as otlp:
        runner = start_runner(
            CONFIG,
            args=["--profiling-server", pyroscope.url],
            env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
                "OTEL_BSP_SCHEDULE_DELAY": "50",
                "OTEL_SERVICE_NAME": "runner-7",
            },
        )
        stop = tmp_path / "stop"
        assert submit_loud(runner.home, rounds=30, stop_file=stop, wait=False).returncode == 0
        try:
            runner.wait_for_line(r"job \d+ \(loud\) started", timeout=15)
            tagged = wait_until(
                lambda: span_labels(pyroscope), 20, interval=0.5, what="samples with a span id"
            )
        finally:
            stop.touch()

        [job] = wait_until(
            lambda: [s for _, s in otlp.spans() if s.name == "loud"], 30, what="the job's span"
        )
        remove_spool(runner.home)
    span_id = job.span_id.hex()
    assert attributes(job.attributes)["pyroscope.profile.id"] == span_id
    assert {value for key, value in tagged if key == "span_id"} == {span_id}
    assert {value for key, value in tagged if key == "trace_id"} == {job.trace_id.hex()}
    assert all(s.labels["service_name"] == "runner-7" for s in pyroscope.series())


def span_labels(pyroscope: PyroscopeReceiver) -> set[tuple[str, str]]:
    """Return the span labels (span_id, trace_id) on the samples pushed so far."""
    return {
        label
        for series in pyroscope.series()
        for profile in series.profiles
        for label in sample_labels(profile)
        if label[0] in ("span_id", "trace_id")
    }
