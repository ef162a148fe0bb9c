"""metric_names: one instrument, shown under the ci_* names, GitLab Runner's names, or both."""

from __future__ import annotations

from collections import defaultdict
from functools import partial
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from alloy_runner.build.registry import BuildRegistry
from alloy_runner.coordinator.api_metrics import Endpoint, TransportFailure, expected_statuses
from alloy_runner.telemetry.catalog import instruments
from alloy_runner.telemetry.catalog.instruments import CATALOG, Family, Kind
from alloy_runner.telemetry.catalog.naming import (
    GITLAB,
    METHODS,
    PROJECT_JOBS_RUNNING,
    MetricNames,
    RunnerIdentity,
    gitlab_short_token,
    project_jobs_running_label,
    status_class,
)
from alloy_runner.telemetry.metrics.api import ApiTelemetry
from alloy_runner.telemetry.metrics.builds import BuildTelemetry
from alloy_runner.telemetry.metrics.identity import SYSTEM_ID_FILE, runner_identities, system_id
from alloy_runner.telemetry.metrics.setup import Telemetry
from alloy_runner.telemetry.web.server import Exposition
from alloy_runner.version import build_info
from tests.support.exposition import parse_openmetrics, promtool_check_metrics

WHO = {"alpha": RunnerIdentity("abcdefghi", "alpha", "s_0123456789ab", "shell")}
SERIES = {"runner": "alpha", "state": "success", "stage": "build_script"}


def _attributes(family: Family) -> dict[str, str]:
    values = {
        **SERIES,
        "executor_stage": "prepare",
        "failure_reason": "script_failure",
        "type": "creation_failed",
        "endpoint": "request_job",
        "status": "201",
        "level": "error",
    }
    return {label: values.get(label, "x") for label in family.labels}


def _telemetry(names: MetricNames) -> Telemetry:
    """Return a Telemetry with every GitLab-mapped family recorded once (values 2 or 3)."""
    telemetry = Telemetry(build_info(), names=names, identities=lambda: WHO)
    for family in CATALOG:
        if family.name not in GITLAB or family.name.startswith("ci_runner_api_"):
            continue
        attrs = _attributes(family)
        if family.kind is Kind.COUNTER:
            telemetry.counter(family).add(3, attrs)
        elif family.kind is Kind.HISTOGRAM:
            histogram = telemetry.histogram(family)
            histogram.record(2.0, attrs)
            histogram.record(40.0, attrs)
        else:
            telemetry.observe(family, partial(_reading, attrs))
    api = ApiTelemetry(telemetry)
    telemetry.observe(instruments.PROCESS_START, lambda: 1.7e9)
    api.request_done("alpha", Endpoint.UPDATE_JOB, 200, 0.2)
    api.request_done("alpha", Endpoint.UPDATE_JOB, 502, 0.4)
    api.request_done("alpha", Endpoint.UPDATE_JOB, TransportFailure.TIMEOUT, 1.0)
    api.request_retried("alpha", Endpoint.UPDATE_JOB)
    return telemetry


def _reading(attrs: dict[str, str]) -> list[tuple[float, dict[str, str]]]:
    return [(2.0, attrs)]


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Return the samples by sample name (families may share a name in the text parser)."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[s.name].append((dict(s.labels), float(s.value)))
    return samples


def _suffixes(family: Family) -> tuple[str, ...]:
    if family.kind is Kind.HISTOGRAM:
        return ("_count", "_sum")
    return ("",)


def test_both_shows_every_family_under_both_names_with_equal_values() -> None:
    """Each GitLab-mapped family's total under its gitlab_runner_* name equals its ci_* total."""
    telemetry = _telemetry(MetricNames.BOTH)
    samples = _samples(generate_latest(telemetry.registry).decode())
    checked = 0
    for family in CATALOG:
        gitlab = GITLAB.get(family.name)
        if gitlab is None:
            continue
        for suffix in _suffixes(family):
            ours = samples[family.exposed_name + suffix]
            theirs = [
                value
                for labels, value in samples[gitlab.name + suffix]
                if gitlab.constants.items() <= labels.items()
            ]
            assert ours, family.exposed_name + suffix
            assert theirs, gitlab.name + suffix
            assert sum(v for _, v in ours) == pytest.approx(sum(theirs)), gitlab.name
            checked += 1
    assert checked == sum(len(_suffixes(f)) for f in CATALOG if f.name in GITLAB)


def test_gitlab_shows_gitlab_runner_s_names_labels_and_help_only() -> None:
    """Under "gitlab" no ci_* family is left; labels and HELP are GitLab Runner's."""
    text = generate_latest(_telemetry(MetricNames.GITLAB).registry).decode()
    samples = _samples(text)
    assert not [name for name in samples if name.startswith("ci_")]
    assert "process_start_time_seconds" in samples  # shared by both namings
    (jobs,) = samples["gitlab_runner_jobs_total"]
    assert jobs == (
        {"runner": "abcdefghi", "runner_name": "alpha", "system_id": "s_0123456789ab"},
        3.0,
    )
    assert "# HELP gitlab_runner_jobs_total Total number of handled jobs\n" in text
    assert "# TYPE gitlab_runner_jobs gauge\n" in text
    actions = {labels["action"] for labels, _ in samples["gitlab_runner_autoscaling_actions_total"]}
    assert actions == {"creation-failed"}
    durations = {
        (labels["status_class"], labels["method"], value)
        for labels, value in samples["gitlab_runner_api_request_duration_seconds_count"]
    }
    assert durations == {("2xx", "put", 1.0), ("5xx", "put", 1.0), ("timeout", "put", 1.0)}
    (statuses,) = {
        labels["method"] for labels, _ in samples["gitlab_runner_api_request_statuses_total"]
    }
    assert statuses == "put"


def test_alloyci_shows_no_gitlab_name_and_sums_away_the_gitlab_only_attributes() -> None:
    """The default naming is the spec's: no gitlab_runner_*, API durations by runner, endpoint."""
    samples = _samples(generate_latest(_telemetry(MetricNames.ALLOYCI).registry).decode())
    assert not [name for name in samples if name.startswith("gitlab_")]
    (count,) = samples["ci_runner_api_request_duration_seconds_count"]
    assert count == ({"runner": "alpha", "endpoint": "update_job"}, 3.0)


def test_openmetrics_has_created_and_parses_and_the_text_format_passes_promtool() -> None:
    """Counters and histograms carry `_created` in OpenMetrics; both formats are valid."""
    telemetry = _telemetry(MetricNames.BOTH)
    body, _ = Exposition(telemetry.registry).render("application/openmetrics-text; version=1.0.0")
    om = body.decode()
    families = parse_openmetrics(om)
    created = [s for s in families["ci_runner_jobs"].samples if s.name == "ci_runner_jobs_created"]
    assert created and all(s.value > 1e9 for s in created)
    histogram = families["gitlab_runner_job_duration_seconds"]
    assert any(s.name.endswith("_created") for s in histogram.samples)
    assert families["gitlab_runner_jobs_total"].type == "unknown"  # its name clashes
    text = generate_latest(telemetry.registry).decode()
    assert "_created" not in text
    result = promtool_check_metrics(text)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize(
    ("token", "short"),
    [
        ("glrt-t1_abcdefghijklmnop", "abcdefghi"),
        ("glrt-abcdefghijkl", "abcdefghi"),
        ("GR1348941abcdefghijk", "abcdefghi"),
        ("0123456789abcdef", "012345678"),
        ("abc", "abc"),
    ],
)
def test_the_runner_label_is_gitlab_runner_s_short_token(token: str, short: str) -> None:
    assert gitlab_short_token(token) == short


def test_status_class() -> None:
    assert [status_class(s) for s in ("201", "404", "timeout")] == ["2xx", "4xx", "timeout"]


def test_the_system_id_is_kept_beside_the_config_file(tmp_path: Path) -> None:
    """The first start writes `.runner_system_id`; later starts read the same id back."""
    config = tmp_path / "config.toml"
    first = system_id(config)
    assert (tmp_path / SYSTEM_ID_FILE).read_text() == first
    assert first[:2] in ("s_", "r_") and len(first) == 14
    assert system_id(config) == first
    (tmp_path / SYSTEM_ID_FILE).write_text("r_ABCDEFabcdef\n")
    assert system_id(config) == "r_ABCDEFabcdef"


def test_a_runner_without_a_token_shows_its_name() -> None:
    from alloy_runner.config.model import RunnerConfig

    who = runner_identities(
        [RunnerConfig(name="spool"), RunnerConfig(name="gl", token="glrt-zyxwvutsrqpo")], "s_x"
    )
    assert (who["spool"].runner, who["gl"].runner) == ("spool", "zyxwvutsr")


def _key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def test_the_expected_api_statuses_exist_at_zero_under_both_names_with_their_method() -> None:
    """Before any call, each runner with a coordinator has every expected status at 0."""
    telemetry = Telemetry(build_info(), names=MetricNames.BOTH, identities=lambda: WHO)
    api = ApiTelemetry(telemetry, ["alpha"])
    samples = _samples(generate_latest(telemetry.registry).decode())
    ours = samples["ci_runner_api_request_statuses_total"]
    theirs = samples["gitlab_runner_api_request_statuses_total"]
    expected = expected_statuses()
    assert len(expected) == len({(e, s) for e, s in expected}) >= 5 * 5
    assert sorted((labels["endpoint"], labels["status"]) for labels, _ in ours) == sorted(
        (endpoint.value, status) for endpoint, status in expected
    )
    assert {value for _, value in ours + theirs} == {0.0}
    # GitLab's labels: the short token and the system id (no runner_name), and the method.
    who = {"runner": "abcdefghi", "system_id": "s_0123456789ab"}
    wanted = [
        {**who, "endpoint": e.value, "status": s, "method": METHODS[e.value]} for e, s in expected
    ]
    assert sorted(map(_key, (labels for labels, _ in theirs))) == sorted(map(_key, wanted))
    methods = {(labels["endpoint"], labels["method"]) for labels, _ in theirs}
    assert {("request_job", "post"), ("update_job", "put"), ("patch_trace", "patch")} <= methods
    assert ("download_artifacts", "get") in methods
    # No call yet: the duration histogram has no series under either name.
    assert "ci_runner_api_request_duration_seconds_count" not in samples
    assert "gitlab_runner_api_request_duration_seconds_count" not in samples

    api.request_done("alpha", Endpoint.PATCH_TRACE, 416, 0.1)
    api.request_done("alpha", Endpoint.REQUEST_JOB, 418, 0.1)  # not expected: appears when seen
    after = _samples(generate_latest(telemetry.registry).decode())
    moved = {
        (labels["endpoint"], labels["status"], labels.get("method"), value)
        for name in (
            "ci_runner_api_request_statuses_total",
            "gitlab_runner_api_request_statuses_total",
        )
        for labels, value in after[name]
        if value
    }
    assert moved == {
        ("patch_trace", "416", None, 1.0),
        ("patch_trace", "416", "patch", 1.0),
        ("request_job", "418", None, 1.0),
        ("request_job", "418", "post", 1.0),
    }
    assert len(after["ci_runner_api_request_statuses_total"]) == len(expected) + 1


def test_a_process_without_a_coordinator_has_no_api_status_series() -> None:
    """Spool runners make no API calls: nothing is created at 0 for them."""
    telemetry = Telemetry(build_info(), names=MetricNames.BOTH, identities=lambda: WHO)
    ApiTelemetry(telemetry, [])
    samples = _samples(generate_latest(telemetry.registry).decode())
    assert not samples["ci_runner_api_request_statuses_total"]
    assert not samples["gitlab_runner_api_request_statuses_total"]


@pytest.mark.parametrize(
    ("sent", "label"),
    [
        *((v, v) for v in ("0", "1", "4", "5+", "+Inf")),  # GitLab's values, as sent
        ("3", "3"),
        ("5", "5+"),
        ("170", "5+"),  # a plain count goes into GitLab's buckets
        ("05", "5+"),
        ("9" * 5000, "5+"),  # more digits than int() reads
        ("", ""),
        ("7+", ""),
        ("many", ""),
        ("²", ""),
    ],
)
def test_project_jobs_running_is_bounded_to_gitlab_s_values(sent: str, label: str) -> None:
    assert project_jobs_running_label(sent) == label
    assert label in (*PROJECT_JOBS_RUNNING, "")


def _otlp_queue_points(otlp: InMemoryMetricReader) -> dict[tuple[str, str], int]:
    data = otlp.get_metrics_data()
    assert data is not None
    return {
        (str(p.attributes["runner"]), str(p.attributes["project_jobs_running"])): p.count
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == instruments.QUEUE_DURATION.name
        for p in m.data.data_points
        if isinstance(p, HistogramDataPoint) and p.attributes is not None
    }


def test_the_queue_duration_carries_project_jobs_running_under_the_gitlab_name_only() -> None:
    """GitLab's histogram is split by what the coordinator sent; the ci_* one keeps `runner`."""
    otlp = InMemoryMetricReader()
    telemetry = Telemetry(
        build_info(), names=MetricNames.BOTH, identities=lambda: WHO, extra_readers=[otlp]
    )
    builds = BuildTelemetry(telemetry, BuildRegistry(), runners=list, requests=dict)
    for sent in ("2", "2", "+Inf", "5+", "17", "", "many"):
        builds.job_picked("alpha", 3.0, sent)
    builds.job_picked("alpha", None, "1")  # no queue time: nothing observed
    samples = _samples(generate_latest(telemetry.registry).decode())
    assert samples["ci_runner_job_queue_duration_seconds_count"] == [({"runner": "alpha"}, 7.0)]
    theirs = {
        labels["project_jobs_running"]: (labels["runner"], value)
        for labels, value in samples["gitlab_runner_job_queue_duration_seconds_count"]
    }
    assert theirs == {
        "2": ("abcdefghi", 2.0),
        "+Inf": ("abcdefghi", 1.0),
        "5+": ("abcdefghi", 2.0),
        "": ("abcdefghi", 2.0),
    }
    # OTLP carries the instrument's attributes: the same closed set, under `runner`'s name.
    assert _otlp_queue_points(otlp) == {
        ("alpha", "2"): 2,
        ("alpha", "+Inf"): 1,
        ("alpha", "5+"): 2,
        ("alpha", ""): 2,
    }
