"""Render `docs/metrics.md`, the metrics reference, from `CATALOG`.

Regenerate the file with `python -m alloy_runner.telemetry.catalog.reference > docs/metrics.md`;
a test fails while the committed file differs from what this module renders.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from alloy_runner.coordinator.api_metrics import EXPECTED_STATUSES, TransportFailure
from alloy_runner.telemetry.catalog.instruments import CATALOG, Family, Kind
from alloy_runner.telemetry.catalog.naming import GITLAB, METHODS

COMMAND = "python -m alloy_runner.telemetry.catalog.reference > docs/metrics.md"
NONE = "\N{EN DASH}"  # an empty cell, written as the spec's tables write it

_RECORDED = {
    Kind.COUNTER: "when it happens",
    Kind.OBSERVED_COUNTER: "read at scrape",
    Kind.GAUGE: "read at scrape",
    Kind.HISTOGRAM: "when it happens",
}

_INTRO = f"""\
# Metrics reference

<!-- Generated from src/alloy_runner/telemetry/catalog/instruments.py; do not edit by hand.
     Regenerate with: {COMMAND} -->

This is every metric family that `GET /metrics` exposes, as declared in
`CATALOG` in `src/alloy_runner/telemetry/catalog/instruments.py`. Each family is one
OpenTelemetry instrument; the Prometheus exporter turns it into the family
below. See [monitoring.md](monitoring.md) for the endpoint itself.

- **Counters get `_total`.** A counter is scraped with the `_total` suffix
  that Prometheus naming and the OpenMetrics format require
  (`ci_runner_errors_total{{level="error"}}`); its `# HELP` text is the one
  listed here. In the OpenMetrics format the `# HELP` and `# TYPE` lines name
  the family without the suffix, as that format prescribes.
- **Gauges are read at scrape time.** Gauges and the counters marked "read at
  scrape" are observable instruments: their value is computed from live
  state (the running builds, the configuration, the interpreter, `/proc`)
  each time `/metrics` is scraped, so a scrape cannot drift from the truth. Counters and
  histograms marked "when it happens" are recorded at the moment of the event.
- **Histograms** use the explicit buckets listed here (upper bounds, in the
  family's unit) and are scraped as `_bucket{{le=...}}`, `_sum` and `_count`
  series. A histogram series appears once it has its first observation.
- **`target_info` carries the resource.** The OpenTelemetry resource of the
  process (`service.name`, `service.version`, `service.instance.id`,
  `host.name` and the `telemetry.sdk.*` attributes; `OTEL_SERVICE_NAME` and
  `OTEL_RESOURCE_ATTRIBUTES` override them) appears once, as the labels of
  `target_info`, with dots turned into underscores. It is not repeated on
  every series: join on it in PromQL when you need it.
- **No `otel_scope_*` labels.** The instrumentation scope is not exposed, so
  series carry only the labels listed here.
- **Two namings.** `metric_names` (config key; `run --metric-names`;
  `$METRIC_NAMES`; the flag wins over the environment, which wins over the
  file) chooses the names: `alloyci` (the default: the `ci_*` names below),
  `gitlab` (GitLab Runner's `gitlab_runner_*` names, HELP texts and labels,
  in the column "GitLab naming") or `both`. It is one instrument either way:
  the Prometheus reader names each stream, so under `both` the two names of a
  family always carry equal values. In the GitLab naming, `runner` is the
  short form of the runner's token (its first 9 characters after GitLab's
  prefixes such as `glrt-`; a spool runner without a token shows its name),
  `runner_name` is the `[[runners]]` entry's name, and `system_id` is this
  host's id, kept in `.runner_system_id` beside `config.toml` as GitLab
  Runner keeps it. Families GitLab Runner does not have (`process_*`,
  `python_*`, the per-job CPU and memory histograms) have one name under
  every naming. A SIGHUP applies a changed `metric_names` at once.
- **`_created` and exemplars (OpenMetrics only).** Scraped as
  `application/openmetrics-text`, every counter and histogram series carries
  its `_created` timestamp (when the series began), and job-duration buckets
  carry the trace id of the last job that fell in them as an exemplar. The
  one exception: under the GitLab naming, `gitlab_runner_jobs_total` (a
  counter) and `gitlab_runner_jobs` (a gauge) share the family name
  `gitlab_runner_jobs` in OpenMetrics, so the counter is written there as an
  `unknown` family named `gitlab_runner_jobs_total`, which scrapes to the
  same series. The classic text format has neither `_created` nor exemplars.
- **Units** are the instruments' OpenTelemetry (UCUM) units: `s` is seconds,
  `By` is bytes; the family names already end in them.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _number(value: float) -> str:
    return format(value, "g")


def _gitlab(family: Family) -> tuple[str, str]:
    gitlab = GITLAB.get(family.name)
    if gitlab is None:
        return f"`{family.exposed_name}` (same)", NONE
    labels = ", ".join(f"`{label}`" for label in gitlab.labels) or NONE
    return f"`{gitlab.name}`", labels


def _row(family: Family) -> str:
    labels = ", ".join(f"`{label}`" for label in family.labels) or NONE
    unit = f"`{family.unit}`" if family.unit else NONE
    buckets = ", ".join(_number(b) for b in family.buckets) or NONE
    cells = (
        f"`{family.exposed_name}`",
        family.kind.prometheus_type,
        _RECORDED[family.kind],
        labels,
        unit,
        _cell(family.help),
        buckets,
        *_gitlab(family),
    )
    return "| " + " | ".join(cells) + " |"


def render(catalog: Sequence[Family] = CATALOG) -> str:
    """Return the markdown of `docs/metrics.md` for `catalog`."""
    header = (
        "| family as scraped | type | recorded | labels | unit | HELP | buckets "
        "| GitLab naming | GitLab labels |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = "".join(_row(family) + "\n" for family in catalog)
    return f"{_INTRO}\n## Families\n\n{header}{rows}\n{_gitlab_help()}\n{_api_zero()}"


def _api_zero() -> str:
    """Return the API statuses whose series exist at 0 from the start (EXPECTED_STATUSES)."""
    failures = ", ".join(f"`{f.value}`" for f in TransportFailure)
    rows = "".join(
        f"| `{endpoint.value}` | `{METHODS[endpoint.value]}` | "
        + ", ".join(f"`{code}`" for code in codes)
        + f", {failures} |\n"
        for endpoint, codes in EXPECTED_STATUSES.items()
    )
    return (
        "## API statuses at 0 from the start\n\n"
        "For every runner with a coordinator (a `url`), `ci_runner_api_request_statuses_total`\n"
        "(and `gitlab_runner_api_request_statuses_total`, with its `method`) has a series at 0\n"
        "from the start for each status below, before any call ends, so that `increase()` and\n"
        "`rate()` see the first such answer, also the first after a restart. The set is closed:\n"
        "the statuses GitLab declares for each call the `run` process makes, those GitLab's\n"
        "code answers besides, and those GitLab Runner's client handles by name\n"
        "(`EXPECTED_STATUSES` in `src/alloy_runner/coordinator/api_metrics.py`), and `timeout`\n"
        "and `connection_error` (no answer). Any other status gets its series when first seen.\n"
        "`ci_runner_api_request_duration_seconds` has no series before a call.\n\n"
        "| endpoint | method | status |\n|---|---|---|\n" + rows
    )


def _gitlab_help() -> str:
    """Return the GitLab naming's HELP texts, which differ from the `ci_*` ones."""
    seen: dict[str, str] = {}
    for gitlab in GITLAB.values():
        seen.setdefault(gitlab.name, gitlab.help)
    rows = "".join(f"| `{name}` | {_cell(text)} |\n" for name, text in seen.items())
    return (
        "## HELP texts of the GitLab naming\n\n"
        "As GitLab Runner's source declares them (the `ci_*` families keep the seed's).\n\n"
        "| family as scraped | HELP |\n|---|---|\n" + rows
    )


def main() -> None:
    """Write the reference to standard output."""
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
