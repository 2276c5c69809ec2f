"""The OAuth endpoints: token, introspection, revocation, JWKS and discovery."""

from __future__ import annotations

import re

from flask import Blueprint, Response, jsonify

from authserver import users
from authserver.oauth2.metadata import server_metadata
from authserver.oauth2.server import AuthServer, form_endpoint_response
from authserver.resource import ResourceAuthError, current_token, require_token
from authserver.state import get_state

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

bp = Blueprint("oauth", __name__)


def _server() -> AuthServer:
    server = get_state().server
    assert isinstance(server, AuthServer)
    return server


@bp.post("/oauth/token")
def token() -> Response:
    server = _server()
    return form_endpoint_response(  # type: ignore[no-any-return]
        server, server.create_token_response, token_endpoint=True
    )


@bp.post("/oauth/device_authorization")
def device_authorization() -> Response:
    server = _server()
    return form_endpoint_response(  # type: ignore[no-any-return]
        server, lambda: server.create_endpoint_response("device_authorization")
    )


@bp.post("/oauth/introspect")
def introspect() -> Response:
    server = _server()
    return form_endpoint_response(  # type: ignore[no-any-return]
        server, lambda: server.create_endpoint_response("introspection")
    )


@bp.post("/oauth/revoke")
def revoke() -> Response:
    server = _server()
    return form_endpoint_response(  # type: ignore[no-any-return]
        server, lambda: server.create_endpoint_response("revocation")
    )


@bp.get("/oauth/jwks")
def jwks() -> Response:
    state = get_state()
    resp = jsonify(state.keyring.jwks())
    resp.content_type = "application/jwk-set+json"
    # Shorter than the next key's pre-publication time (checked in config), so no relying party
    # can hold a key set that lacks the key that signs next.
    resp.headers["Cache-Control"] = f"public, max-age={state.settings.jwks_max_age}"
    return resp


@bp.get("/.well-known/oauth-authorization-server")
@bp.get("/.well-known/openid-configuration")
def metadata() -> Response:
    state = get_state()
    grants = _server().grant_classes
    resp = jsonify(server_metadata(state, grants))
    resp.headers["Cache-Control"] = "public, max-age=300"
    return resp


@bp.route("/oauth/userinfo", methods=["GET", "POST"])
@require_token("openid")
def userinfo() -> Response:
    """OIDC Core §5.3: claims about the user the access token is about."""
    token = current_token()
    if token.user_id is None or token.subject != token.user_id:
        # A device's or a service's token: there is no end-user to describe.
        return ResourceAuthError(
            403, "insufficient_scope", "The token is not about a user.", token.token_type
        ).response()
    user = users.get_active(token.user_id)
    if user is None:
        return ResourceAuthError(
            401, "invalid_token", "The user is no longer active.", token.token_type
        ).response()
    claims: dict[str, object] = {
        "sub": user.id,
        "preferred_username": user.login,
        "tenant": user.tenant_id,
    }
    # OIDC Core §5.4: the claims each scope asks for, when the user has them.
    scopes = token.scope.split()
    if "profile" in scopes:
        names = [n for n in (user.first_name, user.last_name) if n]
        profile = {
            "name": " ".join(names) or None,
            "given_name": user.first_name,
            "family_name": user.last_name,
            "updated_at": user.updated_at,
        }
        claims.update({k: v for k, v in profile.items() if v is not None})
    if "email" in scopes and _EMAIL.fullmatch(user.login):
        # A login that is an address is the person's email (seed 002 looks people up by it); the
        # server never sent it a message, so it does not claim to have verified it.
        claims.update({"email": user.login, "email_verified": False})
    if "phone" in scopes and user.phone:
        claims["phone_number"] = user.phone
    resp = jsonify(claims)
    resp.headers["Cache-Control"] = "no-store"
    return resp
