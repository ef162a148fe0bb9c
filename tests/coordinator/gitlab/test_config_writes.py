"""How `register`, `unregister`, `reset-token` and the token rotation write config.toml."""

from __future__ import annotations

import datetime
from pathlib import Path

from alloy_runner.coordinator.gitlab.runners_api import RunnerToken
from alloy_runner.coordinator.gitlab.tokens import write_rotated

CONFIG = """\
# kept
[[runners]]
  name = "a"
  url = "http://127.0.0.1:1"
  token = "glrt-old-aaaaaaaaaaaa"
"""
T = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def test_a_symlinked_config_stays_a_link_to_the_written_file(tmp_path: Path) -> None:
    """The file the link points to is replaced; the link is kept, and no temporary is left.

    The write lock's file is beside the file replaced (test_config_lock.py).
    """
    real = tmp_path / "etc" / "config.toml"
    real.parent.mkdir()
    real.write_text(CONFIG)
    real.chmod(0o600)
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    new = RunnerToken(0, "glrt-new-bbbbbbbbbbbb", None)
    assert write_rotated(link, "a", {"glrt-old-aaaaaaaaaaaa"}, new, T)
    assert link.is_symlink() and link.resolve() == real
    text = real.read_text()
    assert 'token = "glrt-new-bbbbbbbbbbbb"' in text and "# kept" in text
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert left == ["config.toml", "etc", "etc/config.toml", "etc/config.toml.lock"]


def test_a_runner_not_in_the_file_writes_nothing(tmp_path: Path) -> None:
    """No section with a token the process used: False, the file as it was."""
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    new = RunnerToken(0, "glrt-new-bbbbbbbbbbbb", None)
    assert not write_rotated(path, "a", {"glrt-someone-else"}, new, T)
    assert path.read_text() == CONFIG


def test_a_section_renamed_meanwhile_is_found_by_its_token(tmp_path: Path) -> None:
    """A token is unique: the section that holds it is the runner's, whatever its name now."""
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    path.chmod(0o600)
    new = RunnerToken(0, "glrt-new-bbbbbbbbbbbb", None)
    assert write_rotated(path, "b", {"glrt-old-aaaaaaaaaaaa"}, new, T)
    text = path.read_text()
    assert 'name = "a"' in text and 'token = "glrt-new-bbbbbbbbbbbb"' in text
