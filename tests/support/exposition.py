"""Read a Prometheus exposition the way a scraper does, with prometheus_client's parsers."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping

from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

PROMTOOL = "promtool"


def parse_exposition(text: str) -> dict[str, Metric]:
    """Parse the text format into families by name; fail if a family appears twice.

    The parser names a counter family without its `_total` suffix, as the
    OpenTelemetry instrument (and `Family.name` in the catalog) does.
    """
    families: dict[str, Metric] = {}
    for family in text_string_to_metric_families(text):
        name = family.name
        # GitLab's gitlab_runner_jobs (gauge) and gitlab_runner_jobs_total (counter) share
        # the parser's family name; the counter is kept under its full name.
        if family.type == "counter" and name in families and families[name].type != "counter":
            name += "_total"
        elif family.type != "counter" and families.get(name, family).type == "counter":
            families[name + "_total"] = families.pop(name)
        assert name not in families, f"family {name} appears twice"
        families[name] = family
    return families


def parse_openmetrics(text: str) -> dict[str, Metric]:
    """Parse the OpenMetrics format (which must end with `# EOF`) into families by name."""
    families: dict[str, Metric] = {}
    # prometheus_client's OpenMetrics parser has no annotations.
    for family in openmetrics_families(text):  # type: ignore[no-untyped-call]
        assert family.name not in families, f"family {family.name} appears twice"
        families[family.name] = family
    return families


def sample_value(
    families: Mapping[str, Metric], sample: str, labels: Mapping[str, str] | None = None
) -> float | None:
    """Return the value of the sample named `sample` whose labels include `labels`, else None."""
    wanted = dict(labels or {})
    for family in families.values():
        for s in family.samples:
            if s.name == sample and wanted.items() <= s.labels.items():
                return float(s.value)
    return None


def metric_value(
    families: Mapping[str, Metric], sample: str, labels: Mapping[str, str] | None = None
) -> float:
    """Return the value of a sample as `sample_value` does; fail if there is no such sample."""
    value = sample_value(families, sample, labels)
    assert value is not None, f"no sample {sample} {dict(labels or {})} is exposed"
    return value


def promtool_check_metrics(text: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run `promtool check metrics` on `text` and return its result (stdout and stderr kept)."""
    return subprocess.run(
        [PROMTOOL, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
