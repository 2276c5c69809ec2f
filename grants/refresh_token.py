"""RFC 6749 §6 refresh, rotated on every use, with reuse detection (RFC 9700 §4.14.2).

Every refresh token belongs to a family (one grant). Using a token marks it used and issues its
successor in the same transaction, by a conditional UPDATE, so of two simultaneous refreshes with
one token at most one succeeds. Presenting a token that was already rotated out revokes the family:
the current refresh token and every access token issued from it. All state is in the database, so
it holds across processes and restarts. Public clients' families are bound to their DPoP key
(RFC 9449 §5): refreshing needs a proof by that key.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.hooks import hooked

from authserver.tokens import (
    RefreshTokenRecord,
    Rotation,
    TokenSubject,
    find_refresh_token,
    reuse_detected,
    rotate_refresh_token,
)
from grants.common import check_dpop, response_headers, still_allowed, token_response
from grants.dpop import InvalidDPoPProof


class RefreshTokenGrant(grants.RefreshTokenGrant):
    # Public device clients refresh too (Authlib's default allows only client_secret_basic).
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def validate_token_request(self) -> None:
        request = self.request
        value = request.form.get("refresh_token")
        if not value:
            raise InvalidRequestError("Missing 'refresh_token' parameter.")
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(
                "The client is not registered for the refresh_token grant."
            )
        request.client = client
        proof = check_dpop(request, client)

        record = find_refresh_token(value)
        if record is None or not record.check_client(client):
            raise InvalidGrantError("Unknown refresh token.")
        fam = record.family
        if record.used_at is not None and fam.revoked_at is None:
            # RFC 9700 §4.14.2: a rotated-out token came back; someone holds a copy.
            reuse_detected(fam)
            raise InvalidGrantError("The refresh token was already used; the grant is revoked.")
        if record.is_revoked() or record.is_expired():
            raise InvalidGrantError("The refresh token is no longer valid.")
        if fam.jkt and (proof is None or proof.jkt != fam.jkt):
            # RFC 9449 §5: a bound refresh token needs a proof by the same key.
            raise InvalidDPoPProof("key does not match the refresh token's binding")
        if (
            record.device_origin == "link"
            and record.device_jkt
            and (proof is None or proof.jkt != record.device_jkt)
        ):
            # A terminal linked with a DPoP key stays bound to it whatever its client is (the
            # link grant's promise); elsewhere RFC 9449 §5 binds public clients' families only.
            raise InvalidDPoPProof("key does not match the device's key")
        if not record.grant_is_live():
            # A grant dies with its device (blocked, unlinked, deleted) or user (deactivated).
            raise InvalidGrantError("The device or user of this grant is no longer active.")

        granted = fam.scope.split()
        requested = request.payload.scope
        if requested is not None:
            # RFC 6749 §6: the scope may only narrow.
            if any(s not in granted for s in requested.split(" ")):
                raise InvalidScopeError("The requested scope exceeds the original grant.")
            scope = " ".join(s for s in granted if s in requested.split(" "))
        else:
            scope = fam.scope
        scope = still_allowed(client, scope)  # the client's scope may have narrowed since
        request.refresh_token = record
        request.scope = scope
        request.dpop = proof

    @hooked
    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        request = self.request
        record: RefreshTokenRecord = request.refresh_token
        outcome, successor = rotate_refresh_token(record)
        if outcome is Rotation.REVOKED:
            raise InvalidGrantError("The refresh token is no longer valid.")
        if outcome is Rotation.REUSED:
            raise InvalidGrantError("The refresh token was already used; the grant is revoked.")
        fam = record.family
        who = TokenSubject(
            fam.subject,
            user_id=fam.user_id,
            device_id=fam.device_id,
            auth_time=fam.auth_time,
            amr=fam.amr,
            module=fam.module_id,
        )
        proof = request.dpop
        body = token_response(request.client, who, request.scope, proof, family=fam,
                              refresh_token=successor)  # fmt: skip
        return 200, body, response_headers(self.TOKEN_RESPONSE_HEADER, proof)
