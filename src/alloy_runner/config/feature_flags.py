"""GitLab Runner's feature flags, each with what this runner does about it.

The project's rule: a flag that would change what a job runs is implemented or refused
(exit 2 for `[runners.feature_flags]` and a literal `environment` entry; the job fails for a
job's `FF_*` variable, resolved as build/flags.py does); only a flag that changes nothing
observable here is warned about and ignored. A `config_only` flag is read from
`[runners.feature_flags]` alone, as GitLab Runner does. `FLAGS` is that
rule as data, one row per flag of GitLab Runner's helpers/featureflags/flags.go:

- HONOURED: implemented.
- ONE_VALUE: this runner works as GitLab Runner does with the flag at `works_as` (most
  often GitLab's default): that value is accepted silently, the other one is refused.
- NOT_APPLICABLE: it concerns only what this runner refuses or does not have (kubernetes,
  Windows, PowerShell, fleeting, GCS): any value changes nothing; warned and ignored.
- NOTHING_OBSERVABLE: an internal detail (an archiver, a transfer's concurrency) with no
  effect a job or an operator can see here; warned and ignored.

A flag that matters to one executor only (`executors`) is NOT_APPLICABLE elsewhere.
docs/configuration.md's table is generated from `FLAGS`: `python -m
alloy_runner.config.feature_flags`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from alloy_runner.config.model import ExecutorName


class Treatment(StrEnum):
    HONOURED = "honoured"
    ONE_VALUE = "one value"
    NOT_APPLICABLE = "not applicable"
    NOTHING_OBSERVABLE = "nothing observable"


@dataclass(frozen=True)
class Flag:
    """One GitLab feature flag: GitLab's default, this runner's treatment, and why.

    `reason` finishes "FF_X = true is not supported: ..." for ONE_VALUE, and says what the
    flag concerns for the ignored ones.
    """

    gitlab_default: bool
    treatment: Treatment
    reason: str
    works_as: bool | None = None  # ONE_VALUE: the value this runner behaves as
    executors: tuple[ExecutorName, ...] = ()  # only these executors (empty: all)
    # GitLab Runner reads it from `[runners.feature_flags]` only (config.IsFeatureFlagOn):
    # a job variable or an `environment` entry changes nothing, and is never refused.
    config_only: bool = False


DOCKER = (ExecutorName.DOCKER, ExecutorName.DOCKER_MACHINE, ExecutorName.DOCKER_SSH_MACHINE)
T = Treatment
_K8S = "the kubernetes executor only; `kubernetes` is refused here"
_WINDOWS = "Windows only; this runner runs on POSIX systems"
_POWERSHELL = "PowerShell only; the shells here are bash and sh"
_FLEETING = "docker-autoscaler (fleeting) only; `autoscaler` is refused here"
_STEPS = "scripts run as scripts here; there is no step-runner"
_PARALLEL = "only how many transfers run at once; the same bytes arrive"


def _one(default: bool, works_as: bool, reason: str, *executors: ExecutorName) -> Flag:
    return Flag(default, T.ONE_VALUE, reason, works_as, executors)


def _config(flag: Flag) -> Flag:
    return replace(flag, config_only=True)


FLAGS: Mapping[str, Flag] = {
    "FF_TEST_FEATURE": Flag(False, T.NOTHING_OBSERVABLE, "GitLab Runner's own test flag"),
    "FF_NETWORK_PER_BUILD": _one(
        False,
        True,
        "the docker executor here always makes a network per build (unless network_mode "
        "is set), where services reach each other by alias",
        *DOCKER,
    ),
    "FF_USE_LEGACY_KUBERNETES_EXECUTION_STRATEGY": Flag(False, T.NOT_APPLICABLE, _K8S),
    "FF_USE_DIRECT_DOWNLOAD": _one(
        True,
        False,
        "artifacts are downloaded from GitLab's API without asking for a direct download "
        "from object storage",
    ),
    "FF_USE_FASTZIP": Flag(
        True, T.NOTHING_OBSERVABLE, "archives are zip files made by this runner's own archiver"
    ),
    "FF_DISABLE_UMASK_FOR_DOCKER_EXECUTOR": _one(
        False,
        True,
        "the docker executor here fetches the sources on the host with the runner's umask, "
        "never `umask 0000` in the container (a non-root image user may not write the checkout)",
        *DOCKER,
    ),
    "FF_ENABLE_BASH_EXIT_CODE_CHECK": Flag(
        False,
        T.HONOURED,
        "each command of the job's script, after_script and hooks has its exit code checked "
        "(not only `set -e`)",
    ),
    "FF_USE_WINDOWS_LEGACY_PROCESS_STRATEGY": Flag(False, T.NOT_APPLICABLE, _WINDOWS),
    "FF_USE_LEGACY_BASH_EVAL": _one(
        False, False, "this runner runs its scripts as files, never through bash's legacy eval"
    ),
    "FF_USE_POWERSHELL_PATH_RESOLVER": Flag(False, T.NOT_APPLICABLE, _POWERSHELL),
    "FF_USE_DYNAMIC_TRACE_FORCE_SEND_INTERVAL": _config(
        Flag(
            False,
            T.NOTHING_OBSERVABLE,
            "only when an unchanged log is sent again; the log is the same",
        )
    ),
    "FF_SCRIPT_SECTIONS": _one(
        False, False, "the job log does not show commands as collapsible sections"
    ),
    "FF_ENABLE_JOB_CLEANUP": Flag(
        False,
        T.HONOURED,
        "after the job, the project directory keeps only its repository",
    ),
    "FF_KUBERNETES_HONOR_ENTRYPOINT": Flag(False, T.NOT_APPLICABLE, _K8S),
    "FF_POSIXLY_CORRECT_ESCAPES": Flag(
        False,
        T.NOTHING_OBSERVABLE,
        "the scripts here are quoted the POSIX way, which bash and sh read alike",
    ),
    "FF_RESOLVE_FULL_TLS_CHAIN": _config(
        Flag(False, T.NOT_APPLICABLE, "it shapes CI_SERVER_TLS_CA_FILE, which jobs do not get here")
    ),
    "FF_DISABLE_POWERSHELL_STDIN": Flag(False, T.NOT_APPLICABLE, _POWERSHELL),
    "FF_USE_POD_ACTIVE_DEADLINE_SECONDS": Flag(True, T.NOT_APPLICABLE, _K8S),
    "FF_USE_ADVANCED_POD_SPEC_CONFIGURATION": Flag(False, T.NOT_APPLICABLE, _K8S),
    "FF_SECRET_RESOLVING_FAILS_IF_MISSING": Flag(
        True,
        T.NOT_APPLICABLE,
        "external secrets only; this runner tells GitLab it does not resolve them",
    ),
    "FF_PRINT_POD_EVENTS": Flag(False, T.NOT_APPLICABLE, _K8S),
    "FF_USE_GIT_BUNDLE_URIS": _one(
        True, False, "git here is not told to use bundle URIs (transfer.bundleURI)"
    ),
    "FF_USE_GIT_NATIVE_CLONE": _one(
        False, False, "sources are fetched with git init and git fetch, never git clone"
    ),
    "FF_USE_DUMB_INIT_WITH_KUBERNETES_EXECUTOR": Flag(False, T.NOT_APPLICABLE, _K8S),
    "FF_USE_INIT_WITH_DOCKER_EXECUTOR": _one(
        False, False, "containers here are not started with --init", *DOCKER
    ),
    "FF_LOG_IMAGES_CONFIGURED_FOR_JOB": Flag(
        False,
        T.HONOURED,
        "the runner's log names each job's image and service images (`image_name`)",
    ),
    "FF_USE_DOCKER_AUTOSCALER_DIAL_STDIO": Flag(True, T.NOT_APPLICABLE, _FLEETING),
    "FF_CLEAN_UP_FAILED_CACHE_EXTRACT": _one(
        False, False, "what a failed cache extraction leaves is not cleaned up"
    ),
    "FF_USE_WINDOWS_JOB_OBJECT": Flag(False, T.NOT_APPLICABLE, _WINDOWS),
    "FF_TIMESTAMPS": _one(True, False, "this runner does not timestamp job log lines"),
    "FF_DISABLE_AUTOMATIC_TOKEN_ROTATION": _config(
        Flag(
            False,
            T.HONOURED,
            "`run` does not rotate this runner's token; a warning when it is due instead",
        )
    ),
    "FF_USE_LEGACY_GCS_CACHE_ADAPTER": Flag(
        False, T.NOT_APPLICABLE, "the GCS cache only; only the s3 cache type is supported here"
    ),
    "FF_DISABLE_UMASK_FOR_KUBERNETES_EXECUTOR": Flag(False, T.NOT_APPLICABLE, _K8S),
    "FF_USE_LEGACY_S3_CACHE_ADAPTER": Flag(
        False,
        T.NOTHING_OBSERVABLE,
        "this runner's own S3 client stores the same objects under the same keys",
    ),
    "FF_GIT_URLS_WITHOUT_TOKENS": _one(
        False,
        False,
        "git here fetches with the job token in the remote's URL, not through a credential helper",
    ),
    "FF_WAIT_FOR_POD_TO_BE_REACHABLE": Flag(False, T.NOT_APPLICABLE, _K8S),
    "FF_MASK_ALL_DEFAULT_TOKENS": _one(
        True, False, "the job log masks masked variables only, not every GitLab token pattern"
    ),
    "FF_EXPORT_HIGH_CARDINALITY_METRICS": _one(
        False,
        True,
        "this runner always exports the job stage duration histogram "
        "(gitlab_runner_job_stage_duration_seconds)",
    ),
    "FF_USE_FLEETING_ACQUIRE_HEARTBEATS": _config(Flag(False, T.NOT_APPLICABLE, _FLEETING)),
    "FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY": Flag(
        True,
        T.HONOURED,
        "the wait before a stage's next attempt (GET_SOURCES_ATTEMPTS, ...): 5 s doubling up "
        "to 5 min; false: 1 s doubling up to 5 s",
    ),
    "FF_USE_ADAPTIVE_REQUEST_CONCURRENCY": _config(
        Flag(
            True,
            T.HONOURED,
            "false: `request_concurrency` requests are always in flight, not an adaptive number",
        )
    ),
    "FF_USE_GITALY_CORRELATION_ID": _one(
        True, False, "git requests here carry no X-Gitaly-Correlation-ID header"
    ),
    "FF_USE_GIT_PROACTIVE_AUTH": _one(
        False, False, "git here is not given http.proactiveAuth=basic"
    ),
    "FF_HASH_CACHE_KEYS": _one(
        False, False, "caches are stored under their keys as written, not hashed"
    ),
    "FF_ENABLE_JOB_INPUTS_INTERPOLATION": _one(
        True, False, "this runner does not interpolate job inputs"
    ),
    "FF_USE_JOB_ROUTER": _config(
        _one(False, False, "jobs are requested from GitLab itself, never from a Job Router")
    ),
    "FF_SCRIPT_TO_STEP_MIGRATION": _one(False, False, _STEPS),
    "FF_USE_PARALLEL_CACHE_TRANSFER": Flag(False, T.NOTHING_OBSERVABLE, _PARALLEL),
    "FF_USE_PARALLEL_ARTIFACT_TRANSFER": Flag(False, T.NOTHING_OBSERVABLE, _PARALLEL),
    "FF_CONCRETE": _one(False, False, _STEPS),
    "FF_SUSPENDABLE_ENVIRONMENTS": _one(
        False, False, "job environments cannot be suspended or resumed here"
    ),
    "FF_USE_NATIVE_CONTAINER_STOP": _one(
        False,
        False,
        "a canceled job's container is removed by this runner, not stopped by the engine",
        *DOCKER,
    ),
}


def treatment(name: str, executor: ExecutorName) -> Treatment:
    """Return what a runner with `executor` does about flag `name` (a name in FLAGS)."""
    flag = FLAGS[name]
    if flag.executors and executor not in flag.executors:
        return Treatment.NOT_APPLICABLE
    return flag.treatment


def problem(name: str, value: bool, executor: ExecutorName) -> str | None:
    """Return why `name = value` cannot be honoured by a runner with `executor`, or None."""
    flag = FLAGS[name]
    if treatment(name, executor) is not Treatment.ONE_VALUE or value == flag.works_as:
        return None
    return (
        f"{name} = {str(value).lower()} is not supported: {flag.reason}; "
        f"remove it or set it to {str(flag.works_as).lower()}"
    )


def warning(name: str, executor: ExecutorName) -> str | None:
    """Return the warning a flag set in config.toml earns (None: it is honoured or matches)."""
    if treatment(name, executor) not in (Treatment.NOT_APPLICABLE, Treatment.NOTHING_OBSERVABLE):
        return None
    flag = FLAGS[name]
    concerns = flag.reason
    if flag.executors:
        concerns = f"the {', '.join(flag.executors)} executors only"
    return f"this feature flag has no effect on this runner ({concerns}); it is ignored"


# Go's strconv.ParseBool, which GitLab Runner reads a job's FF_* variables with.
GO_BOOLS = {
    **dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
    **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False),
}


def environment_problem(
    entries: Iterable[str], configured: Mapping[str, bool], executor: ExecutorName
) -> str | None:
    """Return why a runner's `environment` entry sets a flag to a value this runner does not
    work as (checked when config.toml loads), or None. Only literal values are read here;
    one with a `$` reference is resolved with each job's variables."""
    last = dict(entry.partition("=")[::2] for entry in entries)
    for name, value in last.items():
        if name not in FLAGS or name in configured or FLAGS[name].config_only:
            continue
        if "$" in value or value not in GO_BOOLS:
            continue
        if why := problem(name, GO_BOOLS[value], executor):
            return f"{name}={value}: {why}"
    return None


def configured_on(name: str, configured: Mapping[str, bool]) -> bool:
    """Return a flag's value from `[runners.feature_flags]` alone, else GitLab's default: how
    GitLab Runner reads a config-only flag (config.IsFeatureFlagOn)."""
    return configured.get(name, FLAGS[name].gitlab_default)


BEGIN = "<!-- feature flags: generated by `python -m alloy_runner.config.feature_flags` -->"
END = "<!-- end of feature flags -->"
_SHOWN = {
    Treatment.HONOURED: "honoured",
    Treatment.NOT_APPLICABLE: "ignored, with a warning (not applicable)",
    Treatment.NOTHING_OBSERVABLE: "ignored, with a warning (nothing observable)",
}


def _here(flag: Flag) -> str:
    if flag.treatment is Treatment.ONE_VALUE:
        other = str(not flag.works_as).lower()
        shown = f"`{str(flag.works_as).lower()}` only: `{other}` exits 2"
        if flag.works_as != flag.gitlab_default:
            shown += "; without the flag, this runner differs from GitLab's default"
    else:
        shown = _SHOWN[flag.treatment]
    if flag.executors:
        shown += f" ({', '.join(flag.executors)}; ignored, with a warning, elsewhere)"
    if flag.config_only:
        shown += "; `[runners.feature_flags]` only: a variable changes nothing"
    return shown


def render() -> str:
    """Return docs/configuration.md's table of flags, between its two markers."""
    rows = [BEGIN, "| Flag | GitLab's default | Here | Why |", "|---|---|---|---|"]
    for name, flag in FLAGS.items():
        default = str(flag.gitlab_default).lower()
        rows.append(f"| `{name}` | `{default}` | {_here(flag)} | {flag.reason} |")
    return "\n".join([*rows, END]) + "\n"


if __name__ == "__main__":
    print(render(), end="")
