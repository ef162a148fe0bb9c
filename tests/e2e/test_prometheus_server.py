"""A real Prometheus server scrapes the real runner."""

from __future__ import annotations

from pathlib import Path

from tests.support import StartRunner, start_prometheus

CONFIG = 'concurrent = 3\n\n[[runners]]\nname = "a"\n'


def test_prometheus_scrapes_the_runner(tmp_path: Path, start_runner: StartRunner) -> None:
    """Prometheus finds the target up, with version info 1 and the configured concurrency."""
    runner = start_runner(CONFIG)
    target = f"{runner.host}:{runner.port}"
    with start_prometheus(tmp_path, [target]) as prometheus:
        (up,) = prometheus.wait_for_query('up{job="alloy-runner"} == 1')
        assert up["metric"]["instance"] == target
        (info,) = prometheus.wait_for_query("ci_runner_version_info == 1")
        assert info["metric"]["name"] == "alloy-runner"
        (concurrent,) = prometheus.query("ci_runner_concurrent")
        assert concurrent["value"][1] == "3"
        (health,) = prometheus.api("targets", state="active")["activeTargets"]
        assert (health["health"], health["lastError"]) == ("up", "")
