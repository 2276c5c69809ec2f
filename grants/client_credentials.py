"""RFC 6749 §4.4 client credentials, for back-end services. Confidential clients only."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.hooks import hooked

from grants.common import (
    TokenSubject,
    check_dpop,
    resolve_scope,
    response_headers,
    token_response,
)


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    # RFC 6749 §4.4: the client credentials grant MUST only be used by confidential clients.
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def validate_token_request(self) -> None:
        super().validate_token_request()
        self.request.scope = resolve_scope(self.request.client, self.request.payload.scope)
        self.request.dpop = check_dpop(self.request, self.request.client)

    @hooked
    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        client = self.request.client
        # RFC 9068 §2.2: with no resource owner, sub identifies the client.
        proof = self.request.dpop
        body = token_response(client, TokenSubject(client.client_id), self.request.scope, proof)
        return 200, body, response_headers(self.TOKEN_RESPONSE_HEADER, proof)
