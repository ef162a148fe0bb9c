"""The rows of panels both dashboards share; each query names its families through `Names`."""

from __future__ import annotations

from collections.abc import Callable

from grafana_foundation_sdk.builders import prometheus, table
from grafana_foundation_sdk.models import dashboard as model

from alloy_runner.telemetry.catalog import instruments as i
from alloy_runner.telemetry.catalog.dashboard_kit import (
    BUSY,
    DATASOURCE,
    RATE,
    Names,
    Panel,
    quantiles,
    query,
    series,
    single,
)


def _limit(n: Names) -> Panel:
    return single(
        "Limit",
        "Each runner's `limit`; 0 means the runner has no limit of its own.",
        query(f"max by ({n.runner}) ({n(i.LIMIT)}{n.sel()})", f"{{{{{n.runner}}}}}", instant=True),
    ).mappings([model.ValueMap(options={"0": model.ValueMappingResult(text="no limit")})])


def _jobs_in_range(n: Names) -> list[prometheus.Dataquery]:
    if not n.gitlab:  # GitLab's jobs total has no state: its failures are their own family
        expr = f"sum by (state) (increase({n(i.JOBS)}{n.sel()}[$__range]))"
        return [query(expr, "{{state}}", instant=True)]
    return [
        query(f"sum(increase({n(f)}{n.sel()}[$__range])) or vector(0)", legend, instant=True)
        for f, legend in ((i.JOBS, "jobs"), (i.FAILED_JOBS, "failed"))
    ]


def overview(n: Names) -> list[Panel]:
    limit = _limit(n)
    jobs = _jobs_in_range(n)
    return [
        single(
            "Runner up",
            "1 while Prometheus scrapes the runner.",
            query('up{job=~"$job"}', "{{instance}}", instant=True),
        ),
        single(
            "Concurrent",
            "The `concurrent` setting.",
            query(f"max({n(i.CONCURRENT)}{n.sel(runner=False)})", "concurrent", instant=True),
        ),
        single(
            "Running builds",
            "Builds alive now, any stage.",
            query(f"sum({n(i.BUILDS)}{n.sel(BUSY)}) or vector(0)", "builds", instant=True),
        ),
        single("Jobs in range", "Jobs that ended in the dashboard's time range.", *jobs),
        limit,
        table.Panel()
        .title("Version")
        .description("The runner's version and build.")
        .datasource(DATASOURCE)
        .with_target(query(f"{n(i.VERSION_INFO)}{n.sel(runner=False)}", instant=True).ref_id("A"))
        .height(4)
        .span(4),
    ]


def job_panels(n: Names) -> list[Panel]:
    sel = n.sel()
    if n.gitlab:
        rates = [
            query(f"sum(rate({n(i.JOBS)}{sel}{RATE}))", "ended"),
            query(f"sum(rate({n(i.FAILED_JOBS)}{sel}{RATE}))", "failed"),
        ]
    else:
        rates = [query(f"sum by (state) (rate({n(i.JOBS)}{sel}{RATE}))", "{{state}}")]
    duration = quantiles(n, i.JOB_DURATION, sel)
    duration = [q.exemplar(True) for q in duration]  # each links to its job's trace
    return [
        series("Job rate by state", "Jobs ending per second.", *rates, unit="ops"),
        series(
            "Failure reasons",
            "Failed jobs per second, by failure reason.",
            query(
                f"sum by (failure_reason) (rate({n(i.FAILED_JOBS)}{sel}{RATE})) > 0",
                "{{failure_reason}}",
            ),
            unit="ops",
        ),
        series(
            "Job duration",
            f"Quantiles of job duration ({n(i.JOB_DURATION)}); the dots are exemplars: "
            "each opens its job's trace.",
            *duration,
            unit="s",
        ),
        series(
            "Queue duration",
            "How long jobs waited before this runner took them.",
            *quantiles(n, i.QUEUE_DURATION, sel),
            unit="s",
        ),
        series(
            "Stage duration p90",
            "The 90th percentile of each stage's duration.",
            query(
                f"histogram_quantile(0.9, sum by (le, stage) "
                f"(rate({n(i.STAGE_DURATION)}_bucket{sel}{RATE})))",
                "{{stage}}",
            ),
            unit="s",
        ),
    ]


def build_panels(n: Names) -> list[Panel]:
    busy = n.sel(BUSY)
    return [
        series(
            "Builds by stage and state",
            "Builds alive now, by stage and state.",
            query(f"sum by (stage, state) ({n(i.BUILDS)}{busy})", "{{stage}} {{state}}"),
        ),
        series(
            "Builds by executor stage",
            "Builds alive now, by executor stage.",
            query(f"sum by (executor_stage) ({n(i.BUILDS)}{busy})", "{{executor_stage}}"),
        ),
        series(
            "Slots",
            "concurrent, job requests in flight and the request_concurrency limit.",
            query(f"max({n(i.CONCURRENT)}{n.sel(runner=False)})", "concurrent"),
            query(
                f"sum by ({n.runner}) ({n(i.REQUEST_CONCURRENCY)}{n.sel()})",
                "requests {{" + n.runner + "}}",
            ),
            query(
                f"sum by ({n.runner}) ({n(i.REQUEST_CONCURRENCY_HARD_LIMIT)}{n.sel()})",
                "request limit {{" + n.runner + "}}",
            ),
        ),
    ]


def machine_panels(n: Names) -> list[Panel]:
    sel = n.sel(runner=False)
    if n.gitlab:
        states = [
            query(
                f"sum by (executor, state) ({n(i.DOCKER_MACHINES_PROVIDER)}{sel})",
                "{{executor}} {{state}}",
            )
        ]
        ops = [
            query(
                f"sum by (executor, action) (rate({n(i.DOCKER_MACHINES)}{sel}{RATE}))",
                "{{executor}} {{action}}",
            )
        ]
        creation = quantiles(n, i.DOCKER_MACHINES_CREATION, sel, by="executor")
    else:
        pairs = (
            (i.DOCKER_MACHINES_PROVIDER, i.DOCKER_MACHINES),
            (i.SSH_DOCKER_MACHINES_PROVIDER, i.SSH_DOCKER_MACHINES),
        )
        states = [query(f"sum by (state) ({n(p)}{sel})", f"{n(p)} {{{{state}}}}") for p, _ in pairs]
        ops = [
            query(f"sum by (type) (rate({n(c)}{sel}{RATE}))", f"{n(c)} {{{{type}}}}")
            for _, c in pairs
        ]
        creation = quantiles(n, i.DOCKER_MACHINES_CREATION, sel)
    return [
        series("Machines by state", "Autoscaled machines, by state.", *states),
        series(
            "Machine operations",
            "Machines created, used, removed, failed, per second.",
            *ops,
            unit="ops",
        ),
        series("Machine creation time", "Quantiles of machine creation time.", *creation, unit="s"),
    ]


def api_panels(n: Names) -> list[Panel]:
    sel = n.sel(runner=False)
    statuses = n(i.API_REQUEST_STATUSES)
    errors = sel[:-1] + ', status=~"5..|timeout|connection_error"}'
    return [
        series(
            "API requests by status",
            "Calls to the coordinator per second.",
            query(
                f"sum by (endpoint, status) (rate({statuses}{sel}{RATE}))",
                "{{endpoint}} {{status}}",
            ),
            unit="reqps",
        ),
        series(
            "API errors",
            "Calls that got a server error or no answer.",
            query(
                f"sum by (endpoint, status) (rate({statuses}{errors}{RATE}))",
                "{{endpoint}} {{status}}",
            ),
            unit="reqps",
        ),
        series(
            "API latency p90",
            "The 90th percentile of call latency, by endpoint.",
            query(
                f"histogram_quantile(0.9, sum by (le, endpoint) "
                f"(rate({n(i.API_REQUEST_DURATION)}_bucket{sel}{RATE})))",
                "{{endpoint}}",
            ),
            unit="s",
        ),
    ]


JOB = '{job=~"$job"}'


def _gc_panels() -> list[Panel]:
    gc = f"sum by (generation) (rate({i.GC_COLLECTIONS.exposed_name}{JOB}{RATE}))"
    pause = (
        "histogram_quantile(0.99, sum by (le, generation) "
        f"(rate({i.GC_DURATION.name}_bucket{JOB}{RATE})))"
    )
    return [
        series(
            "GC collections",
            "Garbage collections per second.",
            query(gc, "gen {{generation}}"),
            unit="ops",
        ),
        series(
            "GC pause p99",
            "The 99th percentile of a collection's pause.",
            query(pause, "gen {{generation}}"),
            unit="s",
        ),
    ]


def process_panels(n: Names) -> list[Panel]:
    job = JOB
    return [
        series(
            "CPU",
            "CPU seconds per second.",
            query(f"rate({i.PROCESS_CPU.exposed_name}{job}{RATE})", "{{instance}}"),
        ),
        series(
            "Memory",
            "Resident and virtual memory.",
            query(f"{i.PROCESS_RSS.name}{job}", "rss {{instance}}"),
            query(f"{i.PROCESS_VMS.name}{job}", "vms {{instance}}"),
            unit="bytes",
        ),
        *_gc_panels(),
        series(
            "Threads and tasks",
            "Threads, and asyncio tasks of the runner's loop.",
            query(f"{i.THREADS.name}{job}", "threads"),
            query(f"{i.ASYNCIO_TASKS.name}{job}", "tasks"),
        ),
        series(
            "Open file descriptors",
            "Open and maximum file descriptors.",
            query(f"{i.PROCESS_OPEN_FDS.name}{job}", "open"),
            query(f"{i.PROCESS_MAX_FDS.name}{job}", "max"),
        ),
        series(
            "Logged errors",
            "Warnings and errors logged per second.",
            query(f"sum by (level) (rate({n(i.ERRORS)}{job}{RATE}))", "{{level}}"),
            unit="ops",
        ),
    ]


NEXT = (
    "**Traces** (one per job, one span per stage): Explore → *Tempo* → Search, service name "
    '`alloy-runner`, or TraceQL `{ span.cicd.pipeline.task.run.result = "failure" }`; the '
    "exemplars of *Job duration* open a job's trace.\n\n**Profiles**: Explore → *Pyroscope* → "
    "service `alloy-runner`, profile type `process_cpu`.\n\ndocs/stack.md has the whole tour."
)

ROWS: tuple[tuple[str, Callable[[Names], list[Panel]]], ...] = (
    ("Overview", overview),
    ("Jobs", job_panels),
    ("Builds", build_panels),
    ("Machines (docker+machine autoscaling)", machine_panels),
    ("Coordinator API", api_panels),
    ("Process and Python runtime", process_panels),
)
