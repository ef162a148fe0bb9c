"""The part of the runner's own environment that a job inherits, and the environment of
the stages a container executor runs on the runner's host.

The runner's telemetry settings are the runner's, not the job's: OTEL_* (a
collector's endpoint and its token in OTEL_EXPORTER_OTLP_HEADERS) and
PYROSCOPE_* never reach a job, whatever the executor. A job that wants its
own gets them from its variables or from the runner's `environment`; its
trace context comes as TRACEPARENT/TRACESTATE/BAGGAGE from the job's span.

The docker executors run get_sources, the caches and the artifacts on the runner's host
(executors/docker/executor.py). Those stages never get the job's environment: a job
variable such as BASH_ENV, GIT_CONFIG_*, GIT_DIR, LD_PRELOAD, PATH or PYTHONPATH would run
the job's commands on the host. They get `host_stage_environment`: a few of the runner
process's own variables, the job's CI_* and GITLAB_* variables (which no shell, git,
libc or Python reads), and GIT_CONFIG_* entries (the runner process's own, then
HOST_GIT_CONFIG) that make every git there (nested ones too: `git submodule foreach`)
ignore what a repository's config could make it run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

RUNNER_ONLY_PREFIXES = ("OTEL_", "PYROSCOPE_")

# The runner process's own variables a host stage keeps: what bash, git and the helper need.
HOST_STAGE_KEYS = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    }
)
HOST_STAGE_PREFIXES = ("LC_",)
# The job's variables a host stage gets (the operator's pre/post_get_sources_script may use
# them); nothing else of the job's reaches the host.
JOB_PREFIXES = ("CI_", "GITLAB_")
# git's configuration for every git a host stage runs (git reads GIT_CONFIG_COUNT/KEY/VALUE
# over any file, and passes them to the gits it starts).
HOST_GIT_CONFIG = (
    ("core.fsmonitor", "false"),
    ("core.hooksPath", "/dev/null"),
    ("protocol.ext.allow", "never"),
)


def host_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return this process's environment without the runner's own telemetry settings."""
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if not k.upper().startswith(RUNNER_ONLY_PREFIXES)}


def host_stage_environment(
    job_env: Mapping[str, str], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a stage a container executor runs on the runner's host: the
    runner's own PATH, HOME, locale..., the job's CI_*/GITLAB_* variables, and git's
    protections (HOST_GIT_CONFIG); never another of `job_env`'s variables."""
    source = os.environ if environ is None else environ
    env = {
        key: value
        for key, value in source.items()
        if key in HOST_STAGE_KEYS or key.startswith(HOST_STAGE_PREFIXES)
    }
    env.update((k, v) for k, v in job_env.items() if k.startswith(JOB_PREFIXES))
    entries = [*_git_config(source), *HOST_GIT_CONFIG]  # the runner's own first, ours win
    env["GIT_CONFIG_COUNT"] = str(len(entries))
    for index, (key, value) in enumerate(entries):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


def _git_config(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """The GIT_CONFIG_COUNT/KEY/VALUE entries of the runner process's own environment."""
    count = environ.get("GIT_CONFIG_COUNT", "")
    if not count.isdigit():
        return []
    entries = []
    for index in range(min(int(count), 1000)):
        key = environ.get(f"GIT_CONFIG_KEY_{index}")
        if key is None:
            break
        entries.append((key, environ.get(f"GIT_CONFIG_VALUE_{index}", "")))
    return entries
