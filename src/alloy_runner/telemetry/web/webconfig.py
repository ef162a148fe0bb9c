"""The metrics server's web config: Prometheus exporter-toolkit's `web-config.yml` format.

`load_web_config(path)` reads and checks the file (YAML, keys, values) into a
frozen `WebConfig`; `access.load_web_access(path)` then builds what serving it
needs (the SSLContext and the BasicAuth). Anything wrong raises
`WebConfigError`, one line naming the key.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from alloy_runner.exceptions import WebConfigError
from alloy_runner.telemetry.web.strict_yaml import StrictLoader

EXTENSION = "alloy_runner"
"""The top-level mapping of the keys that alloy-runner adds to exporter-toolkit's format."""


class ClientAuth(Enum):
    """exporter-toolkit's `client_auth_type` values (Go's tls.ClientAuthType)."""

    NONE = "NoClientCert"
    REQUEST = "RequestClientCert"
    REQUIRE_ANY = "RequireAnyClientCert"
    VERIFY_IF_GIVEN = "VerifyClientCertIfGiven"
    REQUIRE_AND_VERIFY = "RequireAndVerifyClientCert"


# exporter-toolkit still takes the old name of RequireAnyClientCert.
_CLIENT_AUTH_ALIASES = {"RequireClientCert": ClientAuth.REQUIRE_ANY}

# Python's ssl can only ask for a client certificate and verify it: Go's "ask, don't verify"
# modes are mapped to the nearest mode that gives no less protection (see docs/security.md).
VERIFY_MODE = {
    ClientAuth.NONE: ssl.CERT_NONE,
    ClientAuth.REQUEST: ssl.CERT_NONE,
    ClientAuth.REQUIRE_ANY: ssl.CERT_REQUIRED,
    ClientAuth.VERIFY_IF_GIVEN: ssl.CERT_OPTIONAL,
    ClientAuth.REQUIRE_AND_VERIFY: ssl.CERT_REQUIRED,
}

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

# Go's tls.CipherSuites() names -> OpenSSL's names. Like Go, the TLS 1.3 suites (None) cannot
# be chosen: they are accepted and left to the library.
CIPHER_SUITES: dict[str, str | None] = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_AES_128_GCM_SHA256": None,
    "TLS_AES_256_GCM_SHA384": None,
    "TLS_CHACHA20_POLY1305_SHA256": None,
}

CURVES = ("CurveP256", "CurveP384", "CurveP521", "X25519")

# exporter-toolkit allows only these response headers, some only with these values.
HEADERS: dict[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}

# The keys of each mapping; None marks a key of exporter-toolkit that alloy-runner refuses
# rather than ignores (ignoring it would give less protection than the file asks for).
_TOP_KEYS = ("tls_server_config", "http_server_config", "basic_auth_users", EXTENSION)
_TOP_REFUSED = ("rate_limit",)
_TLS_KEYS = (
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "min_version",
    "max_version",
    "cipher_suites",
    "prefer_server_cipher_suites",
    "curve_preferences",
)
_TLS_REFUSED = ("cert", "key", "client_ca", "client_allowed_sans")
_HTTP_KEYS = ("http2", "headers")
_EXTENSION_KEYS = ("healthy_without_auth",)

# Cost 14 takes about a second a check on a small machine; every step doubles it.
MAX_BCRYPT_COST = 14
_BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")


@dataclass(frozen=True)
class TLSSettings:
    """`tls_server_config`, with paths made absolute."""

    cert_file: Path
    key_file: Path
    client_auth: ClientAuth = ClientAuth.NONE
    client_ca_file: Path | None = None
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True

    @property
    def verifies_clients(self) -> bool:
        """Tell whether a connection must bring a client certificate that verifies."""
        return VERIFY_MODE[self.client_auth] is ssl.CERT_REQUIRED


@dataclass(frozen=True)
class WebConfig:
    """One validated web config file."""

    path: Path
    tls: TLSSettings | None = None
    users: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)
    headers: tuple[tuple[str, str], ...] = ()
    healthy_without_auth: bool = False
    warnings: tuple[str, ...] = ()

    @property
    def protected(self) -> bool:
        """Tell whether the file turns on TLS or basic auth."""
        return self.tls is not None or bool(self.users)

    def describe(self) -> str:
        """Say in a few words what the file turns on (for the log)."""
        parts = []
        if self.tls is not None:
            parts.append(f"TLS (client certificates: {self.tls.client_auth.value})")
        if self.users:
            parts.append(f"basic auth for {len(self.users)} user(s)")
            if self.healthy_without_auth:
                parts.append("/-/healthy open")
        if self.headers:
            parts.append(f"{len(self.headers)} extra header(s)")
        return ", ".join(parts) or "no TLS, no basic auth"


class _Section:
    """Typed access to one YAML mapping; every error names the file and the full key."""

    def __init__(self, path: Path, data: object, prefix: str = "") -> None:
        self.path = path
        self.prefix = prefix
        if data is None:
            data = {}
        if not isinstance(data, dict):
            where = f"key '{prefix.rstrip('.')}'" if prefix else "the file"
            raise WebConfigError(f"{path}: {where}: expected a mapping, got {_kind(data)}")
        self.data: dict[Any, Any] = data

    def error(self, key: str, message: str) -> WebConfigError:
        return WebConfigError(f"{self.path}: key '{self.prefix}{key}': {message}")

    def check_keys(self, known: tuple[str, ...], refused: tuple[str, ...] = ()) -> None:
        for key in self.data:
            if key in refused:
                raise self.error(key, "is not supported by alloy-runner (see docs/security.md)")
            if key not in known:
                raise WebConfigError(f"{self.path}: unknown key '{self.prefix}{key}'")

    def section(self, key: str) -> _Section:
        return _Section(self.path, self.data.get(key), f"{self.prefix}{key}.")

    def string(self, key: str) -> str:
        value = self.data.get(key, "")
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {_kind(value)}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {_kind(value)}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(key, "expected a list of strings")
        return tuple(value)

    def file(self, key: str) -> Path | None:
        text = self.string(key)
        if not text:
            return None
        # As exporter-toolkit: a relative path is relative to the web config file.
        return self.path.parent / Path(text).expanduser()

    def choice(self, key: str, choices: Mapping[str, Any], default: str) -> Any:
        text = self.string(key) or default
        if text not in choices:
            raise self.error(key, f"expected one of {', '.join(choices)}, got {text!r}")
        return choices[text]


def _kind(value: object) -> str:
    """Describe a value without showing it (it may be a secret)."""
    return "nothing" if value is None else f"a {type(value).__name__}"


def _tls(top: _Section) -> tuple[TLSSettings | None, list[str]]:
    section = top.section("tls_server_config")
    section.check_keys(_TLS_KEYS, _TLS_REFUSED)
    warnings: list[str] = []
    cert, key, ca = (
        section.file("cert_file"),
        section.file("key_file"),
        section.file("client_ca_file"),
    )
    auth_names = {c.value: c for c in ClientAuth} | _CLIENT_AUTH_ALIASES
    auth: ClientAuth = section.choice("client_auth_type", auth_names, ClientAuth.NONE.value)
    if not section.data:
        return None, warnings
    if cert is None:
        raise section.error("cert_file", "missing: TLS needs cert_file and key_file")
    if key is None:
        raise section.error("key_file", "missing: TLS needs cert_file and key_file")
    if ca is not None and auth is ClientAuth.NONE:
        raise section.error(
            "client_ca_file", "given without a client_auth_type that asks for certificates"
        )
    warnings += _client_auth_warnings(auth, ca)
    versions = (
        section.choice("min_version", TLS_VERSIONS, "TLS12"),
        section.choice("max_version", TLS_VERSIONS, "TLS13"),
    )
    if versions[0] > versions[1]:
        raise section.error("min_version", "is above max_version")
    suites = section.strings("cipher_suites")
    warnings += _suite_and_curve_warnings(section, suites)
    settings = TLSSettings(
        cert_file=cert,
        key_file=key,
        client_auth=auth,
        client_ca_file=ca,
        min_version=versions[0],
        max_version=versions[1],
        cipher_suites=suites,
        prefer_server_cipher_suites=section.boolean("prefer_server_cipher_suites", True),
    )
    return settings, warnings


def _client_auth_warnings(auth: ClientAuth, ca: Path | None) -> list[str]:
    if auth is ClientAuth.REQUEST:
        return [
            "client_auth_type RequestClientCert: no certificate is asked for (Python's ssl "
            "cannot ask without verifying; the runner would not look at it anyway)"
        ]
    if auth is ClientAuth.REQUIRE_ANY:
        return [
            "client_auth_type RequireAnyClientCert: the certificate is also verified "
            f"against {'client_ca_file' if ca else 'the system CAs'} (Python's ssl cannot "
            "accept one unverified), as RequireAndVerifyClientCert does"
        ]
    return []


def _suite_and_curve_warnings(section: _Section, suites: tuple[str, ...]) -> list[str]:
    """Check cipher_suites and curve_preferences; return what cannot be applied."""
    warnings = []
    for suite in suites:
        if suite not in CIPHER_SUITES:
            raise section.error("cipher_suites", f"unknown cipher suite {suite!r}")
    if any(CIPHER_SUITES[s] is None for s in suites):
        warnings.append("cipher_suites: TLS 1.3 suites cannot be chosen; they are ignored")
    for curve in section.strings("curve_preferences"):
        if curve not in CURVES:
            raise section.error("curve_preferences", f"unknown curve {curve!r}")
    if section.strings("curve_preferences"):
        warnings.append("curve_preferences is not applied: Python's ssl cannot set the list")
    return warnings


def _users(top: _Section) -> tuple[tuple[str, bytes], ...]:
    section = top.section("basic_auth_users")
    users = []
    for user, hashed in section.data.items():
        if not isinstance(user, str) or not user or ":" in user:
            raise section.error(str(user), "a user name is a non-empty string without ':'")
        if not isinstance(hashed, str) or not _BCRYPT.fullmatch(hashed):
            # Never show the value: it may be a password written in plain text by mistake.
            raise section.error(
                user, "expected a bcrypt hash ($2y$..., as `htpasswd -nbBC 10` makes)"
            )
        if int(hashed[4:6]) > MAX_BCRYPT_COST:
            raise section.error(
                user,
                f"bcrypt cost {int(hashed[4:6])} is above the maximum of {MAX_BCRYPT_COST} "
                "(each uncached check would take seconds); use `htpasswd -nbBC 10`",
            )
        users.append((user, hashed.encode("ascii")))
    return tuple(users)


def _headers(top: _Section) -> tuple[tuple[str, str], ...]:
    section = top.section("http_server_config").section("headers")
    headers = []
    for name, value in section.data.items():
        if name not in HEADERS:
            raise section.error(
                str(name), f"this header cannot be set; the allowed ones: {', '.join(HEADERS)}"
            )
        if not isinstance(value, str) or "\r" in value or "\n" in value:
            raise section.error(name, "expected a one-line string")
        if HEADERS[name] and value not in HEADERS[name]:
            raise section.error(name, f"expected one of {', '.join(HEADERS[name])}")
        if value:  # as exporter-toolkit: blank means unset
            headers.append((name, value))
    return tuple(headers)


def parse_web_config(text: str, path: Path) -> WebConfig:
    """Validate the text of a web config file; `path` names it and anchors relative paths."""
    try:
        data = yaml.load(text, Loader=StrictLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise WebConfigError(f"{path}: YAML syntax error: {problem}{where}") from None
    except RecursionError:  # the YAML composer recurses per level of nesting
        raise WebConfigError(f"{path}: lists or maps are nested too deeply") from None
    top = _Section(path, data)
    top.check_keys(_TOP_KEYS, _TOP_REFUSED)
    http = top.section("http_server_config")
    http.check_keys(_HTTP_KEYS)
    extension = top.section(EXTENSION)
    extension.check_keys(_EXTENSION_KEYS)
    tls, warnings = _tls(top)
    if http.boolean("http2", False):
        warnings.append("http_server_config.http2 is ignored: the server speaks HTTP/1.1")
    return WebConfig(
        path=path,
        tls=tls,
        users=_users(top),
        headers=_headers(top),
        healthy_without_auth=extension.boolean("healthy_without_auth", False),
        warnings=tuple(f"{path}: {w}" for w in warnings),
    )


def load_web_config(path: Path) -> WebConfig:
    """Read and validate the web config file at `path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WebConfigError(f"{path}: web config file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WebConfigError(f"{path}: cannot read web config file: {exc}") from None
    return parse_web_config(text, path)
