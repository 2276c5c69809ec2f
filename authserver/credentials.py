"""Every code and secret the server hands out, and the only form in which it keeps them.

DESIGN invariant 6 is audited here: nothing below is stored in clear.

| credential | drawn | kept as |
| --- | --- | --- |
| client secret | 256 bits | HMAC-SHA-256 under ``AUTHSERVER_SECRET_KEY`` (``CLIENT_SECRET``) |
| refresh token | 256 bits | HMAC (``REFRESH_TOKEN``) |
| access token ``jti`` | 144 bits | HMAC (``ACCESS_TOKEN_JTI``); the JWT itself is never stored |
| device code (RFC 8628) | 256 bits | HMAC (``DEVICE_CODE``) |
| user code (RFC 8628) | 10 of 20 letters | HMAC (``USER_CODE``) |
| link code (seed 000) | 12 of 20 letters | HMAC (``LINK_CODE``) |
| staff code (seed 000's "user code": the short code staff type on a terminal) | chosen | HMAC of tenant and code (``STAFF_CODE``) |
| password | chosen | argon2 (``authserver.security``) |
| private signing key | generated | AES-256-GCM (``keys/encryption.py``) |

Keyed hashes need the server's secret key: a database reader cannot compute or reverse them.
High-entropy values get HMAC (fast enough for the hot path); only human passwords get argon2.
The purpose strings separate the domains (the same value hashes differently per purpose) and are
part of the stored data: changing one invalidates every value stored under it.
"""

from __future__ import annotations

import base64
import binascii
import secrets

from authserver.security import hash_password, keyed_hash, verify_keyed_hash, verify_password

# Purposes of the keyed hashes. The values are stored data: never change them.
CLIENT_SECRET = "client-secret"
REFRESH_TOKEN = "refresh-token"
ACCESS_TOKEN_JTI = "access-token-jti"
DEVICE_CODE = "device-code"
USER_CODE = "device-user-code"
LINK_CODE = "link-code"
STAFF_CODE = "user-code"  # named after seed 000's field when it was first stored

# RFC 8628 §6.1: base-20, no vowels (no words), no look-alikes (0/O, 1/I).
CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
# 10 characters (43 bits), shown as two groups of five: long enough that the guessing bound
# (``config.Settings.user_code_guess_probability``) leaves room for limits nobody can exhaust
# alone, short enough to read aloud and type.
USER_CODE_LENGTH = 10
USER_CODE_GROUP = 5
LINK_CODE_LENGTH = 12  # about 52 bits, and a staff code and password on top
LINK_CODE_GROUP = 4
STAFF_CODE_MIN, STAFF_CODE_MAX = 4, 32

__all__ = ["hash_password", "verify_password"]  # passwords are credentials too (argon2)


# -- codes people type ---------------------------------------------------------------------------


_UNBIASED = 256 - 256 % len(CODE_ALPHABET)  # 240: bytes below it map evenly onto 20 letters


def draw_code(length: int) -> str:
    """``length`` letters, each uniform over the alphabet: random bytes, those at or above 240
    dropped (rejection sampling, so no letter is favoured), one draw of bytes for the lot."""
    letters: list[str] = []
    while len(letters) < length:
        for b in secrets.token_bytes(length + 4):
            if b < _UNBIASED:
                letters.append(CODE_ALPHABET[b % len(CODE_ALPHABET)])
                if len(letters) == length:
                    break
    return "".join(letters)


def normalise_code(typed: str, length: int) -> str:
    """RFC 8628 §6.1: case-insensitive, dashes and spaces ignored, other characters dropped;
    at most twice ``length`` characters are kept, so a pasted novel costs nothing."""
    return "".join(c for c in typed.upper() if c in CODE_ALPHABET)[: length * 2]


def format_code(code: str, group: int) -> str:
    """Groups separated by dashes, easy to read aloud: ``BCDFG-HJKLM``."""
    return "-".join(code[i : i + group] for i in range(0, len(code), group))


# -- RFC 8628 ----------------------------------------------------------------------------------------


def new_device_code() -> tuple[str, str]:
    """A device code (RFC 8628 §5.2: very high entropy) and its hash."""
    code = secrets.token_urlsafe(32)
    return code, device_code_hash(code)


def device_code_hash(code: str) -> str:
    return keyed_hash(DEVICE_CODE, code)


def new_user_code() -> str:
    """A user code, unformatted (``format_user_code`` for people)."""
    return draw_code(USER_CODE_LENGTH)


def normalise_user_code(typed: str) -> str:
    return normalise_code(typed, USER_CODE_LENGTH)


def format_user_code(code: str) -> str:
    return format_code(code, USER_CODE_GROUP)


def user_code_hash(code: str) -> str:
    """The hash of a normalised user code."""
    return keyed_hash(USER_CODE, code)


# -- seed 000: link codes and staff codes ----------------------------------------------------------


def new_link_code() -> tuple[str, str]:
    """A link code as shown once (``XXXX-XXXX-XXXX``) and its hash."""
    raw = draw_code(LINK_CODE_LENGTH)
    return format_code(raw, LINK_CODE_GROUP), link_code_hash(raw)


def link_code_hash(typed: str) -> str:
    return keyed_hash(LINK_CODE, normalise_code(typed, LINK_CODE_LENGTH))


def staff_code_ok(code: str) -> bool:
    return STAFF_CODE_MIN <= len(code) <= STAFF_CODE_MAX and code.isalnum()


def staff_code_hash(tenant_id: str, code: str) -> str:
    """Staff codes are unique per tenant only, so the tenant is part of what is hashed."""
    return keyed_hash(STAFF_CODE, f"{tenant_id}:{code}")


# -- OAuth secrets and tokens ----------------------------------------------------------------------


def new_client_secret() -> tuple[str, str]:
    secret = secrets.token_urlsafe(32)
    return secret, keyed_hash(CLIENT_SECRET, secret)


def client_secret_matches(secret: str, stored_hash: str) -> bool:
    return verify_keyed_hash(CLIENT_SECRET, secret, stored_hash)  # constant-time


def new_refresh_token() -> tuple[str, str]:
    token = secrets.token_urlsafe(32)
    return token, refresh_token_hash(token)


def refresh_token_hash(token: str) -> str:
    return keyed_hash(REFRESH_TOKEN, token)


def new_jti(issued_ms: int) -> str:
    """A ``jti`` carrying its issue time in milliseconds (6 bytes) before 96 random bits: a
    revocation mark can then tell a token issued a moment after it from one issued a moment
    before, within the same second of ``iat``."""
    raw = issued_ms.to_bytes(6, "big") + secrets.token_bytes(12)
    return base64.urlsafe_b64encode(raw).decode()


def jti_issued_ms(jti: str) -> int | None:
    """The issue time a ``jti`` of ours carries, or None for anything else."""
    if len(jti) != 24:
        return None
    try:
        raw = base64.urlsafe_b64decode(jti)
    except (ValueError, binascii.Error):
        return None
    return int.from_bytes(raw[:6], "big") if len(raw) == 18 else None


def jti_hash(jti: str) -> str:
    return keyed_hash(ACCESS_TOKEN_JTI, jti)


def new_device_identifier() -> str:
    """The identifier a linked or enrolled device is known by (seed 000): not a secret, shown in
    the registry; a new one on every link, so an unlinked device's old identifier is worthless."""
    return secrets.token_hex(16)
