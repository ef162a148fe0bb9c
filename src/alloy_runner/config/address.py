"""The `[host]:<port>` grammar of `metrics_server` and its resolution.

The grammar is the seed README's (and Go's `net.Listen`): the port may be a
number or a service name, defaults to 9252 when absent, and an IPv6 host
stands in brackets. An empty host means every interface.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from alloy_runner.exceptions import AddressError

DEFAULT_PORT = 9252

# RFC 1123 host names (labels of letters, digits and inner hyphens); underscores
# are tolerated because container and compose service names use them.
_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$"
)
_SERVICE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")


@dataclass(frozen=True)
class ListenAddress:
    """A parsed address: `host` is empty for every interface."""

    host: str
    port: int

    def __str__(self) -> str:
        return format_hostport(self.host, self.port)

    @property
    def is_loopback(self) -> bool:
        """Tell whether only this machine can reach the address."""
        if self.host == "":
            return False
        if self.host.lower() in ("localhost", "localhost."):
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            try:
                infos = socket.getaddrinfo(_host(self.host), None)
            except OSError:
                return False
            return all(ipaddress.ip_address(str(i[4][0])).is_loopback for i in infos)


def format_hostport(host: str, port: int) -> str:
    """Join a host and a port the way the grammar writes them."""
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def _parse_port(text: str, address: str) -> int:
    if text == "":
        return DEFAULT_PORT
    # ASCII only: str.isdigit() also accepts '²' (which int() refuses) and '٣' (which it takes).
    if text.isascii() and text.isdigit():
        port = int(text)
        if port > 65535:
            raise AddressError(f"address {address!r}: port {port} is out of range 0-65535")
        return port
    if not _SERVICE_NAME.match(text):
        raise AddressError(f"address {address!r}: {text!r} is neither a port nor a service name")
    try:
        return socket.getservbyname(text, "tcp")
    except OSError:
        raise AddressError(f"address {address!r}: unknown service {text!r}") from None


def _check_host(host: str, address: str) -> None:
    if host == "":
        return
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOST_NAME.match(host) or host.replace(".", "").isdigit():
            raise AddressError(f"address {address!r}: {host!r} is not a valid host") from None


def parse_address(address: str) -> ListenAddress | None:
    """Parse `[host]:<port>`; return None for the empty string (server disabled)."""
    text = address.strip()
    if text == "":
        return None
    if text != address or any(c.isspace() for c in text):
        raise AddressError(f"address {address!r}: must not contain white space")
    if "/" in text or "@" in text:
        raise AddressError(f"address {address!r}: expected [host]:<port>, not a URL")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise AddressError(f"address {address!r}: missing ']' after the IPv6 host")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise AddressError(f"address {address!r}: expected ':' after ']'")
        try:
            if ipaddress.ip_address(host.split("%", 1)[0]).version != 6:
                raise ValueError(host)
        except ValueError:
            raise AddressError(
                f"address {address!r}: {host!r} in brackets is not an IPv6 address"
            ) from None
        return ListenAddress(host, _parse_port(rest[1:], address))
    if text.count(":") > 1:
        raise AddressError(f"address {address!r}: an IPv6 host must be written in brackets")
    host, _, port = text.partition(":")
    _check_host(host, address)
    return ListenAddress(host, _parse_port(port, address))


def _host(host: str) -> str | bytes:
    """Return `host` as getaddrinfo should get it: an ASCII name as bytes.

    getaddrinfo runs a str host through the `idna` codec, which imports
    encodings.idna, stringprep and unicodedata (~0.4 MB resident in every
    process) and leaves an ASCII name as it is; bytes skip the codec.
    """
    return host.encode("ascii") if host.isascii() else host


def resolve(address: ListenAddress) -> tuple[socket.AddressFamily, str]:
    """Return the socket family and the numeric host to bind; raise if it does not resolve."""
    if address.host == "":
        return (socket.AF_INET6, "::") if socket.has_dualstack_ipv6() else (socket.AF_INET, "")
    try:
        infos = socket.getaddrinfo(
            _host(address.host), address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise AddressError(
            f"address {str(address)!r}: host {address.host!r} does not resolve: {exc.strerror}"
        ) from None
    # Prefer IPv4 when a name resolves to both, like Go's listener for "localhost".
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    family, _, _, _, sockaddr = infos[0]
    return socket.AddressFamily(family), str(sockaddr[0])


def is_http_url(url: str) -> bool:
    """Tell whether `url` is an http(s) URL with a host that parses (no `http://[::1`)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not re.search(r"[\x00-\x20\x7f]", url)
    )
