"""The metrics server behind a web config (--web.config.file): TLS, client certificates, Basic auth.

Every test runs the real `alloy-runner run` on loopback; the Prometheus test scrapes it
with Debian's Prometheus server. Certificates are made with the `openssl` CLI.
"""

from __future__ import annotations

import http.client
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from tests.support import (
    RunnerProcess,
    StartRunner,
    http_request,
    run_cli,
    start_prometheus,
    wait_until,
)
from tests.support.tls import (
    CertPair,
    basic_auth,
    client_context,
    https_request,
    make_pki,
)

RUNNER = '[[runners]]\nname = "a"\n'
EXIT_USAGE = 2
HEADERS = {"X-Frame-Options": "deny", "X-Content-Type-Options": "nosniff"}
# Cost 8: a check takes milliseconds, enough to tell a cached check from a bcrypt one.
SECRET_HASH = bcrypt.hashpw(b"secret", bcrypt.gensalt(8))
CHEAP_HASH = bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode()
UNAUTHORIZED = 401


def _web_yaml(
    *,
    tls: CertPair | None = None,
    users: dict[str, str] | None = None,
    client_auth: str = "",
    client_ca: Path | None = None,
    healthy_open: bool = False,
    headers: dict[str, str] | None = None,
) -> str:
    lines = []
    if tls is not None:
        lines += ["tls_server_config:", f"  cert_file: {tls.cert}", f"  key_file: {tls.key}"]
        if client_auth:
            lines.append(f"  client_auth_type: {client_auth}")
        if client_ca is not None:
            lines.append(f"  client_ca_file: {client_ca}")
    if users:
        lines.append("basic_auth_users:")
        lines += [f"  {user}: '{hashed}'" for user, hashed in users.items()]
    if headers:
        lines += ["http_server_config:", "  headers:"]
        lines += [f"    {name}: {value}" for name, value in headers.items()]
    if healthy_open:
        lines += ["alloy_runner:", "  healthy_without_auth: true"]
    return "\n".join(lines) + "\n"


def _start(home: Path, web: str, config: str = RUNNER) -> RunnerProcess:
    """Start a runner in `home` whose web config file (home/web.yml) is `web`."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "web.yml"
    path.write_text(web, encoding="utf-8")
    return RunnerProcess(home, config, args=("--web.config.file", str(path))).start()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CertPair]:
    """A CA; a server and a client certificate it signed; a client certificate of another CA."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_runner(
    tmp_path_factory: pytest.TempPathFactory, pki: dict[str, CertPair]
) -> Iterator[RunnerProcess]:
    """A runner serving TLS with Basic auth (alice / secret)."""
    web = _web_yaml(tls=pki["server"], users={"alice": CHEAP_HASH})
    runner = _start(tmp_path_factory.mktemp("tls-runner"), web)
    try:
        yield runner
    finally:
        runner.stop()


@pytest.fixture(scope="module")
def mtls_runner(
    tmp_path_factory: pytest.TempPathFactory, pki: dict[str, CertPair]
) -> Iterator[RunnerProcess]:
    """A runner that requires a client certificate signed by the test CA."""
    web = _web_yaml(
        tls=pki["server"], client_auth="RequireAndVerifyClientCert", client_ca=pki["ca"].cert
    )
    runner = _start(tmp_path_factory.mktemp("mtls-runner"), web)
    try:
        yield runner
    finally:
        runner.stop()


@pytest.fixture(scope="module")
def auth_runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunnerProcess]:
    """A runner on plain HTTP with Basic auth (alice / secret, cost 8) and extra headers."""
    web = _web_yaml(users={"alice": SECRET_HASH.decode()}, headers=HEADERS)
    runner = _start(tmp_path_factory.mktemp("auth-runner"), web)
    try:
        yield runner
    finally:
        runner.stop()


def _scrape_config(job: str, target: str, ca: Path, password: str) -> dict[str, object]:
    return {
        "job_name": job,
        "scheme": "https",
        "tls_config": {"ca_file": str(ca)},
        "basic_auth": {"username": "alice", "password": password},
        "static_configs": [{"targets": [target]}],
    }


def test_prometheus_scrapes_over_tls_with_basic_auth(
    tmp_path: Path, tls_runner: RunnerProcess, pki: dict[str, CertPair]
) -> None:
    """Prometheus scrapes over TLS with the right password (up 1); the wrong one is down, 401."""
    target = f"127.0.0.1:{tls_runner.port}"
    ca = pki["ca"].cert
    configs = [
        _scrape_config("good", target, ca, "secret"),
        _scrape_config("bad", target, ca, "not-the-password"),
    ]
    with start_prometheus(tmp_path, scrape_configs=configs) as prometheus:
        prometheus.wait_for_query('up{job="good"} == 1')
        prometheus.wait_for_query('ci_runner_version_info{job="good"} == 1')

        def bad_target() -> dict[str, str] | None:
            for target in prometheus.api("targets")["activeTargets"]:
                if target["labels"]["job"] == "bad" and target["health"] == "down":
                    return dict(target)
            return None

        bad = wait_until(bad_target, 20, what="the bad target to be down")
        assert "401" in bad["lastError"], bad
        assert prometheus.query('up{job="bad"} == 0')


def test_stalled_tls_client_does_not_block_others(
    tls_runner: RunnerProcess, pki: dict[str, CertPair]
) -> None:
    """A client that connects and never starts its TLS handshake does not hold up other clients."""
    with socket.create_connection((tls_runner.host, tls_runner.port), timeout=5):
        started = time.monotonic()
        reply = https_request(
            tls_runner.host,
            tls_runner.port,
            "GET",
            "/-/healthy",
            ca=pki["ca"].cert,
            headers=basic_auth("alice", "secret"),
            timeout=3,
        )
        assert reply.status == 200
        assert time.monotonic() - started < 2


def test_plain_http_to_the_tls_port_gets_no_metrics(tls_runner: RunnerProcess) -> None:
    """A plain-HTTP request to the TLS port is dropped: no response, no metrics."""
    with pytest.raises((http.client.HTTPException, OSError)):
        http_request(tls_runner.host, tls_runner.port, "GET", "/metrics", timeout=3)


def _handshake(
    runner: RunnerProcess, ca: Path, client: CertPair | None, max_version: ssl.TLSVersion
) -> int:
    """Connect with TLS (up to `max_version`), GET /metrics, and return the status."""
    context = client_context(ca, client)
    context.maximum_version = max_version
    with (
        socket.create_connection((runner.host, runner.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        head = tls.recv(64)
    return int(head.split()[1])


@pytest.mark.parametrize("client", ["none", "rogue"])
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_required_client_certificate_refuses_others(
    mtls_runner: RunnerProcess, pki: dict[str, CertPair], client: str, version: ssl.TLSVersion
) -> None:
    """RequireAndVerifyClientCert: without a certificate, or with another CA's, TLS fails."""
    certificate = None if client == "none" else pki["rogue"]
    # TLS 1.2 fails in the handshake itself; TLS 1.3 reports the server's alert at the next read.
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        _handshake(mtls_runner, pki["ca"].cert, certificate, version)


def test_required_client_certificate_accepts_a_valid_one(
    mtls_runner: RunnerProcess, pki: dict[str, CertPair]
) -> None:
    """RequireAndVerifyClientCert: a client certificate signed by client_ca_file gets /metrics."""
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        assert _handshake(mtls_runner, pki["ca"].cert, pki["client"], version) == 200


def _assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == EXIT_USAGE, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("alloy-runner: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_broken_web_config_stops_the_start(tmp_path: Path, pki: dict[str, CertPair]) -> None:
    """A broken web config file: the executable exits 2 with one line naming the file.

    The smoke of a family tests/telemetry/web/test_start_errors.py covers in-process
    (every kind of broken file, a missing one, the path relative to config.toml).
    """
    path = tmp_path / "web.yml"
    path.write_text(
        f"tls_server_config:\n  cert_file: {pki['server'].cert}\n  key_file: {pki['rogue'].key}\n",
        encoding="utf-8",
    )
    result = run_cli(
        ["run", "--metrics-server", "127.0.0.1:0", "--web.config.file", str(path)], tmp_path
    )
    _assert_one_line_error(result, str(path), "do not load as a certificate and its key")


def test_flag_wins_over_the_config_key(tmp_path: Path) -> None:
    """--web.config.file wins over metrics_web_config; an empty flag turns the file off."""
    (tmp_path / "config.toml").write_text('metrics_web_config = "missing.yml"\n' + RUNNER)
    (tmp_path / "good.yml").write_text(f"basic_auth_users:\n  alice: '{CHEAP_HASH}'\n")
    for flag in (str(tmp_path / "good.yml"), ""):
        runner = RunnerProcess(
            tmp_path,
            None,
            args=("--config", str(tmp_path / "config.toml"), "--web.config.file", flag),
        )
        with runner:
            status = runner.request("GET", "/-/healthy").status
        assert status == (UNAUTHORIZED if flag else 200)


@pytest.mark.parametrize("path", ["/metrics", "/debug/", "/", "/-/ready", "/-/healthy", "/nope"])
def test_every_path_needs_credentials(auth_runner: RunnerProcess, path: str) -> None:
    """Without credentials every path answers 401 with a Basic challenge, and shows nothing."""
    reply = auth_runner.request("GET", path)
    assert reply.status == UNAUTHORIZED
    assert reply.headers["www-authenticate"] == 'Basic realm="alloy-runner"'
    assert b"ci_runner" not in reply.body


@pytest.mark.parametrize(
    ("user", "password"),
    [("alice", "wrong"), ("mallory", "secret"), ("", "secret"), ("alice", "")],
    ids=["wrong-password", "wrong-user", "no-user", "no-password"],
)
def test_wrong_credentials_get_401(auth_runner: RunnerProcess, user: str, password: str) -> None:
    """A wrong user or a wrong password gets 401 with `WWW-Authenticate: Basic realm=...`."""
    reply = auth_runner.request("GET", "/metrics", basic_auth(user, password))
    assert reply.status == UNAUTHORIZED
    assert reply.headers["www-authenticate"] == 'Basic realm="alloy-runner"'


def test_other_methods_need_credentials_first(auth_runner: RunnerProcess) -> None:
    """A POST without credentials gets 401, not 405: nothing is told before authentication."""
    assert auth_runner.request("POST", "/metrics", body=b"x").status == UNAUTHORIZED
    post = auth_runner.request("POST", "/metrics", basic_auth("alice", "secret"), body=b"")
    assert post.status == 405


def test_headers_are_added_to_every_response(auth_runner: RunnerProcess) -> None:
    """http_server_config.headers appear on a 200 and on a 401 alike."""
    for headers, status in ((basic_auth("alice", "secret"), 200), ({}, UNAUTHORIZED)):
        reply = auth_runner.request("GET", "/metrics", headers)
        assert reply.status == status
        for name, value in HEADERS.items():
            assert reply.headers[name.lower()] == value


def test_cached_checks_make_authenticated_scrapes_cheap(auth_runner: RunnerProcess) -> None:
    """200 authenticated scrapes take well under the time of 200 bcrypt checks of the password."""
    started = time.perf_counter()
    for _ in range(200):
        assert bcrypt.checkpw(b"secret", SECRET_HASH)
    bcrypt_time = time.perf_counter() - started
    conn = http.client.HTTPConnection(auth_runner.host, auth_runner.port, timeout=5)
    headers = basic_auth("alice", "secret")
    try:

        def scrape() -> None:
            conn.request("GET", "/metrics", headers=headers)
            response = conn.getresponse()
            response.read()
            assert response.status == 200

        scrape()  # the one bcrypt check, then cached
        started = time.perf_counter()
        for _ in range(200):
            scrape()
        scrape_time = time.perf_counter() - started
    finally:
        conn.close()
    ratio = scrape_time / bcrypt_time
    assert ratio < 0.5, f"200 scrapes {scrape_time:.3f}s vs 200 bcrypt {bcrypt_time:.3f}s"


def test_healthy_is_open_only_when_configured(start_runner: StartRunner, tmp_path: Path) -> None:
    """With alloy_runner.healthy_without_auth, /-/healthy is open; the rest needs credentials."""
    web = tmp_path / "web.yml"
    web.write_text(_web_yaml(users={"alice": CHEAP_HASH}, healthy_open=True), encoding="utf-8")
    runner = start_runner(RUNNER, args=("--web.config.file", str(web)))
    assert runner.request("GET", "/-/healthy").status == 200
    for path in ("/-/ready", "/metrics", "/debug/", "/-/healthy/"):
        assert runner.request("GET", path).status == UNAUTHORIZED, path


def _sighup(runner: RunnerProcess, web: Path, text: str, expect: str) -> None:
    start = len(runner.stderr_lines)
    web.write_text(text, encoding="utf-8")
    runner.signal(signal.SIGHUP)
    runner.wait_for_line(expect, timeout=10, start=start)


def test_sighup_switches_credentials(start_runner: StartRunner, tmp_path: Path) -> None:
    """SIGHUP re-reads the web config: the new password works and the old one no longer does."""
    web = tmp_path / "web.yml"
    web.write_text(_web_yaml(users={"alice": CHEAP_HASH}), encoding="utf-8")
    runner = start_runner(f'metrics_web_config = "{web}"\n' + RUNNER)
    assert runner.request("GET", "/metrics", basic_auth("alice", "secret")).status == 200
    new_hash = bcrypt.hashpw(b"rotated", bcrypt.gensalt(4)).decode()
    _sighup(runner, web, _web_yaml(users={"alice": new_hash}), "SIGHUP: web config reloaded")
    assert runner.request("GET", "/metrics", basic_auth("alice", "secret")).status == 401
    assert runner.request("GET", "/metrics", basic_auth("alice", "rotated")).status == 200


def test_sighup_with_a_broken_file_keeps_the_old_one(
    start_runner: StartRunner, tmp_path: Path
) -> None:
    """SIGHUP with a broken web config logs why and keeps serving with the old credentials."""
    web = tmp_path / "web.yml"
    web.write_text(_web_yaml(users={"alice": CHEAP_HASH}), encoding="utf-8")
    runner = start_runner(RUNNER, args=("--web.config.file", str(web)))
    _sighup(
        runner,
        web,
        "basic_auth_users:\n  alice: plaintext\n",
        "SIGHUP: keeping the running web config: .*'basic_auth_users.alice'",
    )
    assert runner.request("GET", "/metrics", basic_auth("alice", "secret")).status == 200
    assert runner.request("GET", "/metrics").status == UNAUTHORIZED
