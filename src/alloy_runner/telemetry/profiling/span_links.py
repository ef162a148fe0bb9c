"""Profiles linked to job spans: the `pyroscope-otel` span processor on the tracer provider.

`PyroscopeSpanProcessor` (pyroscope-otel 1.1, on pyroscope-io 1.x's
`add_thread_tag(key, value)`, which tags the calling thread) sets, when a
root span starts (a job's span, whose parent is remote: the pipeline's or
the coordinator's), the attribute `pyroscope.profile.id` on the span and the
tags `span_id`, `span_name` and `trace_id` on the calling thread, and
removes the tags when the span ends. Pyroscope then keeps that thread's
samples labelled with the span id, and Grafana jumps from the
span to its flame graph. (pyroscope-io sends the tags as labels of the samples in its pprof
profiles.)

What it can and cannot attribute here: a job's span starts and ends on the
event-loop thread, so the tags cover the loop thread for the job's life.
With one build at a time, every sample of the loop thread in that time (log
streaming and masking, the spool's and the coordinator's requests) is the
job's. With builds running together, they share the loop thread: each
sample carries the tags of every job running then, so a flame graph per
span shows the loop's work while its job ran, not its job's share of it.
Work a build hands to other threads (`asyncio.to_thread`: artifacts, cache,
spool writes) is not tagged, and the scripts' own processes are not this
process's profile at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider


def link_profiles(provider: TracerProvider) -> None:
    """Tag profiles with the span id of the job whose span is open (profiling must be on)."""
    from pyroscope.otel import PyroscopeSpanProcessor  # type: ignore[import-untyped]

    provider.add_span_processor(PyroscopeSpanProcessor())
