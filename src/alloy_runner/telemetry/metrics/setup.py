"""The MeterProvider, its readers and views, and the resource that names this process."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING

from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Observation
from opentelemetry.sdk.metrics import (
    AlwaysOffExemplarFilter,
    AlwaysOnExemplarFilter,
    ExemplarFilter,
    MeterProvider,
    TraceBasedExemplarFilter,
)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry

from alloy_runner.telemetry.catalog.instruments import CATALOG, Family, Kind
from alloy_runner.telemetry.catalog.naming import MetricNames, RunnerIdentity
from alloy_runner.telemetry.metrics.exposition import PrometheusReader
from alloy_runner.telemetry.otlp.env_lists import RESOURCE_ATTRIBUTES, parse_pairs
from alloy_runner.telemetry.otlp.settings import SDK_DISABLED

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.trace import TracerProvider

    from alloy_runner.version import BuildInfo

log = logging.getLogger(__name__)

FIRST_SCRAPE_HOLD = 120.0  # seconds counts made at start wait for the first scrape at most

# What an observing source returns: one value, or (value, attributes) pairs.
Reading = float | Iterable[tuple[float, dict[str, str]]]


def make_resource(build: BuildInfo, env: Mapping[str, str] = os.environ) -> Resource:
    """Name this process; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over defaults.

    The variables are read here (resource_warnings() says what is ignored) and kept from
    the SDK's own detector, which would warn in its words, twice.
    """
    attributes: dict[str, str] = {
        "service.name": build.name,
        "service.version": build.version,
        "service.instance.id": str(uuid.uuid4()),
        "host.name": socket.gethostname(),
    }
    attributes.update(parse_pairs(RESOURCE_ATTRIBUTES, env.get(RESOURCE_ATTRIBUTES, ""))[0])
    if service := env.get("OTEL_SERVICE_NAME", "").strip():
        attributes["service.name"] = service
    with _hidden(RESOURCE_ATTRIBUTES, "OTEL_SERVICE_NAME"):
        return Resource.create(attributes)


def resource_warnings(env: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """Say which part of OTEL_RESOURCE_ATTRIBUTES the runner ignores (not key=value)."""
    warning = parse_pairs(RESOURCE_ATTRIBUTES, env.get(RESOURCE_ATTRIBUTES, ""))[1]
    return (warning,) if warning else ()


EXEMPLAR_FILTERS: dict[str, Callable[[], ExemplarFilter]] = {
    "trace_based": TraceBasedExemplarFilter,
    "always_on": AlwaysOnExemplarFilter,
    "always_off": AlwaysOffExemplarFilter,
}


@contextlib.contextmanager
def sdk_enabled() -> Iterator[None]:
    """Hide OTEL_SDK_DISABLED from the SDK while a MeterProvider is made.

    The variable turns the SDK's own meters into no-ops, which would empty
    `/metrics`: the Prometheus endpoint is this runner's interface, not an
    export of the SDK's, so only the push (`otlp.targets`) obeys the variable.
    """
    with _hidden(SDK_DISABLED):
        yield


@contextlib.contextmanager
def _hidden(*names: str) -> Iterator[None]:
    """Hide environment variables from the SDK for a moment (it reads os.environ itself)."""
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def catalog_views(catalog: Sequence[Family] = CATALOG) -> list[View]:
    """Return one View per histogram family, giving it the catalog's buckets in seconds."""
    return [
        View(
            instrument_name=family.name,
            aggregation=ExplicitBucketHistogramAggregation(boundaries=family.buckets),
        )
        for family in catalog
        if family.kind is Kind.HISTOGRAM
    ]


class Telemetry:
    """One MeterProvider feeding `/metrics` (and OTLP when configured) from one set of instruments.

    The Prometheus reader writes into `registry`, this process's own
    CollectorRegistry, so nothing global leaks in or out. `tracer_provider`,
    when given, is shut down with the meters, within the same deadline.
    """

    def __init__(
        self,
        build: BuildInfo,
        *,
        registry: CollectorRegistry | None = None,
        resource: Resource | None = None,
        extra_readers: Sequence[MetricReader] = (),
        tracer_provider: TracerProvider | None = None,
        exemplar_filter: str = "trace_based",
        meter_providers: Sequence[MeterProvider] = (),
        names: MetricNames = MetricNames.ALLOYCI,
        identities: Callable[[], Mapping[str, RunnerIdentity]] = dict,
    ) -> None:
        self.build = build
        self.tracer_provider = tracer_provider
        self.meter_providers = tuple(meter_providers)  # more to shut down with this one
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.prometheus = PrometheusReader(self.registry, names, identities)
        with sdk_enabled():  # OTEL_SDK_DISABLED turns off the push, never /metrics
            self.provider = MeterProvider(
                metric_readers=[self.prometheus, *extra_readers],
                resource=resource if resource is not None else make_resource(build),
                views=catalog_views(),
                shutdown_on_exit=False,  # `shutdown` does it, within its deadline
                exemplar_filter=EXEMPLAR_FILTERS[exemplar_filter](),
            )
        self.meter = self.provider.get_meter("alloy_runner", build.version)
        self._families: set[str] = set()
        self._shutdown_lock = threading.Lock()
        self._is_shut_down = False

    def _claim(self, family: Family, kinds: tuple[Kind, ...]) -> None:
        if family.kind not in kinds:
            raise ValueError(f"{family.name} is a {family.kind.value}, not one of {kinds}")
        if family.name in self._families:
            raise ValueError(f"{family.name} is already registered")
        self._families.add(family.name)

    def counter(self, family: Family) -> Counter:
        """Create the counter that records `family`'s events."""
        self._claim(family, (Kind.COUNTER,))
        return self.meter.create_counter(family.name, unit=family.unit, description=family.help)

    def histogram(self, family: Family) -> Histogram:
        """Create the histogram that records `family`'s observations."""
        self._claim(family, (Kind.HISTOGRAM,))
        return self.meter.create_histogram(family.name, unit=family.unit, description=family.help)

    def observe(self, family: Family, source: Callable[[], Reading]) -> None:
        """Expose `family` as read from `source` at every collection (a scrape or an export)."""
        self._claim(family, (Kind.GAUGE, Kind.OBSERVED_COUNTER))

        def callback(_options: CallbackOptions) -> Iterable[Observation]:
            reading = source()
            if isinstance(reading, int | float):
                return [Observation(reading)]
            return [Observation(value, attributes) for value, attributes in reading]

        if family.kind is Kind.GAUGE:
            self.meter.create_observable_gauge(
                family.name, [callback], unit=family.unit, description=family.help
            )
        else:
            self.meter.create_observable_counter(
                family.name, [callback], unit=family.unit, description=family.help
            )

    def after_first_scrape(self, action: Callable[[], None], *, scraped: bool = True) -> None:
        """Run `action` once a scrape has read the counters at their start values.

        What a process counts before its first scrape is invisible to
        `increase()`: the series appears with the count already in it. Counts
        made at start (jobs a crashed process left behind) wait for that first
        scrape, or at most FIRST_SCRAPE_HOLD seconds; at once when nothing
        serves `/metrics` (`scraped` False).
        """
        hold = FIRST_SCRAPE_HOLD if scraped else 0.0

        def wait() -> None:
            self.prometheus.first_collection.wait(hold)
            action()

        threading.Thread(target=wait, name="after-first-scrape", daemon=True).start()

    @property
    def families(self) -> frozenset[str]:
        """Return the names of the instruments registered so far."""
        return frozenset(self._families)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Flush and stop every reader and span processor within `timeout` seconds; safe twice.

        Each provider shuts down on a thread of its own, so a collector that
        never answers costs at most `timeout`: what it has not taken by then
        is dropped, and the process exits without waiting for it.
        """
        with self._shutdown_lock:
            if self._is_shut_down:
                return
            self._is_shut_down = True
        deadline = time.monotonic() + timeout
        stoppers = [("metrics", lambda: self.provider.shutdown(timeout_millis=timeout * 1000))]
        if self.tracer_provider is not None:
            stoppers.append(("traces", self.tracer_provider.shutdown))
        for more in self.meter_providers:
            stoppers.append(("cicd metrics", partial(more.shutdown, timeout_millis=timeout * 1000)))
        threads = [
            threading.Thread(target=_stop, args=(what, stop), name=f"stop-{what}", daemon=True)
            for what, stop in stoppers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        late = [t.name.removeprefix("stop-") for t in threads if t.is_alive()]
        if late:
            log.warning(
                "telemetry shutdown: %s not flushed within %.1fs; the rest is dropped",
                " and ".join(late),
                timeout,
            )


def _stop(what: str, stop: Callable[[], object]) -> None:
    try:
        stop()
    except Exception:  # a sink failing at exit must not fail the exit
        log.warning("telemetry shutdown: %s did not finish cleanly", what, exc_info=True)
