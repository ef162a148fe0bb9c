"""OTLP push to an OpenTelemetry Collector: targets, guarded exporters, job tracing."""
