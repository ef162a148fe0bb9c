"""Continuous profiling into Pyroscope.

pyroscope-io samples the process (py-spy, from inside it) and pushes a
profile every `upload_interval` seconds to Pyroscope's
`push.v1.PusherService/Push`, through the loopback relay of
`profile_relay`, which makes every failure visible and shutdown bounded.
Imported only by a process that has profiling configured.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from alloy_runner.telemetry.profiling.relay import TOKEN_HEADER, ProfileRelay, redact

if TYPE_CHECKING:
    from alloy_runner.config.model import ProfilingConfig
    from alloy_runner.version import BuildInfo

log = logging.getLogger(__name__)

AGENT_SHUTDOWN_SHARE = 0.5  # of the shutdown budget, for pyroscope-io's own shutdown


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

    @property
    def running(self) -> bool:
        """Tell whether the agent started (and has not been shut down)."""
        return self._agent is not None

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
