"""A job that keeps the runner process itself busy: it prints a lot, with a secret to mask.

Everything a job prints passes through the runner (`JobLog.write`, which
masks secrets with `JobLog.mask`, then the spool's trace sink), so a loud
job makes the runner spend CPU in known functions of its own: what a profile
of the runner should then show.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support.runner import run_cli

SECRET = "hunter2-not-short"
BUSY_FUNCTIONS = frozenset({"JobLog.write", "JobLog.mask", "JobLog._emit"})
CHUNK = 10_000_000  # bytes printed per round, by default
OUTPUT_LIMIT_KIB = 4_000_000  # a config's output_limit that a loud job does not reach

PIPELINE = """\
loud:
  script:
    - |
      for i in $(seq 1 "$ROUNDS"); do
        [ -e "$STOP_FILE" ] && break
        head -c "$CHUNK" /dev/zero | tr '\\0' 'x' | fold -w 60 | sed 's/^/{secret} /'
        sleep "$PAUSE"
      done
"""


def write_pipeline(directory: Path) -> Path:
    """Write the loud pipeline as `directory/.alloy-ci.yml` and return its path."""
    path = directory / ".alloy-ci.yml"
    path.write_text(PIPELINE.format(secret=SECRET), encoding="utf-8")
    return path


def submit_loud(
    home: Path,
    rounds: int,
    stop_file: Path,
    *,
    wait: bool,
    chunk: int = CHUNK,
    pause: float = 0.0,
    timeout: float = 120.0,
) -> subprocess.CompletedProcess[str]:
    """Put one loud job into the spool under `home`: `rounds` x `chunk` bytes of output at
    most, with `pause` seconds after each round.

    The job stops early once `stop_file` exists. With `wait`, return when it ended.
    """
    pipeline = write_pipeline(home)
    args = [
        "submit",
        "--file",
        str(pipeline),
        "--masked-var",
        f"SECRET_VALUE={SECRET}",
        "--var",
        f"ROUNDS={rounds}",
        "--var",
        f"STOP_FILE={stop_file}",
        "--var",
        f"CHUNK={chunk}",
        "--var",
        f"PAUSE={pause}",
    ]
    if wait:
        args += ["--wait", "--timeout", str(timeout)]
    return run_cli(args, home, timeout=timeout + 10)


def remove_spool(home: Path) -> None:
    """Delete the spool (and the large job logs in it) under `home`."""
    shutil.rmtree(home / ".alloy-runner", ignore_errors=True)
