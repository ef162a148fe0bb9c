"""Every error alloy-runner knows how to explain in one line, in one hierarchy.

The CLI (`alloy_runner.cli.main`) prints any of them as one line on stderr,
`alloy-runner: error: MESSAGE`, and exits with the class's `exit_code`: 2 when
the input was wrong (a flag, a config file, a pipeline), 1 when the input was
fine and the world was not (an unreachable coordinator, a refused token, a full
disk, a pipeline that did not end in time).

Our exception hierarchy:

* AlloyRunnerError                      exit 1 unless a subclass says 2
  + UsageError                          exit 2: the user's input is wrong
  |  + ConfigError                      config.toml, a flag or an environment variable
  |  |  + AddressError                  a `[host]:<port>` listen address
  |  |  + WebConfigError                the metrics server's web config file
  |  + PipelineError                    a `.alloy-ci.yml` (the message starts `FILE:LINE:`)
  |     + ExpressionError               a `rules:if` expression (the reader adds FILE:LINE)
  + ConfigLocked                        config.toml's write lock was not obtained in time
  |  + ConfigLockUnusable               its lock file exists but cannot be opened
  + ConfigChanged                       config.toml changed meanwhile: an edit no longer applies
  + ConfigNotSaved                      the coordinator acted, config.toml was not written to match
  + CoordinatorError                    the coordinator answered in a way the runner cannot use
  |  + TokenRefused                     it refused a token (as GitLab Runner's register: exit 1)
  |  + Unreachable                      no usable answer at all: try again later
  + ArtifactsError                      an artifacts archive could not be moved
  + CacheStoreError                     the distributed cache's store failed (a warning, never exit)
  + JobPayloadError                     a job payload is not shaped like API v4's job JSON
  + MachineError                        a machine driver call failed
  |  + MachineUnavailable               no machine could be had for a build
  + ProcessReapError                    a build's process did not go after SIGKILL
  + HelperError                         an archive cannot be written, read or extracted
  |  + ArchiveNotFoundError             the archive to extract does not exist
  |  + UnsafeEntryError                 an entry would be written outside its directory
  + WaitTimeout                         `submit --wait`: the pipeline did not end in time
  + ExecutorError                       an executor cannot give a build its environment
     + ImagePullError                   an image cannot be had (image_pull_failure)
     + ExecutorConfigError              the config forbids the job's image (configuration)

An `OSError` that reaches the CLI (a full disk, a directory that cannot be
created) is a runtime failure too: one line, exit 1.

Standard library only: the build helper (`python -m alloy_runner.helper`)
imports this module and must start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from alloy_runner.coordinator.api_metrics import Endpoint

EXIT_FAILURE = 1  # a runtime failure: the input was fine, the world was not
EXIT_USAGE = 2  # bad usage or configuration

__all__ = [
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "AddressError",
    "AlloyRunnerError",
    "ArchiveNotFoundError",
    "ArtifactsError",
    "CacheStoreError",
    "ConfigChanged",
    "ConfigError",
    "ConfigLockUnusable",
    "ConfigLocked",
    "ConfigNotSaved",
    "CoordinatorError",
    "ExecutorConfigError",
    "ExecutorError",
    "ExpressionError",
    "HelperError",
    "ImagePullError",
    "JobPayloadError",
    "MachineError",
    "MachineUnavailable",
    "PipelineError",
    "ProcessReapError",
    "TokenRefused",
    "Unreachable",
    "UnsafeEntryError",
    "UsageError",
    "WaitTimeout",
    "WebConfigError",
]


class AlloyRunnerError(Exception):
    """Root of every error the CLI turns into one line on stderr and exit status `exit_code`."""

    exit_code: ClassVar[int] = EXIT_FAILURE


# --- the input was wrong: exit 2 -----------------------------------------------------------


class UsageError(AlloyRunnerError):
    """A flag, file or value the user gave cannot be used."""

    exit_code: ClassVar[int] = EXIT_USAGE


class ConfigError(UsageError):
    """A configuration file, flag or environment variable is not usable."""


class AddressError(ConfigError):
    """A `[host]:<port>` listen address cannot be parsed, resolved or bound."""


class WebConfigError(ConfigError):
    """The metrics server's web config file (TLS, basic auth) cannot be read or used."""


class PipelineError(UsageError):
    """A `.alloy-ci.yml` cannot be read into a pipeline (the message starts `FILE:LINE:`)."""


class ExpressionError(PipelineError):
    """A CI/CD variable expression does not parse; the reader adds the file and the line."""


# --- the world was not as it should be: exit 1 ---------------------------------------------


class ConfigLocked(AlloyRunnerError):
    """Another process held config.toml's write lock for longer than a writer waits (exit 1)."""


class ConfigLockUnusable(ConfigLocked):
    """config.toml's lock file exists but this user cannot open it (made by another user
    with a mode that shuts others out): the message names it and how to fix it (exit 1)."""


class ConfigNotSaved(AlloyRunnerError):
    """The coordinator already acted (a token reset, a runner deleted) but config.toml could
    not be written to match: the message says what to put in it by hand (exit 1)."""


class ConfigChanged(AlloyRunnerError):
    """config.toml changed while a command talked to the coordinator, so that its edit no
    longer applies (a runner whose token was reset is gone from the file): exit 1."""


class CoordinatorError(AlloyRunnerError):
    """The coordinator refused a call, or answered one in a way the runner cannot use."""


class TokenRefused(CoordinatorError):
    """The coordinator refused a runner or registration token (register, unregister,
    reset-token): its answer, not a malformed input, so exit 1 (issue 17)."""


class Unreachable(CoordinatorError):
    """A call got no usable answer (no connection, a timeout, a reset, a 5xx): try again later."""

    def __init__(self, endpoint: Endpoint, why: str) -> None:
        super().__init__(f"{endpoint.value}: {why}")
        self.endpoint = endpoint


class ArtifactsError(AlloyRunnerError):
    """A source could not move an artifacts archive; the build fails at that stage."""


class CacheStoreError(AlloyRunnerError):
    """A transfer to or from the distributed cache's store failed (one line, no secrets); the
    job's log gets a warning and the job goes on."""


class JobPayloadError(AlloyRunnerError):
    """A job payload is not shaped like the API v4 job JSON."""


class MachineError(AlloyRunnerError):
    """A driver could not create, remove, list or reach a machine; the message says why."""


class MachineUnavailable(MachineError):
    """No machine could be had for a build; the message says why."""


class ProcessReapError(AlloyRunnerError):
    """A process a build started did not go after SIGKILL (stuck in the kernel, say)."""


class HelperError(AlloyRunnerError):
    """An archive cannot be written, read or extracted; the helper exits 1."""


class ArchiveNotFoundError(HelperError):
    """The archive to extract does not exist (a missing cache is not a failure)."""


class UnsafeEntryError(HelperError):
    """An archive entry would be written outside the extraction directory."""


class WaitTimeout(AlloyRunnerError):
    """`submit --wait` gave up: the pipeline did not end within its timeout."""


class ExecutorError(AlloyRunnerError):
    """An executor cannot give a build its environment; the build fails with `failure_reason`."""

    failure_reason: ClassVar[str] = "runner_system_failure"


class ImagePullError(ExecutorError):
    """An image cannot be pulled, or is absent and its pull policy forbids pulling it."""

    failure_reason: ClassVar[str] = "image_pull_failure"


class ExecutorConfigError(ExecutorError):
    """The runner's configuration forbids what the job asks (an image, a pull policy)."""

    failure_reason: ClassVar[str] = "runner_configuration_error"
