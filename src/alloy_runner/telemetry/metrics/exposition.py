"""The Prometheus reader: the SDK's metrics as `/metrics` families, under one or both namings.

It takes the place of `opentelemetry-exporter-prometheus`'s PrometheusMetricReader
(0.66b2), which drops three things `/metrics` needs: the start time of a
cumulative stream (OpenMetrics `_created`), the SDK's exemplars (a trace id on
a histogram bucket), and any renaming of labels. This reader is a
MetricReader like it, with every temporality cumulative, and one collection
per scrape; it renders each stream under the names `metric_names` chooses
(telemetry/catalog/naming.py), so one instrument feeds both namings and
nothing is counted twice.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    HistogramDataPoint,
    Metric,
    MetricReader,
    MetricsData,
    NumberDataPoint,
    Sum,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    UnknownMetricFamily,
)
from prometheus_client.metrics_core import Metric as PromMetric
from prometheus_client.samples import Exemplar

from alloy_runner.telemetry.catalog.instruments import CATALOG, Family
from alloy_runner.telemetry.catalog.naming import (
    GITLAB,
    GitlabFamily,
    MetricNames,
    RunnerIdentity,
    gitlab_labels,
)

_BY_NAME = {family.name: family for family in CATALOG}
_UNITS = {"s": "seconds", "By": "bytes"}
_NANOS = 1e9

_rendering = threading.local()


@contextmanager
def openmetrics_rendering() -> Iterator[None]:
    """Render OpenMetrics on this thread meanwhile: `_created` samples, exemplars, no clash."""
    _rendering.openmetrics = True
    try:
        yield
    finally:
        _rendering.openmetrics = False


def _openmetrics() -> bool:
    return bool(getattr(_rendering, "openmetrics", False))


Labeler = Callable[[Mapping[str, str]], tuple[str, ...]]


@dataclass
class _Point:
    value: float = 0.0
    created: float | None = None
    bounds: Sequence[float] = ()
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    exemplars: dict[int, tuple[float, Exemplar]] = field(default_factory=dict)


@dataclass
class _Out:
    kind: str  # counter, gauge or histogram
    name: str  # the family's name (a counter's without `_total`)
    help: str
    unit: str
    labels: tuple[str, ...]
    points: dict[tuple[str, ...], _Point] = field(default_factory=dict)


def _kind(metric: Metric) -> str | None:
    data = metric.data
    if isinstance(data, HistogramData):
        return "histogram"
    if isinstance(data, Sum):
        cumulative = data.aggregation_temporality == AggregationTemporality.CUMULATIVE
        return "counter" if data.is_monotonic and cumulative else "gauge"
    if isinstance(data, Gauge):
        return "gauge"
    return None


Kept = dict[int, tuple[float, Exemplar]]  # bucket index -> (time, exemplar), the latest


def _keep_exemplars(point: HistogramDataPoint, kept: Kept) -> None:
    """Keep each bucket's latest exemplar: the SDK hands an exemplar to one collection only."""
    for ex in point.exemplars:
        if not ex.trace_id:
            continue
        index = bisect.bisect_left(list(point.explicit_bounds), ex.value)
        seconds = ex.time_unix_nano / _NANOS
        if index not in kept or kept[index][0] <= seconds:
            labels = {"trace_id": f"{ex.trace_id:032x}", "span_id": f"{ex.span_id or 0:016x}"}
            kept[index] = (seconds, Exemplar(labels, ex.value, seconds))


def _add_exemplars(kept: Kept, into: _Point) -> None:
    for index, (seconds, exemplar) in kept.items():
        if index not in into.exemplars or into.exemplars[index][0] <= seconds:
            into.exemplars[index] = (seconds, exemplar)


def _merge(
    out: _Out,
    key: tuple[str, ...],
    point: NumberDataPoint | HistogramDataPoint,
    kept: Kept | None = None,
) -> None:
    """Add one SDK data point into `out`, summing points whose labels become equal."""
    into = out.points.setdefault(key, _Point())
    start = point.start_time_unix_nano / _NANOS if point.start_time_unix_nano else None
    if start is not None:
        into.created = start if into.created is None else min(into.created, start)
    if isinstance(point, HistogramDataPoint):
        if not into.counts:
            into.bounds = tuple(point.explicit_bounds)
            into.counts = [0] * len(point.bucket_counts)
        into.counts = [a + b for a, b in zip(into.counts, point.bucket_counts, strict=True)]
        into.total += point.sum
        if kept:
            _add_exemplars(kept, into)
    else:
        into.value += point.value


class _Collector:
    """The prometheus_client collector that renders the reader's latest collection."""

    def __init__(self, reader: PrometheusReader) -> None:
        self._reader = reader

    def collect(self) -> Iterator[PromMetric]:
        data = self._reader.collect_now()
        if data is None:
            return
        yield from self._reader.render(data)


class PrometheusReader(MetricReader):
    """Collect on every scrape; render each stream under the chosen namings."""

    def __init__(
        self,
        registry: CollectorRegistry,
        names: MetricNames = MetricNames.ALLOYCI,
        identities: Callable[[], Mapping[str, RunnerIdentity]] = dict,
    ) -> None:
        cumulative = AggregationTemporality.CUMULATIVE
        super().__init__(
            preferred_temporality={
                kind: cumulative
                for kind in (
                    Counter,
                    UpDownCounter,
                    Histogram,
                    ObservableCounter,
                    ObservableUpDownCounter,
                    ObservableGauge,
                )
            }
        )
        self.names = names
        self.identities = identities
        self._registry = registry
        self._collector = _Collector(self)
        self._received: MetricsData | None = None
        self._lock = threading.Lock()
        self._exemplars: dict[tuple[str, tuple[tuple[str, str], ...]], Kept] = {}
        self.first_collection = threading.Event()  # set once a scrape has read the streams
        registry.register(self._collector)

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        self._received = metrics_data

    def collect_now(self) -> MetricsData | None:
        """Run one collection (the observable callbacks included) and return what it produced."""
        if getattr(self, "_collect", None) is None:
            return None  # not on a MeterProvider yet (the registry describes it at register)
        with self._lock:
            self._received = None
            self.collect()
            self.first_collection.set()
            return self._received

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._registry.unregister(self._collector)

    # --- rendering -------------------------------------------------------------------

    def _kept(self, name: str, point: NumberDataPoint | HistogramDataPoint) -> Kept | None:
        """Return the exemplars kept for one histogram stream, updated with `point`'s."""
        if not isinstance(point, HistogramDataPoint):
            return None
        key = (name, tuple(sorted((str(k), str(v)) for k, v in (point.attributes or {}).items())))
        kept = self._exemplars.setdefault(key, {})
        _keep_exemplars(point, kept)
        return kept

    def _targets(self, metric: Metric) -> list[tuple[str, str, str, tuple[str, ...], Labeler]]:
        """Return (name, help, unit, labels, labeler) for every name `metric` is shown under."""
        family: Family | None = _BY_NAME.get(metric.name)
        if family is None:
            unit = _UNITS.get(metric.unit or "", "")
            keys: set[str] = set()
            for point in metric.data.data_points:
                keys.update(str(k) for k in (point.attributes or {}))
            labels = tuple(sorted(keys))
            return [(metric.name, metric.description or "", unit, labels, _plain(labels))]
        unit = _UNITS.get(family.unit, "")
        gitlab: GitlabFamily | None = GITLAB.get(family.name)
        targets = []
        if self.names.alloyci or gitlab is None:
            targets.append((family.name, family.help, unit, family.labels, _plain(family.labels)))
        if self.names.gitlab and gitlab is not None:
            who = self.identities()

            def labeler(attrs: Mapping[str, str], gl: GitlabFamily = gitlab) -> tuple[str, ...]:
                return gitlab_labels(gl, attrs, who)

            targets.append((gitlab.family_name, gitlab.help, unit, gitlab.labels, labeler))
        return targets

    def render(self, data: MetricsData) -> Iterator[PromMetric]:
        """Yield `target_info` and every family of `data`, merged and named."""
        outs: dict[tuple[str, str], _Out] = {}
        resource: Mapping[str, Any] = {}
        for rm in data.resource_metrics:
            resource = {**resource, **rm.resource.attributes}
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    kind = _kind(metric)
                    if kind is None:
                        continue
                    for name, help_text, unit, labels, labeler in self._targets(metric):
                        out = outs.setdefault(
                            (kind, name), _Out(kind, name, help_text, unit, labels)
                        )
                        for point in metric.data.data_points:
                            if not isinstance(point, NumberDataPoint | HistogramDataPoint):
                                continue
                            attrs = {str(k): str(v) for k, v in (point.attributes or {}).items()}
                            _merge(out, labeler(attrs), point, self._kept(metric.name, point))
        if resource:
            yield _target_info(resource)
        openmetrics = _openmetrics()
        gauges = {name for kind, name in outs if kind != "counter"}
        for out in outs.values():
            yield _family(out, openmetrics, clash=out.name in gauges and out.kind == "counter")


def _plain(labels: tuple[str, ...]) -> Labeler:
    def labeler(attrs: Mapping[str, str]) -> tuple[str, ...]:
        return tuple(attrs.get(label, "") for label in labels)

    return labeler


def _target_info(resource: Mapping[str, Any]) -> PromMetric:
    labels = {_sanitize(k): str(v) for k, v in resource.items()}
    return InfoMetricFamily("target", "Target metadata", value=labels)


def _sanitize(key: str) -> str:
    text = "".join(c if c.isalnum() or c == "_" else "_" for c in key)
    return f"_{text}" if text[:1].isdigit() else text


def _family(out: _Out, openmetrics: bool, clash: bool) -> PromMetric:
    """Turn one merged family into prometheus_client's.

    `_created` and exemplars are OpenMetrics only. GitLab's `gitlab_runner_jobs`
    (a gauge) and `gitlab_runner_jobs_total` (a counter) are one name in
    OpenMetrics, where a counter's family drops `_total`: there the counter is
    written as an `unknown` family with its full name, which scrapes to the same
    series.
    """
    labels = list(out.labels)
    unit = out.unit if openmetrics else ""
    if out.kind == "counter":
        if clash and openmetrics:
            unknown = UnknownMetricFamily(f"{out.name}_total", out.help, labels=labels)
            for key, point in out.points.items():
                unknown.add_metric(list(key), point.value)
            return unknown
        counter = CounterMetricFamily(out.name, out.help, labels=labels, unit=unit)
        for key, point in out.points.items():
            created = point.created if openmetrics else None
            counter.add_metric(list(key), point.value, created=created)
        return counter
    if out.kind == "gauge":
        gauge = GaugeMetricFamily(out.name, out.help, labels=labels, unit=unit)
        for key, point in out.points.items():
            gauge.add_metric(list(key), point.value)
        return gauge
    histogram = HistogramMetricFamily(out.name, out.help, labels=labels, unit=unit)
    for key, point in out.points.items():
        histogram.add_metric(list(key), _buckets(point, openmetrics), point.total)
        if openmetrics and point.created is not None:
            histogram.samples.append(
                histogram.samples[-1]._replace(
                    name=f"{out.name}_created",
                    labels=dict(zip(labels, key, strict=True)),
                    value=point.created,
                    exemplar=None,
                )
            )
    return histogram


def _buckets(point: _Point, openmetrics: bool) -> list[Any]:
    buckets: list[Any] = []
    running = 0
    for index, (bound, count) in enumerate(
        zip((*point.bounds, float("inf")), point.counts, strict=True)
    ):
        running += count
        le = "+Inf" if bound == float("inf") else _le(bound)
        kept = point.exemplars.get(index) if openmetrics else None
        buckets.append((le, running, kept[1]) if kept is not None else (le, running))
    return buckets


def _le(bound: float) -> str:
    return f"{bound}"  # as the bucket bound is given (the catalog's 30 is "30"), as ever
