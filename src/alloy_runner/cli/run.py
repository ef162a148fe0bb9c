"""`alloy-runner run`: the long-running process, its flags and environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from alloy_runner.config.model import Config


@click.command()
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="config.toml to use (default: ~/.alloy-runner/config.toml; as root /etc/alloy-runner).",
)
@click.option(
    "--metrics-server",
    "--listen-address",
    "metrics_server",
    help="[host]:<port> for /metrics; empty disables. Wins over $METRICS_SERVER and the file.",
)
@click.option(
    "--spool",
    type=click.Path(file_okay=False, path_type=Path),
    help="Spool directory of the runners without a url (wins over spool_dir in the file).",
)
@click.option(
    "--web.config.file",
    "web_config",
    metavar="PATH",
    help="exporter-toolkit web config (TLS, basic auth) for the metrics server; empty: none. "
    "Wins over metrics_web_config in the file.",
)
@click.option(
    "--profiling-server",
    "profiling_server",
    metavar="URL",
    help="Pyroscope URL to push continuous profiles to; empty: off. "
    "Wins over $PYROSCOPE_SERVER_ADDRESS and [profiling] server_address.",
)
@click.option(
    "--working-directory",
    "-d",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run in this directory; builds and caches default to its builds/ and cache/.",
)
@click.option(
    "--user",
    "-u",
    help="Run shell jobs as this user (the runner must run as root). Wins over `user`.",
)
@click.option(
    "--service",
    "-n",
    "service",
    default="alloy-runner",
    show_default=True,
    help="The service's name, in the start-up log line (GitLab Runner's --service).",
)
@click.option(
    "--metric-names",
    "metric_names",
    type=click.Choice(["alloyci", "gitlab", "both"]),
    help="Names /metrics exposes: alloyci (ci_*), gitlab (gitlab_runner_*) or both. "
    "Wins over $METRIC_NAMES and metric_names in the file.",
)
def run(
    config_path: Path | None,
    metrics_server: str | None,
    spool: Path | None,
    web_config: str | None,
    profiling_server: str | None,
    working_directory: Path | None,
    user: str | None,
    service: str,
    metric_names: str | None,
) -> None:
    """Run the runner: take jobs and serve metrics until a signal stops it."""
    from alloy_runner.app import daemon
    from alloy_runner.config.load import find_and_load

    if working_directory is not None:
        _enter(working_directory)
    config = find_and_load(config_path)
    if user is not None:
        config = config.with_overrides(user=user)
    check_user(config.user, os.geteuid(), "--user" if user is not None else "user")
    config = config.with_overrides(service=service)
    env_address = os.environ.get("METRICS_SERVER")
    override = metrics_server if metrics_server is not None else env_address
    if override is not None:
        config = config.with_overrides(metrics_server=override)
    _check_address(config, from_flag=metrics_server is not None, from_env=env_address is not None)
    if spool is not None:
        config = config.with_overrides(spool_dir=spool)
    if web_config is not None:
        config = config.with_overrides(metrics_web_config=Path(web_config) if web_config else None)
    names = metric_names if metric_names is not None else os.environ.get("METRIC_NAMES")
    if names is not None:
        config = config.with_overrides(metric_names=_check_names(names))
    pyroscope = os.environ.get("PYROSCOPE_SERVER_ADDRESS")
    where = "--profiling-server" if profiling_server is not None else "PYROSCOPE_SERVER_ADDRESS"
    if profiling_server is not None:
        pyroscope = profiling_server
    if pyroscope is not None:
        config = config.with_overrides(profiling=config.profiling.with_server(pyroscope, where))
    daemon.run(config)


def _check_address(config: Config, *, from_flag: bool, from_env: bool) -> None:
    """Say where a bad metrics address came from: the flag, the environment or the file."""
    from alloy_runner.config.address import parse_address
    from alloy_runner.exceptions import AddressError

    try:
        parse_address(config.metrics_server)
    except AddressError as exc:
        if from_flag:
            origin = "--metrics-server"
        elif from_env:
            origin = "$METRICS_SERVER"
        else:
            origin = f"{config.path}: key 'metrics_server'"
        raise AddressError(f"{origin}: {exc}") from None


def _enter(path: Path) -> None:
    from alloy_runner.config.paths import set_working_directory
    from alloy_runner.exceptions import ConfigError

    try:
        set_working_directory(path)
    except OSError as exc:
        raise ConfigError(f"--working-directory: cannot enter {path}: {exc.strerror}") from None


def check_user(user: str, euid: int, origin: str) -> None:
    """Refuse a user to run jobs as unless this process may become them (it is root)."""
    from alloy_runner.exceptions import ConfigError
    from alloy_runner.executors.process import RunAs

    if not user:
        return
    if euid != 0:
        raise ConfigError(f"{origin}: running jobs as {user!r} needs the runner to run as root")
    try:
        RunAs.lookup(user)
    except KeyError:
        raise ConfigError(f"{origin}: there is no user {user!r} on this host") from None


def _check_names(names: str) -> str:
    """Refuse a $METRIC_NAMES that is not one of the namings (the flag is checked by click)."""
    from alloy_runner.config.model import METRIC_NAMES
    from alloy_runner.exceptions import ConfigError

    if names not in METRIC_NAMES:
        raise ConfigError(
            f"$METRIC_NAMES: expected one of {', '.join(METRIC_NAMES)}, got {names!r}"
        )
    return names
