"""`register`, `verify` and `list` against the fake coordinator, keeping the user's config file."""

from __future__ import annotations

import json
import stat
import tomllib
from pathlib import Path

from tests.support import run_cli
from tests.support.fake_coordinator import StartFake

USER_CONFIG = """\
# alloy-runner settings, written by hand
concurrent = 3  # three builds at once

# the local spool runner stays as it is
[[runners]]
name = "local"  # no url: takes jobs from the spool
executor = "shell"
"""


def test_register_appends_a_runner_and_keeps_the_users_comments(
    start_fake: StartFake, tmp_path: Path
) -> None:
    """`register` adds a [[runners]] table with the coordinator's token; comments survive."""
    fake = start_fake()
    config = tmp_path / "config.toml"
    config.write_text(USER_CONFIG)
    result = run_cli(
        [
            "register",
            "--config",
            str(config),
            "--url",
            fake.url,
            "--registration-token",
            fake.registration_token,
            "--name",
            "ci-1",
            "--limit",
            "2",
            "--request-concurrency",
            "3",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    text = config.read_text()
    assert text.startswith(USER_CONFIG)  # every comment and line of the user's file, unchanged
    runners = tomllib.loads(text)["runners"]
    assert [r["name"] for r in runners] == ["local", "ci-1"]
    added = runners[1]
    assert added["token"] in fake.runner_tokens
    assert (added["url"], added["executor"], added["limit"], added["request_concurrency"]) == (
        fake.url,
        "shell",
        2,
        3,
    )
    assert added["token"] not in result.stdout  # only its first 8 characters are shown
    assert added["token"][:8] in result.stdout
    assert fake.request_bodies[-1]["info"]["executor"] == "shell"


def test_register_creates_a_private_config_file(start_fake: StartFake, tmp_path: Path) -> None:
    """A config file that `register` creates is readable by its owner only (it holds a token)."""
    fake = start_fake()
    config = tmp_path / "new" / "config.toml"
    result = run_cli(
        [
            "register",
            "-c",
            str(config),
            "-u",
            fake.url,
            "-r",
            fake.registration_token,
            "--name",  # -n is --non-interactive, as in GitLab Runner
            "ci",
            "--tls-ca-file",
            "",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert tomllib.loads(config.read_text())["concurrent"] == 1


def test_register_tightens_an_existing_config_readable_by_others(
    start_fake: StartFake, tmp_path: Path
) -> None:
    """A 0644 config.toml gets a token: `register` makes it 0600 and says so, comments kept."""
    fake = start_fake()
    config = tmp_path / "config.toml"
    config.write_text(USER_CONFIG)
    config.chmod(0o644)
    result = run_cli(
        [
            "register",
            "-c",
            str(config),
            "-u",
            fake.url,
            "-r",
            fake.registration_token,
            "--name",
            "ci",
            "--tls-ca-file",
            "",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert "permissions tightened from 0644 to 0600" in result.stderr
    assert config.read_text().startswith(USER_CONFIG.splitlines()[0])


def test_register_with_a_wrong_registration_token_fails_in_one_line(
    start_fake: StartFake, tmp_path: Path
) -> None:
    """A refused registration token exits 1 (a runtime failure) in one line; nothing written."""
    fake = start_fake()
    config = tmp_path / "config.toml"
    config.write_text(USER_CONFIG)
    result = run_cli(
        ["register", "-c", str(config), "-u", fake.url, "-r", "wrong", "--name", "ci"], tmp_path
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "refused the registration token" in result.stderr
    assert config.read_text() == USER_CONFIG


def test_register_rejects_a_url_that_is_not_http_with_exit_2(tmp_path: Path) -> None:
    """The executable exits 2 with one line for a URL that is not http(s); nothing is written.

    The smoke of a family tested in-process: tests/coordinator/gitlab/test_registration_errors.py,
    tests/cli/test_register_errors.py and (an unreachable coordinator, exit 1)
    tests/cli/test_exit_status.py.
    """
    config = tmp_path / "c.toml"
    result = run_cli(
        ["register", "-c", str(config), "-u", "ftp://example.test", "-r", "x", "--name", "ci"],
        tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("alloy-runner: error: ")
    assert result.stderr.count("\n") == 1
    assert "url 'ftp://example.test'" in result.stderr
    assert not config.exists()


def test_verify_finds_removed_runners_and_delete_drops_them_keeping_comments(
    start_fake: StartFake, tmp_path: Path
) -> None:
    """`verify` reports each runner; with `--delete` the invalid one goes and comments stay."""
    fake = start_fake()
    config = tmp_path / "config.toml"
    config.write_text(
        USER_CONFIG + f'\n# the good one\n[[runners]]\nname = "good"  # keep\nurl = "{fake.url}"\n'
        f'token = "{fake.runner_token}"\n'
        + f'\n[[runners]]\nname = "gone"\nurl = "{fake.url}"\ntoken = "glrt-deleted"\n'
    )
    checked = run_cli(["verify", "-c", str(config)], tmp_path)
    assert checked.returncode == 1
    assert "Verifying runner good... is alive" in checked.stdout
    assert "Verifying runner gone... is removed" in checked.stdout
    assert "gone" in config.read_text()
    deleted = run_cli(["verify", "-c", str(config), "--delete"], tmp_path)
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    text = config.read_text()
    assert [r["name"] for r in tomllib.loads(text)["runners"]] == ["local", "good"]
    assert text.startswith(USER_CONFIG)
    assert '# the good one\n[[runners]]\nname = "good"  # keep\n' in text
    assert fake.count("verify_runner") == 4


def test_list_shows_the_runners_but_never_a_whole_token(tmp_path: Path) -> None:
    """`list` prints each runner with its token cut to 8 characters."""
    config = tmp_path / "config.toml"
    token = "glrt-0123456789abcdefghij"
    config.write_text(
        USER_CONFIG + f'\n[[runners]]\nname = "ci"\nurl = "https://ci.test"\ntoken = "{token}"\n'
    )
    result = run_cli(["list", "-c", str(config)], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"Listing configured runners ConfigFile={config}"
    assert lines[1].startswith("local\t")
    assert lines[2] == "ci\tExecutor=shell Token=glrt-012 URL=https://ci.test"
    assert token not in result.stdout + result.stderr


def test_list_json_shows_the_runners_but_never_a_whole_token(tmp_path: Path) -> None:
    """`list --json` prints one document: the file, and each runner with its short token."""
    config = tmp_path / "config.toml"
    token = "glrt-0123456789abcdefghij"
    config.write_text(
        USER_CONFIG + f'\n[[runners]]\nname = "ci"\nurl = "https://ci.test"\ntoken = "{token}"\n'
    )
    result = run_cli(["list", "--json", "-c", str(config)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "config_file": str(config),
        "runners": [
            {"name": "local", "executor": "shell", "token": None, "url": None},
            {"name": "ci", "executor": "shell", "token": "glrt-012", "url": "https://ci.test"},
        ],
    }
    assert token not in result.stdout + result.stderr
