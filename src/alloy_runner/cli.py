"""The `alloy-runner` command group; a known error becomes one line on stderr and exit 2."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from alloy_runner.exceptions import AlloyRunnerError
from alloy_runner.version import build_info

EXIT_USAGE = 2


def _fail(message: str) -> None:
    click.echo(f"alloy-runner: error: {message}", err=True)
    sys.exit(EXIT_USAGE)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    package_name="alloy-runner", message="%(prog)s\n" + "", prog_name="alloy-runner"
)
def cli() -> None:
    """A CI runner built to be watched."""


def _version_callback(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(build_info().banner())
        ctx.exit(0)


# Replace click's one-line version with the build banner (GitLab Runner's `--version`).
cli.params = [p for p in cli.params if p.name != "version"]
cli.params.append(
    click.Option(
        ["--version", "-v"],
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_version_callback,
        help="Show the version and build information.",
    )
)


@cli.command()
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
def run(config_path: Path | None, metrics_server: str | None) -> None:
    """Run the runner: take jobs and serve metrics until a signal stops it."""
    from alloy_runner import daemon
    from alloy_runner.config import find_and_load

    config = find_and_load(config_path)
    override = metrics_server if metrics_server is not None else os.environ.get("METRICS_SERVER")
    if override is not None:
        config = config.with_overrides(metrics_server=override)
    daemon.run(config)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    try:
        cli.main(args=argv, prog_name="alloy-runner", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _fail("aborted")
    except click.ClickException as exc:
        _fail(exc.format_message().replace("\n", " "))
    except AlloyRunnerError as exc:
        _fail(str(exc).replace("\n", " "))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
