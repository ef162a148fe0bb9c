"""Helpers shared by alloy-runner's tests: real processes and servers on loopback, always stopped.

- `RunnerProcess`, `run_cli`: the real `alloy-runner` executable, with HOME in a
  temporary directory and no inherited runner settings.
- `start_prometheus`, `PrometheusServer`: Debian's Prometheus server scraping targets.
- `parse_exposition`, `parse_openmetrics`, `sample_value`, `metric_value`,
  `promtool_check_metrics`:
  read `/metrics` as Prometheus would.
- `LoopbackHTTPServer`, `QuietHandler`: a fake HTTP server on 127.0.0.1, served from a
  background thread (the fake coordinator, OTLP and Pyroscope receivers are ones);
  `SilentListener`: a server that accepts connections and never answers.
- `Service`: the start/stop/`with` protocol every server and process here follows.
- `http_request`, `raw_exchange`, `free_port`, `wait_until`, `wait_notified`: the plumbing
  under them.
"""

from __future__ import annotations

from tests.support.exposition import (
    metric_value,
    parse_exposition,
    parse_openmetrics,
    promtool_check_metrics,
    sample_value,
)
from tests.support.http_client import Reply, free_port, http_request, raw_exchange
from tests.support.loopback import LoopbackHTTPServer, QuietHandler, SilentListener
from tests.support.polling import wait_notified, wait_until
from tests.support.prometheus import PrometheusServer, scrape_config, start_prometheus
from tests.support.runner import (
    ALLOY_RUNNER,
    LISTENING,
    STARTED,
    RunnerExited,
    RunnerProcess,
    StartRunner,
    run_cli,
    runner_env,
    split_hostport,
)
from tests.support.service import Service

__all__ = [
    "ALLOY_RUNNER",
    "LISTENING",
    "STARTED",
    "LoopbackHTTPServer",
    "PrometheusServer",
    "QuietHandler",
    "Reply",
    "RunnerExited",
    "RunnerProcess",
    "Service",
    "SilentListener",
    "StartRunner",
    "free_port",
    "http_request",
    "metric_value",
    "parse_exposition",
    "parse_openmetrics",
    "promtool_check_metrics",
    "raw_exchange",
    "run_cli",
    "runner_env",
    "sample_value",
    "scrape_config",
    "split_hostport",
    "start_prometheus",
    "wait_notified",
    "wait_until",
]
