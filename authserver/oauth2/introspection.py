"""RFC 7662 token introspection and RFC 7009 revocation, for JWT access and opaque refresh tokens."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from authserver.models import OAuthClient, db
from authserver.state import get_state
from authserver.tokens import (
    AccessTokenView,
    RefreshTokenRecord,
    access_token_is_live,
    find_access_token,
    find_refresh_token,
    revoke_access_token,
    revoke_family,
)

TokenRecord = AccessTokenView | RefreshTokenRecord


def _check_params(request: Any) -> None:
    if not request.form.get("token"):
        raise InvalidRequestError("Missing 'token' parameter.")
    # RFC 7662 §2.1 / RFC 7009 §2.1: the hint only orders the search; an unknown hint is ignored.


def _query_token(token: str, hint: str | None) -> TokenRecord | None:
    if hint == "refresh_token":
        return find_refresh_token(token) or find_access_token(token)
    return find_access_token(token) or find_refresh_token(token)


def _tenant_of(token: TokenRecord) -> str:
    return token.tenant_id if isinstance(token, AccessTokenView) else token.family.tenant_id


class Introspection(IntrospectionEndpoint):
    # RFC 7662 §2.1: the endpoint MUST require authorization; public clients cannot introspect.
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def check_params(self, request: Any, client: OAuthClient) -> None:
        _check_params(request)

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenRecord | None:
        return _query_token(token_string, token_type_hint)

    def check_permission(self, token: TokenRecord, client: OAuthClient, request: Any) -> bool:
        # A client sees tokens of its own tenant only; anything else is reported inactive, which
        # reveals nothing about the token (RFC 7662 §4).
        return _tenant_of(token) == client.tenant_id

    def introspect_token(self, token: TokenRecord) -> dict[str, Any]:
        issuer = get_state().settings.issuer
        if isinstance(token, AccessTokenView):
            record = token
            if not access_token_is_live(record):
                return {"active": False}  # its family, device or user is gone
            body: dict[str, Any] = {
                "active": True,
                "client_id": record.client_id,
                "scope": record.scope,
                "exp": record.expires_at,
                "iat": record.issued_at,
                "sub": record.subject,
                "aud": get_state().settings.audience,
                "iss": issuer,
                "jti": token.jti,
                "token_type": record.token_type,
                "tenant": record.tenant_id,
            }
            jkt = record.jkt
        else:
            fam = token.family
            if not token.grant_is_live():
                return {"active": False}
            body = {
                "active": True,
                "client_id": fam.client_id,
                "scope": fam.scope,
                "exp": min(token.expires_at, fam.expires_at),
                "iat": token.issued_at,
                "sub": fam.subject,
                "iss": issuer,
                "tenant": fam.tenant_id,
            }
            jkt = fam.jkt
        if jkt:
            body["cnf"] = {"jkt": jkt}  # RFC 9449 §6.2
        return body


class Revocation(RevocationEndpoint):
    # RFC 7009 §2.1: confidential clients authenticate; public clients identify with client_id.
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def check_params(self, request: Any, client: OAuthClient) -> None:
        _check_params(request)

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenRecord | None:
        return _query_token(token_string, token_type_hint)

    def revoke_token(self, token: TokenRecord, request: Any) -> None:
        if isinstance(token, AccessTokenView):
            revoke_access_token(token)
        else:
            # RFC 7009 §2.1: revoking a refresh token SHOULD also invalidate the access tokens
            # issued from the same grant: the whole family goes.
            revoke_family(token.family.id, "revoked")
        db.session.commit()
