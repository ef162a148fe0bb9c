"""A real Prometheus server (Debian's /usr/bin/prometheus) on a loopback port, always stopped."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.support.http_client import free_port
from tests.support.polling import wait_until
from tests.support.service import Service

PROMETHEUS = "/usr/bin/prometheus"
SCRAPE_INTERVAL = "1s"


def scrape_config(job: str, targets: Sequence[str]) -> dict[str, Any]:
    """Return a scrape config for `job` with static `targets` (`host:port`)."""
    return {"job_name": job, "static_configs": [{"targets": list(targets)}]}


class PrometheusServer(Service):
    """A Prometheus server scraping every 1s, with its config and storage under `workdir`."""

    def __init__(
        self,
        workdir: Path,
        scrape_configs: Sequence[Mapping[str, Any]],
        ready_timeout: float = 20.0,
        rule_files: Sequence[Path] = (),
    ) -> None:
        self.workdir = workdir
        self._rule_files = [str(p) for p in rule_files]
        self.config_path = workdir / "prometheus.yml"
        self.log_path = workdir / "prometheus.log"
        self._scrape_configs = [dict(c) for c in scrape_configs]
        self._ready_timeout = ready_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def url(self, path: str) -> str:
        """Return the URL of `path` on this server."""
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> PrometheusServer:
        """Write the config, start the server and wait for /-/ready (retrying a lost port race)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {
                "scrape_interval": SCRAPE_INTERVAL,
                "scrape_timeout": SCRAPE_INTERVAL,
                "evaluation_interval": SCRAPE_INTERVAL,
            },
            "scrape_configs": self._scrape_configs,
        }
        if self._rule_files:
            config["rule_files"] = self._rule_files
        self.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        for _attempt in range(3):
            self.port = free_port()
            with self.log_path.open("ab") as log:
                self._proc = subprocess.Popen(
                    [
                        PROMETHEUS,
                        f"--config.file={self.config_path}",
                        f"--storage.tsdb.path={self.workdir / 'data'}",
                        f"--web.listen-address=127.0.0.1:{self.port}",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            try:
                wait_until(self._ready_or_exited, self._ready_timeout, what="prometheus /-/ready")
            except BaseException:
                self.stop()
                raise
            if self._proc.poll() is None:
                return self
            self.stop()
        raise AssertionError(f"prometheus did not start; its log:\n{self.log}")

    def _ready_or_exited(self) -> bool:
        assert self._proc is not None
        if self._proc.poll() is not None:
            return True
        try:
            with urllib.request.urlopen(self.url("/-/ready"), timeout=1.0) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    @property
    def log(self) -> str:
        """Return what the server logged so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def api(self, path: str, **params: str) -> Any:
        """GET `/api/v1/<path>` and return its `data`; fail unless the status is success."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(self.url(f"/api/v1/{path}?{query}"), timeout=5.0) as response:
            reply = json.load(response)
        assert reply["status"] == "success", reply
        return reply["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Evaluate an instant query now and return its result vector."""
        data = self.api("query", query=promql)
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def wait_for_query(self, promql: str, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Poll an instant query until its result is not empty; return that result."""
        return wait_until(lambda: self.query(promql), timeout, interval=0.25, what=promql)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (TERM, then KILL after `timeout`); safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)

    def __enter__(self) -> PrometheusServer:
        return self.start() if self._proc is None else self  # start_prometheus started it


def start_prometheus(
    tmp_path: Path,
    targets: Sequence[str] = (),
    *,
    job: str = "alloy-runner",
    scrape_configs: Sequence[Mapping[str, Any]] | None = None,
    rule_files: Sequence[Path] = (),
) -> PrometheusServer:
    """Start Prometheus scraping `targets` as `job` (or `scrape_configs`); use it with `with`.

    `rule_files` are evaluated every second, as the scrapes.
    """
    configs = scrape_configs if scrape_configs is not None else [scrape_config(job, targets)]
    return PrometheusServer(tmp_path / "prometheus", configs, rule_files=rule_files).start()
