"""RFC 6749 §4.1.3: redeeming an authorization code at the token endpoint, with PKCE (RFC 7636
§4.5-4.6), the DPoP key the code was bound to (RFC 9449 §10) and an OpenID Connect ID token
(OIDC Core §3.1.3) when ``openid`` was granted.

Authlib's ``AuthorizationCodeGrant`` keeps the code's checks behind ``query_authorization_code``
and ``delete_authorization_code``: that cannot express a redemption that is single-use across
processes and revokes the first redemption's tokens on reuse. So, as the other grants do, the
two template methods are overridden whole; the rules are ``authserver.authorization_code``'s.
"""

from __future__ import annotations

from typing import Any

from authlib.consts import default_json_headers
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import (
    InvalidGrantError,
    InvalidRequestError,
    OAuth2Error,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.hooks import hooked

from authserver import authorization_code as codes
from authserver import tokens, users
from authserver.models import AuthorizationCode
from authserver.security import now
from authserver.tokens import TokenSubject
from grants import AUTHORIZATION_CODE, REFRESH_TOKEN
from grants.common import (
    bound_family,
    check_dpop,
    response_headers,
    still_allowed,
    token_response,
)
from grants.dpop import InvalidDPoPProof


class PushedAuthorizationEndpoint:
    """RFC 9126 §2: ``POST /oauth/par``. The client authenticates as at the token endpoint, the
    request is validated as the authorization endpoint would, and is kept under a one-time
    ``request_uri``. A DPoP proof here binds the code to its key (RFC 9449 §10.1)."""

    ENDPOINT_NAME = "par"
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def __init__(self, server: Any) -> None:
        self.server = server

    def create_endpoint_request(self, request: Any) -> Any:
        return self.server.create_oauth2_request(request)

    def __call__(self, request: Any) -> tuple[int, dict[str, Any], list]:
        return self.create_endpoint_response(request)

    def create_endpoint_response(self, request: Any) -> tuple[int, dict[str, Any], list]:
        client = self.server.authenticate_client(request, self.CLIENT_AUTH_METHODS, "par")
        form = request.form
        params: dict[str, list[str]] = {k: form.getlist(k) for k in form}
        for secret in ("client_secret", "client_assertion", "client_assertion_type"):
            params.pop(secret, None)
        if "request_uri" in params:
            # RFC 9126 §2.1: a pushed request cannot itself point at one.
            raise InvalidRequestError("request_uri cannot be pushed.")
        params["client_id"] = [client.client_id]
        try:
            _, _, _ = codes.trusted_target(params, lambda _: client)
        except codes.NoRedirect as exc:
            raise InvalidRequestError(exc.message) from exc
        proof = check_dpop(request, client, "/oauth/par")
        if proof is not None:
            given = params.get("dpop_jkt")
            if given and given != [proof.jkt]:
                # RFC 9449 §10.1: both present, they MUST match.
                raise InvalidDPoPProof("dpop_jkt does not match the proof's key")
            params["dpop_jkt"] = [proof.jkt]
        try:
            codes.parse_request(params, client, params["redirect_uri"][0])
        except codes.RedirectError as exc:
            raise _ParError(exc.error, exc.description) from exc
        request_uri, expires_in = codes.push(params)
        body = {"request_uri": request_uri, "expires_in": expires_in}
        return 201, body, default_json_headers


class _ParError(OAuth2Error):
    """An authorization request's error, answered to the pushing client (RFC 9126 §2.3)."""

    status_code = 400

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description=description)
        self.error = error


class AuthorizationCodeGrant(grants.BaseGrant, grants.TokenEndpointMixin):
    GRANT_TYPE = AUTHORIZATION_CODE
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def validate_token_request(self) -> None:
        request = self.request
        form = request.form
        code, verifier = form.get("code"), form.get("code_verifier")
        if not code:
            raise InvalidRequestError("Missing 'code' parameter.")
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(
                "The client is not registered for the authorization code grant."
            )
        request.client = client
        # Checked before the code is looked at, so a bad proof consumes nothing.
        proof = check_dpop(request, client)
        record = codes.find_code(code)
        # RFC 6749 §4.1.3: the code was issued to this client; one of another client is as
        # unknown to this one (and stays unspent for its own client).
        if record is None or record.client_id != client.client_id:
            raise InvalidGrantError("The code is not valid.")
        if record.redeemed_at is not None:
            codes.revoke_reused(record)
            raise InvalidGrantError("The code has already been used.")
        if record.expires_at <= now():
            raise InvalidGrantError("The code has expired.")
        # RFC 6749 §4.1.3: redirect_uri identical to the authorization request's.
        if form.get("redirect_uri") != record.redirect_uri:
            raise InvalidGrantError("redirect_uri does not match the authorization request.")
        # RFC 7636 §4.5-4.6: the verifier is required, and must hash to the challenge.
        if not verifier:
            raise InvalidRequestError("Missing 'code_verifier' parameter (PKCE).")
        if not codes.verifier_matches(verifier, record.code_challenge):
            raise InvalidGrantError("code_verifier does not match the code_challenge.")
        # RFC 9449 §10: a code bound with dpop_jkt is redeemed only with a proof by that key.
        if record.dpop_jkt and (proof is None or proof.jkt != record.dpop_jkt):
            raise InvalidDPoPProof("key does not match the authorization request's dpop_jkt")
        request.credential = record
        request.dpop = proof

    @hooked
    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        request = self.request
        client = request.client
        record: AuthorizationCode = request.credential
        scope = still_allowed(client, record.scope)  # narrowed since the sign-in?
        if not codes.redeem(record):
            raise InvalidGrantError("The code has already been used.")
        user = users.get_active(record.user_id)
        if user is None or not tokens.grant_is_live(
            family_id=None, device_id=None, user_id=record.user_id
        ):
            raise InvalidGrantError("The user of this grant is no longer active.")
        who = TokenSubject(user.id, user_id=user.id, auth_time=record.auth_time, amr=record.amr)
        proof = request.dpop
        # Every code grant has a family, so that revoking it (reuse, a withdrawn consent, sign
        # out) reaches its access tokens by their sid; a refresh token only for clients that
        # are registered for the refresh grant.
        family = bound_family(client, who, scope, proof)
        body = token_response(
            client,
            who,
            scope,
            proof,
            family=family,
            on_issue=lambda issued: codes.remember_issued(record, family.id, issued.jti),
            nonce=record.nonce,
            with_refresh=client.check_grant_type(REFRESH_TOKEN),
        )
        return 200, body, response_headers(self.TOKEN_RESPONSE_HEADER, proof)
