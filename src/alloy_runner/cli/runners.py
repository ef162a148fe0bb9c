"""The runner commands: `register`, `verify` and `list` against config.toml."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from alloy_runner.cli.options import json_option, print_json

_editconfig_option = click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="config.toml to edit (default: $CONFIG_FILE, else ~/.alloy-runner/config.toml).",
)


@click.command()
@_editconfig_option
@click.option("--url", "-u", required=True, help="The coordinator's URL.")
@click.option("--registration-token", "-r", required=True, help="The coordinator's token.")
@click.option("--name", "-n", required=True, help="The runner's name (unique in the file).")
@click.option("--executor", type=click.Choice(["shell"]), default="shell", show_default=True)
@click.option("--limit", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--request-concurrency", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--tls-ca-file", default="", help="CA certificates that verify the coordinator.")
def register(
    config_path: Path | None,
    url: str,
    registration_token: str,
    name: str,
    executor: str,
    limit: int,
    request_concurrency: int,
    tls_ca_file: str,
) -> None:
    """Register a runner with a coordinator and add it to config.toml (comments are kept)."""
    from alloy_runner.coordinator.gitlab import registration

    path = registration.config_path(config_path)
    short = registration.register(
        path,
        url=url,
        registration_token=registration_token,
        name=name,
        executor=executor,
        limit=limit,
        request_concurrency=request_concurrency,
        tls_ca_file=tls_ca_file,
    )
    click.echo(f"Runner {name} registered (token {short}...); configuration saved to {path}")


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
