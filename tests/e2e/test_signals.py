"""Signals to the real `alloy-runner run` process: stopping, and reloading config.toml."""

from __future__ import annotations

import signal

import pytest

from tests.support import RunnerProcess, StartRunner, http_request, metric_value

CONFIG = 'concurrent = 2\n\n[[runners]]\nname = "a"\n'
RELOADED = "SIGHUP: configuration reloaded from "
RESTART_NEEDED = "metrics_server changed; it takes effect at the next restart"


def _metric(runner: RunnerProcess, sample: str, labels: dict[str, str] | None = None) -> float:
    """Scrape `runner` and return one sample's value."""
    return metric_value(runner.families(), sample, labels)


def _reload(runner: RunnerProcess, config: str) -> int:
    """Write `config`, send SIGHUP and return the index of the first stderr line it caused."""
    start = len(runner.stderr_lines)
    runner.write_config(config)
    runner.signal(signal.SIGHUP)
    return start


@pytest.mark.parametrize(
    ("sig", "how"),
    [
        (signal.SIGQUIT, "graceful"),
        (signal.SIGTERM, "forceful"),
        (signal.SIGINT, "forceful"),
    ],
    ids=["SIGQUIT", "SIGTERM", "SIGINT"],
)
def test_stop_signal(start_runner: StartRunner, sig: signal.Signals, how: str) -> None:
    """SIGQUIT (graceful), SIGTERM and SIGINT (forceful) end an idle runner with status 0."""
    runner = start_runner(CONFIG)
    host, port = runner.host, runner.port
    runner.signal(sig)
    assert runner.wait(timeout=5) == 0, runner.stderr_text
    lines = runner.stderr_lines
    assert any(f"{how} shutdown requested" in line for line in lines), lines
    assert "stopped after" in lines[-1]
    assert "Traceback" not in runner.stderr_text
    with pytest.raises(ConnectionRefusedError):
        http_request(host, port, "GET", "/metrics", timeout=2)


def test_sighup_changes_concurrent(start_runner: StartRunner) -> None:
    """SIGHUP applies a new `concurrent` at once: the next scrape shows it, nothing warns."""
    runner = start_runner(CONFIG)
    assert _metric(runner, "ci_runner_concurrent") == 2
    start = _reload(runner, CONFIG.replace("concurrent = 2", "concurrent = 7"))
    runner.wait_for_line(RELOADED, start=start)
    assert _metric(runner, "ci_runner_concurrent") == 7
    assert any("concurrent 2 -> 7" in line for line in runner.stderr_lines[start:])
    assert not any("WARNING" in line for line in runner.stderr_lines[start:]), runner.stderr_text
    assert _metric(runner, "ci_runner_errors_total", {"level": "warning"}) == 0


def test_sighup_metrics_server_needs_restart(start_runner: StartRunner) -> None:
    """A `metrics_server` changed in the file logs that it needs a restart; the server stays."""
    runner = start_runner('metrics_server = "127.0.0.1:0"\n' + CONFIG, metrics_server=None)
    old_address = runner.address
    start = _reload(runner, 'metrics_server = "127.0.0.1:1"\n' + CONFIG)
    runner.wait_for_line(RELOADED, start=start)
    assert any(RESTART_NEEDED in line for line in runner.stderr_lines[start:])
    assert runner.address == old_address
    assert _metric(runner, "ci_runner_errors_total", {"level": "warning"}) == 1


def test_sighup_keeps_flag_address(start_runner: StartRunner) -> None:
    """With --metrics-server given, a SIGHUP does not report the file's address as a change."""
    runner = start_runner('metrics_server = "127.0.0.1:0"\n' + CONFIG)
    start = _reload(runner, 'metrics_server = "127.0.0.1:0"\n' + CONFIG)
    runner.wait_for_line(RELOADED, start=start)
    assert not any(RESTART_NEEDED in line for line in runner.stderr_lines[start:])
    assert _metric(runner, "ci_runner_errors_total", {"level": "warning"}) == 0


def test_sighup_unknown_key_counts_a_warning(start_runner: StartRunner) -> None:
    """A reloaded file with an unknown key logs a warning and counts it."""
    runner = start_runner(CONFIG)
    start = _reload(runner, "colour = 'blue'\n" + CONFIG)
    runner.wait_for_line(RELOADED, start=start)
    assert any("unknown key 'colour' is ignored" in line for line in runner.stderr_lines[start:])
    assert _metric(runner, "ci_runner_errors_total", {"level": "warning"}) == 1


@pytest.mark.parametrize(
    ("broken", "fragment"),
    [
        ("concurrent = \n", "TOML syntax error"),
        ("concurrent = 0\n", "'concurrent'"),
        (None, "does not exist"),
    ],
    ids=["syntax", "invalid", "deleted"],
)
def test_sighup_broken_file_keeps_config(
    start_runner: StartRunner, broken: str | None, fragment: str
) -> None:
    """A SIGHUP with a broken (or deleted) file logs an error and keeps the running config."""
    runner = start_runner(CONFIG)
    start = len(runner.stderr_lines)
    if broken is None:
        runner.config_path.unlink()
    else:
        runner.write_config(broken)
    runner.signal(signal.SIGHUP)
    line = runner.wait_for_line("SIGHUP: keeping the running configuration: ", start=start)
    assert "ERROR" in line.string
    assert fragment in line.string
    assert _metric(runner, "ci_runner_concurrent") == 2
    assert _metric(runner, "ci_runner_errors_total", {"level": "error"}) == 1
    assert runner.request("GET", "/-/ready").status == 200


def test_sighup_without_config_file(start_runner: StartRunner) -> None:
    """A runner on the embedded default (no config file) logs that there is nothing to reload."""
    runner = start_runner(None)
    runner.signal(signal.SIGHUP)
    runner.wait_for_line("SIGHUP: no config file in use")
    assert runner.request("GET", "/-/healthy").status == 200


def test_config_loads_and_loading_errors_are_counted_under_both_names(
    start_runner: StartRunner,
) -> None:
    """The start's load counts 1; a broken file at SIGHUP counts an error; a good one a load.

    A SIGHUP that turns on the GitLab naming shows the same counts under its names.
    """
    runner = start_runner(CONFIG)
    assert _metric(runner, "ci_runner_configuration_loaded_total") == 1
    assert _metric(runner, "ci_runner_configuration_loading_error_total") == 0
    _reload(runner, "concurrent = [\n")
    runner.wait_for_line("SIGHUP: keeping the running configuration", timeout=5)
    assert _metric(runner, "ci_runner_configuration_loading_error_total") == 1
    _reload(runner, 'metric_names = "both"\n' + CONFIG)
    runner.wait_for_line(RELOADED, timeout=5)
    families = runner.families()
    for prefix in ("ci_runner", "gitlab_runner"):
        assert metric_value(families, f"{prefix}_configuration_loaded_total") == 2
        assert metric_value(families, f"{prefix}_configuration_loading_error_total") == 1
