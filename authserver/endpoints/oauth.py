"""The OAuth endpoints: token, introspection, revocation, JWKS and discovery."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from authserver.oauth2.metadata import server_metadata
from authserver.oauth2.server import AuthServer, form_endpoint_response
from authserver.state import get_state

bp = Blueprint("oauth", __name__)


def _server() -> AuthServer:
    server = get_state().server
    assert isinstance(server, AuthServer)
    return server


@bp.post("/oauth/token")
def token() -> Response:
    server = _server()
    return form_endpoint_response(server, server.create_token_response)  # type: ignore[no-any-return]


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
    grants = [cls for cls, _ in _server()._token_grants]
    resp = jsonify(server_metadata(state, grants))
    resp.headers["Cache-Control"] = "public, max-age=300"
    return resp
