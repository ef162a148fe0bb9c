"""The header gate's pure parts: when a request head is complete, and gzip's quality."""

from __future__ import annotations

import pytest

from alloy_runner.telemetry.web.gate import head_complete
from alloy_runner.telemetry.web.server import accepts_gzip


@pytest.mark.parametrize(
    ("buffer", "complete"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True),
        (b"GET / HTTP/1.1\nHost: x\n\n", True),
        (b"GET / HTTP/1.1\r\nHost: x\r\n", False),
        (b"GET / HTTP/1.1\r\n", False),
        (b"GET /\r\n", True),  # HTTP/0.9: no headers follow
        (b"GARBAGE\r\n", True),
        (b"GET / HTT", False),
    ],
)
def test_head_complete(buffer: bytes, complete: bool) -> None:
    """A head ends at its empty line; a request line of fewer than 3 words stands alone."""
    assert head_complete(buffer) is complete


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        ("gzip", True),
        ("gzip;q=0.5", True),
        ("deflate, gzip; q=1", True),
        ("*", True),
        ("gzip;q=0", False),
        ("gzip;q=abc", False),
        ("gzip;q=", False),
        ("gzip;q=2", False),
        ("identity", False),
        ("", False),
    ],
)
def test_accepts_gzip(header: str, allowed: bool) -> None:
    """Compression needs gzip (or *) with a valid q above 0; a malformed q never raises."""
    assert accepts_gzip(header) is allowed
