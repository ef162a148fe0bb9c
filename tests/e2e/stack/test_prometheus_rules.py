"""The Prometheus files in docs/prometheus pass promtool: config, rules, and their unit tests."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from alloy_runner.telemetry.catalog.rules import COMMAND, render

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
    assert "3 rule files found" in result.stdout


def test_the_rule_files_are_valid() -> None:
    """`promtool check rules` accepts the alerting and the recording rules."""
    files = [PROMETHEUS / name for name in ("alerts.yml", "recording.yml", "gitlab-names.yml")]
    result = promtool("check", "rules", *files)
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


def test_the_gitlab_names_rules_are_the_generated_ones() -> None:
    """docs/prometheus/gitlab-names.yml is what rules.render() produces from the catalog."""
    assert (PROMETHEUS / "gitlab-names.yml").read_text() == render(), (
        f"gitlab-names.yml is out of date; regenerate it with: .venv/bin/{COMMAND}"
    )


def test_recording_rules_are_named_level_metric_operations() -> None:
    """Every aggregation records `level:metric:operations`; only compatibility rules keep a
    plain family name (the seed's, or GitLab Runner's in gitlab-names.yml)."""
    groups = yaml.safe_load((PROMETHEUS / "recording.yml").read_text())["groups"]
    checked = 0
    for group in groups:
        for rule in group["rules"]:
            if group["name"] == "alloy-runner-seed-names":
                assert ":" not in rule["record"]
                continue
            level, metric, operations = rule["record"].split(":")
            assert re.fullmatch(r"[a-z_]+", level) and re.fullmatch(r"[a-z0-9_]+", operations)
            assert metric.split("_bucket")[0].startswith(("ci_", "process_"))
            checked += 1
    assert checked >= 5
