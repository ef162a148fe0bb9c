"""The OTLP side of one process: metric readers and a tracer provider, as `OtlpTargets` asks.

The same instruments that feed `/metrics` are pushed by further readers on
the one MeterProvider, so nothing is counted twice. Nothing here is imported
by a process that pushes nothing: the exporters (requests, protobuf, grpc)
are the heaviest imports there are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from alloy_runner.telemetry.otlp import settings
from alloy_runner.telemetry.otlp.targets import (
    MAX_QUEUED_SPANS,
    MAX_SPANS_PER_EXPORT,
    ExportHealth,
    OtlpTargets,
    Signal,
)

if TYPE_CHECKING:
    from opentelemetry.propagators.textmap import TextMapPropagator
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader, MetricsData
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from alloy_runner.build.ports import BuildTracer
    from alloy_runner.coordinator.spool.runs import PipelineRun
    from alloy_runner.telemetry.otlp.cicd_metrics import CicdMetrics

log = logging.getLogger(__name__)


@dataclass
class OtlpPipeline:
    """The OTLP side of one process: metric readers and a tracer provider, each optional."""

    targets: OtlpTargets
    resource: Resource
    readers: tuple[MetricReader, ...] = ()
    tracer_provider: TracerProvider | None = None
    propagator: TextMapPropagator | None = None
    span_processors: list[SpanProcessor] = field(default_factory=list)
    cicd_provider: MeterProvider | None = None  # the CI/CD semconv metrics', OTLP readers only

    @property
    def meter_providers(self) -> tuple[MeterProvider, ...]:
        """Return the providers besides the main one (to shut down with it)."""
        return (self.cicd_provider,) if self.cicd_provider is not None else ()

    def cicd_metrics(
        self,
        version: str,
        workers: Callable[[], Iterable[tuple[str, int]]],
        active_runs: Callable[[], Sequence[tuple[str, str]]] | None,
    ) -> CicdMetrics | None:
        """Return the CI/CD semconv metrics when metrics are pushed; None otherwise."""
        if self.cicd_provider is None:
            return None
        from alloy_runner.telemetry.otlp.cicd_metrics import CicdMetrics

        return CicdMetrics(self.cicd_provider, version, workers=workers, active_runs=active_runs)

    def on_run_end(
        self, version: str, controller: str, metrics: CicdMetrics | None
    ) -> Callable[[PipelineRun], None] | None:
        """Return what to do when a spool pipeline ends: its span and its metrics."""
        hooks = [self.run_spans(version, controller), metrics.run_ended if metrics else None]
        chosen = [hook for hook in hooks if hook is not None]
        if not chosen:
            return None

        def ended(run: PipelineRun) -> None:
            for hook in chosen:
                try:
                    hook(run)
                except Exception:  # telemetry never fails a job
                    log.debug("telemetry: pipeline %d's end not recorded", run.id, exc_info=True)

        return ended

    def build_tracer(self, version: str) -> BuildTracer | None:
        """Return the tracer for builds, or None when traces go nowhere."""
        if self.tracer_provider is None:
            return None
        from alloy_runner.telemetry.otlp.tracing import JobTracer

        return JobTracer(self.tracer_provider, version, propagator=self.propagator)

    def run_spans(self, version: str, controller: str) -> Callable[[PipelineRun], None] | None:
        """Return what emits a spool pipeline's run span when it ends; None without traces."""
        if self.tracer_provider is None:
            return None
        from alloy_runner.telemetry.otlp.run_spans import RunSpans

        return RunSpans(self.tracer_provider, version, controller)


def metric_exporter(signal: Signal, health: ExportHealth) -> MetricExporter:
    """Return the guarded OTLP metric exporter of `signal`'s protocol, reporting to `health`."""
    if signal.protocol == settings.GRPC:
        from alloy_runner.telemetry.otlp.exporters_grpc import GuardedGrpcMetricExporter

        return GuardedGrpcMetricExporter(signal, health)
    from alloy_runner.telemetry.otlp.exporters import GuardedMetricExporter

    return GuardedMetricExporter(signal, health)


def span_exporter(signal: Signal) -> SpanExporter:
    """Return the guarded OTLP span exporter of `signal`'s protocol."""
    health = ExportHealth("traces", signal.endpoint)
    health.install()
    if signal.protocol == settings.GRPC:
        from alloy_runner.telemetry.otlp.exporters_grpc import GuardedGrpcSpanExporter

        return GuardedGrpcSpanExporter(signal, health)
    from alloy_runner.telemetry.otlp.exporters import GuardedSpanExporter

    return GuardedSpanExporter(signal, health)


def console_metric_exporter() -> MetricExporter:
    """Return the console exporter (OTEL_METRICS_EXPORTER=console), with the OTLP names."""
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricExportResult

    from alloy_runner.telemetry.otlp.names import otlp_named

    class Console(ConsoleMetricExporter):
        def export(
            self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
        ) -> MetricExportResult:
            return super().export(otlp_named(metrics_data), timeout_millis, **kwargs)

    return Console()


def _readers(targets: OtlpTargets, health: ExportHealth | None) -> tuple[MetricReader, ...]:
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    exporters: list[MetricExporter] = []
    if targets.metrics is not None and health is not None:
        exporters.append(metric_exporter(targets.metrics, health))
    if targets.console_metrics:
        exporters.append(console_metric_exporter())
    interval = targets.interval * 1000 if targets.interval is not None else None
    timeout = targets.export_timeout * 1000 if targets.export_timeout is not None else None
    return tuple(
        PeriodicExportingMetricReader(
            exporter, export_interval_millis=interval, export_timeout_millis=timeout
        )
        for exporter in exporters
    )


def _tracer_provider(targets: OtlpTargets, resource: Resource) -> TracerProvider:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    exporters: list[SpanExporter] = []
    if targets.traces is not None:
        exporters.append(span_exporter(targets.traces))
    if targets.console_traces:
        exporters.append(ConsoleSpanExporter())
    from alloy_runner.telemetry.otlp.run_spans import PresetIds

    provider = TracerProvider(resource=resource, shutdown_on_exit=False, id_generator=PresetIds())
    for exporter in exporters:
        provider.add_span_processor(
            BatchSpanProcessor(
                exporter,
                max_queue_size=MAX_QUEUED_SPANS,
                max_export_batch_size=MAX_SPANS_PER_EXPORT,
                schedule_delay_millis=targets.schedule_delay_ms,
                export_timeout_millis=targets.span_export_timeout_ms,
            )
        )
    return provider


def start_otlp(targets: OtlpTargets, resource: Resource) -> OtlpPipeline:
    """Create the readers and the tracer provider that `targets` asks for; nothing is sent yet."""
    pipeline = OtlpPipeline(targets, resource)
    if not targets.enabled:
        return pipeline
    health = ExportHealth("metrics", targets.metrics.endpoint) if targets.metrics else None
    if health is not None:
        health.install()
    pipeline.readers = _readers(targets, health)
    cicd_readers = _readers(targets, health)  # the same sinks, for the semconv provider
    if cicd_readers:
        from opentelemetry.sdk.metrics import MeterProvider

        pipeline.cicd_provider = MeterProvider(
            metric_readers=list(cicd_readers), resource=resource, shutdown_on_exit=False
        )
    if targets.tracing:
        pipeline.tracer_provider = _tracer_provider(targets, resource)
        pipeline.propagator = settings.load_propagator(targets.propagators)
    return pipeline
