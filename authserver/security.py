"""Hashing of secrets, identifiers, and the clock.

High-entropy values (client secrets, refresh tokens, device/user/link codes) are stored as
HMAC-SHA-256 under the server's secret key: fast enough for the hot path, useless to anyone who
reads the database without that key. Human passwords get argon2. Comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask.globals import _cv_app

_passwords = PasswordHasher()
# Verifying against this keeps the time of "no such user" equal to "wrong password".
_DUMMY_PASSWORD_HASH = _passwords.hash(secrets.token_urlsafe(16))


class Hasher:
    """Keyed hashing with domain separation: the same value hashes differently per purpose."""

    def __init__(self, secret_key: bytes) -> None:
        self._key = secret_key

    def hash(self, purpose: str, value: str) -> str:
        msg = purpose.encode() + b"\x00" + value.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def verify(self, purpose: str, value: str, expected: str) -> bool:
        return hmac.compare_digest(self.hash(purpose, value), expected)


def _state():  # type: ignore[no-untyped-def]
    from authserver.state import get_state

    return get_state()


def keyed_hash(purpose: str, value: str) -> str:
    return _state().hasher.hash(purpose, value)


def verify_keyed_hash(purpose: str, value: str, expected: str) -> bool:
    return _state().hasher.verify(purpose, value, expected)


def hash_password(password: str) -> str:
    return _passwords.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    try:
        return _passwords.verify(password_hash or _DUMMY_PASSWORD_HASH, password) and bool(
            password_hash
        )
    except (VerifyMismatchError, VerificationError, InvalidHashError, UnicodeEncodeError):
        return False


# Ids sort in creation order: 9 characters of the creation time in milliseconds (Crockford's
# base 32, whose digits sort as ASCII does), 2 of a per-process sequence within that millisecond,
# then 96 random bits. A list sorted by (createdAt, id) is then in creation order, so an item
# created during a keyset walk lands after the cursor instead of at random before it.
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_id_lock = threading.Lock()
_id_last_ms = 0
_id_seq = 0


def _base32(value: int, width: int) -> str:
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(width)))


def new_id(prefix: str) -> str:
    global _id_last_ms, _id_seq
    ms = int(now_float() * 1000)
    with _id_lock:
        if _id_last_ms - 1000 < ms <= _id_last_ms:
            # The same millisecond (or a small step back): the next in sequence, borrowing the
            # next millisecond when a thousand ids were made in this one.
            ms, _id_seq = _id_last_ms, _id_seq + 1
            if _id_seq > 1023:
                ms, _id_seq = ms + 1, 0
        else:
            _id_seq = 0
        _id_last_ms, seq = ms, _id_seq
    return f"{prefix}_{_base32(ms, 9)}{_base32(seq, 2)}{secrets.token_urlsafe(12)}"


def now_ms() -> int:
    """Unix time in milliseconds (the registry's device times keep them)."""
    return int(now_float() * 1000)


def now_float() -> float:
    ctx = _cv_app.get(None)
    if ctx is not None:
        clock: Callable[[], float] | None = ctx.app.extensions["authserver"].clock
        if clock is not None:
            return clock()
    return time.time()


def now() -> int:
    return int(now_float())
