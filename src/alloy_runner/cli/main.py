"""The `alloy-runner` command group and its exit statuses.

A known error becomes one line on stderr: exit 2 for bad usage or
configuration, 1 for a runtime failure (see `alloy_runner.exceptions`).
"""

from __future__ import annotations

import importlib
import sys

import click

from alloy_runner.exceptions import EXIT_FAILURE, EXIT_USAGE, AlloyRunnerError
from alloy_runner.version import build_info

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it


def _fail(message: str, status: int = EXIT_USAGE) -> None:
    click.echo(f"alloy-runner: error: {message}", err=True)
    sys.exit(status)


# Each command's module is imported when that command runs (or help lists it): the
# `run` process then holds no code of the others (issue 11: idle memory).
COMMANDS = {
    "run": ("alloy_runner.cli.run", "run"),
    "submit": ("alloy_runner.cli.spool", "submit"),
    "play": ("alloy_runner.cli.spool", "play"),
    "cancel": ("alloy_runner.cli.spool", "cancel"),
    "exec": ("alloy_runner.cli.exec", "exec_group"),
    "register": ("alloy_runner.cli.runners", "register"),
    "verify": ("alloy_runner.cli.runners", "verify"),
    "list": ("alloy_runner.cli.runners", "list_command"),
    "unregister": ("alloy_runner.cli.runners", "unregister"),
    "reset-token": ("alloy_runner.cli.runners", "reset_token"),
}


class _Commands(click.Group):
    """A click group whose commands are imported from `COMMANDS` when asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = COMMANDS.get(cmd_name)
        if where is None:
            return None
        command: click.Command = getattr(importlib.import_module(where[0]), where[1])
        return command


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
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


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    try:
        cli.main(args=argv, prog_name="alloy-runner", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:  # Ctrl-C (or SIGINT) before the run loop handles it
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        _fail(exc.format_message().replace("\n", " "))
    except AlloyRunnerError as exc:
        _fail(str(exc).replace("\n", " "), exc.exit_code)
    except OSError as exc:  # a full disk, a directory that cannot be made: the world, not the input
        _fail(str(exc).replace("\n", " "), EXIT_FAILURE)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
