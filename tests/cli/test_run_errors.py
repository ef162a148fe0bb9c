"""`alloy-runner run` settings that cli/run.py refuses before the daemon: exit 2, one line.

In-process through `main(argv)` (the daemon never starts). The namings the
metrics server exposes come from the flag, $METRIC_NAMES or the file; a bad
one is refused naming where it came from.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import Invoke, assert_one_error_line

EXIT_USAGE = 2


@pytest.mark.parametrize(
    ("config", "env", "args", "fragments"),
    [
        ('metric_names = "prometheus"\n', {}, [], ["key 'metric_names'", "got 'prometheus'"]),
        ("", {"METRIC_NAMES": "GitLab"}, [], ["$METRIC_NAMES", "got 'GitLab'"]),
        ("", {}, ["--metric-names", "gitlab_runner"], ["'--metric-names'", "'gitlab_runner'"]),
    ],
    ids=["file", "env", "flag"],
)
def test_a_bad_naming_is_refused_with_one_line_and_exit_2(
    invoke: Invoke,
    tmp_path: Path,
    config: str,
    env: dict[str, str],
    args: list[str],
    fragments: list[str],
) -> None:
    (tmp_path / "config.toml").write_text(config)
    ran = invoke(["run", "-c", str(tmp_path / "config.toml"), *args], env)
    assert_one_error_line(ran, EXIT_USAGE, *fragments)
