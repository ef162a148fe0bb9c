"""OpenTelemetry names and UCUM units for the catalog's families, on the OTLP path only.

`/metrics` keeps the Prometheus names it has always had (`ci_runner_jobs_total`,
`process_cpu_seconds_total`): dashboards and alerts read them. Over OTLP the
same data carries OpenTelemetry names (dots, no unit or `_total` suffix) and
UCUM units (`s`, `By`, `{job}`), and the process and Python families take the
names of the semantic conventions where there is one (`process.cpu.time`,
`cpython.gc.collections`). The SDK's views apply to every reader of a
provider, so the renaming happens in the OTLP exporters, on the data they
send, and nowhere else. A family missing here keeps its instrument name.
"""

from __future__ import annotations

import dataclasses

from opentelemetry.sdk.metrics.export import MetricsData

# catalog name -> (OTLP name, UCUM unit)
OTLP_NAMES: dict[str, tuple[str, str]] = {
    # No unit for the info gauges: "1" would read as a ratio (Prometheus adds `_ratio`).
    "ci_runner_version_info": ("ci.runner.version.info", ""),
    "ci_runner_concurrent": ("ci.runner.concurrent", "{job}"),
    "ci_runner_errors": ("ci.runner.errors", "{error}"),
    "ci_runner_builds": ("ci.runner.builds", "{build}"),
    "ci_runner_jobs": ("ci.runner.jobs", "{job}"),
    "ci_runner_failed_jobs": ("ci.runner.jobs.failed", "{job}"),
    "ci_runner_job_duration_seconds": ("ci.runner.job.duration", "s"),
    "ci_runner_job_queue_duration_seconds": ("ci.runner.job.queue.duration", "s"),
    "ci_runner_job_stage_duration_seconds": ("ci.runner.job.stage.duration", "s"),
    "ci_runner_job_cpu_seconds": ("ci.runner.job.cpu.time", "s"),
    "ci_runner_job_memory_peak_bytes": ("ci.runner.job.memory.peak", "By"),
    "ci_runner_cache_transfer_duration_seconds": ("ci.runner.cache.transfer.duration", "s"),
    "ci_runner_limit": ("ci.runner.limit", "{job}"),
    "ci_runner_request_concurrency": ("ci.runner.request.concurrency", "{request}"),
    "ci_runner_api_request_statuses": ("ci.runner.api.requests", "{request}"),
    "ci_runner_api_request_duration_seconds": ("ci.runner.api.request.duration", "s"),
    "ci_docker_machines": ("ci.docker_machines", "{machine}"),
    "ci_docker_machines_provider": ("ci.docker_machines.provider", "{machine}"),
    "ci_docker_machines_creation_duration_seconds": ("ci.docker_machines.creation.duration", "s"),
    "ci_ssh_docker_machines": ("ci.ssh_docker_machines", "{machine}"),
    "ci_ssh_docker_machines_provider": ("ci.ssh_docker_machines.provider", "{machine}"),
    "ci_ssh_docker_machines_creation_duration_seconds": (
        "ci.ssh_docker_machines.creation.duration",
        "s",
    ),
    "ci_runner_request_concurrency_exceeded": (
        "ci.runner.request.concurrency.exceeded",
        "{request}",
    ),
    "ci_runner_request_concurrency_hard_limit": (
        "ci.runner.request.concurrency.hard_limit",
        "{request}",
    ),
    "ci_runner_request_concurrency_adaptive_limit": (
        "ci.runner.request.concurrency.adaptive_limit",
        "{request}",
    ),
    "ci_runner_request_concurrency_used_limit": (
        "ci.runner.request.concurrency.used_limit",
        "{request}",
    ),
    "ci_runner_api_request_retries": ("ci.runner.api.request.retries", "{retry}"),
    "ci_runner_acceptable_job_queuing_duration_exceeded": (
        "ci.runner.job.queuing_duration.exceeded",
        "{job}",
    ),
    "ci_runner_configuration_loaded": ("ci.runner.configuration.loaded", "{load}"),
    "ci_runner_configuration_loading_error": ("ci.runner.configuration.loading_errors", "{error}"),
    "ci_runner_configuration_saved": ("ci.runner.configuration.saved", "{save}"),
    "ci_runner_configuration_saving_error": ("ci.runner.configuration.saving_errors", "{error}"),
    **{
        f"ci_{kind}_{what}_duration_seconds": (f"ci.{kind}.{what}.duration", "s")
        for kind in ("docker_machines", "ssh_docker_machines")
        for what in ("failed_creation", "removal", "stopping")
    },
    "process_cpu_seconds": ("process.cpu.time", "s"),
    "process_max_fds": ("process.open_file_descriptor.limit", "{file_descriptor}"),
    "process_open_fds": ("process.open_file_descriptor.count", "{file_descriptor}"),
    "process_resident_memory_bytes": ("process.memory.usage", "By"),
    "process_start_time_seconds": ("process.start_time", "s"),
    "process_virtual_memory_bytes": ("process.memory.virtual", "By"),
    "python_gc_duration_seconds": ("cpython.gc.duration", "s"),
    "python_gc_collections": ("cpython.gc.collections", "{collection}"),
    "python_gc_objects_collected": ("cpython.gc.collected_objects", "{object}"),
    "python_gc_objects_uncollectable": ("cpython.gc.uncollectable_objects", "{object}"),
    "python_threads": ("python.threads", "{thread}"),
    "python_asyncio_tasks": ("python.asyncio.tasks", "{task}"),
    "python_allocated_blocks": ("python.allocated_blocks", "{block}"),
    "python_info": ("python.info", ""),
}


def otlp_named(data: MetricsData) -> MetricsData:
    """Return `data` with each catalog family under its OTLP name and unit."""
    return dataclasses.replace(
        data,
        resource_metrics=[
            dataclasses.replace(
                rm,
                scope_metrics=[
                    dataclasses.replace(
                        sm,
                        metrics=[
                            dataclasses.replace(
                                m, name=OTLP_NAMES[m.name][0], unit=OTLP_NAMES[m.name][1]
                            )
                            if m.name in OTLP_NAMES
                            else m
                            for m in sm.metrics
                        ],
                    )
                    for sm in rm.scope_metrics
                ],
            )
            for rm in data.resource_metrics
        ],
    )
