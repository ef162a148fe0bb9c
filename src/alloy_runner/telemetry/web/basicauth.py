"""Basic authentication against bcrypt hashes: fast for the good scrape, bounded for the bad."""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from enum import Enum

import bcrypt


class Verdict(Enum):
    """What a credentials check says."""

    ALLOWED = "allowed"
    DENIED = "denied"
    BUSY = "busy"  # too many uncached checks at once; try again


CACHE_SIZE = 256
BCRYPT_CONCURRENCY = 2
BCRYPT_WAIT = 2.0  # seconds an uncached check waits for a slot before it gives up


def parse_basic(authorization: str | None) -> tuple[str, bytes] | None:
    """Return (user, password) of an `Authorization: Basic ...` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
        user, sep, password = decoded.partition(b":")
        if not sep:
            return None
        return user.decode("utf-8"), password
    except (binascii.Error, UnicodeDecodeError):
        return None


class BasicAuth:
    """Check Basic credentials against bcrypt hashes, remembering the good ones.

    A good (user, password) is cached under an HMAC-SHA256 of the password, keyed by
    a secret of this instance, so a scrape every second costs microseconds. Failures
    are not cached. Uncached checks run at most `concurrency` at a time (bcrypt
    releases the GIL, so cached checks still pass at once); an unknown user is
    checked against the known hash of the highest cost, so that it costs as much as a
    known one (and no hash is computed at start-up).
    """

    def __init__(
        self,
        users: Mapping[str, bytes],
        *,
        cache_size: int = CACHE_SIZE,
        concurrency: int = BCRYPT_CONCURRENCY,
        wait: float = BCRYPT_WAIT,
        checkpw: Callable[[bytes, bytes], bool] = bcrypt.checkpw,
    ) -> None:
        self._users = dict(users)
        # An unknown user is denied whatever the check says; the check only spends the time.
        self._dummy = max(self._users.values(), key=lambda h: int(h[4:6]), default=None)
        self._secret = secrets.token_bytes(32)
        self._cache: OrderedDict[tuple[str, bytes], None] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(concurrency)
        self._wait = wait
        self._checkpw = checkpw

    def check(self, authorization: str | None) -> Verdict:
        """Tell whether an `Authorization` header value carries good credentials."""
        credentials = parse_basic(authorization)
        if credentials is None:
            return Verdict.DENIED
        user, password = credentials
        key = (user, hmac.digest(self._secret, password, "sha256"))
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return Verdict.ALLOWED
        hashed = self._users.get(user)
        against = hashed if hashed is not None else self._dummy
        if against is None:
            return Verdict.DENIED
        if not self._slots.acquire(timeout=self._wait):
            return Verdict.BUSY
        try:
            good = self._checkpw(password, against)
        except ValueError:  # bcrypt refuses passwords over 72 bytes
            good = False
        finally:
            self._slots.release()
        if hashed is None or not good:
            return Verdict.DENIED
        with self._lock:
            self._cache[key] = None
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return Verdict.ALLOWED
