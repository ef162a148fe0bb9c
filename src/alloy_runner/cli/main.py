"""The `alloy-runner` command: its commands, their dispatch, and its exit statuses.

A known error becomes one line on stderr: exit 2 for bad usage or
configuration, 1 for a runtime failure (see `alloy_runner.exceptions`).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Sequence

from alloy_runner.exceptions import EXIT_FAILURE, EXIT_USAGE, AlloyRunnerError, UsageError
from alloy_runner.version import build_info

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it

DESCRIPTION = "A CI runner built to be watched."

# Each command's module is imported when that command runs: the `run` process then
# holds no code of the others (issue 11: idle memory). The module's `parser(name,
# summary)` returns the command's parser, whose `handler` default runs it.
COMMANDS = {
    "cancel": (
        "alloy_runner.cli.spool",
        "Cancel a job of the spool: a waiting one at once, a running one through its runner.",
    ),
    "exec": ("alloy_runner.cli.exec", "Run one job of the local .alloy-ci.yml in the foreground."),
    "list": (
        "alloy_runner.cli.runners",
        "List the runners of config.toml (tokens shortened to 8 characters).",
    ),
    "play": (
        "alloy_runner.cli.spool",
        "Start a manual job of the spool (one with `when: manual` that is waiting to be played).",
    ),
    "register": (
        "alloy_runner.cli.runners",
        "Register a runner with a coordinator and add it to config.toml (comments are kept).",
    ),
    "reset-token": (
        "alloy_runner.cli.runners",
        "Replace runners' authentication tokens with new ones and save them in config.toml.",
    ),
    "run": (
        "alloy_runner.cli.run",
        "Run the runner: take jobs and serve metrics until a signal stops it.",
    ),
    "submit": (
        "alloy_runner.cli.spool",
        "Put the pipeline of a .alloy-ci.yml (or only the named JOBS) into the spool.",
    ),
    "unregister": (
        "alloy_runner.cli.runners",
        "Remove runners from their coordinator (DELETE /runners) and from config.toml.",
    ),
    "verify": (
        "alloy_runner.cli.runners",
        "Check each runner's token with its coordinator; exit 1 if one is not valid.",
    ),
}


def usage() -> str:
    """The top-level help: what `alloy-runner --help` prints."""
    width = max(len(name) for name in COMMANDS) + 2
    lines = [
        "usage: alloy-runner [-h] [-v] COMMAND [ARGS]...",
        "",
        DESCRIPTION,
        "",
        "options:",
        "  -h, --help     Show this message and exit.",
        "  -v, --version  Show the version and build information.",
        "",
        "commands:",
        *(f"  {name:{width}} {summary}" for name, (_where, summary) in COMMANDS.items()),
        "",
        "`alloy-runner COMMAND --help` shows a command's options.",
    ]
    return "\n".join(lines)


def dispatch(argv: Sequence[str]) -> None:
    """Run the command `argv` names, or print the help or the version."""
    if not argv:
        raise UsageError(f"a command is needed: {', '.join(COMMANDS)} (see 'alloy-runner --help')")
    first, rest = argv[0], list(argv[1:])
    if first in {"-h", "--help"}:
        print(usage())
        return
    if first in {"-v", "--version"}:
        print(build_info().banner())
        return
    if first.startswith("-"):
        raise UsageError(f"no such option {first!r} before the command (see 'alloy-runner --help')")
    where = COMMANDS.get(first)
    if where is None:
        raise UsageError(f"no such command {first!r}; the commands are {', '.join(COMMANDS)}")
    module, summary = where
    parser = importlib.import_module(module).parser(first, summary)
    parsed = parser.parse(rest)
    parsed.handler(parsed)


def _fail(message: str, status: int = EXIT_USAGE) -> None:
    print(f"alloy-runner: error: {message}", file=sys.stderr)
    _flush_or_drop_stdout()
    sys.exit(status)


def _configure_stdout() -> None:
    """Line-buffer stdout, and escape what its encoding cannot show.

    Each line reaches a pipe when printed (a reader of `submit --wait` sees each job end,
    and a killed command leaves what it said), and a runner name an ASCII locale
    cannot show is escaped rather than a traceback, as click's echo did.
    """
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(line_buffering=True, errors="backslashreplace")


def _flush_or_drop_stdout() -> None:
    """Flush stdout; if it cannot take more (a closed pipe, a full disk), point it at /dev/null.

    Otherwise the interpreter's last flush at exit fails again and prints
    "Exception ignored ... BrokenPipeError" after our one line.
    """
    if sys.stdout is None:
        return
    try:
        sys.stdout.flush()
    except OSError:
        # ValueError: no file descriptor (a test's captured stdout)
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the console script."""
    _configure_stdout()
    try:
        dispatch(sys.argv[1:] if argv is None else argv)
        if sys.stdout is not None:  # None: started with stdout closed
            sys.stdout.flush()  # what is left fails here, as one line, not at exit
    except AlloyRunnerError as exc:
        _fail(str(exc).replace("\n", " "), exc.exit_code)
    except BrokenPipeError:  # the reader went away (`| head -1`): quietly, as click did
        _flush_or_drop_stdout()
        sys.exit(EXIT_FAILURE)
    except OSError as exc:  # a full disk, a directory that cannot be made: the world, not the input
        _fail(str(exc).replace("\n", " "), EXIT_FAILURE)
    except KeyboardInterrupt:  # Ctrl-C (or SIGINT) before the run loop handles it
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
