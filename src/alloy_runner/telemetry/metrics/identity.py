"""The identity GitLab Runner's labels carry: the system id, and each runner's short token."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import string
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from alloy_runner.telemetry.catalog.naming import RunnerIdentity, gitlab_short_token

if TYPE_CHECKING:
    from alloy_runner.config.model import RunnerConfig

log = logging.getLogger(__name__)

SYSTEM_ID_FILE = ".runner_system_id"  # beside config.toml, as GitLab Runner keeps it
MACHINE_ID = Path("/etc/machine-id")
_VALID = re.compile(r"[sr]_[0-9a-zA-Z]{12}")


def generate_system_id(machine_id: Path = MACHINE_ID) -> str:
    """Return `s_` and 12 hex digits keyed on the machine id, or `r_` and 12 random characters."""
    try:
        machine = machine_id.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        machine = ""
    if machine:
        digest = hmac.new(machine.encode(), b"alloy-runner", hashlib.sha256).hexdigest()
        return "s_" + digest[:12]
    alphabet = string.ascii_letters + string.digits
    return "r_" + "".join(secrets.choice(alphabet) for _ in range(12))


def system_id(config_path: Path | None) -> str:
    """Read the system id kept beside `config_path`, or make one and keep it there if possible."""
    if config_path is None:
        return generate_system_id()
    path = config_path.parent / SYSTEM_ID_FILE
    try:
        kept = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        kept = ""
    if _VALID.fullmatch(kept):
        return kept
    made = generate_system_id()
    try:
        path.write_text(made, encoding="ascii")
        path.chmod(0o600)
    except OSError as exc:
        log.debug("cannot keep the system id in %s: %s", path, exc)
    return made


def runner_identities(runners: Sequence[RunnerConfig], system: str) -> dict[str, RunnerIdentity]:
    """Return each runner's GitLab labels by its name; a runner with no token shows its name."""
    return {
        r.name: RunnerIdentity(
            runner=gitlab_short_token(r.token) if r.token else r.name,
            runner_name=r.name,
            system_id=system,
            executor=r.executor,
        )
        for r in runners
    }
