"""RFC 8628 device authorization grant: the device authorization endpoint and the polling grant.

Closes Authlib's gaps (shared/research/authlib-1.9-notes.md §1.2): the client must be registered
for the grant; unknown codes are ``invalid_grant``; ``slow_down`` is enforced with a poll slot
claimed atomically in the shared store, the interval growing by 5 s each time (§3.5); a code is
redeemed at most once, by a conditional UPDATE, and a second redemption revokes what the first got.
A DPoP proof at the device authorization request binds the whole transaction: redeeming needs a
proof by the same key (draft-parecki-oauth-dpop-device-flow).
"""

from __future__ import annotations

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
from sqlalchemy import select, update

from authserver import audit, device_flow, limits, metrics
from authserver.errors import TooManyRequestsError
from authserver.models import DeviceAuthorization, User, db
from authserver.security import now
from authserver.state import get_state
from authserver.text import text_problem
from authserver.tokens import (
    grant_is_live,
    jti_hash,
    revoke_access_token_by_hash,
    revoke_family,
)
from grants import DEVICE_CODE, REFRESH_TOKEN
from grants.common import (
    TokenSubject,
    check_dpop,
    new_refresh_family,
    resolve_scope,
    response_headers,
    token_response,
)
from grants.dpop import InvalidDPoPProof

POLL_TOLERANCE = 0.5


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
        # A proof here binds the transaction to the key (draft-parecki-oauth-dpop-device-flow).
        proof = check_dpop(request, client, "/oauth/device_authorization")
        started = device_flow.start(client, scope, name, info, proof.jkt if proof else None)
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
        return 200, body, default_json_headers


class DeviceCodeGrant(_Grant):
    """RFC 8628 §3.4-3.5: polling the token endpoint with ``device_code``."""

    GRANT_TYPE = DEVICE_CODE
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def validate_token_request(self) -> None:
        request = self.request
        code = request.form.get("device_code")
        if not code:
            raise InvalidRequestError("Missing 'device_code' parameter.")
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError("The client is not registered for the device_code grant.")
        request.client = client
        proof = check_dpop(request, client)

        record = db.session.scalar(
            select(DeviceAuthorization).where(
                DeviceAuthorization.device_code_hash == device_flow.device_code_hash(code)
            )
        )
        if record is None or record.client_id != client.client_id:
            raise InvalidGrantError("Unknown device_code.")
        if record.dpop_jkt and (proof is None or proof.jkt != record.dpop_jkt):
            raise InvalidDPoPProof("key does not match the device authorization request")
        if record.status == "redeemed":
            # A code redeemed twice: whoever holds the first tokens may be an attacker.
            self._revoke_issued(record)
            raise InvalidGrantError("The device_code has already been used.")
        t = now()
        if record.expires_at <= t:
            metrics.DEVICE_FLOW.labels("expired").inc()
            raise ExpiredTokenError()
        if record.status == "denied":
            raise AccessDeniedError("The user denied the request.")
        if record.status == "pending":
            self._poll(record)
            metrics.DEVICE_FLOW.labels("pending").inc()
            raise AuthorizationPendingError()
        request.credential = record
        request.dpop = proof

    def _poll(self, record: DeviceAuthorization) -> None:
        """RFC 8628 §3.5: slow_down when polled faster than the interval; +5 s each time.

        The slot is claimed atomically in the shared store, so concurrent polls in several
        processes cannot both pass. A poll answered slow_down restarts the wait with the grown
        interval; a client that then waits that interval is served, so it never stays stuck.
        """
        store = get_state().store
        slot = f"poll:{record.id}"
        # Half a second of tolerance for network jitter between a client's timer and our clock.
        if store.claim_once(slot, ttl=record.interval - POLL_TOLERANCE):
            return
        interval = min(
            record.interval + device_flow.SLOW_DOWN_STEP, get_state().settings.device_code_ttl
        )
        db.session.execute(
            update(DeviceAuthorization)
            .where(DeviceAuthorization.id == record.id)
            .values(interval=interval)
        )
        db.session.commit()
        # The interval counts from this request too: the next poll is due `interval` from now.
        # One atomic write, so the slot is never free in between for a concurrent poll.
        store.hold(slot, ttl=interval - POLL_TOLERANCE)
        metrics.DEVICE_FLOW.labels("slow_down").inc()
        raise SlowDownError()

    def _revoke_issued(self, record: DeviceAuthorization) -> None:
        audit.record(
            "device_code.reuse_detected", record.tenant_id, record.client_id, record.device_id
        )
        if record.family_id:
            revoke_family(record.family_id, "device_code_reused")
        if record.access_jti_hash:
            revoke_access_token_by_hash(record.access_jti_hash)
        db.session.commit()

    @hooked
    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        request = self.request
        client = request.client
        record: DeviceAuthorization = request.credential
        # Single redemption: only the request whose UPDATE changes the row issues tokens.
        won = db.session.execute(
            update(DeviceAuthorization)
            .where(DeviceAuthorization.id == record.id, DeviceAuthorization.status == "approved")
            .values(status="redeemed", redeemed_at=now())
        ).rowcount  # type: ignore[attr-defined]
        if won != 1:
            db.session.rollback()
            db.session.refresh(record)
            self._revoke_issued(record)
            raise InvalidGrantError("The device_code has already been used.")
        if not grant_is_live(family_id=None, device_id=record.device_id, user_id=record.user_id):
            # Blocked or deleted since approval, or the approving user deactivated.
            db.session.rollback()
            raise InvalidGrantError("The device or user of this grant is no longer active.")
        user = db.session.get(User, record.user_id) if record.user_id else None
        if client.device_subject == "user" and user is not None:
            who = TokenSubject(user.id, user_id=user.id, auth_time=record.auth_time)
        else:
            who = TokenSubject(
                record.device_id or record.id, user_id=None, device_id=record.device_id
            )
        proof = request.dpop
        family = None
        if client.check_grant_type(REFRESH_TOKEN):
            family = new_refresh_family(client, who, record.scope, proof)
            record.family_id = family.id
        body = token_response(
            client,
            who,
            record.scope,
            proof,
            family=family,
            on_issue=lambda issued: setattr(record, "access_jti_hash", jti_hash(issued.jti)),
        )
        return 200, body, response_headers(self.TOKEN_RESPONSE_HEADER, proof)
