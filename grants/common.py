"""Steps every grant shares: scope resolution and the token response.

Grants glue these together in Authlib's ``validate_token_request`` / ``create_token_response``;
nothing here is repeated per grant.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidScopeError

from authserver import metrics
from authserver.models import Client, RefreshFamily, db
from authserver.security import new_id, now, now_float
from authserver.state import get_state
from authserver.tokens import IssuedAccessToken, issue_access_token, issue_refresh_token
from grants.dpop import DPoPProof, InvalidDPoPProof, verify_proof

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]+$")


def resolve_scope(client: Client, requested: str | None) -> str:
    """The granted scope: the request's if every scope is the client's, else ``invalid_scope``.

    RFC 6749 §3.3: with no scope requested the server uses a pre-defined default, here every scope
    the client is registered for.
    """
    allowed = client.scope.split()
    if requested is None:
        return " ".join(allowed)
    wanted = requested.split(" ")
    if any(not _SCOPE_TOKEN.match(s) for s in wanted):
        raise InvalidScopeError("The scope parameter is malformed.")
    unknown = [s for s in wanted if s not in allowed]
    if unknown:
        raise InvalidScopeError("The requested scope exceeds what the client is registered for.")
    # Keep the client's order and drop duplicates, so equal requests give equal tokens.
    return " ".join(s for s in allowed if s in wanted)


def grant_label() -> str:
    """The grant of this token request, for metrics and logs (bounded: registered grants only)."""
    from flask import g

    return str(g.get("log_grant") or "other")


def check_dpop(request: Any, client: Client, path: str = "/oauth/token") -> DPoPProof | None:
    """RFC 9449 §5: verify the token request's DPoP proof, if any; called by every grant.

    Runs in ``validate_token_request``, before a grant consumes anything single-use.
    """
    values = request.headers.getlist("DPoP")
    if not values:
        if client.dpop_bound:
            # RFC 9449 §5.2: a client registered with dpop_bound_access_tokens must use DPoP.
            raise InvalidDPoPProof("this client must present a DPoP proof")
        return None
    state = get_state()
    s = state.settings
    return verify_proof(
        values,
        method="POST",
        url=s.issuer + path,
        now=now_float(),
        max_age=s.dpop_max_age,
        max_future=s.dpop_max_future,
        store=state.store,
        nonces=state.nonces if "token" in s.dpop_nonce else None,
    )


def access_token_jkt(client: Client, proof: DPoPProof | None) -> str | None:
    """The thumbprint access tokens are bound to: the proof's, unless the client binds refresh only."""
    if proof is None or client.dpop_binding == "refresh_only":
        return None
    return proof.jkt


def response_headers(base: list[tuple[str, str]], proof: DPoPProof | None) -> list[tuple[str, str]]:
    """Token response headers; a fresh DPoP-Nonce when the client's is about to roll (§8.2)."""
    state = get_state()
    if proof is None or "token" not in state.settings.dpop_nonce:
        return base
    t = now_float()
    if not state.nonces.needs_refresh(proof.nonce, t):
        return base
    return [*base, ("DPoP-Nonce", state.nonces.fresh(t))]


@dataclass(frozen=True)
class TokenSubject:
    """Whom a token is about: ``sub``, and the user or registry device behind it."""

    subject: str
    user_id: str | None = None
    device_id: str | None = None
    auth_time: int | None = None


def _id_token(client: Client, who: TokenSubject, access_token: str, scope: str) -> str | None:
    """OIDC Core §2 / §3.1.3.6: an ID token when ``openid`` was granted and the subject is a user."""
    if "openid" not in scope.split() or who.user_id is None or who.subject != who.user_id:
        return None
    state = get_state()
    alg = state.keyring.signing_alg
    # at_hash: left half of the hash of the access token, with the hash of the signing alg.
    digest = (hashlib.sha512 if alg == "Ed25519" else hashlib.sha256)(
        access_token.encode()
    ).digest()
    at_hash = base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()
    iat = now()
    claims = {
        "iss": state.settings.issuer,
        "sub": who.subject,
        "aud": client.client_id,
        "iat": iat,
        "exp": iat + state.settings.id_token_ttl,
        "auth_time": who.auth_time or iat,
        "at_hash": at_hash,
    }
    return state.keyring.sign(claims, "JWT")


def new_refresh_family(
    client: Client, who: TokenSubject, scope: str, proof: DPoPProof | None
) -> RefreshFamily:
    """Start a refresh-token family for a fresh grant.

    RFC 9449 §5: a public client's refresh tokens are bound to the DPoP key; a confidential
    client's are not (it authenticates), only its access tokens are.
    """
    t = now()
    family = RefreshFamily(
        id=new_id("rtf"),
        client_id=client.client_id,
        tenant_id=client.tenant_id,
        subject=who.subject,
        user_id=who.user_id,
        device_id=who.device_id,
        scope=scope,
        jkt=proof.jkt if proof is not None and client.is_public else None,
        auth_time=who.auth_time,
        created_at=t,
        expires_at=t + get_state().settings.refresh_token_ttl,
    )
    db.session.add(family)
    return family


def token_response(
    client: Client,
    who: TokenSubject,
    scope: str,
    proof: DPoPProof | None = None,
    *,
    family: RefreshFamily | None = None,
    on_issue: Callable[[IssuedAccessToken], None] | None = None,
) -> dict[str, Any]:
    """Issue the token set, record it, commit, and build the RFC 6749 §5.1 response body.

    With ``family`` a rotated refresh token of that family is issued beside the access token.
    Everything is committed in one transaction with whatever the grant changed before.
    """
    issued = issue_access_token(
        client,
        subject=who.subject,
        scope=scope,
        user_id=who.user_id,
        device_id=who.device_id,
        family_id=family.id if family is not None else None,
        jkt=access_token_jkt(client, proof),
    )
    body: dict[str, Any] = {
        "access_token": issued.token,
        "token_type": issued.token_type,
        "expires_in": issued.expires_in,
    }
    if scope:
        body["scope"] = scope
    if family is not None:
        body["refresh_token"] = issue_refresh_token(family)
    id_token = _id_token(client, who, issued.token, scope)
    if id_token:
        body["id_token"] = id_token
    if on_issue is not None:
        on_issue(issued)
    db.session.commit()
    metrics.TOKENS.labels(grant_label()).inc()
    return body
