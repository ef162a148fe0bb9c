"""The spool commands: `submit` (`--wait`, `--dry-run`), `play`, `cancel`; text or `--json`."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alloy_runner.cli.args import Parser
from alloy_runner.cli.options import (
    add_config,
    add_file,
    add_json,
    add_spool,
    add_vars,
    print_json,
    spool_dir,
    variables,
)
from alloy_runner.exceptions import EXIT_FAILURE, PipelineError, UsageError, WaitTimeout

if TYPE_CHECKING:
    import argparse

    from alloy_runner.build.job import Variable
    from alloy_runner.coordinator.spool.records import JobResult
    from alloy_runner.coordinator.spool.store import Spool
    from alloy_runner.pipeline.repo import Repo
    from alloy_runner.pipeline.spec import PipelineSpec
    from alloy_runner.pipeline.submit import Planned

WAIT_POLL = 0.05  # seconds between looks at done/ while --wait waits


def parser(command: str, description: str) -> Parser:
    """The parser of `submit`, `cancel` or `play`, as `command` says."""
    made = Parser(command, description)
    if command == "submit":
        _submit_arguments(made)
        made.set_defaults(handler=submit)
        return made
    made.add_argument("job_id", type=int, metavar="JOB_ID")
    add_spool(made)
    add_config(made)
    if command == "cancel":
        add_json(made)
    made.set_defaults(handler=cancel if command == "cancel" else play)
    return made


def _submit_arguments(made: Parser) -> None:
    add_file(made)
    add_spool(made)
    add_config(made)
    add_vars(made)
    made.add_argument(
        "--wait", action="store_true", help="Wait for the pipeline to end; exit 1 if it failed."
    )
    made.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        help="Seconds --wait waits at most (default: 3600).",
    )
    made.add_argument("--ref", help="The branch or tag to run the pipeline for (default: HEAD's).")
    made.add_argument(
        "--source",
        default="push",
        help="CI_PIPELINE_SOURCE: push (the default), web, schedule, api, trigger, "
        "merge_request_event, ...",
    )
    made.add_argument(
        "--dry-run", action="store_true", help="Print the jobs GitLab would create; queue nothing."
    )
    add_json(made)
    made.add_words("jobs", metavar="JOBS", help="Only these jobs (and their needs).")


def submit(args: argparse.Namespace) -> None:
    """Put the pipeline of a .alloy-ci.yml (or only the named JOBS) into the spool."""
    from alloy_runner.coordinator.spool.store import Spool
    from alloy_runner.pipeline import submit as submitting

    run_vars = variables(args.plain, args.masked)
    as_json: bool = args.as_json
    jobs = tuple(args.jobs)
    repo, spec = _read(args.file, args.ref, args.source, run_vars)
    if _shown_instead(spec, jobs, run_vars, dry_run=args.dry_run, as_json=as_json):
        return
    the_spool = Spool(spool_dir(args.spool, args.config_path))
    pipeline_id, planned = submitting.submit(the_spool, spec, repo, names=jobs, variables=run_vars)
    if not as_json:
        print(f"pipeline {pipeline_id}: {len(planned)} job(s) in {the_spool.root}")
        for each in planned:
            when = "" if each.spec.when == "on_success" else f", when {each.spec.when}"
            print(f"  job {each.job.id} {each.job.name} (stage {each.job.stage}{when})")
    if not args.wait:
        if as_json:
            print_json(_submitted(the_spool, pipeline_id, planned, None))
        return
    _report(the_spool, pipeline_id, planned, args.timeout, as_json)


def _read(
    file: Path, ref: str | None, source: str, run_vars: list[Variable]
) -> tuple[Repo, PipelineSpec]:
    """Read the pipeline for the commit and source asked for; print its warnings."""
    from alloy_runner.pipeline.checks import check_pipeline, check_variables
    from alloy_runner.pipeline.ci_yaml import load_pipeline
    from alloy_runner.pipeline.repo import read_repo

    check_variables(run_vars)
    repo = read_repo(file.resolve().parent, ref, source)
    spec = load_pipeline(file, repo, {v.key: v.value for v in run_vars})
    check_pipeline(spec, str(file))
    for warning in spec.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if spec.jobs or spec.filtered:
        return repo, spec
    why = f"rules, only and except leave every job out for {repo.ref} ({repo.source})"
    raise PipelineError(f"{file}: no jobs: {why}")


def _shown_instead(
    spec: PipelineSpec,
    jobs: tuple[str, ...],
    run_vars: list[Variable],
    *,
    dry_run: bool,
    as_json: bool,
) -> bool:
    """Print what stands for the pipeline when none is queued (no pipeline, --dry-run)."""
    from alloy_runner.pipeline.show import show, show_json
    from alloy_runner.pipeline.submit import select

    if spec.filtered:
        print(f"no pipeline: {spec.filtered}", file=sys.stderr)
        if as_json:
            print_json({"pipeline": None, "no_pipeline": spec.filtered, "jobs": []})
        return True
    if not dry_run:
        return False
    chosen = select(spec, jobs)
    if as_json:
        print_json(show_json(spec, chosen, run_vars))
    else:
        print(show(spec, chosen, run_vars), end="")
    return True


def _report(
    spool: Spool, pipeline_id: int, planned: list[Planned], timeout: float, as_json: bool
) -> None:
    """Wait for the pipeline, then print each job's end; exit 1 when one failed unallowed."""
    results = _wait(spool, [each.job.id for each in planned], timeout)
    if as_json:
        print_json(_submitted(spool, pipeline_id, planned, results))
    if results is None:
        raise WaitTimeout(f"the pipeline did not end within {timeout:g}s")
    failed = False
    for each, result in zip(planned, results, strict=True):
        if result is None:
            if not as_json:
                print(f"job {each.job.id} {each.job.name}: manual (not played)")
            continue
        allowed_failure = _allowed(each, result)
        if not as_json:
            note = " (allowed to fail)" if allowed_failure else ""
            print(f"job {result.id} {result.name}: {result.status}{note}")
        failed |= not result.succeeded and not allowed_failure
    if failed:
        sys.exit(EXIT_FAILURE)


def _allowed(each: Planned, result: JobResult) -> bool:
    """Whether the job did not succeed and was allowed not to (`allow_failure`, exit codes)."""
    from alloy_runner.coordinator.spool.records import SpoolStatus

    if result.status is SpoolStatus.SUCCESS:
        return False
    codes = each.spec.allow_failure_exit_codes
    return each.spec.allow_failure or (bool(codes) and result.exit_code in codes)


def _wait(spool: Spool, ids: list[int], timeout: float) -> list[JobResult | None] | None:
    """Wait for every job's result, in the order of `ids`; None when `timeout` passes first.

    Manual jobs nobody played (and the jobs waiting behind them) end the wait too, without
    a result: the pipeline is as far as it goes without `play`.
    """
    from alloy_runner.coordinator.spool.records import SpoolStatus

    moving = {SpoolStatus.PENDING, SpoolStatus.RUNNING}
    deadline = time.monotonic() + timeout
    before: list[SpoolStatus] = []
    while time.monotonic() < deadline:
        statuses = [spool.status(job_id) for job_id in ids]
        blocked = SpoolStatus.MANUAL in statuses and not moving & set(statuses)
        if all(status.ended for status in statuses) or (blocked and statuses == before):
            return [spool.result(job_id) for job_id in ids]  # blocked: twice the same
        before = statuses
        time.sleep(WAIT_POLL)
    return None


def _submitted(
    spool: Spool,
    pipeline_id: int,
    planned: list[Planned],
    results: list[JobResult | None] | None,
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
            result is None or result.succeeded or _allowed(each, result)
            for each, result in zip(planned, results, strict=True)
        )
    return document


def cancel(args: argparse.Namespace) -> None:
    """Cancel a job of the spool: a waiting one at once, a running one through its runner."""
    from alloy_runner.coordinator.spool.records import CancelResult
    from alloy_runner.coordinator.spool.store import Spool

    job_id: int = args.job_id
    the_spool = Spool(spool_dir(args.spool, args.config_path))
    the_spool.ensure()
    done = the_spool.cancel(job_id)
    if done.result is CancelResult.UNKNOWN:
        raise UsageError(f"job {job_id} is not in {the_spool.root}")
    if args.as_json:
        print_json(done.to_json(job_id))
    else:
        shown = done.result if done.result is CancelResult.CANCELING else done.status
        print(f"job {job_id}: {shown}")


def play(args: argparse.Namespace) -> None:
    """Start a manual job of the spool (one with `when: manual` that is waiting to be played)."""
    from alloy_runner.coordinator.spool.store import Spool

    job_id: int = args.job_id
    the_spool = Spool(spool_dir(args.spool, args.config_path))
    the_spool.ensure()
    what = the_spool.play(job_id)
    if what == "unknown":
        raise UsageError(f"job {job_id} is not in {the_spool.root}")
    print(f"job {job_id}: {what}")
