"""The part of the runner's own environment that a job inherits.

The runner's telemetry settings are the runner's, not the job's: OTEL_* (a
collector's endpoint and its token in OTEL_EXPORTER_OTLP_HEADERS) and
PYROSCOPE_* never reach a job, whatever the executor. A job that wants its
own gets them from its variables or from the runner's `environment`; its
trace context comes as TRACEPARENT/TRACESTATE/BAGGAGE from the job's span.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

RUNNER_ONLY_PREFIXES = ("OTEL_", "PYROSCOPE_")


def host_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return this process's environment without the runner's own telemetry settings."""
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if not k.upper().startswith(RUNNER_ONLY_PREFIXES)}
