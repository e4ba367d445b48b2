"""Stored passwords: plain, `sha256$<salt>$<hex>` (sha256 of salt + password)
or `pbkdf2_sha256$<iterations>$<salt>$<base64>` (Django's format, written by
nanomq-passwd); all compared in constant time.

A PBKDF2 hash runs in gevent's thread pool (it releases the GIL), one at a
time, and a verified password is remembered as an HMAC, so neither a first
login nor a password-guessing flood stalls the event loop; with 16 CONNECTs
already waiting for a hash, the next is refused (OverflowError -> server
busy) instead of queueing work without end.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

PBKDF2_ITERATIONS = 100_000  # ~0.1 s on a desktop core, ~0.5 s on a Raspberry Pi 4


def hash_password(password, iterations=PBKDF2_ITERATIONS, salt=None):
    """The `pbkdf2_sha256$<iterations>$<salt>$<base64>` form of a password (str or bytes)."""
    if isinstance(password, str):
        password = password.encode()
    salt = salt or secrets.token_urlsafe(12)
    digest = hashlib.pbkdf2_hmac("sha256", password, salt.encode(), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(digest).decode()}"


def password_matches(stored, given, pbkdf2=hashlib.pbkdf2_hmac):
    """True if the password the client sent (bytes) matches the stored form."""
    if stored.startswith("pbkdf2_sha256$"):
        try:
            _, iterations, salt, digest = stored.split("$", 3)
            computed = pbkdf2("sha256", given, salt.encode(), int(iterations))
        except ValueError:
            return False
        return hmac.compare_digest(base64.b64encode(computed).decode(), digest)
    if stored.startswith("sha256$"):
        try:
            _, salt, digest = stored.split("$", 2)
        except ValueError:
            return False
        computed = hashlib.sha256(salt.encode() + given).hexdigest()
        return hmac.compare_digest(computed, digest.lower())
    return hmac.compare_digest(stored.encode(), given)


class _HashWorker:
    """pbkdf2_hmac in gevent's thread pool (it releases the GIL), one hash at a time,
    with at most MAX_WAITING callers queued behind it."""

    MAX_WAITING = 16
    __slots__ = ("one_at_a_time", "wanting", "threadpool")

    def __init__(self):
        from gevent import get_hub
        from gevent.lock import Semaphore

        self.one_at_a_time = Semaphore()
        self.wanting = 0
        self.threadpool = get_hub().threadpool

    def __call__(self, *args):
        if self.wanting > self.MAX_WAITING:
            raise OverflowError("too many CONNECTs wait for a password hash")
        self.wanting += 1
        try:
            with self.one_at_a_time:
                return self.threadpool.apply(hashlib.pbkdf2_hmac, args)
        finally:
            self.wanting -= 1


class PasswordChecker:
    """Checks CONNECT passwords against their stored forms, remembering PBKDF2 successes."""

    def __init__(self):
        self._pbkdf2 = None
        self._hmac_key = os.urandom(32)
        self._verified = {}  # username -> (stored form, HMAC of the password that matched it)

    def matches(self, username, stored, password):
        if not stored.startswith("pbkdf2_sha256$"):
            return password_matches(stored, password)
        mac = hmac.new(self._hmac_key, password, "sha256").digest()
        known = self._verified.get(username)
        if known is not None and known[0] == stored and hmac.compare_digest(known[1], mac):
            return True
        if self._pbkdf2 is None:
            self._pbkdf2 = _HashWorker()
        if not password_matches(stored, password, self._pbkdf2):
            return False
        self._verified[username] = (stored, mac)
        return True
