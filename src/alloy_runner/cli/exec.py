"""`alloy-runner exec shell JOB`: one job in the foreground."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from alloy_runner.cli.options import file_option, var_options, variables


@click.group(name="exec")
def exec_group() -> None:
    """Run one job of the local .alloy-ci.yml in the foreground."""


@exec_group.command(name="shell")
@click.argument("job")
@file_option
@var_options[0]
@var_options[1]
@click.option(
    "--builds-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the build runs (default ~/.alloy-runner/builds/exec).",
)
@click.option("--timeout", type=int, help="Job timeout in seconds (default: the job's own).")
def exec_shell(
    job: str,
    file: Path,
    plain: tuple[str, ...],
    masked: tuple[str, ...],
    builds_dir: Path | None,
    timeout: int | None,
) -> None:
    """Run JOB with the shell executor, with its live log and a stage-by-stage progress display."""
    from alloy_runner.cli.exec_job import exec_job

    sys.exit(exec_job(job, file, variables(plain, masked), builds_dir, timeout))
