"""A loaded web config, ready to serve: the server-side SSLContext and the credentials check."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

from alloy_runner.exceptions import WebConfigError
from alloy_runner.telemetry.web.basicauth import BasicAuth, Verdict
from alloy_runner.telemetry.web.webconfig import (
    CIPHER_SUITES,
    VERIFY_MODE,
    TLSSettings,
    WebConfig,
    load_web_config,
)

if TYPE_CHECKING:
    from pathlib import Path


def _no_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key.
    raise WebConfigError("the key is encrypted; give key_file without a passphrase")


def ssl_context(tls: TLSSettings, where: Path) -> ssl.SSLContext:
    """Build the server-side SSLContext of `tls`; raise WebConfigError naming the bad file."""
    for key, file in (
        ("cert_file", tls.cert_file),
        ("key_file", tls.key_file),
        ("client_ca_file", tls.client_ca_file),
    ):
        if file is not None:
            try:
                file.read_bytes()
            except OSError as exc:
                raise WebConfigError(
                    f"{where}: key 'tls_server_config.{key}': cannot read {file}: "
                    f"{exc.strerror or exc}"
                ) from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = tls.min_version
    context.maximum_version = tls.max_version
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file, password=_no_password)
    except WebConfigError as exc:
        raise WebConfigError(f"{where}: key 'tls_server_config.key_file': {exc}") from None
    except ssl.SSLError as exc:
        raise WebConfigError(
            f"{where}: tls_server_config: cert_file {tls.cert_file} and key_file "
            f"{tls.key_file} do not load as a certificate and its key ({exc.reason or exc})"
        ) from None
    context.verify_mode = VERIFY_MODE[tls.client_auth]
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except ssl.SSLError as exc:
            raise WebConfigError(
                f"{where}: key 'tls_server_config.client_ca_file': no CA certificate in "
                f"{tls.client_ca_file} ({exc.reason or exc})"
            ) from None
    elif context.verify_mode is not ssl.CERT_NONE:
        context.load_default_certs(ssl.Purpose.CLIENT_AUTH)  # as Go: the system's CAs
    openssl_suites = [CIPHER_SUITES[s] for s in tls.cipher_suites if CIPHER_SUITES[s]]
    if openssl_suites:
        try:
            context.set_ciphers(":".join(s for s in openssl_suites if s))
        except ssl.SSLError:
            raise WebConfigError(
                f"{where}: key 'tls_server_config.cipher_suites': none of them is available"
            ) from None
    if not tls.prefer_server_cipher_suites:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    return context


@dataclass(frozen=True)
class WebAccess:
    """A loaded web config, ready to serve: its SSLContext and its credentials check."""

    config: WebConfig
    context: ssl.SSLContext | None
    auth: BasicAuth | None

    def check(self, path: str, authorization: str | None) -> Verdict:
        """Check one request for `path`; `/-/healthy` may be open (`healthy_without_auth`)."""
        if self.auth is None or (path == "/-/healthy" and self.config.healthy_without_auth):
            return Verdict.ALLOWED
        return self.auth.check(authorization)


def load_web_access(path: Path) -> WebAccess:
    """Load the file at `path` and build what serving it needs; raise WebConfigError."""
    config = load_web_config(path)
    context = None if config.tls is None else ssl_context(config.tls, path)
    auth = BasicAuth(dict(config.users)) if config.users else None
    return WebAccess(config, context, auth)
