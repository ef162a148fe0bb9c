"""The runner commands: `register`, `verify` and `list` against config.toml."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from alloy_runner.cli.options import json_option, print_json
from alloy_runner.config.model import EXECUTORS
from alloy_runner.coordinator.gitlab.runners_api import ACCESS_LEVELS

F = TypeVar("F", bound=Callable[..., Any])

_editconfig_option = click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="config.toml to edit (default: $CONFIG_FILE, else ~/.alloy-runner/config.toml).",
)


def _optional_bool(name: str, envvar: str, help_text: str) -> Callable[[F], F]:
    """A GitLab-style boolean: `--flag` alone is true; `--flag=false` is allowed; None: unset."""
    return click.option(
        name,
        type=click.BOOL,
        is_flag=False,
        flag_value=True,
        default=None,
        envvar=envvar,
        help=help_text,
    )


_REGISTER_OPTIONS = (
    _editconfig_option,
    click.option(
        "--non-interactive",
        "-n",
        "non_interactive",
        is_flag=True,
        envvar="REGISTER_NON_INTERACTIVE",
        help="Never prompt; missing values are errors.",
    ),
    click.option("--url", "-u", envvar="CI_SERVER_URL", help="The coordinator's URL."),
    click.option(
        "--token",
        "-t",
        envvar="CI_SERVER_TOKEN",
        help="A runner authentication token (glrt-...) made in GitLab: it is verified.",
    ),
    click.option(
        "--registration-token",
        "-r",
        envvar="REGISTRATION_TOKEN",
        help="A registration token (GitLab's deprecated flow): the coordinator makes a runner.",
    ),
    click.option(
        "--name",
        "--description",
        "name",
        envvar="RUNNER_NAME",
        help="The runner's name, unique in the file (default: the host name).",
    ),
    click.option(
        "--executor",
        envvar="RUNNER_EXECUTOR",
        type=click.Choice([executor.value for executor in EXECUTORS]),
        help="The runner's executor (default: shell).",
    ),
    click.option(
        "--docker-image",
        envvar="DOCKER_IMAGE",
        help="The default image, written as [runners.docker] image.",
    ),
    click.option("--tag-list", envvar="RUNNER_TAG_LIST", help="Comma-separated tags."),
    _optional_bool(
        "--run-untagged",
        "REGISTER_RUN_UNTAGGED",
        "Run untagged jobs (default: true when --tag-list is empty).",
    ),
    _optional_bool(
        "--locked", "REGISTER_LOCKED", "Lock the runner to its project (default: true)."
    ),
    _optional_bool("--paused", "REGISTER_PAUSED", "Register the runner paused (default: false)."),
    click.option("--maintenance-note", envvar="REGISTER_MAINTENANCE_NOTE"),
    click.option(
        "--access-level", envvar="REGISTER_ACCESS_LEVEL", type=click.Choice(ACCESS_LEVELS)
    ),
    click.option(
        "--maximum-timeout",
        envvar="REGISTER_MAXIMUM_TIMEOUT",
        type=click.IntRange(min=0),
        help="Seconds; the longest a job may run here.",
    ),
    click.option(
        "--limit", envvar="RUNNER_LIMIT", type=click.IntRange(min=0), default=0, show_default=True
    ),
    click.option(
        "--request-concurrency",
        envvar="RUNNER_REQUEST_CONCURRENCY",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
    ),
    click.option(
        "--tls-ca-file",
        envvar="CI_SERVER_TLS_CA_FILE",
        default="",
        help="CA certificates that verify the coordinator.",
    ),
    click.option("--builds-dir", envvar="RUNNER_BUILDS_DIR", default=""),
    click.option(
        "--leave-runner",
        is_flag=True,
        envvar="REGISTER_LEAVE_RUNNER",
        help="Keep a runner registered for this call if the file cannot be written.",
    ),
    click.option("--cache-dir", envvar="RUNNER_CACHE_DIR", default=""),
)
_RESERVED = (
    "tag_list",
    "run_untagged",
    "locked",
    "paused",
    "maintenance_note",
    "access_level",
    "maximum_timeout",
)


def _register_options(func: F) -> F:
    for option in reversed(_REGISTER_OPTIONS):
        func = option(func)
    return func


@click.command()
@_register_options
def register(config_path: Path | None, non_interactive: bool, **values: Any) -> None:
    """Register a runner with a coordinator and add it to config.toml (comments are kept).

    Every flag has GitLab Runner's environment variable (CI_SERVER_URL, CI_SERVER_TOKEN,
    REGISTRATION_TOKEN, RUNNER_NAME, RUNNER_EXECUTOR, ...); on a terminal, missing values
    are asked for unless --non-interactive.
    """
    from alloy_runner.cli.register_prompts import ask_missing, new_runner
    from alloy_runner.coordinator.gitlab import registration

    path = registration.config_path(config_path)
    interactive = not non_interactive and sys.stdin.isatty()
    ask_missing(values, interactive)
    new = new_runner(values, [name for name in _RESERVED if values[name] is not None])
    short = registration.register(path, new)
    click.echo(f"Runner {new.name} registered (token {short}...); configuration saved to {path}")


@click.command()
@_editconfig_option
@click.option("--delete", is_flag=True, help="Remove the runners the coordinator does not know.")
def verify(config_path: Path | None, delete: bool) -> None:
    """Check each runner's token with its coordinator; exit 1 if one is not valid."""
    from alloy_runner.coordinator.gitlab import registration

    path = registration.config_path(config_path)
    results = registration.verify(path, delete=delete)
    failed = False
    for result in results:
        if result.alive:
            click.echo(f"Verifying runner {result.name}... is alive")
        elif result.alive is False:
            click.echo(
                f"Verifying runner {result.name}... is removed"
                + (f"; deleted from {path}" if delete else "")
            )
            failed |= not delete
        else:
            click.echo(f"Verifying runner {result.name}... error: {result.why}")
            failed = True
    if failed:
        sys.exit(1)


@click.command(name="list")
@_editconfig_option
@json_option
def list_command(config_path: Path | None, as_json: bool) -> None:
    """List the runners of config.toml (tokens shortened to 8 characters)."""
    from alloy_runner.coordinator.gitlab import registration

    path = registration.config_path(config_path)
    runners = registration.list_runners(path)
    if as_json:
        print_json({"config_file": str(path), "runners": [runner.to_json() for runner in runners]})
        return
    click.echo(f"Listing configured runners ConfigFile={path}")
    for runner in runners:
        click.echo(runner.line())


_select_options = (
    _editconfig_option,
    click.option("--name", "-n", default="", help="The runner of this name."),
    click.option("--all-runners", is_flag=True, help="Every runner with a url."),
    click.option("--url", "-u", default="", envvar="CI_SERVER_URL"),
)


def _select(func: F) -> F:
    for option in reversed(_select_options):
        func = option(func)
    return func


@click.command()
@_select
@click.option("--token", "-t", default="", envvar="CI_SERVER_TOKEN", help="With --url.")
def unregister(
    config_path: Path | None, name: str, all_runners: bool, url: str, token: str
) -> None:
    """Remove runners from their coordinator (DELETE /runners) and from config.toml."""
    from alloy_runner.coordinator.gitlab import registration, tokens

    path = registration.config_path(config_path)
    which = tokens.Selection(name=name, all_runners=all_runners, url=url, token=token)
    for removed in tokens.unregister(path, which):
        click.echo(f"Unregistering runner {removed} from GitLab succeeded; removed from {path}")


@click.command(name="reset-token")
@_select
@click.option("--id", "runner_id", type=click.IntRange(min=1), default=None, help="With --url.")
def reset_token(
    config_path: Path | None, name: str, all_runners: bool, url: str, runner_id: int | None
) -> None:
    """Replace runners' authentication tokens with new ones and save them in config.toml."""
    from alloy_runner.coordinator.gitlab import registration, tokens

    path = registration.config_path(config_path)
    which = tokens.Selection(name=name, all_runners=all_runners, url=url, runner_id=runner_id or 0)
    for runner, short in tokens.reset(path, which):
        click.echo(f"Resetting runner {runner} authentication token succeeded (token {short}...)")
