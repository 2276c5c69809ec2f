"""Steps every grant shares: scope resolution and the token response.

Grants glue these together in Authlib's ``validate_token_request`` / ``create_token_response``;
nothing here is repeated per grant.
"""

from __future__ import annotations

import re
from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidScopeError

from authserver.models import Client, db
from authserver.tokens import issue_access_token

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


def token_response(
    client: Client,
    *,
    subject: str,
    scope: str,
    user_id: str | None = None,
    device_id: str | None = None,
    jkt: str | None = None,
) -> dict[str, Any]:
    """Issue an access token, commit its record, and build the RFC 6749 §5.1 response body."""
    issued = issue_access_token(
        client, subject=subject, scope=scope, user_id=user_id, device_id=device_id, jkt=jkt
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
