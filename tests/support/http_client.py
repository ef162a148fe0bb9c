"""Plain HTTP against loopback servers: one request per connection, always with a timeout."""

from __future__ import annotations

import http.client
import socket
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_TIMEOUT = 5.0


@dataclass(frozen=True)
class Reply:
    """One HTTP response: `headers` has lower-case names, `body` is as received (not decoded)."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        """Return the body decoded as UTF-8."""
        return self.body.decode("utf-8")


def http_request(
    host: str,
    port: int,
    method: str,
    path: str,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Reply:
    """Send one request on a fresh connection and read the whole response."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        data = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        conn.close()


def raw_exchange(host: str, port: int, request: bytes, timeout: float = DEFAULT_TIMEOUT) -> bytes:
    """Send `request` bytes as they are and return every byte received until the peer closes."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that nothing listens on right now (for servers that cannot take 0)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
