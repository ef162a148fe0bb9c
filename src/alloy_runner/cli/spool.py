"""The spool commands: `submit` (with `--wait`) and `cancel`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from alloy_runner.cli.options import (
    config_option,
    file_option,
    spool_dir,
    spool_option,
    var_options,
    variables,
)
from alloy_runner.exceptions import EXIT_USAGE


@click.command()
@file_option
@spool_option
@config_option
@var_options[0]
@var_options[1]
@click.option("--wait", is_flag=True, help="Wait for the pipeline to end; exit 1 if it failed.")
@click.option(
    "--timeout", type=float, default=3600.0, show_default=True, help="Seconds --wait waits at most."
)
@click.argument("jobs", nargs=-1)
def submit(
    file: Path,
    spool: Path | None,
    config_path: Path | None,
    plain: tuple[str, ...],
    masked: tuple[str, ...],
    wait: bool,
    timeout: float,
    jobs: tuple[str, ...],
) -> None:
    """Put the pipeline of a .alloy-ci.yml (or only the named JOBS) into the spool."""
    from alloy_runner.coordinator.spool.store import Spool
    from alloy_runner.pipeline import submit as submitting
    from alloy_runner.pipeline.ci_yaml import load_pipeline

    spec = load_pipeline(file)
    for warning in spec.warnings:
        click.echo(f"warning: {warning}", err=True)
    the_spool = Spool(spool_dir(spool, config_path))
    pipeline_id, planned = submitting.submit(
        the_spool, spec, file.resolve().parent, names=jobs, variables=variables(plain, masked)
    )
    click.echo(f"pipeline {pipeline_id}: {len(planned)} job(s) in {the_spool.root}")
    for p in planned:
        click.echo(f"  job {p.job.id} {p.job.name} (stage {p.job.stage})")
    if wait:
        allowed = {p.job.id for p in planned if p.spec.allow_failure}
        sys.exit(_wait(the_spool, [p.job.id for p in planned], allowed, timeout))


def _wait(spool: Any, ids: list[int], allowed: set[int], timeout: float) -> int:
    """Wait for every job; return 1 if one failed that was not allowed to, as the spool judges."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        results = [spool.result(i) for i in ids]
        if all(r is not None for r in results):
            failed = False
            for job_id, result in zip(ids, results, strict=True):
                allowed_failure = job_id in allowed and result["status"] != "success"
                note = " (allowed to fail)" if allowed_failure else ""
                click.echo(f"job {job_id} {result['name']}: {result['status']}{note}")
                failed |= result["status"] not in ("success", "skipped") and not allowed_failure
            return 1 if failed else 0
        time.sleep(0.05)
    click.echo(f"alloy-runner: error: the pipeline did not end within {timeout:g}s", err=True)
    return EXIT_USAGE


@click.command()
@click.argument("job_id", type=int)
@spool_option
@config_option
def cancel(job_id: int, spool: Path | None, config_path: Path | None) -> None:
    """Cancel a job of the spool: a waiting one at once, a running one through its runner."""
    from alloy_runner.coordinator.spool.store import Spool

    the_spool = Spool(spool_dir(spool, config_path))
    the_spool.ensure()
    what = the_spool.cancel(job_id)
    if what == "unknown":
        raise click.BadParameter(f"job {job_id} is not in {the_spool.root}")
    click.echo(f"job {job_id}: {what}")
