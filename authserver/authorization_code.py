"""The authorization code flow's rules (RFC 6749 §4.1 with RFC 7636 PKCE, RFC 9126 PAR, RFC 9207
``iss``, RFC 8252 native apps, RFC 9449 §10 ``dpop_jkt``, OIDC Core §3.1), apart from HTTP:
what a valid authorization request is, which redirect URI may receive an answer, codes (stored
as keyed hashes, bound to client, redirect URI, PKCE challenge and DPoP key, redeemed once) and
remembered consent.

The endpoint (``authserver.endpoints.authorize``) and the grant (``grants.authorization_code``)
call these; they never decide these rules themselves.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from authlib.oauth2.rfc6749.errors import InvalidScopeError
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import select, update

from authserver import audit, credentials, revocation, tokens
from authserver.models import AuthorizationCode, Consent, OAuthClient, User, db
from authserver.security import keyed_hash, new_id, now
from authserver.state import get_state
from authserver.text import is_clean

AUTHORIZATION_CODE = "authorization_code"
CODE_TTL = 60  # RFC 6749 §4.1.2: short-lived (10 minutes at most is RECOMMENDED)
PAR_TTL = 60  # RFC 9126 §2.2: expires_in of a request_uri
INTERACTION_TTL = 600  # how long a person may take to sign in and consent
REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
MAX_REDIRECT_URI = 2000
MAX_NONCE = 512
MAX_STATE = 2048
MAX_LOGIN_HINT = 200
PROMPTS = ("none", "login", "consent")
_CODE_HASH = "authorization-code"
_PAR_HASH = "par-request-uri"
# RFC 7636 §4.1 / §4.2: 43-128 unreserved characters; an S256 challenge is exactly 43.
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_S256_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
_JKT = re.compile(r"[A-Za-z0-9_-]{43}")  # RFC 7638 SHA-256 thumbprint, base64url
_PRIVATE_SCHEME = re.compile(r"[a-z][a-z0-9+\-]*\.[a-z0-9+\-.]+")  # RFC 8252 §7.1: reverse DNS

# Parameters this endpoint reads; anything else is ignored (RFC 6749 §3.1), but none of these
# may appear twice.
_PARAMS = (
    "response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge",
    "code_challenge_method", "prompt", "max_age", "login_hint", "dpop_jkt", "response_mode",
    "request", "request_uri",
)  # fmt: skip


class NoRedirect(Exception):
    """An authorization request whose client or redirect URI cannot be trusted: the answer is
    shown to the person, never sent to a redirect URI (RFC 6749 §4.1.2.1, RFC 9700 §4.11)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RedirectError(Exception):
    """An error for a request whose client and redirect URI are valid: sent back to it with the
    request's ``state`` (RFC 6749 §4.1.2.1)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error, self.description = error, description


@dataclass(frozen=True)
class AuthorizationRequest:
    """A validated authorization request, as kept while the person signs in and consents."""

    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str
    state: str | None = None
    nonce: str | None = None
    prompt: tuple[str, ...] = ()
    max_age: int | None = None
    login_hint: str | None = None
    dpop_jkt: str | None = None
    created_at: int = field(default=0)

    def dumps(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def loads(cls, text: str) -> AuthorizationRequest:
        data = json.loads(text)
        data["prompt"] = tuple(data.get("prompt") or ())
        return cls(**data)


# -- redirect URIs -------------------------------------------------------------------------------


def redirect_uri_problem(uri: str) -> str | None:
    """Why ``uri`` cannot be registered as a redirect URI, or None (RFC 6749 §3.1.2, RFC 9700
    §2.1, RFC 8252 §7): absolute, no fragment; https, http on a loopback IP literal (a native
    app's local server), or a private-use scheme in reverse-DNS form."""
    if not uri or len(uri) > MAX_REDIRECT_URI or not is_clean(uri) or any(c.isspace() for c in uri):
        return "is empty, too long or not plain text"
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018  # raises on a malformed port
    except ValueError:
        return "is not a valid URI"
    if "#" in uri:
        return "must not have a fragment (RFC 6749 §3.1.2)"
    if parts.scheme == "https":
        return None if parts.hostname else "has no host"
    if parts.scheme == "http":
        if _is_loopback(parts):
            return None
        return "must be https, or http on 127.0.0.1 or [::1] for a native app (RFC 8252 §7.3)"
    if _PRIVATE_SCHEME.fullmatch(parts.scheme):
        return None
    return "has a scheme that is neither https nor a private-use scheme like com.example.app"


def _is_loopback(parts: Any) -> bool:
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "::1")


def redirect_uri_matches(client: OAuthClient, given: str) -> bool:
    """Exact string comparison with a registered URI (RFC 9700 §2.1, §4.1.3); for a loopback
    registration, any port (RFC 8252 §7.3: the port is chosen by the app at run time)."""
    if not given or len(given) > MAX_REDIRECT_URI:
        return False
    registered = tuple(client.redirect_uris or ())
    if given in registered:
        return True
    try:
        asked = urlsplit(given)
        if not _is_loopback(asked):
            return False
        asked.port  # noqa: B018
    except ValueError:
        return False
    for uri in registered:
        reg = urlsplit(uri)
        if (
            _is_loopback(reg)
            and reg.hostname == asked.hostname
            and reg.path == asked.path
            and reg.query == asked.query
            and not asked.username
            and not asked.password
        ):
            return True
    return False


def redirect_with(uri: str, params: Mapping[str, str | None]) -> str:
    """``uri`` with ``params`` added to its query, keeping the query it had (RFC 6749 §3.1.2)."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


# -- the request ---------------------------------------------------------------------------------


def _single(params: Mapping[str, list[str]], name: str) -> str | None:
    values = params.get(name) or []
    if len(values) > 1:
        raise RedirectError("invalid_request", f"{name} is repeated.")
    return values[0] if values else None


def trusted_target(
    params: Mapping[str, list[str]], find_client: Any
) -> tuple[OAuthClient, str, str | None]:
    """The client, the redirect URI and the state of a request, or ``NoRedirect``: until both
    are known to be right, nothing may be sent to the redirect URI."""
    client_ids = params.get("client_id") or []
    redirect_uris = params.get("redirect_uri") or []
    if len(client_ids) != 1 or not client_ids[0]:
        raise NoRedirect("The request has no client_id, or more than one.")
    client = find_client(client_ids[0])
    if client is None or not client.active:
        raise NoRedirect("The application is not known here.")
    # OIDC Core §3.1.2.1: redirect_uri is REQUIRED; RFC 9700 §2.1: compared exactly.
    if len(redirect_uris) != 1 or not redirect_uri_matches(client, redirect_uris[0]):
        raise NoRedirect("The request's redirect_uri is not one registered for this application.")
    states = params.get("state") or []
    state = states[0] if len(states) == 1 and len(states[0]) <= MAX_STATE else None
    return client, redirect_uris[0], state


def parse_request(
    params: Mapping[str, list[str]], client: OAuthClient, redirect_uri: str
) -> AuthorizationRequest:
    """The rest of an authorization request, once its client and redirect URI are trusted."""
    from grants.common import resolve_scope

    for name in _PARAMS:
        _single(params, name)
    if _single(params, "request") is not None:
        raise RedirectError("request_not_supported", "Request objects are not supported.")
    if not client.check_grant_type(AUTHORIZATION_CODE):
        raise RedirectError(
            "unauthorized_client", "The client is not registered for the authorization code grant."
        )
    response_type = _single(params, "response_type")
    if not response_type:
        raise RedirectError("invalid_request", "response_type is missing.")
    if response_type != "code":
        raise RedirectError("unsupported_response_type", "Only response_type=code is supported.")
    mode = _single(params, "response_mode")
    if mode not in (None, "query"):
        raise RedirectError("invalid_request", "Only response_mode=query is supported.")
    state = _single(params, "state")
    if state is not None and len(state) > MAX_STATE:
        raise RedirectError("invalid_request", "state is too long.")
    # RFC 9700 §2.1.1 and RFC 7636 §4.4.1: PKCE for every client, and only S256.
    challenge = _single(params, "code_challenge")
    if not challenge:
        raise RedirectError("invalid_request", "code_challenge is required (PKCE with S256).")
    if _single(params, "code_challenge_method") != "S256":
        raise RedirectError("invalid_request", "code_challenge_method must be S256.")
    if not _S256_CHALLENGE.fullmatch(challenge):
        raise RedirectError("invalid_request", "code_challenge is not an S256 challenge.")
    try:
        scope = resolve_scope(client, _single(params, "scope"))
    except InvalidScopeError as exc:
        raise RedirectError("invalid_scope", str(exc.description)) from exc
    nonce = _single(params, "nonce")
    if nonce is not None and (not nonce or len(nonce) > MAX_NONCE or not is_clean(nonce)):
        raise RedirectError("invalid_request", "nonce is empty, too long or not plain text.")
    prompt = tuple((_single(params, "prompt") or "").split())
    if any(p not in PROMPTS for p in prompt):
        raise RedirectError("invalid_request", "prompt may be none, login or consent.")
    if "none" in prompt and len(prompt) > 1:
        # OIDC Core §3.1.2.1: none with any other value is an error.
        raise RedirectError("invalid_request", "prompt=none cannot be combined with another value.")
    max_age_text = _single(params, "max_age")
    max_age = None
    if max_age_text is not None:
        if not (max_age_text.isascii() and max_age_text.isdigit()) or len(max_age_text) > 9:
            raise RedirectError("invalid_request", "max_age is a number of seconds.")
        max_age = int(max_age_text)
    hint = _single(params, "login_hint")
    if hint is not None and (len(hint) > MAX_LOGIN_HINT or not is_clean(hint)):
        hint = None  # a hint only pre-fills the form: an unusable one is dropped
    jkt = _single(params, "dpop_jkt")
    if jkt is not None and not _JKT.fullmatch(jkt):
        raise RedirectError("invalid_request", "dpop_jkt is not a JWK SHA-256 thumbprint.")
    return AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        scope=scope,
        code_challenge=challenge,
        state=state,
        nonce=nonce,
        prompt=prompt,
        max_age=max_age,
        login_hint=hint,
        dpop_jkt=jkt,
        created_at=now(),
    )


# -- pushed authorization requests (RFC 9126) ------------------------------------------------------


def push(params: Mapping[str, list[str]]) -> tuple[str, int]:
    """Keep validated request parameters under a new ``request_uri``; returns it and its
    lifetime. One use (RFC 9126 §4: the request_uri is bound to the client and used once)."""
    handle = secrets.token_urlsafe(32)
    stored = {k: v for k, v in params.items() if k in _PARAMS and k != "request_uri"}
    get_state().store.put(_par_key(handle), json.dumps(stored), ttl=PAR_TTL)
    return REQUEST_URI_PREFIX + handle, PAR_TTL


def _par_key(handle: str) -> str:
    return "par:" + keyed_hash(_PAR_HASH, handle)


def pushed(request_uri: str, client_id: str | None) -> dict[str, list[str]]:
    """The parameters pushed under ``request_uri`` for ``client_id``, once; ``NoRedirect`` if
    unknown, used, expired or another client's."""
    if not request_uri.startswith(REQUEST_URI_PREFIX) or len(request_uri) > 200:
        raise NoRedirect("The request_uri is not one this server issued.")
    key = _par_key(request_uri[len(REQUEST_URI_PREFIX) :])
    store = get_state().store
    text = store.get(key)
    if text is None:
        raise NoRedirect("The request_uri has expired or was used already.")
    params: dict[str, list[str]] = json.loads(text)
    if params.get("client_id") != [client_id]:
        # RFC 9126 §4: bound to the client that pushed it; the client_id in the URL must match.
        raise NoRedirect("The request_uri belongs to another application.")
    if not store.claim_once(key + ":used", PAR_TTL):
        raise NoRedirect("The request_uri has expired or was used already.")
    store.delete(key)
    return params


# -- codes ---------------------------------------------------------------------------------------


def issue_code(
    req: AuthorizationRequest, user: User, auth_time: int, amr: str, session_id: str | None
) -> str:
    """A new code for ``req`` and ``user`` (256 bits; stored as a keyed hash), committed."""
    code = secrets.token_urlsafe(32)
    t = now()
    db.session.add(
        AuthorizationCode(
            id=new_id("acd"),
            code_hash=keyed_hash(_CODE_HASH, code),
            client_id=req.client_id,
            tenant_id=user.tenant_id,
            user_id=user.id,
            redirect_uri=req.redirect_uri,
            scope=req.scope,
            code_challenge=req.code_challenge,
            nonce=req.nonce,
            dpop_jkt=req.dpop_jkt,
            auth_time=auth_time,
            amr=amr,
            session_id=session_id,
            created_at=t,
            expires_at=t + CODE_TTL,
        )
    )
    db.session.commit()
    return code


def find_code(code: str) -> AuthorizationCode | None:
    if not code or len(code) > 128:
        return None
    return db.session.scalar(
        select(AuthorizationCode).where(AuthorizationCode.code_hash == keyed_hash(_CODE_HASH, code))
    )


def verifier_matches(verifier: str, challenge: str) -> bool:
    """RFC 7636 §4.6: BASE64URL(SHA256(verifier)) == challenge, compared in constant time."""
    if not _VERIFIER.fullmatch(verifier):
        return False
    return hmac.compare_digest(create_s256_code_challenge(verifier).encode(), challenge.encode())


def redeem(record: AuthorizationCode) -> bool:
    """unused -> redeemed, by a conditional UPDATE: only one request ever gets True. A loser
    revokes what the winner got before returning False (RFC 6749 §4.1.2)."""
    won = db.session.execute(
        update(AuthorizationCode)
        .where(AuthorizationCode.id == record.id, AuthorizationCode.redeemed_at.is_(None))
        .values(redeemed_at=now())
    ).rowcount  # type: ignore[attr-defined]
    if won == 1:
        return True
    db.session.rollback()
    db.session.refresh(record)
    revoke_reused(record)
    return False


def revoke_reused(record: AuthorizationCode) -> None:
    """RFC 6749 §4.1.2: a code used twice SHOULD revoke every token issued from it (RFC 9700
    §4.5): the refresh family and the access token go."""
    audit.record("authorization_code.reuse_detected", record.tenant_id, record.client_id)
    if record.family_id:
        tokens.revoke_family(record.family_id, "authorization_code_reused")
    if record.access_jti_hash:
        revocation.deny(record.access_jti_hash)
    db.session.commit()


def remember_issued(record: AuthorizationCode, family_id: str | None, jti: str) -> None:
    """What the redemption issued (the jti as a keyed hash), to revoke it on reuse."""
    record.family_id = family_id
    record.access_jti_hash = credentials.jti_hash(jti)


# -- consent -------------------------------------------------------------------------------------


def needs_consent(client: OAuthClient, user: User, scope: str) -> bool:
    """A third-party client asks once per scope; the tenant's own (first-party) apps never."""
    if client.first_party:
        return False
    given = db.session.get(Consent, (user.id, client.client_id))
    return given is None or not set(scope.split()) <= set(given.scope.split())


def remember_consent(client: OAuthClient, user: User, scope: str) -> None:
    t = now()
    given = db.session.get(Consent, (user.id, client.client_id))
    if given is None:
        db.session.add(
            Consent(
                user_id=user.id,
                client_id=client.client_id,
                tenant_id=user.tenant_id,
                scope=scope,
                created_at=t,
                updated_at=t,
            )
        )
    else:
        merged = given.scope.split() + [s for s in scope.split() if s not in given.scope.split()]
        given.scope = " ".join(merged)
        given.updated_at = t
    audit.record("consent.given", user.tenant_id, user.id, client_id=client.client_id, scope=scope)
    db.session.commit()


def consents_of(user: User) -> list[Consent]:
    return list(
        db.session.scalars(
            select(Consent).where(Consent.user_id == user.id).order_by(Consent.client_id)
        )
    )


def withdraw_consent(user: User, client_id: str) -> bool:
    """The user takes a client's consent back: asked again next time, and the tokens that client
    got for them are revoked."""
    given = db.session.get(Consent, (user.id, client_id))
    if given is None:
        return False
    db.session.delete(given)
    tokens.revoke_user_client(user.id, client_id, "consent_withdrawn")
    audit.record("consent.withdrawn", user.tenant_id, user.id, client_id=client_id)
    db.session.commit()
    return True
