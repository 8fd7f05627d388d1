"""HTTP basic auth against bcrypt hashes, with exporter-toolkit's cache of checked pairs.

A bcrypt round costs tens of milliseconds by design. Prometheus sends the same
user and password with every scrape, so the outcome of each (user, hash,
password) is kept, under a digest rather than the password itself, and a
scrape every 15 s costs one dictionary lookup. The cache is bounded: a client
trying passwords evicts its own failures, never more than the oldest entries.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
from collections import OrderedDict

import bcrypt

CACHE_SIZE = 256
# Checked when the user is unknown, so an unknown user costs the same bcrypt
# round as a known one and the timing does not tell which names exist.
DUMMY_HASH = b"$2b$10$B8HPX8Ym7132A7Sd1.SMH.K0tJ0piZlujxqKX3zl59g4N/dMPyOzW"


class BasicAuth:
    """Checks `Authorization: Basic ...` headers against `users` (name -> bcrypt hash)."""

    def __init__(self, users: dict[str, bytes], cache_size: int = CACHE_SIZE) -> None:
        self.users = dict(users)
        self._cache: OrderedDict[bytes, bool] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.bcrypt_rounds = 0  # bcrypt comparisons made: what the cache saves

    def allows(self, authorization: str | None) -> bool:
        """True when the header carries a configured user and its password."""
        credentials = _decode(authorization)
        if credentials is None:
            return False
        user, password = credentials
        hashed = self.users.get(user)
        key = hashlib.sha256(b"\0".join((user.encode(), hashed or b"", password))).digest()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        # bcrypt's comparison is constant-time; the unknown user pays for one too.
        matches = bcrypt.checkpw(password, hashed or DUMMY_HASH)
        allowed = hashed is not None and matches
        with self._lock:
            self.bcrypt_rounds += 1
            self._cache[key] = allowed
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return allowed


def _decode(authorization: str | None) -> tuple[str, bytes] | None:
    """(user, password) of a Basic credential, or None when there is none."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if not hmac.compare_digest(scheme.lower().encode(), b"basic"):
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None
