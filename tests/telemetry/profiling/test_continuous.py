"""The `[profiling]` section and the continuous profiler around pyroscope-io (with a fake agent)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from alloy_runner.config.load import parse_config
from alloy_runner.config.model import ProfilingConfig
from alloy_runner.exceptions import ConfigError
from alloy_runner.telemetry.profiling.continuous import ContinuousProfiler, default_tags
from alloy_runner.telemetry.profiling.debug_routes import DebugProfiles
from alloy_runner.telemetry.profiling.relay import TOKEN_HEADER, Outcome, ProfileRelay, Upload
from alloy_runner.version import build_info


def _profiling(text: str) -> ProfilingConfig:
    return parse_config("[profiling]\n" + text, "config.toml").profiling


class FakeAgent:
    """Stands in for the pyroscope module: records `configure`, can hang in `shutdown`."""

    def __init__(self, *, fail: bool = False, hang: threading.Event | None = None) -> None:
        self.fail = fail
        self.hang = hang
        self.settings: dict[str, Any] = {}
        self.stopped = False

    def configure(self, **settings: Any) -> object:
        if self.fail:
            raise RuntimeError("cannot read process memory")
        self.settings = settings
        return None

    def shutdown(self) -> object:
        if self.hang is not None:
            self.hang.wait()
        self.stopped = True
        return True


def _relay() -> ProfileRelay:
    return ProfileRelay("http://127.0.0.1:9", send=lambda _u, _t: Outcome(200))


def test_defaults_leave_profiling_off() -> None:
    """Without a server_address profiling is off, with the documented defaults."""
    config = parse_config("", "config.toml").profiling
    assert not config.enabled
    assert (config.application_name, config.sample_rate, config.upload_interval) == (
        "alloy-runner",
        100,
        10,
    )


def test_every_key_is_read() -> None:
    """Every documented key of [profiling] reaches the config, and none warns."""
    parsed = parse_config(
        """
[profiling]
server_address = "https://pyroscope.example:4040"
application_name = "ci-runner"
sample_rate = 50
upload_interval = 15
tags = { region = "eu", "k8s.pod" = "r-1" }
basic_auth_username = "u"
basic_auth_password = "p"
tenant_id = "team-a"
http_headers = { X-Extra = "1" }
""",
        "config.toml",
    )
    assert parsed.warnings == ()
    config = parsed.profiling
    assert config.enabled
    assert config.tags == (("region", "eu"), ("k8s.pod", "r-1"))
    assert (config.basic_auth_username, config.basic_auth_password) == ("u", "p")
    assert (config.tenant_id, config.http_headers) == ("team-a", (("X-Extra", "1"),))
    assert (config.sample_rate, config.upload_interval) == (50, 15)


def test_unknown_key_warns() -> None:
    """An unknown key under [profiling] is a warning naming it, as elsewhere in config.toml."""
    parsed = parse_config("[profiling]\nsample_hz = 10\n", "config.toml")
    assert parsed.warnings == ("config.toml: unknown key 'profiling.sample_hz' is ignored",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('server_address = "pyroscope:4040"', "profiling.server_address': expected an http"),
        ("sample_rate = 0", "profiling.sample_rate': expected an integer from 1 to "),
        ("upload_interval = 2.5", "profiling.upload_interval': expected an integer from 1 to "),
        ('tags = { "bad key" = "x" }', "profiling.tags': expected tag names"),
        ('tags = { __name__ = "x" }', "profiling.tags': expected tag names"),
        ('tags = { service_name = "x" }', "profiling.tags': expected tag names"),
        ("tags = { a = 1 }", "profiling.tags': expected a table of strings"),
        ('http_headers = { "a b" = "x" }', "profiling.http_headers': expected HTTP header"),
        ('application_name = " "', "profiling.application_name': expected a non-empty"),
    ],
)
def test_bad_values_name_the_key(text: str, message: str) -> None:
    """A bad value is an error naming the full key and what was expected."""
    with pytest.raises(ConfigError, match=message):
        _profiling(text)


def test_flag_value_must_be_a_url() -> None:
    """A server address from the flag or env that is not an http(s) URL names its source."""
    with pytest.raises(ConfigError, match="--profiling-server: expected an http"):
        ProfilingConfig().with_server("localhost:4040", "--profiling-server")
    assert not ProfilingConfig(server_address="http://x").with_server("", "env").enabled


def test_agent_gets_the_settings_and_pushes_to_the_relay() -> None:
    """pyroscope-io is configured with the file's settings and tags (which win over the
    defaults), pushing to the loopback relay with the relay's token."""
    agent = FakeAgent()
    config = _profiling(
        'server_address = "http://pyroscope:4040"\nsample_rate = 20\nupload_interval = 5\n'
        'tags = { hostname = "override", team = "ci" }\ntenant_id = "t"\n'
        'http_headers = { X-A = "1" }\n'
    )
    defaults = default_tags(build_info(), ["b", "a"])
    profiler = ContinuousProfiler(config, defaults, agent=lambda: agent, relay=_relay())
    assert profiler.start()
    try:
        settings = agent.settings
        assert settings["server_address"].startswith("http://127.0.0.1:")
        assert settings["application_name"] == "alloy-runner"
        assert (settings["sample_rate"], settings["upload_interval"]) == (20, 5)
        assert settings["tags"] == {
            "hostname": "override",
            "team": "ci",
            "runners": "a,b",
            "version": build_info().version,
        }
        assert settings["tenant_id"] == "t"
        assert settings["http_headers"]["X-A"] == "1"
        assert settings["http_headers"][TOKEN_HEADER] == profiler.relay.token
        assert settings["enable_logging"] is False
    finally:
        profiler.shutdown(timeout=1.0)
    assert agent.stopped


def test_agent_that_cannot_start_turns_profiling_off(caplog: pytest.LogCaptureFixture) -> None:
    """If pyroscope-io fails to start, one warning says so and the runner goes on without it."""
    config = ProfilingConfig(server_address="http://pyroscope:4040")
    profiler = ContinuousProfiler(config, {}, agent=lambda: FakeAgent(fail=True), relay=_relay())
    with caplog.at_level(logging.WARNING):
        assert not profiler.start()
    assert [r.getMessage() for r in caplog.records] == [
        "profiling: pyroscope-io did not start: cannot read process memory; profiling off"
    ]


def test_stuck_agent_shutdown_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    """A pyroscope-io shutdown that never returns costs its share of the timeout, no more."""
    hang = threading.Event()
    config = ProfilingConfig(server_address="http://pyroscope:4040")
    profiler = ContinuousProfiler(config, {}, agent=lambda: FakeAgent(hang=hang), relay=_relay())
    assert profiler.start()
    began = time.monotonic()
    with caplog.at_level(logging.WARNING):
        profiler.shutdown(timeout=1.0)
    assert time.monotonic() - began < 1.5
    assert any("did not stop in time" in r.getMessage() for r in caplog.records)
    hang.set()


def test_relay_forwards_the_agents_last_profile_at_shutdown() -> None:
    """The profile the agent sends while it shuts down is forwarded within the deadline."""
    sent: list[Upload] = []

    def send(upload: Upload, _timeout: float) -> Outcome:
        sent.append(upload)
        return Outcome(200)

    relay = ProfileRelay("http://127.0.0.1:9", send=send)

    class FlushingAgent(FakeAgent):
        def shutdown(self) -> object:
            relay.enqueue(Upload("/push.v1.PusherService/Push", (), b"last"))
            return super().shutdown()

    config = ProfilingConfig(server_address="http://pyroscope:4040")
    profiler = ContinuousProfiler(config, {}, agent=FlushingAgent, relay=relay)
    assert profiler.start()
    profiler.shutdown(timeout=2.0)
    assert [u.body for u in sent] == [b"last"]


def test_index_routes_are_registered() -> None:
    """The debug routes cover /debug/pprof, its index, goroutine and profile."""
    paths: list[str] = []

    class Server:
        def add_route(self, path: str, _route: object) -> None:
            paths.append(path)

    DebugProfiles(None).install(Server())  # type: ignore[arg-type]
    assert sorted(paths) == [
        "/debug/pprof",
        "/debug/pprof/",
        "/debug/pprof/goroutine",
        "/debug/pprof/profile",
    ]
