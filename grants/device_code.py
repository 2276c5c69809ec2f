"""RFC 8628 device authorization grant: the device authorization endpoint and the polling grant.

Closes Authlib's gaps (shared/research/authlib-1.9-notes.md §1.2): the client must be registered
for the grant; unknown codes are ``invalid_grant``; ``slow_down`` is enforced with a poll slot
claimed atomically in the shared store, the interval growing by 5 s each time (§3.5); a code is
redeemed at most once, by a conditional UPDATE, and a second redemption revokes what the first got.
A DPoP proof at the device authorization request binds the whole transaction: redeeming needs a
proof by the same key (draft-parecki-oauth-dpop-device-flow).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from authlib.consts import default_json_headers
from authlib.oauth2.rfc6749.errors import (
    AccessDeniedError,
    InvalidGrantError,
    InvalidRequestError,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.hooks import hooked
from authlib.oauth2.rfc8628 import DeviceAuthorizationEndpoint as _Endpoint
from authlib.oauth2.rfc8628 import DeviceCodeGrant as _Grant
from authlib.oauth2.rfc8628.errors import (
    AuthorizationPendingError,
    ExpiredTokenError,
    SlowDownError,
)

from authserver import device_flow, limits, metrics, modules
from authserver.errors import TooManyRequestsError
from authserver.models import AuthorizationStatus, DeviceAuthorization
from authserver.problems import ValidationProblem
from authserver.security import now
from authserver.state import get_state
from authserver.text import text_problem
from grants import DEVICE_CODE, REFRESH_TOKEN
from grants.common import (
    bound_family,
    check_dpop,
    resolve_scope,
    response_headers,
    still_allowed,
    token_response,
)
from grants.dpop import InvalidDPoPProof

DEVICE_IDENTIFIER = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _device_identifier(form: Any) -> str | None:
    """The identifier a device gives itself (seed 000 ``deviceIdentifier``; ``device_identifier``
    in this endpoint's own spelling): 1-64 of A-Z a-z 0-9 _ -."""
    ours, seeds = form.get("device_identifier"), form.get("deviceIdentifier")
    if ours is not None and seeds is not None and ours != seeds:
        raise InvalidRequestError("Send device_identifier or deviceIdentifier, not both.")
    value = ours if ours is not None else seeds
    if value is not None and not DEVICE_IDENTIFIER.fullmatch(value):
        raise InvalidRequestError("device_identifier is 1-64 of A-Z a-z 0-9 _ -.")
    return value


class DeviceAuthorizationEndpoint(_Endpoint):
    """RFC 8628 §3.1-3.2: ``POST /oauth/device_authorization``."""

    def create_endpoint_response(self, request: Any) -> tuple[int, dict[str, Any], list]:
        client = self.authenticate_client(request)
        if not client.check_grant_type(DEVICE_CODE):
            raise UnauthorizedClientError("The client is not registered for the device_code grant.")
        # Every request creates a transaction: limited per client and per address (review F8).
        state = get_state()
        charges = limits.device_authorization(
            state.settings, client.client_id, request.remote_addr or "-"
        )
        try:
            limits.charge(state.store, charges)
        except limits.Throttled as exc:
            raise TooManyRequestsError(exc.retry_after) from exc
        scope = resolve_scope(client, request.payload.scope)
        form = request.form
        name = form.get("device_name")
        if name is not None:
            if len(name) > device_flow.MAX_DEVICE_NAME:
                raise InvalidRequestError("device_name is longer than 100 characters.")
            # Shown to the approver on /device: nothing that disguises it (review F12).
            if problem := text_problem(name):
                raise InvalidRequestError(f"device_name {problem}.")
        info = form.get("system_information")
        if info is not None and len(info) > device_flow.MAX_SYSTEM_INFORMATION:
            raise InvalidRequestError("system_information is too long.")
        # Shown to the approver too: nothing that disguises the text (no control character at
        # all: the form layer refuses those in every parameter, line breaks included).
        if info is not None and (problem := text_problem(info)):
            raise InvalidRequestError(f"system_information {problem}.")
        identifier = _device_identifier(form)
        module_id = form.get("module")
        if module_id is not None:
            # The device enrols as this module of the client's tenant (seed 002); only a kiosk
            # (a device-subject client) can, and only as a module that exists.
            if client.device_subject != "device":
                raise InvalidRequestError("Only a device enrolment can name a module.")
            try:
                modules.enrolment_check(client.tenant_id, module_id)
            except ValidationProblem as exc:
                raise InvalidRequestError(f"module: {exc.detail}") from exc
        # A proof here binds the transaction to the key (draft-parecki-oauth-dpop-device-flow).
        proof = check_dpop(request, client, "/oauth/device_authorization")
        started = device_flow.start(
            client, scope, name, info, proof.jkt if proof else None, module_id, identifier
        )
        settings = get_state().settings
        verification_uri = f"{settings.issuer}/device"
        body = {
            "device_code": started.device_code,
            "user_code": started.user_code,
            "verification_uri": verification_uri,
            "verification_uri_complete": f"{verification_uri}?"
            + urlencode({"user_code": started.user_code}),
            "expires_in": settings.device_code_ttl,
            "interval": settings.device_poll_interval,
        }
        # As at the token endpoint: the next nonce when the client's is about to roll (§8.2).
        return 200, body, response_headers(default_json_headers, proof)


class DeviceCodeGrant(_Grant):
    """RFC 8628 §3.4-3.5: polling the token endpoint with ``device_code``.

    Authlib's own seams (``query_device_credential``, ``query_user_grant``,
    ``should_slow_down``) cannot express single redemption or reuse revocation, so the two
    template methods are overridden whole; each step is ``authserver.device_flow``'s.
    """

    GRANT_TYPE = DEVICE_CODE
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def validate_token_request(self) -> None:
        request = self.request
        code = request.form.get("device_code")
        if not code:
            raise InvalidRequestError("Missing 'device_code' parameter.")
        # The transaction's store entries are read with the client authentication (one round
        # trip): a pending poll then needs no database read.
        code_hash, request.prefetch = device_flow.poll_keys(code)
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError("The client is not registered for the device_code grant.")
        request.client = client
        proof = check_dpop(request, client)

        found = device_flow.find_for_client(client, code_hash, request.prefetched)
        if found is None:
            raise InvalidGrantError("Unknown device_code.")
        if found.dpop_jkt and (proof is None or proof.jkt != found.dpop_jkt):
            raise InvalidDPoPProof("key does not match the device authorization request")
        if found.status == AuthorizationStatus.REDEEMED:
            redeemed = device_flow.get(found.id)
            if redeemed is not None:
                device_flow.revoke_reused(redeemed)
            raise InvalidGrantError("The device_code has already been used.")
        if found.expires_at <= now():
            metrics.DEVICE_FLOW.labels("expired").inc()
            raise ExpiredTokenError()
        if found.status == AuthorizationStatus.DENIED:
            raise AccessDeniedError("The user denied the request.")
        if found.status == AuthorizationStatus.PENDING:
            if device_flow.poll(found) is device_flow.Poll.SLOW_DOWN:
                metrics.DEVICE_FLOW.labels("slow_down").inc()
                raise SlowDownError()
            metrics.DEVICE_FLOW.labels("pending").inc()
            raise AuthorizationPendingError()
        # Approved: the whole record, for the single redemption and the tokens.
        record = device_flow.get(found.id)
        if record is None:  # purged a moment ago
            raise InvalidGrantError("Unknown device_code.")
        request.credential = record
        request.dpop = proof

    @hooked
    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        request = self.request
        client = request.client
        record: DeviceAuthorization = request.credential
        scope = still_allowed(client, record.scope)  # narrowed since the request?
        if not device_flow.redeem(record):
            raise InvalidGrantError("The device_code has already been used.")
        who = device_flow.token_subject(record, client)
        if who is None:
            raise InvalidGrantError("The device or user of this grant is no longer active.")
        proof = request.dpop
        family = None
        if client.check_grant_type(REFRESH_TOKEN):
            family = bound_family(client, who, scope, proof)
        body = token_response(
            client,
            who,
            scope,
            proof,
            family=family,
            on_issue=lambda issued: device_flow.remember_issued(
                record, family.id if family else None, issued.jti
            ),
        )
        return 200, body, response_headers(self.TOKEN_RESPONSE_HEADER, proof)
