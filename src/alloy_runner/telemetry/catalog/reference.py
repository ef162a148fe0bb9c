"""Render `docs/metrics.md`, the metrics reference, from `CATALOG`.

Regenerate the file with `python -m alloy_runner.telemetry.catalog.reference > docs/metrics.md`;
a test fails while the committed file differs from what this module renders.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from alloy_runner.telemetry.catalog.instruments import CATALOG, Family, Kind

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
- **Units** are the instruments' OpenTelemetry (UCUM) units: `s` is seconds,
  `By` is bytes; the family names already end in them.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _number(value: float) -> str:
    return format(value, "g")


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
    )
    return "| " + " | ".join(cells) + " |"


def render(catalog: Sequence[Family] = CATALOG) -> str:
    """Return the markdown of `docs/metrics.md` for `catalog`."""
    header = (
        "| family as scraped | type | recorded | labels | unit | HELP | buckets |\n"
        "|---|---|---|---|---|---|---|\n"
    )
    rows = "".join(_row(family) + "\n" for family in catalog)
    return f"{_INTRO}\n## Families\n\n{header}{rows}"


def main() -> None:
    """Write the reference to standard output."""
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
