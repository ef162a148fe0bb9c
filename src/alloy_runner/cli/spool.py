"""The spool commands: `submit` (with `--wait`) and `cancel`, in text or `--json`."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from alloy_runner.cli.options import (
    config_option,
    file_option,
    json_option,
    print_json,
    spool_dir,
    spool_option,
    var_options,
    variables,
)
from alloy_runner.exceptions import EXIT_FAILURE, WaitTimeout

if TYPE_CHECKING:
    from alloy_runner.coordinator.spool.records import JobResult
    from alloy_runner.coordinator.spool.store import Spool
    from alloy_runner.pipeline.submit import Planned

WAIT_POLL = 0.05  # seconds between looks at done/ while --wait waits


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
@json_option
@click.argument("jobs", nargs=-1)
def submit(
    file: Path,
    spool: Path | None,
    config_path: Path | None,
    plain: tuple[str, ...],
    masked: tuple[str, ...],
    wait: bool,
    timeout: float,
    as_json: bool,
    jobs: tuple[str, ...],
) -> None:
    """Put the pipeline of a .alloy-ci.yml (or only the named JOBS) into the spool."""
    from alloy_runner.coordinator.spool.records import SpoolStatus
    from alloy_runner.coordinator.spool.store import Spool
    from alloy_runner.pipeline import submit as submitting
    from alloy_runner.pipeline.checks import check_pipeline, check_variables
    from alloy_runner.pipeline.ci_yaml import load_pipeline

    spec = load_pipeline(file)
    check_pipeline(spec, str(file))
    extra = variables(plain, masked)
    check_variables(extra)
    for warning in spec.warnings:
        click.echo(f"warning: {warning}", err=True)
    the_spool = Spool(spool_dir(spool, config_path))
    pipeline_id, planned = submitting.submit(
        the_spool, spec, file.resolve().parent, names=jobs, variables=extra
    )
    if not as_json:
        click.echo(f"pipeline {pipeline_id}: {len(planned)} job(s) in {the_spool.root}")
        for each in planned:
            click.echo(f"  job {each.job.id} {each.job.name} (stage {each.job.stage})")
    if not wait:
        if as_json:
            print_json(_submitted(the_spool, pipeline_id, planned, None))
        return
    results = _wait(the_spool, [each.job.id for each in planned], timeout)
    if as_json:
        print_json(_submitted(the_spool, pipeline_id, planned, results))
    if results is None:
        raise WaitTimeout(f"the pipeline did not end within {timeout:g}s")
    failed = False
    for each, result in zip(planned, results, strict=True):
        allowed_failure = each.spec.allow_failure and result.status is not SpoolStatus.SUCCESS
        if not as_json:
            note = " (allowed to fail)" if allowed_failure else ""
            click.echo(f"job {result.id} {result.name}: {result.status}{note}")
        failed |= not result.succeeded and not allowed_failure
    if failed:
        sys.exit(EXIT_FAILURE)


def _wait(spool: Spool, ids: list[int], timeout: float) -> list[JobResult] | None:
    """Wait for every job's result, in the order of `ids`; None when `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        results = [spool.result(job_id) for job_id in ids]
        ended = [result for result in results if result is not None]
        if len(ended) == len(ids):
            return ended
        time.sleep(WAIT_POLL)
    return None


def _submitted(
    spool: Spool,
    pipeline_id: int,
    planned: list[Planned],
    results: list[JobResult] | None,
) -> dict[str, Any]:
    """Return the `submit --json` document (docs/pipelines.md describes it)."""
    jobs: list[dict[str, Any]] = []
    for index, each in enumerate(planned):
        result = results[index] if results is not None else None
        entry: dict[str, Any] = {
            "id": each.job.id,
            "name": each.job.name,
            "stage": each.job.stage,
            "allow_failure": each.spec.allow_failure,
            "status": (result.status if result else spool.status(each.job.id)).value,
        }
        if result is not None:
            entry["result"] = result.to_json()
        jobs.append(entry)
    document: dict[str, Any] = {"pipeline": pipeline_id, "spool": str(spool.root), "jobs": jobs}
    if results is not None:
        document["passed"] = all(
            result.succeeded or each.spec.allow_failure
            for each, result in zip(planned, results, strict=True)
        )
    return document


@click.command()
@click.argument("job_id", type=int)
@spool_option
@config_option
@json_option
def cancel(job_id: int, spool: Path | None, config_path: Path | None, as_json: bool) -> None:
    """Cancel a job of the spool: a waiting one at once, a running one through its runner."""
    from alloy_runner.coordinator.spool.records import CancelResult
    from alloy_runner.coordinator.spool.store import Spool

    the_spool = Spool(spool_dir(spool, config_path))
    the_spool.ensure()
    done = the_spool.cancel(job_id)
    if done.result is CancelResult.UNKNOWN:
        raise click.BadParameter(f"job {job_id} is not in {the_spool.root}")
    if as_json:
        print_json(done.to_json(job_id))
    else:
        shown = done.result if done.result is CancelResult.CANCELING else done.status
        click.echo(f"job {job_id}: {shown}")
