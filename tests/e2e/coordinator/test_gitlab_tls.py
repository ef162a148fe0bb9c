"""TLS to the coordinator: verified by default, and `tls-ca-file` trusts a private CA."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from tests.support import StartRunner
from tests.support.fake_coordinator import StartFake

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def make_ca_and_server_cert(where: Path) -> tuple[Path, Path, Path]:
    """Write a private CA and a server certificate for 127.0.0.1 it signed; return their paths."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=where, check=True, capture_output=True, timeout=30)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=alloy test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (where / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
        "keyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n"
    )
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    )
    return where / "ca.pem", where / "server.pem", where / "server.key"


def test_only_the_runner_trusting_the_private_ca_takes_jobs(
    start_fake: StartFake, start_runner: StartRunner, tmp_path: Path
) -> None:
    """Without tls-ca-file the certificate is refused; with it, the job runs over TLS."""
    ca, cert, key = make_ca_and_server_cert(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    fake = start_fake(tls=context, long_poll=5.0)
    assert fake.url.startswith("https://")
    runner = start_runner(
        "concurrent = 2\ncheck_interval = 0.2\n"
        f'[[runners]]\nname = "untrusting"\nurl = "{fake.url}"\ntoken = "{fake.runner_token}"\n'
        f'[[runners]]\nname = "trusting"\nurl = "{fake.url}"\ntoken = "{fake.runner_token}"\n'
        f'tls-ca-file = "{ca}"\n'
    )
    job = fake.add_job("over-tls", ["echo secure"])
    fake.wait_done([job], timeout=30)
    assert job.status == "success"
    assert b"  on trusting\n" in job.trace
    line = runner.wait_for_line(r"runner untrusting: cannot reach the coordinator", timeout=10)
    assert "CERTIFICATE_VERIFY_FAILED" in line.string
