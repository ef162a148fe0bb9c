"""The Prometheus files in docs/prometheus pass promtool: config, rules, and their unit tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS = ROOT / "docs" / "prometheus"


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_prometheus_config_is_valid_and_finds_its_rule_files() -> None:
    """`promtool check config` accepts prometheus.yml, rule files included."""
    result = promtool("check", "config", PROMETHEUS / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rule files found" in result.stdout


def test_the_rule_files_are_valid() -> None:
    """`promtool check rules` accepts the alerting and the recording rules."""
    result = promtool("check", "rules", PROMETHEUS / "alerts.yml", PROMETHEUS / "recording.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_and_stays_silent_as_its_unit_test_says() -> None:
    """`promtool test rules` passes, with a firing and a silent case for every alert."""
    tests = sorted((PROMETHEUS / "tests").glob("*.yml"))
    result = promtool("test", "rules", *tests)
    assert result.returncode == 0, result.stdout + result.stderr
    alerts = {
        rule["alert"]
        for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    }
    cases = [
        case
        for path in tests
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    assert {c["alertname"] for c in cases if c["exp_alerts"]} == alerts  # fires
    assert {c["alertname"] for c in cases if not c["exp_alerts"]} == alerts  # stays silent
