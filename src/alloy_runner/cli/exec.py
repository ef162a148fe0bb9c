"""`alloy-runner exec shell JOB`: one job in the foreground."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from alloy_runner.cli.args import Parser, at_least, dir_path
from alloy_runner.cli.options import add_file, add_vars, variables

if TYPE_CHECKING:
    import argparse


def parser(command: str, description: str) -> Parser:
    """`exec` and its one executor so far, `shell`."""
    group = Parser(command, description)
    executors = group.add_subparsers(title="executors", metavar="EXECUTOR", required=True)
    shell = executors.add_parser(
        "shell",
        help="Run JOB with the shell executor, with its live log and a stage-by-stage display.",
        description="Run JOB with the shell executor, with its live log and a stage-by-stage "
        "progress display.",
    )
    shell.add_argument("job", metavar="JOB", help="The job's name in the pipeline definition.")
    add_file(shell)
    add_vars(shell)
    shell.add_argument(
        "--builds-dir",
        type=dir_path,
        metavar="DIRECTORY",
        help="Where the build runs (default ~/.alloy-runner/builds/exec).",
    )
    shell.add_argument(
        "--timeout", type=at_least(1), help="Job timeout in seconds (default: the job's own)."
    )
    shell.set_defaults(handler=exec_shell, parser=shell)  # its errors name `exec shell`
    return group


def exec_shell(args: argparse.Namespace) -> None:
    """Run JOB with the shell executor, with its live log and a stage-by-stage progress display."""
    from alloy_runner.cli.exec_job import exec_job

    job_vars = variables(args.plain, args.masked)
    sys.exit(exec_job(args.job, args.file, job_vars, args.builds_dir, args.timeout))
