"""A person's signed-in browser session at the server, shared by every page that signs people in
(``/device`` and ``/oauth/authorize``): one sign-in serves the tenant's apps (single sign-on)
until it ends, by signing out on either page or by RP-initiated logout.

- The cookie (Flask's signed session) holds only a random session id; the session itself is an
  entry in the shared state store, so signing out ends it in every process and a replayed
  cookie is worth nothing (review F11).
- Every form carries the session's CSRF token, and where the browser tells where a form came
  from (``Sec-Fetch-Site``, ``Origin``), it must be this site (review F3).
- A password check is limited per address and network before any password is verified, and per
  account as typed (``authserver.limits.sign_in``); one argon2 verification is done whether or
  not the login exists, so timing does not tell them apart.
- A user with TOTP is only half signed in after the password: what the second step needs is held
  in the store under a one-time key, not in the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, request, session

from authserver import limits, totp, users
from authserver.models import User
from authserver.security import now, verify_password
from authserver.state import get_state
from authserver.text import is_clean

MAX_LOGIN = 200
MAX_PASSWORD = 1024
HALF_SIGNED_IN_SECONDS = 300


def _session_key(sid: str) -> str:
    return "vsess:" + hashlib.sha256(sid.encode()).hexdigest()


def session_id_hash() -> str | None:
    """A stable name of the current signed-in session (for codes issued under it), or None."""
    sid = session.get("sid")
    return hashlib.sha256(sid.encode()).hexdigest() if isinstance(sid, str) else None


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(24)
    return str(token)


def from_this_site() -> bool:
    """CSRF (review F3): the session's own token, and no sign that another site sent the form."""
    expected = session.get("csrf")
    given = request.form.get("csrf", "")
    if not isinstance(expected, str) or not expected:
        return False  # no token in the session: nothing was ever handed out to this browser
    if not hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode()):
        return False
    # Fetch metadata, where the browser sends it, says where the form came from; otherwise the
    # Origin header must be ours (a form posted from another site carries that site's origin).
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is not None:
        issuer = urlsplit(get_state().settings.issuer)
        return origin == f"{issuer.scheme}://{issuer.netloc}"
    return True


def start(user: User, amr: str) -> None:
    """Sign ``user`` in in this browser; ``amr``: how (RFC 8176: "pwd" or "pwd otp")."""
    store = get_state().store
    old = session.get("sid")
    if isinstance(old, str):
        store.delete(_session_key(old))  # whoever was signed in here before is signed out
    sid = secrets.token_urlsafe(24)
    lifetime = current_app.permanent_session_lifetime.total_seconds()
    store.put(_session_key(sid), user.id, ttl=lifetime)
    session.permanent = True
    # A new sign-in gets a new CSRF token (no fixation across the privilege change).
    session["csrf"] = secrets.token_urlsafe(24)
    session["sid"] = sid
    session["uid"] = user.id
    session["auth_time"] = now()
    session["amr"] = amr  # how they signed in, for the tokens about them (RFC 8176)


def end() -> None:
    """Sign out: the session ends in the store (every process, every tab), the cookie is cleared."""
    sid = session.get("sid")
    if isinstance(sid, str):
        get_state().store.delete(_session_key(sid))
    session.clear()


def signed_in() -> User | None:
    """The signed-in user, if the session is still open in the store (F11: a signed-out or
    replayed cookie is not)."""
    uid, sid = session.get("uid"), session.get("sid")
    if not uid or not isinstance(sid, str):
        return None
    if get_state().store.get(_session_key(sid)) != uid:
        for key in ("uid", "sid", "auth_time", "amr"):
            session.pop(key, None)
        return None
    user = users.get_active(uid)
    if user is None:
        end()
        return None
    return user


def auth_time() -> int | None:
    value = session.get("auth_time")
    return value if isinstance(value, int) else None


def amr() -> str:
    value = session.get("amr")
    return value if isinstance(value, str) else "pwd"


def client_ip() -> str:
    return request.remote_addr or "-"


@dataclass(frozen=True)
class PasswordOutcome:
    """What a password step came to: ``throttled`` (seconds to wait), ``user`` None (wrong),
    ``needs_totp`` (half signed in: the code page comes next), or signed in."""

    user: User | None = None
    throttled: int | None = None
    needs_totp: bool = False


def check_password(kind: str, tenant_id: str | None, tenant_ref: str, form: Any) -> PasswordOutcome:
    """The password step of a sign-in page (``kind`` names its limits): charged first, then one
    argon2 verification; a user with TOTP is left half signed in."""
    s = get_state().settings
    login = form.get("login", "")[:MAX_LOGIN]
    password = form.get("password", "")[:MAX_PASSWORD]
    try:
        # Per address and network first, before any lookup or argon2 work (F5); per account as
        # typed, from any address (F4).
        attempt = limits.charge(
            get_state().store, limits.sign_in(s, kind, tenant_id or tenant_ref, login, client_ip())
        )
    except limits.Throttled as exc:
        return PasswordOutcome(throttled=exc.retry_after)
    user = None
    if tenant_id is not None and is_clean(login):
        user = users.find_by_login(tenant_id, login)
    # Always one argon2 verification, so timing does not tell an unknown login from a wrong
    # password.
    password_ok = verify_password(password, user.password_hash if user else None)
    if not (password_ok and user is not None and user.active):
        return PasswordOutcome()
    # The store write waits until here: nothing in this request's session holds the database.
    attempt.succeeded()
    if totp.enabled(user):
        half = secrets.token_urlsafe(24)
        get_state().store.put(_half_key(half), user.id, ttl=HALF_SIGNED_IN_SECONDS)
        session["half"] = half
        return PasswordOutcome(user=user, needs_totp=True)
    return PasswordOutcome(user=user)


def _half_key(half: str) -> str:
    return "vhalf:" + hashlib.sha256(half.encode()).hexdigest()


class SignInExpired(Exception):
    """The half sign-in is gone (too slow, or never started): start again."""


def check_second_factor(form: Any) -> tuple[User, str]:
    """The code from the authenticator app of someone whose password was right (RFC 6238).
    Returns the user and the ``amr``; raises ``SignInExpired``, ``limits.Throttled`` or
    ``totp.TotpWrong``."""
    half = session.get("half")
    store = get_state().store
    uid = store.get(_half_key(half)) if isinstance(half, str) else None
    user = users.get_active(uid) if uid else None
    if user is None or not totp.enabled(user):
        session.pop("half", None)
        raise SignInExpired()
    code = "".join(form.get("code", "")[:16].split())
    totp.check_code(user, code, now())
    store.delete(_half_key(half))  # type: ignore[arg-type]  # a str: the key was found
    session.pop("half", None)
    return user, "pwd otp"
