"""The web config file (exporter-toolkit's format): validation, the SSLContext, Basic auth."""

from __future__ import annotations

import base64
import ssl
import threading
import time
from pathlib import Path

import bcrypt
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alloy_runner.config.address import parse_address
from alloy_runner.exceptions import ConfigError, WebConfigError
from alloy_runner.telemetry.web.access import WebAccess, load_web_access, ssl_context
from alloy_runner.telemetry.web.basicauth import BasicAuth, Verdict, parse_basic
from alloy_runner.telemetry.web.server import open_access_warning
from alloy_runner.telemetry.web.webconfig import (
    ClientAuth,
    WebConfig,
    load_web_config,
    parse_web_config,
)
from tests.support.tls import CertPair, make_ca, make_cert

HASH = bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode()


def _header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CertPair]:
    """A CA, a server certificate it signed, and an unrelated self-signed certificate."""
    root = tmp_path_factory.mktemp("certs")
    ca = make_ca(root / "ca")
    other = make_ca(root / "other")
    return {"ca": ca, "server": make_cert(root, "server", ca), "other": other}


def _parse(text: str, where: Path = Path("/etc/alloy-runner/web.yml")) -> WebConfig:
    return parse_web_config(text, where)


def test_empty_file_turns_nothing_on() -> None:
    """An empty file is valid and turns on neither TLS nor basic auth, as in exporter-toolkit."""
    config = _parse("")
    assert config.tls is None
    assert config.users == ()
    assert not config.protected


def test_relative_paths_are_relative_to_the_file() -> None:
    """cert_file, key_file and client_ca_file are taken relative to the web config's directory."""
    config = _parse(
        "tls_server_config:\n  cert_file: c.pem\n  key_file: /abs/k.pem\n"
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: sub/ca.pem\n",
        Path("/srv/conf/web.yml"),
    )
    assert config.tls is not None
    assert config.tls.cert_file == Path("/srv/conf/c.pem")
    assert config.tls.key_file == Path("/abs/k.pem")
    assert config.tls.client_ca_file == Path("/srv/conf/sub/ca.pem")
    assert config.tls.client_auth is ClientAuth.REQUIRE_AND_VERIFY
    assert config.tls.verifies_clients


def test_defaults_are_exporter_toolkits() -> None:
    """TLS defaults to TLS 1.2 through 1.3 and no client certificates."""
    config = _parse("tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n")
    assert config.tls is not None
    assert config.tls.min_version is ssl.TLSVersion.TLSv1_2
    assert config.tls.max_version is ssl.TLSVersion.TLSv1_3
    assert config.tls.client_auth is ClientAuth.NONE
    assert config.protected


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        pytest.param("a: [\n", ["YAML syntax error", "line 2"], id="yaml"),
        pytest.param("- a\n", ["expected a mapping"], id="not-a-mapping"),
        pytest.param("tls_config: {}\n", ["unknown key 'tls_config'"], id="unknown-top"),
        pytest.param(
            "tls_server_config:\n  certfile: x\n",
            ["unknown key 'tls_server_config.certfile'"],
            id="unknown-tls",
        ),
        pytest.param(
            "http_server_config:\n  http3: true\n",
            ["unknown key 'http_server_config.http3'"],
            id="unknown-http",
        ),
        pytest.param(
            "alloy_runner:\n  healthy_open: true\n",
            ["unknown key 'alloy_runner.healthy_open'"],
            id="unknown-extension",
        ),
        pytest.param(
            "rate_limit:\n  burst: 1\n", ["'rate_limit'", "not supported"], id="refused-top"
        ),
        pytest.param(
            "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_allowed_sans: [a]\n",
            ["'tls_server_config.client_allowed_sans'", "not supported"],
            id="refused-tls",
        ),
        pytest.param(
            "tls_server_config:\n  key_file: k\n",
            ["'tls_server_config.cert_file'", "missing"],
            id="no-cert",
        ),
        pytest.param(
            "tls_server_config:\n  cert_file: c\n",
            ["'tls_server_config.key_file'", "missing"],
            id="no-key",
        ),
        pytest.param(
            "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: Sometimes\n",
            ["'tls_server_config.client_auth_type'", "RequireAndVerifyClientCert", "'Sometimes'"],
            id="client-auth-type",
        ),
        pytest.param(
            "tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS14\n",
            ["'tls_server_config.min_version'", "TLS10, TLS11, TLS12, TLS13", "'TLS14'"],
            id="min-version",
        ),
        pytest.param(
            "tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS13\n"
            "  max_version: TLS12\n",
            ["'tls_server_config.min_version'", "above max_version"],
            id="min-above-max",
        ),
        pytest.param(
            "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_ca_file: ca\n",
            ["'tls_server_config.client_ca_file'", "client_auth_type"],
            id="ca-without-auth-type",
        ),
        pytest.param(
            "tls_server_config:\n  cert_file: c\n  key_file: k\n  cipher_suites: [RC4]\n",
            ["'tls_server_config.cipher_suites'", "'RC4'"],
            id="cipher",
        ),
        pytest.param(
            "tls_server_config:\n  cert_file: c\n  key_file: k\n  curve_preferences: [P1]\n",
            ["'tls_server_config.curve_preferences'", "'P1'"],
            id="curve",
        ),
        pytest.param(
            "http_server_config:\n  headers:\n    Content-Type: text/html\n",
            ["'http_server_config.headers.Content-Type'", "cannot be set"],
            id="header-name",
        ),
        pytest.param(
            "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
            ["'http_server_config.headers.X-Frame-Options'", "deny, sameorigin"],
            id="header-value",
        ),
        pytest.param(
            "basic_auth_users:\n  alice: x\n  alice: y\n", ["'alice' is given twice"], id="twice"
        ),
        pytest.param(
            "alloy_runner:\n  healthy_without_auth: 'yes'\n",
            ["'alloy_runner.healthy_without_auth'", "true or false"],
            id="extension-type",
        ),
    ],
)
def test_invalid_file_is_one_error_naming_the_key(text: str, fragments: list[str]) -> None:
    """A file that does not validate raises WebConfigError, a ConfigError naming file and key."""
    with pytest.raises(WebConfigError) as caught:
        _parse(text)
    message = str(caught.value)
    assert isinstance(caught.value, ConfigError)
    assert message.startswith("/etc/alloy-runner/web.yml: ")
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("value", ["hunter2", "$2y$10$tooshort", "$1$abc$md5cryptisnotbcrypt"])
def test_a_password_in_plain_text_is_refused_and_not_shown(value: str) -> None:
    """A basic_auth_users value that is not a bcrypt hash is an error that does not echo it."""
    with pytest.raises(WebConfigError) as caught:
        _parse(f"basic_auth_users:\n  alice: '{value}'\n")
    assert "'basic_auth_users.alice'" in str(caught.value)
    assert "bcrypt" in str(caught.value)
    assert value not in str(caught.value)


def test_http2_and_curves_are_accepted_with_a_warning() -> None:
    """`http2: true` and `curve_preferences` are accepted, and each warns that it is not applied."""
    config = _parse(
        "tls_server_config:\n  cert_file: c\n  key_file: k\n  curve_preferences: [X25519]\n"
        "http_server_config:\n  http2: true\n"
    )
    assert any("http2 is ignored" in w for w in config.warnings)
    assert any("curve_preferences is not applied" in w for w in config.warnings)


def test_blank_headers_are_unset() -> None:
    """A header given as an empty string is not sent (exporter-toolkit's 'unset if blank')."""
    config = _parse(
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-XSS-Protection: ''\n"
    )
    assert config.headers == (("X-Frame-Options", "deny"),)


def test_ssl_context_loads_a_matching_pair(certs: dict[str, CertPair]) -> None:
    """A certificate with its key makes a server context that asks for no client certificate."""
    server = certs["server"]
    config = _parse(f"tls_server_config:\n  cert_file: {server.cert}\n  key_file: {server.key}\n")
    assert config.tls is not None
    context = ssl_context(config.tls, config.path)
    assert context.verify_mode is ssl.CERT_NONE
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize(
    ("auth", "mode"),
    [
        ("NoClientCert", ssl.CERT_NONE),
        ("RequestClientCert", ssl.CERT_NONE),
        ("RequireAnyClientCert", ssl.CERT_REQUIRED),
        ("VerifyClientCertIfGiven", ssl.CERT_OPTIONAL),
        ("RequireAndVerifyClientCert", ssl.CERT_REQUIRED),
    ],
)
def test_client_auth_type_sets_the_verify_mode(
    certs: dict[str, CertPair], auth: str, mode: ssl.VerifyMode
) -> None:
    """Each client_auth_type maps to the Python verify mode that protects at least as much."""
    server, ca = certs["server"], certs["ca"]
    ca_line = f"  client_ca_file: {ca.cert}\n" if auth != "NoClientCert" else ""
    config = _parse(
        f"tls_server_config:\n  cert_file: {server.cert}\n  key_file: {server.key}\n"
        f"  client_auth_type: {auth}\n{ca_line}"
    )
    assert config.tls is not None
    assert ssl_context(config.tls, config.path).verify_mode is mode


def test_cipher_suites_are_applied_to_tls12(certs: dict[str, CertPair]) -> None:
    """cipher_suites (Go's names) become the context's TLS 1.2 suites; TLS 1.3 ones warn."""
    server = certs["server"]
    config = _parse(
        f"tls_server_config:\n  cert_file: {server.cert}\n  key_file: {server.key}\n"
        "  cipher_suites:\n    - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n"
        "    - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\n    - TLS_AES_128_GCM_SHA256\n"
    )
    assert config.tls is not None
    context = ssl_context(config.tls, config.path)
    tls12 = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert tls12 == {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384"}
    assert any("TLS 1.3 suites cannot be chosen" in w for w in config.warnings)


def test_mismatched_key_names_both_files(certs: dict[str, CertPair]) -> None:
    """A key that does not belong to the certificate is an error naming both files."""
    server, other = certs["server"], certs["other"]
    config = _parse(f"tls_server_config:\n  cert_file: {server.cert}\n  key_file: {other.key}\n")
    assert config.tls is not None
    with pytest.raises(WebConfigError, match="do not load as a certificate and its key") as caught:
        ssl_context(config.tls, config.path)
    assert str(server.cert) in str(caught.value)
    assert str(other.key) in str(caught.value)


def test_unreadable_file_names_the_key(certs: dict[str, CertPair], tmp_path: Path) -> None:
    """A certificate file that cannot be read is an error naming its key and path."""
    server = certs["server"]
    missing = tmp_path / "missing.pem"
    config = _parse(f"tls_server_config:\n  cert_file: {missing}\n  key_file: {server.key}\n")
    assert config.tls is not None
    with pytest.raises(WebConfigError, match=r"'tls_server_config\.cert_file': cannot read"):
        ssl_context(config.tls, config.path)


def test_encrypted_key_is_refused_without_a_prompt(
    certs: dict[str, CertPair], tmp_path: Path
) -> None:
    """An encrypted key is an error at once; OpenSSL never asks for a passphrase."""
    import subprocess

    encrypted = tmp_path / "encrypted.key"
    subprocess.run(
        [
            "openssl",
            "ec",
            "-in",
            str(certs["server"].key),
            "-aes256",
            "-passout",
            "pass:x",
            "-out",
            str(encrypted),
        ],
        check=True,
        capture_output=True,
    )
    config = _parse(
        f"tls_server_config:\n  cert_file: {certs['server'].cert}\n  key_file: {encrypted}\n"
    )
    assert config.tls is not None
    with pytest.raises(WebConfigError, match="encrypted"):
        ssl_context(config.tls, config.path)


def test_load_web_access_missing_file(tmp_path: Path) -> None:
    """A web config path that does not exist is an error naming it."""
    with pytest.raises(WebConfigError, match="web config file does not exist"):
        load_web_access(tmp_path / "web.yml")


def test_parse_basic() -> None:
    """parse_basic reads `Basic base64(user:password)` and nothing else."""
    assert parse_basic(_header("alice", "pa:ss")) == ("alice", b"pa:ss")
    assert parse_basic("basic " + base64.b64encode(b"a:b").decode()) == ("a", b"b")
    assert parse_basic(None) is None
    assert parse_basic("Bearer abc") is None
    assert parse_basic("Basic !!!") is None
    assert parse_basic("Basic " + base64.b64encode(b"no-colon").decode()) is None


class _CountingCheck:
    """A bcrypt.checkpw that counts its calls and remembers the hashes it was given."""

    def __init__(self) -> None:
        self.hashes: list[bytes] = []

    def __call__(self, password: bytes, hashed: bytes) -> bool:
        self.hashes.append(hashed)
        return bcrypt.checkpw(password, hashed)


def test_good_credentials_are_checked_once_then_cached() -> None:
    """A good user and password run bcrypt once; later checks come from the cache."""
    check = _CountingCheck()
    auth = BasicAuth({"alice": HASH.encode()}, checkpw=check)
    for _ in range(5):
        assert auth.check(_header("alice", "secret")) is Verdict.ALLOWED
    assert len(check.hashes) == 1


def test_wrong_password_is_not_cached() -> None:
    """A wrong password is denied and checked with bcrypt again each time."""
    check = _CountingCheck()
    auth = BasicAuth({"alice": HASH.encode()}, checkpw=check)
    for _ in range(3):
        assert auth.check(_header("alice", "wrong")) is Verdict.DENIED
    assert len(check.hashes) == 3


def test_unknown_user_costs_a_bcrypt_check_too() -> None:
    """An unknown user is checked against the known hash of the highest cost, then denied.

    The password is bob's own: the check succeeds, and mallory is denied all the same.
    """
    check = _CountingCheck()
    cost5 = bcrypt.hashpw(b"secret", bcrypt.gensalt(5))
    auth = BasicAuth({"alice": HASH.encode(), "bob": cost5}, checkpw=check)
    assert auth.check(_header("mallory", "secret")) is Verdict.DENIED
    (dummy,) = check.hashes
    assert dummy == cost5  # the highest cost in use; nothing hashed at start-up


def test_no_users_means_no_bcrypt_check() -> None:
    """With no users at all, credentials are denied without spending a check."""
    check = _CountingCheck()
    auth = BasicAuth({}, checkpw=check)
    assert auth.check(_header("mallory", "secret")) is Verdict.DENIED
    assert check.hashes == []


def test_a_good_password_for_another_user_is_denied() -> None:
    """Credentials are checked per user: alice's password does not open bob."""
    bob = bcrypt.hashpw(b"other", bcrypt.gensalt(4))
    auth = BasicAuth({"alice": HASH.encode(), "bob": bob})
    assert auth.check(_header("bob", "secret")) is Verdict.DENIED
    assert auth.check(_header("alice", "secret")) is Verdict.ALLOWED


def test_password_over_72_bytes_is_denied() -> None:
    """A password longer than bcrypt takes is denied, not an exception."""
    auth = BasicAuth({"alice": HASH.encode()})
    assert auth.check(_header("alice", "secret" + "x" * 80)) is Verdict.DENIED


def test_cache_is_bounded() -> None:
    """The cache keeps at most `cache_size` entries, dropping the least recently used."""
    check = _CountingCheck()
    users = {u: bcrypt.hashpw(u.encode(), bcrypt.gensalt(4)) for u in ("a", "b", "c")}
    auth = BasicAuth(users, cache_size=2, checkpw=check)
    for user in ("a", "b", "c"):
        assert auth.check(_header(user, user)) is Verdict.ALLOWED
    assert len(check.hashes) == 3
    assert auth.check(_header("c", "c")) is Verdict.ALLOWED  # still cached
    assert len(check.hashes) == 3
    assert auth.check(_header("a", "a")) is Verdict.ALLOWED  # evicted: checked again
    assert len(check.hashes) == 4


def test_cached_check_passes_while_bad_attempts_hold_every_bcrypt_slot() -> None:
    """Bad attempts that hold every bcrypt slot neither slow a cached good check nor pile up."""
    release = threading.Event()
    slow_started = threading.Event()

    def slow_checkpw(password: bytes, hashed: bytes) -> bool:
        if password != b"secret":
            slow_started.set()
            release.wait(5)
        return bcrypt.checkpw(password, hashed)

    slot_wait = 0.5  # far above a scheduling hiccup, so that a check that waited shows
    auth = BasicAuth({"alice": HASH.encode()}, concurrency=1, wait=slot_wait, checkpw=slow_checkpw)
    assert auth.check(_header("alice", "secret")) is Verdict.ALLOWED  # now cached
    blocker = threading.Thread(target=auth.check, args=(_header("alice", "bad"),))
    blocker.start()
    try:
        assert slow_started.wait(5)
        started = time.perf_counter()
        assert auth.check(_header("alice", "secret")) is Verdict.ALLOWED
        assert time.perf_counter() - started < slot_wait / 2  # it did not wait for a slot
        # An uncached attempt waits a bounded time for a slot, then gives up.
        assert auth.check(_header("alice", "another")) is Verdict.BUSY
    finally:
        release.set()
        blocker.join(5)


def test_healthy_is_open_only_when_configured() -> None:
    """/-/healthy skips the credentials check only with alloy_runner.healthy_without_auth."""
    users = f"basic_auth_users:\n  alice: '{HASH}'\n"
    for text, healthy in (
        (users, Verdict.DENIED),
        (users + "alloy_runner:\n  healthy_without_auth: true\n", Verdict.ALLOWED),
    ):
        config = _parse(text)
        access = WebAccess(config, None, BasicAuth(dict(config.users)))
        assert access.check("/-/healthy", None) is healthy
        assert access.check("/-/ready", None) is Verdict.DENIED
        assert access.check("/metrics", None) is Verdict.DENIED
        assert access.check("/-/healthy/", None) is Verdict.DENIED


def test_open_access_warning() -> None:
    """Only a non-loopback server without TLS or basic auth is warned about, naming the option."""
    everywhere, loopback = parse_address("0.0.0.0:9252"), parse_address("127.0.0.1:9252")
    warning = open_access_warning("0.0.0.0:9252", everywhere, None)
    assert "no authorization" in warning
    assert "metrics_web_config" in warning
    assert "--web.config.file" in warning
    assert open_access_warning("127.0.0.1:9252", loopback, None) == ""
    protected = _parse(f"basic_auth_users:\n  alice: '{HASH}'\n")
    assert open_access_warning("0.0.0.0:9252", everywhere, WebAccess(protected, None, None)) == ""
    empty = _parse("")
    assert open_access_warning("0.0.0.0:9252", everywhere, WebAccess(empty, None, None)) != ""


def test_a_list_nested_3000_deep_is_one_error(tmp_path: Path) -> None:
    """A nesting bomb is a WebConfigError naming the file, not a RecursionError."""
    path = tmp_path / "web.yml"
    path.write_text("basic_auth_users: " + "[" * 3000 + "]" * 3000 + "\n")
    with pytest.raises(WebConfigError, match="nested too deeply"):
        load_web_config(path)


def test_a_bcrypt_cost_above_14_is_refused_naming_the_user(tmp_path: Path) -> None:
    """Cost 31 would hang every uncached check (and, before, the start-up): refused at load."""
    path = tmp_path / "web.yml"
    hashed = "$2y$31$" + "a" * 53
    path.write_text(f"basic_auth_users:\n  alice: '{hashed}'\n")
    with pytest.raises(WebConfigError, match=r"alice.*cost 31 is above the maximum of 14"):
        load_web_config(path)


_YAML_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True),
    st.text(max_size=30),
)
_YAML_VALUES = st.recursive(
    _YAML_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=12), children, max_size=4),
    ),
    max_leaves=12,
)
_WEB_KEYS = st.sampled_from(
    [
        "tls_server_config",
        "http_server_config",
        "basic_auth_users",
        "alloy_runner",
        "cert_file",
        "key_file",
        "client_auth_type",
        "min_version",
        "headers",
        "healthy_without_auth",
    ]
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_WEB_KEYS, _YAML_VALUES | st.dictionaries(_WEB_KEYS, _YAML_VALUES)))
def test_random_web_configs_load_or_raise_web_config_error(data: dict[str, object]) -> None:
    """Whatever the file holds, loading gives a WebConfig or a one-line WebConfigError."""
    text = yaml.safe_dump(data)
    try:
        parse_web_config(text, Path("/nonexistent/web.yml"))
    except WebConfigError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_random_text_is_a_web_config_or_one_error(text: str) -> None:
    """Arbitrary text, broken YAML included, never raises anything but WebConfigError."""
    try:
        parse_web_config(text, Path("/nonexistent/web.yml"))
    except WebConfigError as exc:
        assert "\n" not in str(exc)


@pytest.mark.parametrize("text", ["{{}}", "[{}]: 1", "? [a]\n: 1", "{[1]: 2}"])
def test_a_key_that_is_a_list_or_a_mapping_is_one_error(text: str) -> None:
    """YAML allows unhashable keys; they used to escape as a TypeError (hypothesis found it)."""
    with pytest.raises(WebConfigError, match="a key is a list or a mapping"):
        parse_web_config(text, Path("/nonexistent/web.yml"))
