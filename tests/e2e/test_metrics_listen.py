"""Where the real runner's metrics server listens: disabled, an ephemeral port, IPv6 loopback."""

from __future__ import annotations

import socket

import pytest

from tests.support import LISTENING, StartRunner, parse_exposition

CONFIG = '[[runners]]\nname = "a"\n'


def test_empty_metrics_server_in_file_disables(start_runner: StartRunner) -> None:
    """`metrics_server = ""` in the file starts no server, and the log says it is disabled."""
    runner = start_runner('metrics_server = ""\n' + CONFIG, metrics_server=None)
    assert runner.address is None
    assert any("metrics server disabled" in line for line in runner.stderr_lines)
    assert not any(LISTENING.search(line) for line in runner.stderr_lines)


def test_empty_flag_disables_over_the_file(start_runner: StartRunner) -> None:
    """`--metrics-server ""` disables the server even when the file names an address."""
    runner = start_runner('metrics_server = "127.0.0.1:0"\n' + CONFIG, metrics_server="")
    assert runner.address is None
    assert any("metrics server disabled" in line for line in runner.stderr_lines)


def test_port_zero_logs_the_real_port(start_runner: StartRunner) -> None:
    """Port 0 binds an ephemeral port, and the log names that port, where /metrics answers."""
    runner = start_runner(CONFIG, metrics_server="127.0.0.1:0")
    assert runner.host == "127.0.0.1"
    assert runner.port > 0
    assert "ci_runner_version_info" in parse_exposition(runner.scrape()[1])


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 on this host")
def test_ipv6_loopback(start_runner: StartRunner) -> None:
    """`[::1]:0` listens on the IPv6 loopback and logs the address in brackets."""
    runner = start_runner(CONFIG, metrics_server="[::1]:0")
    assert runner.host == "::1"
    assert any(f"listening on [::1]:{runner.port} " in line for line in runner.stderr_lines)
    assert "ci_runner_version_info" in parse_exposition(runner.scrape()[1])


def test_localhost_is_ipv4_loopback(start_runner: StartRunner) -> None:
    """`localhost:0` binds the IPv4 loopback (as Go's listener does) and warns about nothing."""
    runner = start_runner(CONFIG, metrics_server="localhost:0")
    assert runner.host == "127.0.0.1"
    assert not any("WARNING" in line for line in runner.stderr_lines), runner.stderr_text
