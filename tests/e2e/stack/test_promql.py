"""Every PromQL expression of the dashboard and the rules, on a real Prometheus scraping the runner.

The runner runs the sample pipeline (examples/.alloy-ci.yml) while Prometheus
scrapes it every second; then each expression is evaluated over that time.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.prometheus import PrometheusServer, start_prometheus
from tests.support.runner import RunnerProcess, run_cli

ROOT = Path(__file__).resolve().parents[3]
DASHBOARDS = [
    ROOT / "docs" / "grafana" / name for name in ("alloy-runner.json", "alloy-runner-gitlab.json")
]
RULES = [
    ROOT / "docs" / "prometheus" / name
    for name in ("alerts.yml", "recording.yml", "gitlab-names.yml")
]
PIPELINE = ROOT / "examples" / ".alloy-ci.yml"
JOB = "alloy-runner"  # the scrape job of docs/prometheus/prometheus.yml
RUNNER = "shell-demo"

# Grafana's variables, as Grafana would expand them for a short, 1 s-scraped range.
VARIABLES = {
    "$__rate_interval": "10s",
    "$__range": "2m",
    "$__interval": "1s",
    "$runner": ".*",
    "$job": JOB,
}

# Panels that must show data once jobs ran (machines and the API need other executors).
MUST_SHOW_DATA = {
    "Running builds",
    "Jobs in range",
    "Job rate by state",
    "Failure reasons",
    "Job duration",
    "Queue duration",
    "Stage duration p90",
    "Builds by stage and state",
    "Builds by executor stage",
    "Slots",
    "Limit",
}


@dataclass
class Scraped:
    prometheus: PrometheusServer
    start: float
    end: float


def expand(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def dashboard_targets() -> list[tuple[str, str]]:
    return [
        (f"{path.stem}: {p['title']}", t["expr"])
        for path in DASHBOARDS
        for p in json.loads(path.read_text())["panels"]
        for t in p.get("targets", [])
    ]


def rule_expressions() -> list[tuple[str, str]]:
    return [
        (rule.get("alert") or rule["record"], rule["expr"])
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    home = tmp_path_factory.mktemp("promql")
    spool = home / "spool"
    # Both namings, so that each dashboard finds its names in the same Prometheus.
    config = (
        f'metric_names = "both"\nconcurrent = 4\nspool_dir = "{spool}"\n\n'
        f'[[runners]]\nname = "{RUNNER}"\n'
    )
    with RunnerProcess(home, config) as runner:
        target = f"{runner.host}:{runner.port}"
        with start_prometheus(home, [target], job=JOB) as prometheus:
            prometheus.wait_for_query(f'up{{job="{JOB}"}} == 1')
            start = time.time()
            done = run_cli(
                [
                    "submit",
                    "--json",
                    "--spool",
                    str(spool),
                    "--file",
                    str(PIPELINE),
                    "--wait",
                    "--timeout",
                    "60",
                    "--var",
                    "SLOW_SECONDS=2",
                ],
                home,
                timeout=70,
            )
            document = json.loads(done.stdout or "null")
            assert isinstance(document, dict), done.stdout + done.stderr
            statuses = {job["name"]: job["status"] for job in document["jobs"]}
            assert statuses["compile"] == "success", document
            # Every job is counted, and Prometheus has scraped the counts.
            ran = sum(status != "skipped" for status in statuses.values())
            prometheus.wait_for_query(f"sum(ci_runner_jobs_total) == {ran}")
            time.sleep(1.5)
            yield Scraped(prometheus, start, time.time())


def query_range(scraped: Scraped, expr: str) -> list[dict[str, Any]]:
    data = scraped.prometheus.api(
        "query_range", query=expr, start=f"{scraped.start:.3f}", end=f"{scraped.end:.3f}", step="1"
    )
    return list(data["result"])


@pytest.mark.parametrize(("title", "expr"), dashboard_targets())
def test_a_dashboard_query_evaluates(scraped: Scraped, title: str, expr: str) -> None:
    """Each panel's query is valid PromQL; the build and job panels show data."""
    result = query_range(scraped, expand(expr))  # api() fails the test on an error
    if title.split(": ", 1)[1] in MUST_SHOW_DATA:
        assert result, f"{title}: {expr} returned nothing"


@pytest.mark.parametrize(("name", "expr"), rule_expressions())
def test_a_rule_expression_evaluates(scraped: Scraped, name: str, expr: str) -> None:
    """Each alerting and recording rule's expression is valid PromQL on the runner's series."""
    scraped.prometheus.api("query", query=expr, time=f"{scraped.end:.3f}")


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_the_job_and_runner_variables_list_the_job_and_the_runner(
    scraped: Scraped, path: Path
) -> None:
    """Each dashboard's `job` and `runner` variables find the scrape job and the runner."""
    variables = {v["name"]: v for v in json.loads(path.read_text())["templating"]["list"]}
    assert set(variables) == {"datasource", "job", "runner"}
    found = {}
    for name in ("job", "runner"):
        m = re.fullmatch(r"label_values\((.+), (\w+)\)", variables[name]["query"])
        assert m, variables[name]
        series, label = expand(m.group(1)), m.group(2)
        found[name] = scraped.prometheus.api(f"label/{label}/values", **{"match[]": series})
    assert found == {"job": [JOB], "runner": [RUNNER]}


def test_the_queries_see_the_jobs_that_ran(scraped: Scraped) -> None:
    """The sample pipeline's outcomes reach Prometheus: successes, script failures, a timeout."""
    reasons = {
        r["metric"]["failure_reason"]
        for r in scraped.prometheus.query("increase(ci_runner_failed_jobs_total[5m]) > 0")
    }
    assert {"script_failure", "job_execution_timeout"} <= reasons
