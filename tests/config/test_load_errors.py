"""Keys of config.toml that `config/load.py` refuses, through `main(argv)`: exit 2, one line.

Most bad config files are in tests/cli/test_errors.py; these are keys read for
other parts (the web config), refused when the file loads.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import Invoke, assert_one_error_line

EXIT_USAGE = 2
RUNNER = '[[runners]]\nname = "a"\n'


def test_metrics_web_config_must_be_a_string(invoke: Invoke, tmp_path: Path) -> None:
    """metrics_web_config that is not a string is a config error naming the file and the key."""
    config = tmp_path / "config.toml"
    config.write_text("metrics_web_config = 1\n" + RUNNER)
    ran = invoke(["run", "--config", str(config)])
    assert_one_error_line(ran, EXIT_USAGE, str(config), "'metrics_web_config'", "a string")
