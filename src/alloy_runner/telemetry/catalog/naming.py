"""The two namings of the exposition: the seed's `ci_*` names and GitLab Runner's `gitlab_runner_*`.

Every family has one OpenTelemetry instrument; `metric_names` chooses under
which name(s) `/metrics` shows it. The GitLab naming is a mapping applied by
the Prometheus reader (telemetry/metrics/exposition.py): the family's name,
HELP text and label set as GitLab Runner's source declares them, with label
values derived from what the instrument recorded and from the runner's
identity (`runner` is the token's short form, `runner_name` the entry's name,
`system_id` the process's system id). Families GitLab Runner does not have
(the Python runtime, `process_*`) keep their one name under both namings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from alloy_runner.telemetry.catalog import instruments as i


class MetricNames(Enum):
    """The `metric_names` setting: which names `/metrics` exposes."""

    ALLOYCI = "alloyci"
    GITLAB = "gitlab"
    BOTH = "both"

    @property
    def alloyci(self) -> bool:
        return self is not MetricNames.GITLAB

    @property
    def gitlab(self) -> bool:
        return self is not MetricNames.ALLOYCI


@dataclass(frozen=True)
class RunnerIdentity:
    """The GitLab Runner labels of one `[[runners]]` entry."""

    runner: str  # the token's short form (the entry's name when it has no token)
    runner_name: str
    system_id: str
    executor: str


# Labels the GitLab naming fills from the runner's identity, keyed by the `runner` attribute.
IDENTITY_LABELS = ("runner", "runner_name", "system_id")

# The HTTP method of each Runner API v4 call, lower-case as GitLab Runner labels it.
METHODS = {
    "register_runner": "post",
    "verify_runner": "post",
    "reset_token": "post",  # run's token rotation
    "request_job": "post",
    "update_job": "put",
    "patch_trace": "patch",
    "upload_artifacts": "post",
    "download_artifacts": "get",
}

# The path of each call, its job id left out (GitLab Runner's retries are by path).
PATHS = {
    "register_runner": "/api/v4/runners",
    "verify_runner": "/api/v4/runners/verify",
    "request_job": "/api/v4/jobs/request",
    "update_job": "/api/v4/jobs/:id",
    "patch_trace": "/api/v4/jobs/:id/trace",
    "upload_artifacts": "/api/v4/jobs/:id/artifacts",
    "download_artifacts": "/api/v4/jobs/:id/artifacts",
}

# GitLab Runner spells one machine action with a dash.
ACTIONS = {"creation_failed": "creation-failed"}


@dataclass(frozen=True)
class GitlabFamily:
    """How one catalog family is named and labelled under the GitLab naming."""

    name: str  # as scraped (a counter's name ends in `_total`)
    help: str
    labels: tuple[str, ...]
    rename: Mapping[str, str] = field(default_factory=dict)  # alloyci label -> gitlab label
    constants: Mapping[str, str] = field(default_factory=dict)

    @property
    def family_name(self) -> str:
        """Return the name without `_total`: what prometheus_client names the family."""
        return self.name.removesuffix("_total")


def _gl(
    name: str,
    help_text: str,
    labels: tuple[str, ...],
    *,
    rename: Mapping[str, str] | None = None,
    constants: Mapping[str, str] | None = None,
) -> GitlabFamily:
    return GitlabFamily(name, help_text, labels, dict(rename or {}), dict(constants or {}))


_RUNNER = IDENTITY_LABELS
_MODE = {"mode": "traditional"}  # every alloy-runner job runs scripts, GitLab's "traditional"
_STATES_HELP = "The current number of machines per state in this provider."
_ACTIONS_HELP = "The total number of actions executed by the provider."
_CREATION_HELP = "Histogram of machine creation time."
_DOCKER = {"executor": "docker+machine"}
_SSH = {"executor": "docker-ssh+machine"}

# GitLab Runner's names, HELP texts and labels (commands/, network/, helpers/prometheus/,
# executors/docker/machine/), keyed by the catalog's instrument name.
GITLAB: dict[str, GitlabFamily] = {
    i.BUILDS.name: _gl(
        "gitlab_runner_jobs",
        "The current number of running builds.",
        (*_RUNNER, "state", "stage", "executor_stage"),
    ),
    i.VERSION_INFO.name: _gl(
        "gitlab_runner_version_info",
        "A metric with a constant '1' value labeled by different build stats fields.",
        i.VERSION_INFO.labels,
    ),
    i.JOBS.name: _gl("gitlab_runner_jobs_total", "Total number of handled jobs", _RUNNER),
    i.FAILED_JOBS.name: _gl(
        "gitlab_runner_failed_jobs_total",
        "Total number of failed jobs",
        ("runner", "runner_name", "failure_reason", "mode"),
        constants=_MODE,
    ),
    i.JOB_DURATION.name: _gl(
        "gitlab_runner_job_duration_seconds",
        "Histogram of job durations",
        (*_RUNNER, "mode"),
        constants=_MODE,
    ),
    i.QUEUE_DURATION.name: _gl(
        "gitlab_runner_job_queue_duration_seconds",
        "A histogram representing job queue duration.",
        (*_RUNNER, "project_jobs_running"),  # recorded, bounded: project_jobs_running_label
    ),
    i.QUEUING_DURATION_EXCEEDED.name: _gl(
        "gitlab_runner_acceptable_job_queuing_duration_exceeded_total",
        "Counts how often jobs exceed the configured queuing time threshold",
        _RUNNER,
    ),
    i.STAGE_DURATION.name: _gl(
        "gitlab_runner_job_stage_duration_seconds",
        "Histogram of each job stage duration",
        (*_RUNNER, "stage"),
    ),
    i.CONCURRENT.name: _gl(
        "gitlab_runner_concurrent", "The current value of concurrent setting", ()
    ),
    # GitLab Runner's HELP of this family says "concurrent" too (commands/multi.go).
    i.LIMIT.name: _gl("gitlab_runner_limit", "The current value of concurrent setting", _RUNNER),
    i.REQUEST_CONCURRENCY.name: _gl(
        "gitlab_runner_request_concurrency",
        "The current number of concurrent requests for a new job",
        ("runner", "system_id"),
    ),
    i.REQUEST_CONCURRENCY_EXCEEDED.name: _gl(
        "gitlab_runner_request_concurrency_exceeded_total",
        "Count of excess requests above the configured request_concurrency limit",
        ("runner", "system_id"),
    ),
    i.REQUEST_CONCURRENCY_HARD_LIMIT.name: _gl(
        "gitlab_runner_request_concurrency_hard_limit",
        "Configured request_concurrency limit",
        ("runner", "system_id"),
    ),
    i.REQUEST_CONCURRENCY_ADAPTIVE_LIMIT.name: _gl(
        "gitlab_runner_request_concurrency_adaptive_limit",
        "Computed adaptive request concurrency limit",
        ("runner", "system_id"),
    ),
    i.REQUEST_CONCURRENCY_USED_LIMIT.name: _gl(
        "gitlab_runner_request_concurrency_used_limit",
        "Used request concurrency limit",
        ("runner", "system_id"),
    ),
    i.API_REQUEST_RETRIES.name: _gl(
        "gitlab_runner_api_request_retries_total",
        "The total number of retries made by GitLab Runner in process of completing a request, "
        "partitioned by path and method.",
        ("path", "method"),
    ),
    i.API_REQUEST_STATUSES.name: _gl(
        "gitlab_runner_api_request_statuses_total",
        "The total number of API requests made by GitLab Runner, partitioned by runner, "
        "system_id, endpoint, status and method.",
        ("runner", "system_id", "endpoint", "status", "method"),
    ),
    i.API_REQUEST_DURATION.name: _gl(
        "gitlab_runner_api_request_duration_seconds",
        "Latency histogram of API requests made by GitLab Runner, partitioned by runner, "
        "system_id, endpoint, status_class and method.",
        ("runner", "system_id", "endpoint", "status_class", "method"),
    ),
    i.ERRORS.name: _gl("gitlab_runner_errors_total", "The number of caught errors.", ("level",)),
    i.CONFIG_LOADED.name: _gl(
        "gitlab_runner_configuration_loaded_total",
        "Total number of times the configuration file was loaded by Runner process",
        (),
    ),
    i.CONFIG_LOADING_ERRORS.name: _gl(
        "gitlab_runner_configuration_loading_error_total",
        "Total number of times the configuration file was not loaded by Runner process due to "
        "errors",
        (),
    ),
    i.CONFIG_SAVED.name: _gl(
        "gitlab_runner_configuration_saved_total",
        "Total number of times the configuration file was saved by Runner process",
        (),
    ),
    i.CONFIG_SAVING_ERRORS.name: _gl(
        "gitlab_runner_configuration_saving_error_total",
        "Total number of times the configuration file was not saved by Runner process due to "
        "errors",
        (),
    ),
    i.DOCKER_MACHINES.name: _gl(
        "gitlab_runner_autoscaling_actions_total",
        _ACTIONS_HELP,
        ("action", "executor"),
        rename={"type": "action"},
        constants=_DOCKER,
    ),
    i.SSH_DOCKER_MACHINES.name: _gl(
        "gitlab_runner_autoscaling_actions_total",
        _ACTIONS_HELP,
        ("action", "executor"),
        rename={"type": "action"},
        constants=_SSH,
    ),
    i.DOCKER_MACHINES_PROVIDER.name: _gl(
        "gitlab_runner_autoscaling_machine_states",
        _STATES_HELP,
        ("state", "executor"),
        constants=_DOCKER,
    ),
    i.SSH_DOCKER_MACHINES_PROVIDER.name: _gl(
        "gitlab_runner_autoscaling_machine_states",
        _STATES_HELP,
        ("state", "executor"),
        constants=_SSH,
    ),
    i.DOCKER_MACHINES_CREATION.name: _gl(
        "gitlab_runner_autoscaling_machine_creation_duration_seconds",
        _CREATION_HELP,
        ("executor",),
        constants=_DOCKER,
    ),
    i.SSH_DOCKER_MACHINES_CREATION.name: _gl(
        "gitlab_runner_autoscaling_machine_creation_duration_seconds",
        _CREATION_HELP,
        ("executor",),
        constants=_SSH,
    ),
}
for _families, _constants in (
    (
        (i.DOCKER_MACHINES_FAILED_CREATION, i.DOCKER_MACHINES_REMOVAL, i.DOCKER_MACHINES_STOPPING),
        _DOCKER,
    ),
    (
        (
            i.SSH_DOCKER_MACHINES_FAILED_CREATION,
            i.SSH_DOCKER_MACHINES_REMOVAL,
            i.SSH_DOCKER_MACHINES_STOPPING,
        ),
        _SSH,
    ),
):
    GITLAB[_families[0].name] = _gl(
        "gitlab_runner_autoscaling_machine_failed_creation_duration_seconds",
        "Histogram of machine failed creation timings",
        ("executor",),
        constants=_constants,
    )
    GITLAB[_families[1].name] = _gl(
        "gitlab_runner_autoscaling_machine_removal_duration_seconds",
        "Histogram of machine removal time.",
        ("executor",),
        constants=_constants,
    )
    GITLAB[_families[2].name] = _gl(
        "gitlab_runner_autoscaling_machine_stopping_duration_seconds",
        "Histogram of machine stopping time.",
        ("executor",),
        constants=_constants,
    )

# Attributes an instrument records only for the GitLab naming; the `ci_*` naming sums them away.
EXTRA_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    i.API_REQUEST_DURATION.name: ("status_class",),
    i.QUEUE_DURATION.name: ("project_jobs_running",),
}

# What GitLab sends as job_info.project_jobs_running_on_instance_runners_count
# (Ci::Build#project_jobs_running_on_instance_runners_count): the project's jobs
# running on instance runners, "0" to "4", "5+" from 5 on
# (Project::INSTANCE_RUNNER_RUNNING_JOBS_MAX_BUCKET), "+Inf" to a runner that is no
# instance runner. GitLab Runner labels its queue-duration histogram with the value
# as sent; so does this runner, within this closed set (project_jobs_running_label).
PROJECT_JOBS_RUNNING = ("0", "1", "2", "3", "4", "5+", "+Inf")


def project_jobs_running_label(sent: str) -> str:
    """Return the `project_jobs_running` label of what the coordinator sent, bounded.

    GitLab's values are kept; a plain count (another coordinator's) goes into
    GitLab's buckets; anything else, and nothing sent, is "".
    """
    if sent in PROJECT_JOBS_RUNNING:
        return sent
    text = sent.strip()
    if text.isdecimal() and text.isascii():
        # Long digit strings are "5+" unread: int() refuses more than 4,300 digits.
        count = int(text) if len(text) <= 2 else 5
        return str(count) if count < 5 else "5+"
    return ""


def gitlab_labels(
    family: GitlabFamily,
    attributes: Mapping[str, str],
    identities: Mapping[str, RunnerIdentity],
) -> tuple[str, ...]:
    """Return one data point's label values under the GitLab naming, in `family.labels` order."""
    values: dict[str, str] = dict(family.constants)
    for key, value in attributes.items():
        values[family.rename.get(key, key)] = value
    if "action" in values:
        values["action"] = ACTIONS.get(values["action"], values["action"])
    if "endpoint" in values:
        values["method"] = METHODS.get(values["endpoint"], "")
        values["path"] = PATHS.get(values["endpoint"], "")
    name = attributes.get("runner")
    if name is not None:
        who = identities.get(name)
        values["runner"] = who.runner if who is not None else name
        values["runner_name"] = name
        values["system_id"] = who.system_id if who is not None else ""
    return tuple(values.get(label, "") for label in family.labels)


_TOKEN_PREFIXES = (
    re.compile(r"^glrt-(t[123]_)?|^t[123]_|^glrtr-"),
    re.compile(r"^glcbt-"),
    re.compile(r"^GR[0-9A-Fa-f]{7}"),
)


def gitlab_short_token(token: str) -> str:
    """Return a token's short form as GitLab Runner shows it: known prefixes off, 9 characters."""
    for prefix in _TOKEN_PREFIXES:
        token = prefix.sub("", token)
    return token[:9]


def status_class(status: str) -> str:
    """Return GitLab Runner's `status_class` of a `status` label (`2xx`...) or the label itself."""
    if len(status) == 3 and status.isdecimal():
        return f"{status[0]}xx"
    return status
