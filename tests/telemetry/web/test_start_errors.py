"""A broken web config stops `alloy-runner run` before it binds: exit 2 and one line.

In-process through `main(argv)`, the real `daemon.run` and the real wiring that
loads the web config (the `invoke_wiring` fixture); only the daemon that would
bind and run is a stub. tests/e2e/test_web_security.py keeps one case against the
real executable.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import Invoke, assert_one_error_line
from tests.support.tls import CertPair, make_pki

EXIT_USAGE = 2
RUNNER = '[[runners]]\nname = "a"\n'


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CertPair]:
    """A CA; a server and a client certificate it signed; a client certificate of another CA."""
    return make_pki(tmp_path_factory.mktemp("pki"))


def _bad_web_configs(pki: dict[str, CertPair], root: Path) -> dict[str, tuple[str, list[str]]]:
    server, rogue = pki["server"], pki["rogue"]
    tls = f"tls_server_config:\n  cert_file: {server.cert}\n  key_file: {server.key}\n"
    return {
        "yaml": ("basic_auth_users: [\n", ["YAML syntax error"]),
        "unknown-top": ("basic_auth_user:\n  alice: x\n", ["unknown key 'basic_auth_user'"]),
        "unknown-nested": (tls + "  client_auth: x\n", ["'tls_server_config.client_auth'"]),
        "cert-missing": (
            f"tls_server_config:\n  cert_file: {root / 'nope.pem'}\n  key_file: {server.key}\n",
            ["'tls_server_config.cert_file'", "cannot read", "nope.pem"],
        ),
        "key-mismatch": (
            f"tls_server_config:\n  cert_file: {server.cert}\n  key_file: {rogue.key}\n",
            ["do not load as a certificate and its key"],
        ),
        "plain-password": (
            "basic_auth_users:\n  alice: hunter2\n",
            ["'basic_auth_users.alice'", "bcrypt"],
        ),
        "client-auth-type": (
            tls + "  client_auth_type: RequireClientCertPlease\n",
            ["'tls_server_config.client_auth_type'", "'RequireClientCertPlease'"],
        ),
        "min-version": (
            tls + "  min_version: SSL3\n",
            ["'tls_server_config.min_version'", "'SSL3'"],
        ),
        "header": (
            "http_server_config:\n  headers:\n    Server: nginx\n",
            ["'http_server_config.headers.Server'"],
        ),
        "ca-without-auth": (
            tls + f"  client_ca_file: {pki['ca'].cert}\n",
            ["'tls_server_config.client_ca_file'"],
        ),
        "ca-not-a-certificate": (
            tls + f"  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: {server.key}\n",
            ["'tls_server_config.client_ca_file'", "no CA certificate"],
        ),
        "refused-key": ("rate_limit:\n  burst: 10\n", ["'rate_limit'", "not supported"]),
    }


BAD_KINDS = [
    "yaml",
    "unknown-top",
    "unknown-nested",
    "cert-missing",
    "key-mismatch",
    "plain-password",
    "client-auth-type",
    "min-version",
    "header",
    "ca-without-auth",
    "ca-not-a-certificate",
    "refused-key",
]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_broken_web_config_stops_the_start(
    invoke_wiring: Invoke, tmp_path: Path, pki: dict[str, CertPair], kind: str
) -> None:
    """A broken web config file: exit 2 and one error line naming the file and the problem."""
    text, fragments = _bad_web_configs(pki, tmp_path)[kind]
    path = tmp_path / "web.yml"
    path.write_text(text, encoding="utf-8")
    ran = invoke_wiring(["run", "--metrics-server", "127.0.0.1:0", "--web.config.file", str(path)])
    assert_one_error_line(ran, EXIT_USAGE, str(path), *fragments)
    assert path.read_text(encoding="utf-8") == text


def test_missing_web_config_file_stops_the_start(invoke_wiring: Invoke, tmp_path: Path) -> None:
    """A --web.config.file that does not exist: exit 2, one line naming it."""
    path = tmp_path / "absent.yml"
    ran = invoke_wiring(["run", "--metrics-server", "127.0.0.1:0", "--web.config.file", str(path)])
    assert_one_error_line(ran, EXIT_USAGE, str(path), "does not exist")
    assert not path.exists()


def test_config_key_is_relative_to_the_config_file(invoke_wiring: Invoke, tmp_path: Path) -> None:
    """metrics_web_config in config.toml is read relative to config.toml's directory."""
    conf = tmp_path / "etc"
    conf.mkdir()
    (conf / "web.yml").write_text("basic_auth_users:\n  alice: hunter2\n", encoding="utf-8")
    (conf / "config.toml").write_text('metrics_web_config = "web.yml"\n' + RUNNER)
    ran = invoke_wiring(
        ["run", "--config", str(conf / "config.toml"), "--metrics-server", "127.0.0.1:0"]
    )
    assert_one_error_line(ran, EXIT_USAGE, str(conf / "web.yml"), "'basic_auth_users.alice'")


def test_an_empty_flag_turns_a_broken_config_key_off(invoke_wiring: Invoke, tmp_path: Path) -> None:
    """The probe of the seam: with `--web.config.file ''` nothing is refused and `wire` builds.

    The stub daemon then fails the test with an AssertionError, which is what this
    test expects: the errors above come from the web config, not from the stub.
    """
    (tmp_path / "config.toml").write_text('metrics_web_config = "missing.yml"\n' + RUNNER)
    args = ["run", "--config", str(tmp_path / "config.toml"), "--metrics-server", "127.0.0.1:0"]
    with pytest.raises(AssertionError, match="the daemon would start"):
        invoke_wiring([*args, "--web.config.file", ""])
