"""Steps every grant shares, each named, the way node-oidc-provider's ``grant_common`` does:
resolve the scope, check the DPoP proof (before anything single-use is consumed), start a
refresh family bound as RFC 9449 §5 says, and issue the token set with its response headers.

Grants glue these together in Authlib's ``validate_token_request`` / ``create_token_response``;
the work itself (SQL, signing) is in ``authserver.tokens``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidScopeError

from authserver import metrics, totp
from authserver.errors import TooManyAttemptsError, TotpRequiredError
from authserver.limits import Attempt, Throttled
from authserver.models import OAuthClient, RefreshFamily, User
from authserver.security import now, now_float
from authserver.state import get_state
from authserver.tokens import (
    FamilyView,
    IssuedAccessToken,
    TokenSubject,
    issue_token_set,
    start_family,
)
from grants.dpop import DPoPProof, InvalidDPoPProof

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]+$")


def resolve_scope(client: OAuthClient, requested: str | None) -> str:
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


def still_allowed(client: OAuthClient, scope: str) -> str:
    """``scope`` of a grant made earlier (a code, an approved device code, a refresh family),
    less what the client may no longer have: an administrator may have narrowed its scope
    since. RFC 6749 §3.3 lets the server issue less; the response says what it issued (§5.1).
    ``invalid_scope`` when nothing is left."""
    allowed = set(client.scope.split())
    kept = " ".join(s for s in scope.split() if s in allowed)
    if scope and not kept:
        raise InvalidScopeError("The client may no longer have any scope of this grant.")
    return kept


def second_factor(user: User, code: str | None, attempt: Attempt) -> str:
    """After a right password, the user's TOTP code when they have one (RFC 6238); the sign-in's
    ``amr``. No code: ``totp_required``, and the password's charge is given back (asking is no
    failure); a wrong or spent code: ``invalid_grant``, the charge stays."""
    if not totp.enabled(user):
        return "pwd"
    if not code:
        attempt.succeeded()
        raise TotpRequiredError()
    try:
        totp.check_code(user, code, now())
    except totp.TotpWrong as exc:
        raise InvalidGrantError("The TOTP code is wrong or was used already.") from exc
    except Throttled as exc:
        raise TooManyAttemptsError(exc.retry_after) from exc
    return "pwd otp"


def grant_label() -> str:
    """The grant of this token request, for metrics and logs (bounded: registered grants only)."""
    from flask import g

    return str(g.get("log_grant") or "other")


def check_dpop(request: Any, client: OAuthClient, path: str = "/oauth/token") -> DPoPProof | None:
    """RFC 9449 §5: verify the token request's DPoP proof, if any; called by every grant.

    Runs in ``validate_token_request``, before a grant consumes anything single-use.
    """
    values = request.headers.getlist("DPoP")
    if not values:
        if client.dpop_bound:
            # RFC 9449 §5.2: a client registered with dpop_bound_access_tokens must use DPoP.
            raise InvalidDPoPProof("this client must present a DPoP proof")
        return None
    return get_state().dpop.verify(values, "POST", path, now=now_float())


def access_token_jkt(client: OAuthClient, proof: DPoPProof | None) -> str | None:
    """The thumbprint access tokens are bound to: the proof's, unless the client binds refresh only."""
    if proof is None or client.dpop_binding == "refresh_only":
        return None
    return proof.jkt


def response_headers(base: list[tuple[str, str]], proof: DPoPProof | None) -> list[tuple[str, str]]:
    """Token response headers; a fresh DPoP-Nonce when the client's is about to roll (§8.2)."""
    nonce = get_state().dpop.nonce_for_response(proof, "token", now_float())
    return base if nonce is None else [*base, ("DPoP-Nonce", nonce)]


def bound_family(
    client: OAuthClient, who: TokenSubject, scope: str, proof: DPoPProof | None
) -> RefreshFamily:
    """Start a refresh-token family for a fresh grant.

    RFC 9449 §5: a public client's refresh tokens are bound to the DPoP key; a confidential
    client's are not (it authenticates), only its access tokens are.
    """
    jkt = proof.jkt if proof is not None and client.is_public else None
    return start_family(client, who, scope, jkt)


def token_response(
    client: OAuthClient,
    who: TokenSubject,
    scope: str,
    proof: DPoPProof | None = None,
    *,
    family: RefreshFamily | FamilyView | None = None,
    on_issue: Callable[[IssuedAccessToken], None] | None = None,
    refresh_token: str | None = None,
    nonce: str | None = None,
    with_refresh: bool = True,
) -> dict[str, Any]:
    """Issue the token set, record it, commit, and build the RFC 6749 §5.1 response body.

    With ``family`` a refresh token of that family is issued beside the access token; with
    ``refresh_token`` (a rotation's successor, stored already) that one is handed out.
    Everything is committed in one transaction with whatever the grant changed before.
    """
    body = issue_token_set(
        client,
        who,
        scope,
        access_token_jkt(client, proof),
        family=family,
        on_issue=on_issue,
        refresh_token=refresh_token,
        nonce=nonce,
        with_refresh=with_refresh,
    )
    metrics.TOKENS.labels(grant_label()).inc()
    return body
