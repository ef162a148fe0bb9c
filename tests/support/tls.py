"""Certificates made with the `openssl` CLI, and HTTPS requests that may bring a client certificate.

Keys are P-256 EC keys (fast to make); certificates last two days and name
`localhost` and `127.0.0.1`, which is what the loopback tests connect to.
"""

from __future__ import annotations

import http.client
import ssl
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.http_client import DEFAULT_TIMEOUT, Reply

OPENSSL = "openssl"
LOOPBACK_SANS = ("DNS:localhost", "IP:127.0.0.1")


@dataclass(frozen=True)
class CertPair:
    """A PEM certificate and its unencrypted PEM key."""

    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    subprocess.run(
        [OPENSSL, *args], check=True, capture_output=True, timeout=30, stdin=subprocess.DEVNULL
    )


def make_ca(directory: Path, name: str = "alloy-runner test CA") -> CertPair:
    """Make a self-signed CA in `directory` (files `ca.pem`, `ca.key`)."""
    directory.mkdir(parents=True, exist_ok=True)
    pair = CertPair(directory / "ca.pem", directory / "ca.key")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
        "-keyout",
        str(pair.key),
        "-out",
        str(pair.cert),
    )
    return pair


def make_cert(
    directory: Path,
    name: str,
    ca: CertPair,
    *,
    client: bool = False,
    sans: Sequence[str] = LOOPBACK_SANS,
) -> CertPair:
    """Make a leaf certificate `name.pem` and key `name.key` signed by `ca`.

    `client` makes a client certificate (extendedKeyUsage clientAuth), else a server one.
    """
    directory.mkdir(parents=True, exist_ok=True)
    pair = CertPair(directory / f"{name}.pem", directory / f"{name}.key")
    csr, ext = directory / f"{name}.csr", directory / f"{name}.ext"
    ext.write_text(
        "basicConstraints = CA:FALSE\n"
        f"extendedKeyUsage = {'clientAuth' if client else 'serverAuth'}\n"
        + (f"subjectAltName = {', '.join(sans)}\n" if sans else ""),
        encoding="utf-8",
    )
    _openssl(
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        f"/CN={name}",
        "-keyout",
        str(pair.key),
        "-out",
        str(csr),
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca.cert),
        "-CAkey",
        str(ca.key),
        "-set_serial",
        str(abs(hash(name)) % 2**31 + 1),
        "-days",
        "2",
        "-extfile",
        str(ext),
        "-out",
        str(pair.cert),
    )
    return pair


def make_pki(root: Path) -> dict[str, CertPair]:
    """A CA; a server and a client certificate it signed; a client certificate of another CA."""
    ca = make_ca(root / "ca")
    rogue_ca = make_ca(root / "rogue-ca", name="someone else's CA")
    return {
        "ca": ca,
        "server": make_cert(root, "server", ca),
        "client": make_cert(root, "client", ca, client=True),
        "rogue": make_cert(root / "rogue", "client", rogue_ca, client=True),
        "rogue_ca": rogue_ca,
    }


def client_context(ca: Path, client: CertPair | None = None) -> ssl.SSLContext:
    """Return a client context that trusts `ca` and presents `client` if given."""
    context = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    return context


def https_request(
    host: str,
    port: int,
    method: str,
    path: str,
    *,
    ca: Path,
    client: CertPair | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Reply:
    """Send one request over TLS on a fresh connection and read the whole response."""
    conn = http.client.HTTPSConnection(
        host, port, timeout=timeout, context=client_context(ca, client)
    )
    try:
        conn.request(method, path, headers=dict(headers or {}))
        response = conn.getresponse()
        data = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        conn.close()


def basic_auth(user: str, password: str) -> dict[str, str]:
    """Return the `Authorization` header of Basic credentials."""
    import base64

    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}
