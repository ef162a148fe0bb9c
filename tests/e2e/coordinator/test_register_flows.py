"""GitLab Runner 16+ registration, unregister and reset-token against the fake coordinator.

Every command is the real `alloy-runner` process; the coordinator speaks API v4's
POST /runners, POST /runners/verify, DELETE /runners and
POST /runners/reset_authentication_token.
"""

from __future__ import annotations

import datetime
import os
import pty
import select
import subprocess
import tomllib
from pathlib import Path
from typing import Any

from alloy_runner.config.load import load_config
from tests.support import run_cli
from tests.support.fake_coordinator import StartFake
from tests.support.runner import ALLOY_RUNNER, runner_env

USER_CONFIG = """\
# written by hand: every comment must survive
concurrent = 2  # two at once

[[runners]]
name = "local"  # the spool runner
executor = "shell"
"""
EXPIRES = "2027-03-04T05:06:07.000Z"


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(USER_CONFIG)
    return path


def _runners(path: Path) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in tomllib.loads(path.read_text())["runners"]}


def _one_error_line(done: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    assert done.returncode == code, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("alloy-runner: error: ") and fragment in done.stderr


def test_register_with_an_authentication_token_verifies_it_and_writes_the_runner(
    start_fake: StartFake, tmp_path: Path
) -> None:
    fake = start_fake(token_expires_at=EXPIRES)
    config = _config(tmp_path)
    token = fake.runner_token
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    done = run_cli(
        [
            "register",
            "--non-interactive",
            "-c",
            str(config),
            "--url",
            fake.url,
            "--token",
            token,
            "--name",
            "gl-1",
            "--executor",
            "shell",
            "--docker-image",
            "alpine:3.20",
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert fake.count("verify_runner", "200") == 1 and fake.count("register_runner") == 0
    text = config.read_text()
    assert text.startswith(USER_CONFIG)
    added = _runners(config)["gl-1"]
    assert (added["url"], added["token"], added["id"], added["executor"]) == (
        fake.url,
        token,
        fake.runners[token]["id"],
        "shell",
    )
    assert added["docker"] == {"image": "alpine:3.20"}
    assert before <= added["token_obtained_at"] <= datetime.datetime.now(datetime.UTC)
    assert added["token_expires_at"] == datetime.datetime(2027, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)
    loaded = load_config(config).runners[1]  # and `run` reads it back
    assert loaded.token_expires_at == added["token_expires_at"]
    assert token not in done.stdout


def test_register_with_a_rejected_token_exits_1_in_one_line(
    start_fake: StartFake, tmp_path: Path
) -> None:
    fake = start_fake()
    config = _config(tmp_path)
    done = run_cli(
        ["register", "-n", "-c", str(config), "-u", fake.url, "-t", "glrt-not-known-here"],
        tmp_path,
    )
    _one_error_line(done, 1, "refused the runner token")
    assert config.read_text() == USER_CONFIG


LEGACY_FLAGS = [
    "--description",
    "legacy-1",
    "--tag-list",
    "linux, docker",
    "--run-untagged=true",
    "--locked=false",
    "--paused",
    "--maintenance-note",
    "ask ops first",
    "--access-level",
    "ref_protected",
    "--maximum-timeout",
    "600",
    "--executor",
    "shell",
    "--docker-image",
    "debian:12",
    "--limit",
    "3",
    "--request-concurrency",
    "2",
    "--builds-dir",
    "/srv/builds",
    "--cache-dir",
    "/srv/cache",
]
LEGACY_ENV = {
    "RUNNER_NAME": "legacy-1",
    "RUNNER_TAG_LIST": "linux, docker",
    "REGISTER_RUN_UNTAGGED": "true",
    "REGISTER_LOCKED": "false",
    "REGISTER_PAUSED": "true",
    "REGISTER_MAINTENANCE_NOTE": "ask ops first",
    "REGISTER_ACCESS_LEVEL": "ref_protected",
    "REGISTER_MAXIMUM_TIMEOUT": "600",
    "RUNNER_EXECUTOR": "shell",
    "DOCKER_IMAGE": "debian:12",
    "RUNNER_LIMIT": "3",
    "RUNNER_REQUEST_CONCURRENCY": "2",
    "RUNNER_BUILDS_DIR": "/srv/builds",
    "RUNNER_CACHE_DIR": "/srv/cache",
    "REGISTER_NON_INTERACTIVE": "true",
}


def _check_legacy(fake: Any, config: Path) -> None:
    body = fake.request_bodies[-1]
    assert {
        k: body[k]
        for k in (
            "description",
            "tag_list",
            "run_untagged",
            "locked",
            "paused",
            "maintenance_note",
            "access_level",
            "maximum_timeout",
        )
    } == {
        "description": "legacy-1",
        "tag_list": "linux,docker",
        "run_untagged": True,
        "locked": False,
        "paused": True,
        "maintenance_note": "ask ops first",
        "access_level": "ref_protected",
        "maximum_timeout": 600,
    }
    assert config.read_text().startswith(USER_CONFIG)
    added = _runners(config)["legacy-1"]
    assert (
        added["token"] in fake.runner_tokens and added["id"] == fake.runners[added["token"]]["id"]
    )
    assert (added["limit"], added["request_concurrency"]) == (3, 2)
    assert (added["builds_dir"], added["cache_dir"]) == ("/srv/builds", "/srv/cache")
    assert added["docker"] == {"image": "debian:12"}
    assert added["token_expires_at"].year == 1  # GitLab's "never" (Go's zero time)


def test_legacy_registration_sends_every_flag(start_fake: StartFake, tmp_path: Path) -> None:
    fake = start_fake()
    config = _config(tmp_path)
    done = run_cli(
        [
            "register",
            "-n",
            "-c",
            str(config),
            "-u",
            fake.url,
            "-r",
            fake.registration_token,
            *LEGACY_FLAGS,
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    _check_legacy(fake, config)


def test_legacy_registration_reads_gitlabs_environment_variables(
    start_fake: StartFake, tmp_path: Path
) -> None:
    fake = start_fake()
    config = _config(tmp_path)
    env = {
        **LEGACY_ENV,
        "CI_SERVER_URL": fake.url,
        "REGISTRATION_TOKEN": fake.registration_token,
        "CONFIG_FILE": str(config),
    }
    done = run_cli(["register"], tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    _check_legacy(fake, config)


def test_register_asks_for_missing_values_on_a_terminal(
    start_fake: StartFake, tmp_path: Path
) -> None:
    """On a terminal, GitLab's questions: URL, token, name, executor; answers are written."""
    fake = start_fake()
    config = _config(tmp_path)
    answers = [fake.url, fake.runner_token, "asked-1", "shell"]
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [ALLOY_RUNNER, "register", "-c", str(config)],
        stdin=slave,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env=runner_env(tmp_path),
        cwd=tmp_path,
    )
    os.close(slave)
    seen = b""
    try:
        for answer in answers:
            while not seen.rstrip().endswith((b":", b"]:")):
                ready, _, _ = select.select([master], [], [], 20)
                assert ready, f"no prompt; so far: {seen!r}"
                seen += os.read(master, 4096)
            os.write(master, answer.encode() + b"\r")
            seen = b""
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    assert _runners(config)["asked-1"]["token"] == fake.runner_token


def _two_registered(fake: Any, tmp_path: Path) -> Path:
    config = _config(tmp_path)
    for name in ("one", "two"):
        done = run_cli(
            [
                "register",
                "-n",
                "-c",
                str(config),
                "-u",
                fake.url,
                "-r",
                fake.registration_token,
                "--name",
                name,
            ],
            tmp_path,
        )
        assert done.returncode == 0, done.stderr
    return config


def test_unregister_by_name_removes_the_runner_there_and_here(
    start_fake: StartFake, tmp_path: Path
) -> None:
    fake = start_fake()
    config = _two_registered(fake, tmp_path)
    token = _runners(config)["one"]["token"]
    done = run_cli(["unregister", "-c", str(config), "--name", "one"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert token not in fake.runner_tokens
    assert set(_runners(config)) == {"local", "two"}
    assert config.read_text().startswith(USER_CONFIG)
    again = run_cli(["unregister", "-c", str(config), "--name", "one"], tmp_path)
    _one_error_line(again, 2, "no runner matches --name 'one'")


def test_unregister_all_runners_and_by_url_and_token(start_fake: StartFake, tmp_path: Path) -> None:
    fake = start_fake()
    config = _two_registered(fake, tmp_path)
    elsewhere = next(t for t in fake.runner_tokens if t not in config.read_text())
    by_url = run_cli(
        ["unregister", "-c", str(config), "--url", fake.url, "--token", elsewhere], tmp_path
    )
    assert by_url.returncode == 0, by_url.stderr
    assert elsewhere not in fake.runner_tokens
    done = run_cli(["unregister", "-c", str(config), "--all-runners"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert fake.runner_tokens == set()
    assert set(_runners(config)) == {"local"}
    assert config.read_text().rstrip("\n") == USER_CONFIG.rstrip("\n")  # the user's file again
    rejected = run_cli(
        ["unregister", "-c", str(config), "--url", fake.url, "--token", elsewhere], tmp_path
    )
    _one_error_line(rejected, 1, "refused the runner token")


def test_reset_token_replaces_the_token_and_keeps_comments(
    start_fake: StartFake, tmp_path: Path
) -> None:
    fake = start_fake(token_expires_at=EXPIRES)
    config = _two_registered(fake, tmp_path)
    old = _runners(config)["two"]
    done = run_cli(["reset-token", "-c", str(config), "--name", "two"], tmp_path)
    assert done.returncode == 0, done.stderr
    new = _runners(config)["two"]
    assert new["token"] != old["token"] and new["token"] in fake.runner_tokens
    assert old["token"] not in fake.runner_tokens
    assert new["id"] == old["id"] and new["token_obtained_at"] >= old["token_obtained_at"]
    assert new["token_expires_at"].year == 2027
    assert new["token"] not in done.stdout and new["token"][:8] in done.stdout
    assert config.read_text().startswith(USER_CONFIG)
    assert _runners(config)["one"]["token"] in fake.runner_tokens  # the other one is untouched
    by_id = run_cli(
        ["reset-token", "-c", str(config), "--url", fake.url, "--id", str(new["id"])], tmp_path
    )
    assert by_id.returncode == 0, by_id.stderr
    assert _runners(config)["two"]["token"] != new["token"]


def test_a_runner_registered_for_a_file_that_cannot_be_written_is_unregistered(
    start_fake: StartFake, tmp_path: Path
) -> None:
    """A docker+machine runner needs [runners.machine]: the file is refused after the
    coordinator made the runner, which then goes again, unless --leave-runner."""
    fake = start_fake()
    config = _config(tmp_path)
    before = set(fake.runner_tokens)
    args = ["register", "-n", "-c", str(config), "-u", fake.url, "-r", fake.registration_token]
    done = run_cli([*args, "--name", "m", "--executor", "docker+machine"], tmp_path)
    _one_error_line(done, 2, "machine.MachineName")
    assert fake.count("register_runner", "201") == 1
    assert fake.runner_tokens == before and config.read_text() == USER_CONFIG
    kept = run_cli(
        [*args, "--name", "m", "--executor", "docker+machine", "--leave-runner"], tmp_path
    )
    assert kept.returncode == 2
    assert len(fake.runner_tokens - before) == 1
