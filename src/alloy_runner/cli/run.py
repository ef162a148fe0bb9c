"""`alloy-runner run`: the long-running process, its flags and environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from alloy_runner.cli.args import Parser, dir_path, file_path

if TYPE_CHECKING:
    import argparse

    from alloy_runner.config.model import Config


def parser(command: str, description: str) -> Parser:
    """The flags of `alloy-runner run` (GitLab Runner's where they match)."""
    run_parser = Parser(command, description)
    add = run_parser.add_argument
    add(
        "--config",
        "-c",
        dest="config_path",
        type=file_path,
        metavar="FILE",
        help="config.toml to use "
        "(default: ~/.alloy-runner/config.toml; as root /etc/alloy-runner).",
    )
    add(
        "--metrics-server",
        "--listen-address",
        dest="metrics_server",
        metavar="[HOST]:PORT",
        help="[host]:<port> for /metrics; empty disables. Wins over $METRICS_SERVER and the file.",
    )
    add(
        "--spool",
        type=dir_path,
        metavar="DIRECTORY",
        help="Spool directory of the runners without a url (wins over spool_dir in the file).",
    )
    add(
        "--web.config.file",
        dest="web_config",
        metavar="PATH",
        help="exporter-toolkit web config (TLS, basic auth) for the metrics server; empty: none. "
        "Wins over metrics_web_config in the file.",
    )
    add(
        "--profiling-server",
        metavar="URL",
        help="Pyroscope URL to push continuous profiles to; empty: off. "
        "Wins over $PYROSCOPE_SERVER_ADDRESS and [profiling] server_address.",
    )
    add(
        "--working-directory",
        "-d",
        type=dir_path,
        metavar="DIRECTORY",
        help="Run in this directory; builds and caches default to its builds/ and cache/.",
    )
    add(
        "--user",
        "-u",
        help="Run shell jobs as this user (the runner must run as root). Wins over `user`.",
    )
    add(
        "--service",
        "-n",
        default="alloy-runner",
        help="The service's name, in the start-up log line (GitLab Runner's --service; "
        "default: alloy-runner).",
    )
    add(
        "--metric-names",
        choices=["alloyci", "gitlab", "both"],
        help="Names /metrics exposes: alloyci (ci_*), gitlab (gitlab_runner_*) or both. "
        "Wins over $METRIC_NAMES and metric_names in the file.",
    )
    run_parser.set_defaults(handler=run)
    return run_parser


def run(args: argparse.Namespace) -> None:
    """Run the runner: take jobs and serve metrics until a signal stops it."""
    from alloy_runner.app import daemon

    daemon.run(configure(args))


def configure(args: argparse.Namespace) -> Config:
    """Return config.toml's configuration with the flags and the environment applied."""
    from alloy_runner.config.load import find_and_load

    if args.working_directory is not None:
        _enter(args.working_directory)
    config = find_and_load(args.config_path)
    if args.user is not None:
        config = config.with_overrides(user=args.user)
    check_user(config.user, os.geteuid(), "--user" if args.user is not None else "user")
    config = config.with_overrides(service=args.service)
    env_address = os.environ.get("METRICS_SERVER")
    override = args.metrics_server if args.metrics_server is not None else env_address
    if override is not None:
        config = config.with_overrides(metrics_server=override)
    _check_address(
        config, from_flag=args.metrics_server is not None, from_env=env_address is not None
    )
    if args.spool is not None:
        config = config.with_overrides(spool_dir=args.spool)
    if args.web_config is not None:
        web_config = Path(args.web_config) if args.web_config else None
        config = config.with_overrides(metrics_web_config=web_config)
    names = args.metric_names if args.metric_names is not None else os.environ.get("METRIC_NAMES")
    if names is not None:
        config = config.with_overrides(metric_names=_check_names(names))
    pyroscope = os.environ.get("PYROSCOPE_SERVER_ADDRESS")
    where = "PYROSCOPE_SERVER_ADDRESS"
    if args.profiling_server is not None:
        pyroscope, where = args.profiling_server, "--profiling-server"
    if pyroscope is not None:
        config = config.with_overrides(profiling=config.profiling.with_server(pyroscope, where))
    return config


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
    """Refuse a $METRIC_NAMES that is not one of the namings (argparse checks the flag)."""
    from alloy_runner.config.model import METRIC_NAMES
    from alloy_runner.exceptions import ConfigError

    if names not in METRIC_NAMES:
        raise ConfigError(
            f"$METRIC_NAMES: expected one of {', '.join(METRIC_NAMES)}, got {names!r}"
        )
    return names
