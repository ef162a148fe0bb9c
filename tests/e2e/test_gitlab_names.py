"""metric_names through the real runner: GitLab Runner's queries answer, both namings agree."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from alloy_runner.telemetry.catalog.instruments import CATALOG, Kind
from alloy_runner.telemetry.catalog.naming import GITLAB
from tests.support import start_prometheus
from tests.support.exposition import parse_openmetrics, promtool_check_metrics
from tests.support.jobs import JobsRig, pipeline
from tests.support.runner import RunnerProcess

OPENMETRICS = "application/openmetrics-text; version=1.0.0"

# Queries on GitLab Runner's families as its docs describe them (docs/monitoring and the
# metrics table of docs/fleet_scaling: "use rate() or increase()" on the counters).
GITLAB_QUERIES = (
    "gitlab_runner_version_info == 1",
    "gitlab_runner_concurrent",
    "gitlab_runner_limit",
    "sum by (runner, runner_name, system_id) (gitlab_runner_jobs)",
    "sum by (runner, runner_name, system_id) (increase(gitlab_runner_jobs_total[5m])) > 0",
    "sum by (runner, failure_reason) "
    '(increase(gitlab_runner_failed_jobs_total{failure_reason="script_failure"}[5m])) > 0',
    "histogram_quantile(0.9, sum by (runner, le) "
    "(rate(gitlab_runner_job_duration_seconds_bucket[5m]))) >= 0",
    "histogram_quantile(0.9, sum by (runner, le) "
    "(rate(gitlab_runner_job_queue_duration_seconds_bucket[5m]))) >= 0",
    "sum by (stage) (increase(gitlab_runner_job_stage_duration_seconds_count[5m])) > 0",
    "sum by (level) (rate(gitlab_runner_errors_total[5m]))",
    "gitlab_runner_request_concurrency",
    "sum by (executor, state) (gitlab_runner_autoscaling_machine_states)",
    "sum by (executor, action) (increase(gitlab_runner_autoscaling_actions_total[5m]))",
    "process_start_time_seconds",
)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[JobsRig]:
    """Return a JobsRig under `tmp_path`; its runners end at teardown."""
    the_rig = JobsRig(tmp_path / "rig")
    try:
        yield the_rig
    finally:
        the_rig.stop_all()


def _config(rig: JobsRig, names: str | None) -> str:
    line = f'metric_names = "{names}"\n' if names is not None else ""
    return line + rig.config(concurrent=2)


def _run_pipeline(rig: JobsRig, name: str = "p") -> None:
    jobs: dict[str, Any] = {"ok": {"script": ["true"]}, "broken": {"script": ["false"]}}
    rig.wait_results(rig.submit(rig.project(name, pipeline(**jobs))).ids)


def test_gitlab_runner_s_queries_answer_with_data_through_prometheus(
    rig: JobsRig, tmp_path: Path
) -> None:
    """With metric_names = "gitlab", every query returns data after two pipelines."""
    runner = rig.runner(_config(rig, "gitlab"))
    with start_prometheus(tmp_path, [f"{runner.host}:{runner.port}"]) as prometheus:
        prometheus.wait_for_query('up{job="alloy-runner"} == 1')
        _run_pipeline(rig)
        # The histograms exist now; a second pipeline makes their rate() non-zero.
        prometheus.wait_for_query("gitlab_runner_job_duration_seconds_count")
        _run_pipeline(rig, "second")
        for query in GITLAB_QUERIES:
            assert prometheus.wait_for_query(query), query
        # No family GitLab Runner has keeps its ci_* name (ours alone, like the per-job
        # CPU and memory histograms, have one name under every naming).
        left = {r["metric"]["__name__"] for r in prometheus.query('{__name__=~"ci_.+"}')}
        renamed = {f.exposed_name for f in CATALOG if f.name in GITLAB}
        assert not {
            n
            for n in left
            if n.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum") in renamed
        }, left
        (jobs,) = prometheus.query("gitlab_runner_jobs_total")
        labels = jobs["metric"]
        assert labels["runner"] == labels["runner_name"] == rig.runner_name  # a spool runner
        assert labels["system_id"].startswith(("s_", "r_"))
        assert jobs["value"][1] == "4"


RULES = Path(__file__).resolve().parents[2] / "docs" / "prometheus" / "gitlab-names.yml"


def test_with_the_compatibility_rules_gitlab_s_queries_answer_for_the_default_names(
    rig: JobsRig, tmp_path: Path
) -> None:
    """Default names, and a Prometheus with gitlab-names.yml: the same queries answer."""
    runner = rig.runner(_config(rig, None))
    target = f"{runner.host}:{runner.port}"
    with start_prometheus(tmp_path, [target], rule_files=[RULES]) as prometheus:
        prometheus.wait_for_query('up{job="alloy-runner"} == 1')
        _run_pipeline(rig)
        prometheus.wait_for_query("gitlab_runner_job_duration_seconds_count")
        _run_pipeline(rig, "second")
        for query in GITLAB_QUERIES:
            assert prometheus.wait_for_query(query), query
        (jobs,) = prometheus.wait_for_query("gitlab_runner_jobs_total == 4")
        assert jobs["metric"]["runner_name"] == rig.runner_name
        (ours,) = prometheus.query("sum(ci_runner_jobs_total)")
        assert ours["value"][1] == "4"


def _totals(text: str) -> dict[str, float]:
    """Sum every sample by sample name and executor (the text parser may repeat a family)."""
    totals: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            totals[s.name + "/" + s.labels.get("executor", "")] += float(s.value)
    return totals


def test_both_shows_every_family_under_both_names_with_equal_values(rig: JobsRig) -> None:
    """A real scrape under "both": each ci_* family's total equals its gitlab_runner_* one."""
    runner = rig.runner(_config(rig, "both"))
    _run_pipeline(rig)
    text = runner.scrape()[1]
    result = promtool_check_metrics(text)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    totals = _totals(text)
    checked = []
    for family in CATALOG:
        gitlab = GITLAB.get(family.name)
        if gitlab is None or family.name.startswith("ci_runner_api_"):
            continue  # the API families need a coordinator: tests/telemetry/test_naming.py
        suffixes = ("_count", "_sum") if family.kind is Kind.HISTOGRAM else ("",)
        executor = gitlab.constants.get("executor", "")
        for suffix in suffixes:
            ours = family.exposed_name + suffix + "/"
            theirs = f"{gitlab.name}{suffix}/{executor}"
            if family.kind is Kind.HISTOGRAM and ours not in totals:
                assert theirs not in totals  # no observation yet, under either name
                continue
            assert totals[ours] == pytest.approx(totals[theirs]), (ours, theirs)
            checked.append(theirs)
    assert "gitlab_runner_jobs_total/" in checked
    assert totals["gitlab_runner_jobs_total/"] == 2.0
    parse_openmetrics(runner.scrape(OPENMETRICS)[1])


def _names_in(runner: RunnerProcess) -> set[str]:
    text = runner.scrape()[1]
    return {
        "alloyci" if "ci_runner_concurrent " in text else "",
        "gitlab" if "gitlab_runner_concurrent " in text else "",
    } - {""}


def test_the_flag_wins_over_the_environment_which_wins_over_the_file(rig: JobsRig) -> None:
    """file "gitlab" < $METRIC_NAMES "both" < --metric-names alloyci."""
    config = _config(rig, "gitlab")
    assert _names_in(rig.runner(config)) == {"gitlab"}
    assert _names_in(rig.runner(config, env={"METRIC_NAMES": "both"})) == {"alloyci", "gitlab"}
    flagged = rig.runner(config, env={"METRIC_NAMES": "both"}, args=["--metric-names", "alloyci"])
    assert _names_in(flagged) == {"alloyci"}
