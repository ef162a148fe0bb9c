"""The errors alloy-runner knows how to explain in one line."""

from __future__ import annotations

EXIT_FAILURE = 1  # a runtime failure: the input was fine, the world was not
EXIT_USAGE = 2  # bad usage or configuration


class AlloyRunnerError(Exception):
    """Root of every error the CLI turns into one line on stderr and exit status 2."""


class ConfigError(AlloyRunnerError):
    """A configuration file, flag or environment variable is not usable."""


class AddressError(ConfigError):
    """A `[host]:<port>` listen address cannot be parsed, resolved or bound."""


class WebConfigError(ConfigError):
    """The metrics server's web config file (TLS, basic auth) cannot be read or used."""


class PipelineError(AlloyRunnerError):
    """A `.alloy-ci.yml` cannot be read into a pipeline (the message starts `FILE:LINE:`)."""
