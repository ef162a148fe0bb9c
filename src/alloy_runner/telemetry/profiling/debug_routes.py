"""The on-demand profiles under /debug/pprof/, on the metrics server.

The same access rules as /metrics apply: `/debug/pprof/` (index, and where
continuous profiles go), `/debug/pprof/goroutine` (threads and asyncio tasks)
and `/debug/pprof/profile?seconds=N` (a CPU profile in pprof's format).
"""

from __future__ import annotations

import asyncio
import html
import time
from http import HTTPStatus
from typing import TYPE_CHECKING

from alloy_runner.telemetry.web.server import Response

if TYPE_CHECKING:
    from alloy_runner.telemetry.profiling.continuous import ContinuousProfiler
    from alloy_runner.telemetry.profiling.cpu_sampler import CpuProfiler
    from alloy_runner.telemetry.web.server import MetricsServer

MAX_PROFILE_SECONDS = 60
DEFAULT_PROFILE_SECONDS = 30  # as Go's /debug/pprof/profile


class DebugProfiles:
    """The /debug/pprof/ routes: index, thread and task dump, and CPU profile."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None,
        continuous: ContinuousProfiler | None = None,
        *,
        cpu: CpuProfiler | None = None,
    ) -> None:
        self._loop = loop
        self._continuous = continuous
        self._cpu = cpu
        self._closed = False

    @property
    def cpu(self) -> CpuProfiler:
        # Made on first use: the sampler and its protobuf code cost ~5 MB an idle runner
        # that is never profiled on demand does not need.
        if self._cpu is None:
            from alloy_runner.telemetry.profiling.cpu_sampler import CpuProfiler

            self._cpu = CpuProfiler()
            if self._closed:
                self._cpu.close()
        return self._cpu

    def install(self, server: MetricsServer) -> None:
        """Add the routes to `server`."""
        server.add_route("/debug/pprof", self.index)
        server.add_route("/debug/pprof/", self.index)
        server.add_route("/debug/pprof/goroutine", self.goroutine)
        server.add_route("/debug/pprof/profile", self.profile)

    def close(self) -> None:
        """End a CPU profile being taken (at shutdown) and refuse new ones."""
        self._closed = True
        if self._cpu is not None:
            self._cpu.close()

    def index(self, _params: dict[str, list[str]], _headers: dict[str, str]) -> Response:
        """Answer /debug/pprof/: what is here, and where continuous profiles go."""
        profiler = self._continuous
        d = profiler.destination if profiler is not None and profiler.running else None
        if d is None:
            where = (
                "Continuous profiling is off: set <code>[profiling] server_address</code> in "
                "config.toml, <code>--profiling-server</code> or "
                "<code>PYROSCOPE_SERVER_ADDRESS</code> to push profiles to Pyroscope."
            )
        else:
            tags = ", ".join(f"{k}={v}" for k, v in d.tags)
            where = (
                f"Continuous profiles go to Pyroscope at {_h(d.server)} as "
                f"<code>service_name=&quot;{_h(d.application)}&quot;</code>, every "
                f"{d.upload_interval}s at {d.sample_rate} Hz, tagged {_h(tags)}."
            )
        rows = "".join(
            f'<tr><td><a href="{href}">{name}</a></td><td>{_h(text)}</td></tr>\n'
            for name, href, text in (
                (
                    "goroutine",
                    "goroutine?debug=2",
                    "Stack traces of every thread and every asyncio task of the runner's loop. "
                    "debug=2 (or 1): text; debug=0: a pprof profile of counts.",
                ),
                (
                    "profile",
                    f"profile?seconds={DEFAULT_PROFILE_SECONDS}",
                    "A CPU profile of the whole process for seconds=N (1-60, default 30), "
                    "sampled in-process at 100 Hz, in pprof's format (gzipped protobuf).",
                ),
            )
        )
        page = (
            "<html><head><title>/debug/pprof/</title></head><body>\n"
            "<h1>/debug/pprof/</h1>\n"
            f"<p>{where}</p>\n"
            f"<table>\n{rows}</table>\n"
            "<p>Read a profile with <code>go tool pprof -http=: URL</code> or "
            "<code>pprof -top URL</code>.</p>\n"
            "</body></html>\n"
        )
        return Response(page.encode(), "text/html; charset=utf-8")

    def goroutine(self, params: dict[str, list[str]], _headers: dict[str, str]) -> Response:
        """Answer /debug/pprof/goroutine: a text dump (debug>=1) or a pprof profile (debug=0)."""
        debug = _param(params, "debug", "0")
        if debug not in ("0", "1", "2"):
            return _bad_request(f"debug must be 0, 1 or 2, got {debug!r}")
        from alloy_runner.telemetry.profiling.stacks import dump_profile, dump_text

        if debug == "0":
            return _pprof(dump_profile(self._loop), "goroutine")
        return Response(dump_text(self._loop).encode())

    def profile(self, params: dict[str, list[str]], _headers: dict[str, str]) -> Response:
        """Answer /debug/pprof/profile?seconds=N with a CPU profile taken now."""
        text = _param(params, "seconds", str(DEFAULT_PROFILE_SECONDS))
        if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_PROFILE_SECONDS:
            return _bad_request(
                f"seconds must be a whole number from 1 to {MAX_PROFILE_SECONDS}, got {text!r}"
            )
        if not self.cpu.try_begin():
            ends = self.cpu.ends_at
            left = f" (about {max(0.0, ends - time.monotonic()):.0f}s left)" if ends else ""
            return Response(
                f"a CPU profile is already being taken{left}; try again when it ends\n".encode(),
                status=HTTPStatus.CONFLICT,
            )
        return _pprof(self.cpu.profile(float(text)), "profile")


def _param(params: dict[str, list[str]], name: str, default: str) -> str:
    values = params.get(name)
    return values[-1].strip() if values else default


def _bad_request(message: str) -> Response:
    return Response(f"{message}\n".encode(), status=HTTPStatus.BAD_REQUEST)


def _pprof(body: bytes, name: str) -> Response:
    return Response(
        body,
        "application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


def _h(text: str) -> str:
    return html.escape(text, quote=True)
