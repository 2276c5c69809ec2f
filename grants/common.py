"""Steps every grant shares: scope resolution and the token response.

Grants glue these together in Authlib's ``validate_token_request`` / ``create_token_response``;
nothing here is repeated per grant.
"""

from __future__ import annotations

import re
from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidScopeError

from authserver.models import Client, db
from authserver.security import now_float
from authserver.state import get_state
from authserver.tokens import issue_access_token
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


def check_dpop(request: Any, client: Client) -> DPoPProof | None:
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
        url=f"{s.issuer}/oauth/token",
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


def token_response(
    client: Client,
    *,
    subject: str,
    scope: str,
    user_id: str | None = None,
    device_id: str | None = None,
    proof: DPoPProof | None = None,
) -> dict[str, Any]:
    """Issue an access token, commit its record, and build the RFC 6749 §5.1 response body."""
    issued = issue_access_token(
        client,
        subject=subject,
        scope=scope,
        user_id=user_id,
        device_id=device_id,
        jkt=access_token_jkt(client, proof),
    )
    db.session.commit()
    body: dict[str, Any] = {
        "access_token": issued.token,
        "token_type": issued.token_type,
        "expires_in": issued.expires_in,
    }
    if scope:
        body["scope"] = scope
    return body
