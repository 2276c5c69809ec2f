"""A second factor: time-based one-time passwords (RFC 6238, with pyotp).

- A secret is drawn by the server (160 bits, base32), shown once (with an ``otpauth://`` URI and
  a QR code for authenticator apps), and kept *pending* for ten minutes until the person proves a
  current code with it; only then is it the user's. At rest it is encrypted (AES-GCM, the
  key-encryption key of the signing keys), bound to the user's id: a ciphertext copied to another
  user's row does not decrypt (DESIGN invariant 6).
- A code is accepted for its 30-second step and one step either side (clock drift), and only once:
  the step it matched is claimed in the shared store, so a code seen over a shoulder or replayed
  is refused, in every process (RFC 6238 §5.2: "the verifier MUST NOT accept the second attempt of
  the same OTP after the successful validation has been issued for the first OTP").
- Wrong codes are limited per account (5 per 5 minutes, 20 per hour), charged before the check:
  a million codes cannot be walked through (RFC 6238 §5.1, RFC 4226 §7.3 throttling).
"""

from __future__ import annotations

import base64
import hmac
import io
from dataclasses import dataclass

import pyotp
import qrcode
import qrcode.image.svg

from authserver import limits
from authserver.ephemeral import EphemeralStore
from authserver.limits import Limit
from authserver.models import User
from authserver.problems import TooManyRequestsProblem, ValidationProblem
from authserver.state import get_state
from keys.encryption import KeyEncryptor

PERIOD = 30
DIGITS = 6
DRIFT_STEPS = 1
PENDING_SECONDS = 600
LIMITS = (Limit("totp", 5, 300, "account"), Limit("totp-h", 20, 3600, "account"))


class TotpRequired(Exception):
    """The user has a second factor and no code came with the password."""


class TotpWrong(Exception):
    """The code is wrong, used already, or not 6 digits."""


@dataclass(frozen=True)
class NewSecret:
    secret: str  # base32, what an app is given by hand
    uri: str  # otpauth://totp/...
    qr_svg: str  # the URI as a QR code, an SVG document


def _encryptor() -> KeyEncryptor:
    return KeyEncryptor(get_state().settings.key_encryption_key)


def _aad(user: User) -> str:
    return f"totp:{user.id}"


def encrypt(user: User, secret: str) -> bytes:
    return _encryptor().encrypt(_aad(user), secret.encode())


def _secret_of(user: User) -> str:
    assert user.totp_secret_enc is not None
    return _encryptor().decrypt(_aad(user), user.totp_secret_enc).decode()


def enabled(user: User) -> bool:
    return user.totp_secret_enc is not None


def _pending_key(user: User) -> str:
    return f"totp-pending:{user.id}"


def start(user: User, issuer: str) -> NewSecret:
    """A new pending secret for ``user`` (replacing any earlier pending one)."""
    secret = pyotp.random_base32()  # 32 base32 characters: 160 bits (RFC 4226 §4 R6)
    blob = base64.b64encode(encrypt(user, secret)).decode()
    get_state().store.put(_pending_key(user), blob, PENDING_SECONDS)
    uri = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).provisioning_uri(
        name=user.login, issuer_name=issuer
    )
    return NewSecret(secret, uri, _svg(uri))


def _svg(text: str) -> str:
    # ISO/IEC 18004 §7.3.7: a quiet zone of four modules around the symbol, or scanners fail.
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, border=4)
    out = io.BytesIO()
    image.save(out)
    return out.getvalue().decode()


def forget_pending(user: User) -> None:
    get_state().store.delete(_pending_key(user))


def pending_secret(user: User) -> str | None:
    blob = get_state().store.get(_pending_key(user))
    if blob is None:
        return None
    return _encryptor().decrypt(_aad(user), base64.b64decode(blob)).decode()


def check_code(user: User, code: str, now: float, secret: str | None = None) -> None:
    """Accept ``code`` once for ``user`` (their secret, or ``secret`` while configuring);
    raises ``TotpWrong`` or ``limits.Throttled``."""
    store: EphemeralStore = get_state().store
    attempt = limits.charge(store, [(limit, user.id) for limit in LIMITS])
    if not (isinstance(code, str) and len(code) == DIGITS and code.isascii() and code.isdigit()):
        raise TotpWrong("A code is 6 digits.")
    totp = pyotp.TOTP(secret or _secret_of(user), digits=DIGITS, interval=PERIOD)
    step = int(now // PERIOD)
    for candidate in range(step - DRIFT_STEPS, step + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.at(candidate * PERIOD), code):
            # RFC 6238 §5.2: one success per code. The step is claimed for longer than it can
            # match (its own 30 s and the drift on either side).
            if not store.claim_once(
                f"totp-used:{user.id}:{candidate}", PERIOD * (2 * DRIFT_STEPS + 2)
            ):
                raise TotpWrong("This code was used already; wait for the next one.")
            attempt.succeeded()
            return
    raise TotpWrong("The code is wrong.")  # the charge stays


def problem_for(exc: Exception) -> Exception:
    """The API's problem for a refused code."""
    if isinstance(exc, limits.Throttled):
        return TooManyRequestsProblem("Too many wrong codes. Wait a few minutes.", exc.retry_after)
    return ValidationProblem(str(exc), field="code")
