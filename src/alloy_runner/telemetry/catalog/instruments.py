"""Every instrument alloy-runner exposes: name, type, unit, HELP text, labels, buckets.

This module is the code side of `shared/spec/metrics.md`; `docs/metrics.md`
and the tests are checked against `CATALOG`. Names are the OpenTelemetry
instrument names; a counter is scraped with the `_total` suffix appended.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    """How a family is recorded, and so which Prometheus type it is scraped as."""

    COUNTER = "counter"  # events, recorded when they happen
    OBSERVED_COUNTER = "observed_counter"  # a monotonic total read at collection
    GAUGE = "gauge"  # live state, read at collection
    HISTOGRAM = "histogram"

    @property
    def prometheus_type(self) -> str:
        """Return the `# TYPE` the family has in the text exposition."""
        if self in (Kind.COUNTER, Kind.OBSERVED_COUNTER):
            return "counter"
        return str(self.value)


@dataclass(frozen=True)
class Family:
    """One metric family as the catalog declares it."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    unit: str = ""
    buckets: tuple[float, ...] = ()

    @property
    def exposed_name(self) -> str:
        """Return the family name as scraped from `/metrics`."""
        if self.kind.prometheus_type == "counter":
            return f"{self.name}_total"
        return self.name


GC_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0)
JOB_BUCKETS = (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 7200, 10800, 18000, 36000)
STAGE_BUCKETS = (0.1, 0.5, 1, 3, 10, 30, 60, 120, 300, 900, 1800, 3600)
API_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
MACHINE_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600)
# A CI job uses from a fraction of a CPU second (a lint) to hours (a big compile or test suite).
CPU_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
# ... and from a few MiB (a shell script) to many GiB (a linker, a browser test).
MEMORY_BUCKETS = tuple(float(2**n * 1024**2) for n in range(4, 16))  # 16 MiB .. 32 GiB
MACHINE_OP_BUCKETS = (1, 3, 5, 10, 30, 50, 60, 80, 90, 120)  # GitLab Runner's

VERSION_INFO = Family(
    "ci_runner_version_info",
    Kind.GAUGE,
    "A metric with a constant '1' value labeled by different build stats fields.",
    ("architecture", "branch", "built_at", "name", "os", "python_version", "revision", "version"),
)
CONCURRENT = Family("ci_runner_concurrent", Kind.GAUGE, "The current value of concurrent setting.")
ERRORS = Family("ci_runner_errors", Kind.COUNTER, "The number of caught errors.", ("level",))

BUILDS = Family(
    "ci_runner_builds",
    Kind.GAUGE,
    "The current number of running builds.",
    ("runner", "stage", "state", "executor_stage"),
)
JOBS = Family("ci_runner_jobs", Kind.COUNTER, "Total number of handled jobs.", ("runner", "state"))
FAILED_JOBS = Family(
    "ci_runner_failed_jobs",
    Kind.COUNTER,
    "Total number of failed jobs.",
    ("runner", "failure_reason"),
)
JOB_DURATION = Family(
    "ci_runner_job_duration_seconds",
    Kind.HISTOGRAM,
    "Histogram of job durations.",
    ("runner",),
    unit="s",
    buckets=JOB_BUCKETS,
)
QUEUE_DURATION = Family(
    "ci_runner_job_queue_duration_seconds",
    Kind.HISTOGRAM,
    "Histogram of the time jobs waited in the queue before this runner picked them.",
    ("runner",),
    unit="s",
    buckets=STAGE_BUCKETS,
)
QUEUING_DURATION_EXCEEDED = Family(
    "ci_runner_acceptable_job_queuing_duration_exceeded",
    Kind.COUNTER,
    "Counts how often jobs exceed the configured queuing time threshold.",
    ("runner",),
)
STAGE_DURATION = Family(
    "ci_runner_job_stage_duration_seconds",
    Kind.HISTOGRAM,
    "Histogram of each job stage duration.",
    ("runner", "stage"),
    unit="s",
    buckets=STAGE_BUCKETS,
)
JOB_CPU = Family(
    "ci_runner_job_cpu_seconds",
    Kind.HISTOGRAM,
    "Histogram of the CPU time (user and system) each job's scripts used.",
    ("runner", "executor"),
    unit="s",
    buckets=CPU_BUCKETS,
)
JOB_MEMORY_PEAK = Family(
    "ci_runner_job_memory_peak_bytes",
    Kind.HISTOGRAM,
    "Histogram of the peak memory of each job's scripts.",
    ("runner", "executor"),
    unit="By",
    buckets=MEMORY_BUCKETS,
)
CACHE_TRANSFER_DURATION = Family(
    "ci_runner_cache_transfer_duration_seconds",
    Kind.HISTOGRAM,
    "Histogram of distributed cache archive downloads and uploads.",
    ("runner", "operation", "result"),
    unit="s",
    buckets=STAGE_BUCKETS,
)
LIMIT = Family("ci_runner_limit", Kind.GAUGE, "The current value of limit setting.", ("runner",))
REQUEST_CONCURRENCY = Family(
    "ci_runner_request_concurrency",
    Kind.GAUGE,
    "The current number of concurrent requests for a new job.",
    ("runner",),
)
API_REQUEST_STATUSES = Family(
    "ci_runner_api_request_statuses",
    Kind.COUNTER,
    "The total number of API requests, partitioned by runner, endpoint and status.",
    ("runner", "endpoint", "status"),
)
API_REQUEST_RETRIES = Family(
    "ci_runner_api_request_retries",
    Kind.COUNTER,
    "The total number of retries made in process of completing a request, "
    "partitioned by runner and endpoint.",
    ("runner", "endpoint"),
)
REQUEST_CONCURRENCY_EXCEEDED = Family(
    "ci_runner_request_concurrency_exceeded",
    Kind.COUNTER,
    "Count of excess requests above the configured request_concurrency limit.",
    ("runner",),
)
REQUEST_CONCURRENCY_HARD_LIMIT = Family(
    "ci_runner_request_concurrency_hard_limit",
    Kind.GAUGE,
    "Configured request_concurrency limit.",
    ("runner",),
)
REQUEST_CONCURRENCY_ADAPTIVE_LIMIT = Family(
    "ci_runner_request_concurrency_adaptive_limit",
    Kind.GAUGE,
    "Computed adaptive request concurrency limit.",
    ("runner",),
)
REQUEST_CONCURRENCY_USED_LIMIT = Family(
    "ci_runner_request_concurrency_used_limit",
    Kind.GAUGE,
    "Used request concurrency limit.",
    ("runner",),
)
API_REQUEST_DURATION = Family(
    "ci_runner_api_request_duration_seconds",
    Kind.HISTOGRAM,
    "Latency histogram of API requests.",
    ("runner", "endpoint"),
    unit="s",
    buckets=API_BUCKETS,
)

MACHINES_HELP = "The total number of machines created."
PROVIDER_HELP = "The current number of machines in given state."
CREATION_HELP = "Histogram of machine creation time."
DOCKER_MACHINES = Family("ci_docker_machines", Kind.COUNTER, MACHINES_HELP, ("type",))
DOCKER_MACHINES_PROVIDER = Family(
    "ci_docker_machines_provider", Kind.GAUGE, PROVIDER_HELP, ("state",)
)
DOCKER_MACHINES_CREATION = Family(
    "ci_docker_machines_creation_duration_seconds",
    Kind.HISTOGRAM,
    CREATION_HELP,
    unit="s",
    buckets=MACHINE_BUCKETS,
)
SSH_DOCKER_MACHINES = Family("ci_ssh_docker_machines", Kind.COUNTER, MACHINES_HELP, ("type",))
SSH_DOCKER_MACHINES_PROVIDER = Family(
    "ci_ssh_docker_machines_provider", Kind.GAUGE, PROVIDER_HELP, ("state",)
)
SSH_DOCKER_MACHINES_CREATION = Family(
    "ci_ssh_docker_machines_creation_duration_seconds",
    Kind.HISTOGRAM,
    CREATION_HELP,
    unit="s",
    buckets=MACHINE_BUCKETS,
)

CONFIG_LOADED = Family(
    "ci_runner_configuration_loaded",
    Kind.COUNTER,
    "Total number of times the configuration file was loaded by Runner process.",
)
CONFIG_LOADING_ERRORS = Family(
    "ci_runner_configuration_loading_error",
    Kind.COUNTER,
    "Total number of times the configuration file was not loaded by Runner process due to errors.",
)
CONFIG_SAVED = Family(
    "ci_runner_configuration_saved",
    Kind.COUNTER,
    "Total number of times the configuration file was saved by Runner process.",
)
CONFIG_SAVING_ERRORS = Family(
    "ci_runner_configuration_saving_error",
    Kind.COUNTER,
    "Total number of times the configuration file was not saved by Runner process due to errors.",
)

FAILED_CREATION_HELP = "Histogram of machine failed creation timings."
REMOVAL_HELP = "Histogram of machine removal time."
STOPPING_HELP = "Histogram of machine stopping time."


def _machine_histogram(name: str, help_text: str) -> Family:
    return Family(name, Kind.HISTOGRAM, help_text, unit="s", buckets=MACHINE_OP_BUCKETS)


DOCKER_MACHINES_FAILED_CREATION = _machine_histogram(
    "ci_docker_machines_failed_creation_duration_seconds", FAILED_CREATION_HELP
)
DOCKER_MACHINES_REMOVAL = _machine_histogram(
    "ci_docker_machines_removal_duration_seconds", REMOVAL_HELP
)
DOCKER_MACHINES_STOPPING = _machine_histogram(
    "ci_docker_machines_stopping_duration_seconds", STOPPING_HELP
)
SSH_DOCKER_MACHINES_STOPPING = _machine_histogram(
    "ci_ssh_docker_machines_stopping_duration_seconds", STOPPING_HELP
)
SSH_DOCKER_MACHINES_FAILED_CREATION = _machine_histogram(
    "ci_ssh_docker_machines_failed_creation_duration_seconds", FAILED_CREATION_HELP
)
SSH_DOCKER_MACHINES_REMOVAL = _machine_histogram(
    "ci_ssh_docker_machines_removal_duration_seconds", REMOVAL_HELP
)

PROCESS_CPU = Family(
    "process_cpu_seconds",
    Kind.OBSERVED_COUNTER,
    "Total user and system CPU time spent in seconds.",
    unit="s",
)
PROCESS_MAX_FDS = Family("process_max_fds", Kind.GAUGE, "Maximum number of open file descriptors.")
PROCESS_OPEN_FDS = Family("process_open_fds", Kind.GAUGE, "Number of open file descriptors.")
PROCESS_RSS = Family(
    "process_resident_memory_bytes", Kind.GAUGE, "Resident memory size in bytes.", unit="By"
)
PROCESS_START = Family(
    "process_start_time_seconds",
    Kind.GAUGE,
    "Start time of the process since unix epoch in seconds.",
    unit="s",
)
PROCESS_VMS = Family(
    "process_virtual_memory_bytes", Kind.GAUGE, "Virtual memory size in bytes.", unit="By"
)

GC_DURATION = Family(
    "python_gc_duration_seconds",
    Kind.HISTOGRAM,
    "A histogram of the garbage collection durations.",
    ("generation",),
    unit="s",
    buckets=GC_BUCKETS,
)
GC_COLLECTIONS = Family(
    "python_gc_collections",
    Kind.OBSERVED_COUNTER,
    "Number of times this generation was collected.",
    ("generation",),
)
GC_COLLECTED = Family(
    "python_gc_objects_collected",
    Kind.OBSERVED_COUNTER,
    "Objects collected during garbage collection.",
    ("generation",),
)
GC_UNCOLLECTABLE = Family(
    "python_gc_objects_uncollectable",
    Kind.OBSERVED_COUNTER,
    "Uncollectable objects found during garbage collection.",
    ("generation",),
)
THREADS = Family("python_threads", Kind.GAUGE, "Number of threads that currently exist.")
ASYNCIO_TASKS = Family(
    "python_asyncio_tasks",
    Kind.GAUGE,
    "Number of asyncio tasks that currently exist in the runner's event loop.",
)
ALLOCATED_BLOCKS = Family(
    "python_allocated_blocks",
    Kind.GAUGE,
    "Number of memory blocks currently allocated by the interpreter.",
)
PYTHON_INFO = Family(
    "python_info",
    Kind.GAUGE,
    "A metric with a constant '1' value labeled by the Python interpreter's identity.",
    ("implementation", "major", "minor", "patchlevel", "version"),
)

CATALOG: tuple[Family, ...] = (
    BUILDS,
    VERSION_INFO,
    DOCKER_MACHINES,
    DOCKER_MACHINES_PROVIDER,
    DOCKER_MACHINES_CREATION,
    SSH_DOCKER_MACHINES,
    SSH_DOCKER_MACHINES_PROVIDER,
    SSH_DOCKER_MACHINES_CREATION,
    DOCKER_MACHINES_FAILED_CREATION,
    DOCKER_MACHINES_REMOVAL,
    DOCKER_MACHINES_STOPPING,
    SSH_DOCKER_MACHINES_FAILED_CREATION,
    SSH_DOCKER_MACHINES_REMOVAL,
    SSH_DOCKER_MACHINES_STOPPING,
    JOBS,
    FAILED_JOBS,
    JOB_DURATION,
    QUEUE_DURATION,
    QUEUING_DURATION_EXCEEDED,
    STAGE_DURATION,
    JOB_CPU,
    JOB_MEMORY_PEAK,
    CACHE_TRANSFER_DURATION,
    CONCURRENT,
    LIMIT,
    REQUEST_CONCURRENCY,
    REQUEST_CONCURRENCY_EXCEEDED,
    REQUEST_CONCURRENCY_HARD_LIMIT,
    REQUEST_CONCURRENCY_ADAPTIVE_LIMIT,
    REQUEST_CONCURRENCY_USED_LIMIT,
    API_REQUEST_STATUSES,
    API_REQUEST_DURATION,
    API_REQUEST_RETRIES,
    ERRORS,
    CONFIG_LOADED,
    CONFIG_LOADING_ERRORS,
    CONFIG_SAVED,
    CONFIG_SAVING_ERRORS,
    PROCESS_CPU,
    PROCESS_MAX_FDS,
    PROCESS_OPEN_FDS,
    PROCESS_RSS,
    PROCESS_START,
    PROCESS_VMS,
    GC_DURATION,
    GC_COLLECTIONS,
    GC_COLLECTED,
    GC_UNCOLLECTABLE,
    THREADS,
    ASYNCIO_TASKS,
    ALLOCATED_BLOCKS,
    PYTHON_INFO,
)

CACHE_OPERATIONS = ("download", "upload")  # closed values of `operation`
CACHE_RESULTS = ("success", "failure")  # closed values of `result`


class ErrorLevel(Enum):
    """The closed values of `ci_runner_errors_total{level}`."""

    WARNING = "warning"
    ERROR = "error"
    FATAL = "fatal"
