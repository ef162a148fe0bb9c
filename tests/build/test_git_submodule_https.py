"""GIT_SUBMODULE_FORCE_HTTPS: a submodule whose URL is the GitLab server's SSH form is
fetched over HTTP(S) from the server, with the job's credentials, as GitLab Runner does.

The server is real git over HTTP (the "dumb" protocol: bare repositories served as files
from 127.0.0.1), the get_sources script runs in real bash."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from alloy_runner.build import git as settings
from alloy_runner.build.job import GitInfo, Job, Variable
from alloy_runner.config.model import RunnerConfig
from tests.build.git_repos import Upstream, get_sources, git
from tests.support.fakes import make_job
from tests.support.loopback import LoopbackHTTPServer


def test_ssh_urls_of_the_server_go_to_its_https_base_with_the_job_credentials() -> None:
    repo = "https://gitlab-ci-token:tok@gitlab.test/group/p.git"
    assert settings.submodule_https(repo, "", {"CI_SERVER_HOST": "gitlab.test"}) == (
        ("https://gitlab-ci-token:tok@gitlab.test/", "git@gitlab.test:"),
        ("https://gitlab-ci-token:tok@gitlab.test", "ssh://git@gitlab.test"),
    )
    ssh = {"CI_SERVER_SHELL_SSH_HOST": "ssh.gitlab.test", "CI_SERVER_SHELL_SSH_PORT": "2222"}
    assert settings.submodule_https(repo, "https://mirror.test/git/", ssh) == (
        ("https://gitlab-ci-token:tok@mirror.test/git", "ssh://git@ssh.gitlab.test:2222"),
    )
    assert settings.submodule_https("file:///srv/p.git", "", {}) == ()


AUTHORIZATION = "Basic " + base64.b64encode(b"gitlab-ci-token:tok").decode()


def _static(root: Path, requests: list[str]) -> type[SimpleHTTPRequestHandler]:
    class Files(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self) -> None:
            if self.headers.get("Authorization") != AUTHORIZATION:  # the job's credentials
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            requests.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Files


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Upstream, LoopbackHTTPServer, list[str]]]:
    """`main.git` (its submodule `other` at git@127.0.0.1:other.git) and `other.git` on HTTP."""
    up = Upstream.empty(tmp_path / "up")
    up.new("other", {"other.txt": "other\n"})
    main = up.new("main", {"main.txt": "main\n"})
    up.add_submodule(main, "other", "other")
    git(
        main,
        up.env,
        "config",
        "-f",
        ".gitmodules",
        "submodule.other.url",
        "git@127.0.0.1:other.git",
    )
    git(main, up.env, "commit", "-q", "-am", "other over ssh")
    www = tmp_path / "www"
    for name in ("main", "other"):
        git(tmp_path, up.env, "clone", "-q", "--bare", str(up.repo(name)), str(www / f"{name}.git"))
        git(www / f"{name}.git", up.env, "update-server-info")
    requests: list[str] = []
    with LoopbackHTTPServer(_static(www, requests)) as server:
        yield up, server, requests


def _job(up: Upstream, server: LoopbackHTTPServer, **variables: str) -> Job:
    info = GitInfo(
        repo_url=server.url.replace("http://", "http://gitlab-ci-token:tok@") + "/main.git",
        ref="main",
        sha=up.head("main"),
        refspecs=("+refs/heads/*:refs/remotes/origin/*",),
    )
    values = {"GIT_SUBMODULE_STRATEGY": "normal", "CI_SERVER_HOST": "127.0.0.1", **variables}
    return make_job(git_info=info, variables=tuple(Variable(k, v) for k, v in values.items()))


def test_force_https_fetches_an_ssh_submodule_over_http(
    served: tuple[Upstream, LoopbackHTTPServer, list[str]], tmp_path: Path
) -> None:
    up, server, requests = served
    no_ssh = {"GIT_SSH_COMMAND": "false"}  # an SSH fetch would fail at once
    job = _job(up, server, GIT_SUBMODULE_FORCE_HTTPS="true")
    fetched = get_sources(up, tmp_path / "p", job, RunnerConfig(name="r"), env=no_ssh)
    assert fetched.ok, fetched.output
    assert (tmp_path / "p" / "other" / "other.txt").read_text() == "other\n"
    assert any(path.startswith("/other.git/") for path in requests)
    assert "WARNING: Updating submodules failed" not in fetched.output

    plain = get_sources(up, tmp_path / "q", _job(up, server), RunnerConfig(name="r"), env=no_ssh)
    assert not plain.ok  # without it, the submodule's URL is SSH
    assert not (tmp_path / "q" / "other" / "other.txt").exists()


def test_the_job_credentials_stay_out_of_git_argv_and_config(
    served: tuple[Upstream, LoopbackHTTPServer, list[str]], tmp_path: Path
) -> None:
    """Every git the stage starts is logged by a `git` first on PATH: the token is in none of
    their command lines (`ps` shows them to every user), nor in the repository's config after
    the stage; the server still got the credentials (it answers 401 without)."""
    up, server, requests = served
    logged, wrapper = tmp_path / "argv.log", tmp_path / "bin" / "git"
    wrapper.parent.mkdir()
    real = next(
        Path(d) / "git" for d in os.environ["PATH"].split(os.pathsep) if (Path(d) / "git").exists()
    )
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {logged}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    env = {"GIT_SSH_COMMAND": "false", "PATH": f"{wrapper.parent}{os.pathsep}{up.env['PATH']}"}
    project = tmp_path / "p"
    job = _job(up, server, GIT_SUBMODULE_FORCE_HTTPS="true")
    for _ in range(2):  # a fresh repository, then a fetch into it
        fetched = get_sources(up, project, job, RunnerConfig(name="r"), env=env)
        assert fetched.ok, fetched.output
    assert (project / "other" / "other.txt").read_text() == "other\n"
    assert any(path.startswith("/other.git/") for path in requests)
    argv = logged.read_text()
    assert "remote add origin" in argv and "submodule update" in argv
    assert "tok" not in argv
    configs = [project / ".git" / "config", *(project / ".git" / "modules").glob("*/config")]
    assert len(configs) == 2
    assert all("tok" not in config.read_text() for config in configs)
    remote = git(project, up.env, "remote", "get-url", "origin")
    assert remote == server.url + "/main.git"
