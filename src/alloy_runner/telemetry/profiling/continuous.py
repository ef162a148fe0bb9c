"""Continuous profiling into Pyroscope, and the on-demand profiles under /debug/pprof/.

Continuous: pyroscope-io samples the process (py-spy, from inside it) and
pushes a profile every `upload_interval` seconds to Pyroscope's
`push.v1.PusherService/Push`, through the loopback relay of
`profile_relay`, which makes every failure visible and shutdown bounded.

On demand, on the metrics server (the same access rules as /metrics):
`/debug/pprof/` (index), `/debug/pprof/goroutine` (threads and asyncio tasks)
and `/debug/pprof/profile?seconds=N` (a CPU profile in pprof's format).
"""

from __future__ import annotations

import asyncio
import html
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Protocol

from alloy_runner.telemetry.profiling.relay import TOKEN_HEADER, ProfileRelay, redact
from alloy_runner.telemetry.web.server import Response

if TYPE_CHECKING:
    from alloy_runner.config.model import ProfilingConfig
    from alloy_runner.telemetry.profiling.cpu_sampler import CpuProfiler
    from alloy_runner.telemetry.web.server import MetricsServer
    from alloy_runner.version import BuildInfo

log = logging.getLogger(__name__)

MAX_PROFILE_SECONDS = 60
DEFAULT_PROFILE_SECONDS = 30  # as Go's /debug/pprof/profile
AGENT_SHUTDOWN_SHARE = 0.5  # of the shutdown budget, for pyroscope-io's own shutdown

LoopGetter = Callable[[], asyncio.AbstractEventLoop | None]


class Agent(Protocol):
    """The part of pyroscope-io the runner uses (tests pass a fake)."""

    def configure(self, **settings: Any) -> object: ...

    def shutdown(self) -> object: ...


def pyroscope_agent() -> Agent:
    """Return the pyroscope module (imported only when profiling is configured)."""
    import pyroscope  # type: ignore[import-untyped]

    agent: Agent = pyroscope
    return agent


def default_tags(build: BuildInfo, runners: Sequence[str]) -> dict[str, str]:
    """Return the tags every profile carries: host, version and the runners of this process."""
    return {
        "hostname": socket.gethostname(),
        "version": build.version,
        "runners": ",".join(sorted(runners)) or "none",
    }


@dataclass(frozen=True)
class Destination:
    """Where continuous profiles go, as the index page and the logs tell it."""

    server: str  # without credentials
    application: str
    upload_interval: int
    sample_rate: int
    tags: tuple[tuple[str, str], ...]


class ContinuousProfiler:
    """Run pyroscope-io for this process, pushing through a `ProfileRelay`."""

    def __init__(
        self,
        config: ProfilingConfig,
        tags: Mapping[str, str],
        *,
        agent: Callable[[], Agent] = pyroscope_agent,
        relay: ProfileRelay | None = None,
    ) -> None:
        self.config = config
        self.tags = {**tags, **dict(config.tags)}  # the file's tags win over the defaults
        self._agent_factory = agent
        self._agent: Agent | None = None
        self.relay = relay if relay is not None else ProfileRelay(config.server_address)
        self.destination = Destination(
            redact(config.server_address),
            config.application_name,
            config.upload_interval,
            config.sample_rate,
            tuple(sorted(self.tags.items())),
        )

    def start(self) -> bool:
        """Start the relay and the agent; on failure log it once and return False."""
        try:
            url = self.relay.start()
        except OSError as exc:
            log.warning("profiling: cannot listen on loopback for the agent: %s; off", exc)
            return False
        config = self.config
        try:
            agent = self._agent_factory()
            agent.configure(
                application_name=config.application_name,
                server_address=url,
                sample_rate=config.sample_rate,
                upload_interval=config.upload_interval,
                tags=dict(self.tags),
                basic_auth_username=config.basic_auth_username,
                basic_auth_password=config.basic_auth_password,
                tenant_id=config.tenant_id,
                http_headers={**dict(config.http_headers), TOKEN_HEADER: self.relay.token},
                enable_logging=False,  # its logger writes to stderr itself; the relay reports
            )
        except Exception as exc:  # a profiler that cannot start must not stop the runner
            log.warning("profiling: pyroscope-io did not start: %s; profiling off", exc)
            self.relay.shutdown(timeout=1.0)
            return False
        self._agent = agent
        d = self.destination
        log.info(
            "profiling: pushing to %s as %s every %ds at %d Hz (tags %s)",
            d.server,
            d.application,
            d.upload_interval,
            d.sample_rate,
            ", ".join(f"{k}={v}" for k, v in d.tags),
        )
        return True

    def shutdown(self, timeout: float) -> None:
        """Stop the agent (its last profile included) and the relay within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        agent, self._agent = self._agent, None
        if agent is not None:
            # pyroscope-io's shutdown waits for its pending upload; it runs on a thread of its
            # own so that a stuck one costs this process its share of the budget, no more.
            stopper = threading.Thread(
                target=_stop_agent, args=(agent,), name="profiling-stop", daemon=True
            )
            stopper.start()
            stopper.join(timeout * AGENT_SHUTDOWN_SHARE)
            if stopper.is_alive():
                log.warning("profiling: pyroscope-io did not stop in time; leaving it behind")
        self.relay.shutdown(max(0.0, deadline - time.monotonic()))

    def start_shutdown(self, timeout: float) -> threading.Thread:
        """Run `shutdown(timeout)` on a thread of its own, so other parts stop meanwhile;
        return the thread (to join)."""
        thread = threading.Thread(
            target=self.shutdown, args=(timeout,), name="profiling-shutdown", daemon=True
        )
        thread.start()
        return thread


def _stop_agent(agent: Agent) -> None:
    try:
        agent.shutdown()
    except Exception:
        log.warning("profiling: pyroscope-io shutdown failed", exc_info=True)


def start_profiling(
    config: ProfilingConfig, build: BuildInfo, runners: Sequence[str]
) -> ContinuousProfiler | None:
    """Start continuous profiling if `config` names a server; None when it is off or failed."""
    if not config.enabled:
        return None
    profiler = ContinuousProfiler(config, default_tags(build, runners))
    return profiler if profiler.start() else None


class DebugProfiles:
    """The /debug/pprof/ routes: index, thread and task dump, and CPU profile."""

    def __init__(
        self,
        loop: LoopGetter,
        continuous: Destination | None = None,
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
        d = self._continuous
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
            return _pprof(dump_profile(self._loop()), "goroutine")
        return Response(dump_text(self._loop()).encode())

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
