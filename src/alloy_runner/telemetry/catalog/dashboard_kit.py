"""The pieces the dashboards are made of: the names of a naming, queries, panels."""

from __future__ import annotations

from dataclasses import dataclass

from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as model

from alloy_runner.telemetry.catalog.instruments import Family
from alloy_runner.telemetry.catalog.naming import GITLAB

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "[$__rate_interval]"
BUSY = 'state!="idle"'
Panel = Builder[model.Panel]


@dataclass(frozen=True)
class Names:
    """The names and labels of one naming, for the queries."""

    gitlab: bool

    def __call__(self, family: Family) -> str:
        """Return `family`'s name as scraped under this naming."""
        mapped = GITLAB.get(family.name)
        return mapped.name if self.gitlab and mapped is not None else family.exposed_name

    @property
    def runner(self) -> str:
        """Return the label that holds the `[[runners]]` name."""
        return "runner_name" if self.gitlab else "runner"

    def sel(self, extra: str = "", runner: bool = True) -> str:
        """Return the selector of the chosen job (and runners), with `extra` matchers."""
        parts = ['job=~"$job"']
        if runner:
            parts.append(f'{self.runner}=~"$runner"')
        if extra:
            parts.append(extra)
        return "{" + ", ".join(parts) + "}"


def query(expr: str, legend: str = "", *, instant: bool = False) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).legend_format(legend or "__auto")
    return q.instant() if instant else q.range()


def series(
    title: str, description: str, *queries: prometheus.Dataquery, unit: str = ""
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .no_value("0")
        .height(8)
        .span(8)
    )
    if unit:
        panel = panel.unit(unit)
    for ref, q in enumerate(queries):
        panel = panel.with_target(q.ref_id(chr(ord("A") + ref)))
    return panel


def single(title: str, description: str, *queries: prometheus.Dataquery) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .no_value("0")
        .height(4)
        .span(4)
    )
    for ref, q in enumerate(queries):
        panel = panel.with_target(q.ref_id(chr(ord("A") + ref)))
    return panel


def quantiles(n: Names, family: Family, selector: str, by: str = "") -> list[prometheus.Dataquery]:
    bucket = f"{n(family)}_bucket{selector}"
    group = f"le, {by}" if by else "le"
    return [
        query(
            f"histogram_quantile({q}, sum by ({group}) (rate({bucket}{RATE})))",
            f"p{round(q * 100)}" + (f" {{{{{by}}}}}" if by else ""),
        )
        for q in (0.5, 0.9, 0.99)
    ]
