"""The `[host]:<port>` grammar of `metrics_server`, its resolution and its loopback test."""

from __future__ import annotations

import socket

import pytest

from alloy_runner.config.address import (
    DEFAULT_PORT,
    ListenAddress,
    format_hostport,
    parse_address,
    resolve,
)
from alloy_runner.exceptions import AddressError, ConfigError

VALID = [
    pytest.param("", None, id="empty-disables"),
    pytest.param(":9252", ListenAddress("", 9252), id="all-interfaces"),
    pytest.param("localhost:9252", ListenAddress("localhost", 9252), id="localhost"),
    pytest.param("[2001:db8::1]:http", ListenAddress("2001:db8::1", 80), id="ipv6-service"),
    pytest.param("localhost", ListenAddress("localhost", DEFAULT_PORT), id="no-port"),
    pytest.param("localhost:", ListenAddress("localhost", DEFAULT_PORT), id="empty-port"),
    pytest.param("[::1]", ListenAddress("::1", DEFAULT_PORT), id="ipv6-no-port"),
    pytest.param("[::1]:", ListenAddress("::1", DEFAULT_PORT), id="ipv6-empty-port"),
    pytest.param("[::]:9252", ListenAddress("::", 9252), id="ipv6-any"),
    pytest.param("127.0.0.1:0", ListenAddress("127.0.0.1", 0), id="ephemeral-port"),
    pytest.param("127.0.0.1:65535", ListenAddress("127.0.0.1", 65535), id="highest-port"),
    pytest.param("0.0.0.0:9252", ListenAddress("0.0.0.0", 9252), id="ipv4-any"),
    pytest.param("localhost:https", ListenAddress("localhost", 443), id="service-https"),
    pytest.param(":http", ListenAddress("", 80), id="service-no-host"),
    pytest.param("localhost:0080", ListenAddress("localhost", 80), id="leading-zeros"),
    pytest.param("metrics.example.com:1", ListenAddress("metrics.example.com", 1), id="fqdn"),
    pytest.param("localhost.:1", ListenAddress("localhost.", 1), id="fqdn-trailing-dot"),
    pytest.param("compose_service:1", ListenAddress("compose_service", 1), id="underscore"),
    pytest.param("[fe80::1%eth0]:1", ListenAddress("fe80::1%eth0", 1), id="ipv6-zone"),
]

INVALID = [
    pytest.param("127.0.0.1:65536", "out of range", id="port-too-high"),
    pytest.param("localhost:99999999999999999999", "out of range", id="port-huge"),
    pytest.param("-1", "not a valid host", id="minus-one"),
    pytest.param(":-1", "neither a port nor a service name", id="negative-port"),
    pytest.param("localhost:+80", "neither a port nor a service name", id="signed-port"),
    pytest.param("localhost:1a", "neither a port nor a service name", id="digit-led-name"),
    pytest.param("localhost:²", "neither a port nor a service name", id="superscript-digit"),
    pytest.param("localhost:٣", "neither a port nor a service name", id="arabic-indic-digit"),
    pytest.param("localhost:no-such-service", "unknown service", id="unknown-service"),
    pytest.param("::1", "must be written in brackets", id="ipv6-unbracketed"),
    pytest.param("2001:db8::1:9252", "must be written in brackets", id="ipv6-unbracketed-port"),
    pytest.param("[::1:9252", "missing ']'", id="missing-bracket"),
    pytest.param("[::1]9252", "expected ':' after ']'", id="junk-after-bracket"),
    pytest.param("[127.0.0.1]:9252", "is not an IPv6 address", id="bracketed-ipv4"),
    pytest.param("[localhost]:9252", "is not an IPv6 address", id="bracketed-name"),
    pytest.param("http://x:1", "not a URL", id="url"),
    pytest.param("x:1/metrics", "not a URL", id="path"),
    pytest.param("user@x:1", "not a URL", id="userinfo"),
    pytest.param(" :9252", "white space", id="leading-space"),
    pytest.param(":9252\n", "white space", id="trailing-newline"),
    pytest.param("local host:1", "white space", id="inner-space"),
    pytest.param("999.1.1.1:80", "not a valid host", id="bad-ipv4"),
    pytest.param("-bad-:1", "not a valid host", id="hyphen-led-name"),
    pytest.param("a..b:1", "not a valid host", id="empty-label"),
]


@pytest.mark.parametrize(("text", "expected"), VALID)
def test_parse_accepts(text: str, expected: ListenAddress | None) -> None:
    """A valid address parses to its host and port; the empty string disables the server."""
    assert parse_address(text) == expected


@pytest.mark.parametrize(("text", "fragment"), INVALID)
def test_parse_rejects(text: str, fragment: str) -> None:
    """An invalid address raises AddressError (a ConfigError) quoting the address and the reason."""
    with pytest.raises(AddressError) as raised:
        parse_address(text)
    message = str(raised.value)
    assert fragment in message
    assert repr(text) in message
    assert isinstance(raised.value, ConfigError)


@pytest.mark.parametrize(
    ("address", "text"),
    [
        (ListenAddress("", 9252), ":9252"),
        (ListenAddress("localhost", 80), "localhost:80"),
        (ListenAddress("2001:db8::1", 80), "[2001:db8::1]:80"),
    ],
)
def test_str_round_trips(address: ListenAddress, text: str) -> None:
    """An address prints in the grammar's own form, which parses back to the same address."""
    assert str(address) == text == format_hostport(address.host, address.port)
    assert parse_address(text) == address


def test_resolve_unresolvable_host() -> None:
    """A host name that does not resolve raises AddressError naming the host."""
    with pytest.raises(AddressError, match=r"'no-such-host\.invalid' does not resolve"):
        resolve(ListenAddress("no-such-host.invalid", 9252))


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (ListenAddress("127.0.0.1", 0), (socket.AF_INET, "127.0.0.1")),
        (ListenAddress("localhost", 0), (socket.AF_INET, "127.0.0.1")),
        (ListenAddress("::1", 0), (socket.AF_INET6, "::1")),
    ],
)
def test_resolve_numeric_and_localhost(
    address: ListenAddress, expected: tuple[socket.AddressFamily, str]
) -> None:
    """Resolution gives the family and numeric host to bind, preferring IPv4 for localhost."""
    assert resolve(address) == expected


def test_resolve_empty_host_means_every_interface() -> None:
    """An empty host binds the wildcard address: dual-stack `::` where available, else IPv4."""
    family, host = resolve(ListenAddress("", 0))
    if socket.has_dualstack_ipv6():
        assert (family, host) == (socket.AF_INET6, "::")
    else:
        assert (family, host) == (socket.AF_INET, "")


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        (ListenAddress("127.0.0.1", 1), True),
        (ListenAddress("127.8.9.10", 1), True),
        (ListenAddress("::1", 1), True),
        (ListenAddress("localhost", 1), True),
        (ListenAddress("LOCALHOST.", 1), True),
        (ListenAddress("", 1), False),
        (ListenAddress("0.0.0.0", 1), False),
        (ListenAddress("::", 1), False),
        (ListenAddress("192.0.2.1", 1), False),
        (ListenAddress("2001:db8::1", 1), False),
        (ListenAddress("no-such-host.invalid", 1), False),
    ],
)
def test_is_loopback(address: ListenAddress, loopback: bool) -> None:
    """Only loopback addresses (and names that resolve only to them) count as loopback."""
    assert address.is_loopback is loopback
