"""Staff sign-in on a linked terminal (seed 000 "device users"): a member of staff signs in on a
POS terminal that holds its own device token.

``urn:authserver:params:oauth:grant-type:staff-sign-in`` at the token endpoint, by the terminal's
client, with

- ``actor_token``: the terminal's own access token (``actor_token_type``
  ``urn:ietf:params:oauth:token-type:access_token``), and, when that token is DPoP-bound, a DPoP
  proof by the same key;
- the staff member's ``staff_code`` (or ``username``) and ``password``, and ``totp`` when they
  have a second factor.

The answer has RFC 8693's shape (§2.2.1: ``issued_token_type``) and the access token says who acts
(§4.1): ``sub`` is the staff member, ``act.sub`` the device. It is bound to the device's key,
short-lived, without a refresh token, and it names both the user and the device (``uid``,
``did``): deactivating the user or blocking the device revokes it at once. Only someone allowed on
that device may sign in (a role for the whole tenant or at one of its locations, as
``/devices/me/users`` lists). RFC 8693's own grant type is not used: it requires a
``subject_token``, and here the subject proves who they are with their credentials instead.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import (
    InvalidGrantError,
    InvalidRequestError,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.hooks import hooked

from authserver import audit, authorization, users
from authserver.devices import locations_of
from authserver.errors import TooManyAttemptsError
from authserver.limits import Throttled, charge, sign_in
from authserver.models import Device, DeviceStatus, db
from authserver.security import verify_password
from authserver.state import get_state
from authserver.tokens import access_token_is_live, find_access_token, issue_access_token
from grants import STAFF_SIGN_IN
from grants.common import check_dpop, resolve_scope, response_headers, second_factor
from grants.dpop import InvalidDPoPProof

ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
STAFF_TOKEN_SECONDS = 900  # a shift's sign-in is renewed by signing in again, not refreshed


class StaffSignInGrant(grants.BaseGrant, grants.TokenEndpointMixin):
    GRANT_TYPE = STAFF_SIGN_IN
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def validate_token_request(self) -> None:
        form = self.request.form
        if not form.get("actor_token") or not form.get("password"):
            raise InvalidRequestError("actor_token and password are required.")
        if form.get("actor_token_type") != ACCESS_TOKEN_TYPE:
            raise InvalidRequestError(f"actor_token_type must be {ACCESS_TOKEN_TYPE}.")
        if not (form.get("staff_code") or form.get("username")):
            raise InvalidRequestError("staff_code or username is required.")
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError("The client is not registered for staff sign-in.")
        self.request.client = client
        self.request.dpop = check_dpop(self.request, client)

    @hooked
    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        request, form = self.request, self.request.form
        client, proof = request.client, request.dpop
        granted = resolve_scope(client, request.payload.scope)
        # The actor: this client's live token for an ACTIVE device of its tenant.
        actor = find_access_token(form["actor_token"])
        if (
            actor is None
            or not access_token_is_live(actor)
            or actor.device_id is None
            or actor.subject != actor.device_id
            or actor.client_id != client.client_id
            or actor.tenant_id != client.tenant_id
        ):
            raise InvalidGrantError("The actor token is not a live device token of this client.")
        if actor.jkt is not None and (proof is None or proof.jkt != actor.jkt):
            # RFC 9449 §7: a bound token is only good with a proof by its key.
            raise InvalidDPoPProof("the proof must be made with the device's DPoP key")
        device = db.session.get(Device, actor.device_id)
        if device is None or device.deleted_at is not None or device.status != DeviceStatus.ACTIVE:
            raise InvalidGrantError("The device is not active.")

        state, s = get_state(), get_state().settings
        staff_code, username = form.get("staff_code"), form.get("username")
        account = f"code:{staff_code}" if staff_code else f"login:{username}"
        ip = request.remote_addr or "-"
        try:  # charged before any lookup or argon2 work, as every sign-in
            attempt = charge(state.store, sign_in(s, "staff", client.tenant_id, account, ip))
        except Throttled as exc:
            raise TooManyAttemptsError(exc.retry_after) from exc
        if staff_code:
            user = users.find_by_staff_code(device.tenant_id, staff_code)
        else:
            user = users.find_by_login(device.tenant_id, username or "")
        # Always one argon2 verification, so timing does not tell an unknown user.
        password_ok = verify_password(form["password"], user.password_hash if user else None)
        if not (user is not None and user.active and password_ok):
            raise InvalidGrantError("The staff code, login or password is wrong.")
        amr = second_factor(user, form.get("totp"), attempt)
        if not authorization.may_sign_in_on(user, set(locations_of([device.id])[device.id])):
            attempt.succeeded()  # right credentials; a matter of rights, not a guess
            raise InvalidGrantError("This user may not sign in on this device.")
        issued = issue_access_token(
            client,
            subject=user.id,
            scope=granted,
            user_id=user.id,
            device_id=device.id,
            jkt=actor.jkt,
            amr=amr.split(),
            act={"sub": device.id},
            ttl=STAFF_TOKEN_SECONDS,
        )
        device.last_tenant_user_id = user.id  # seed 000: who last signed in on it
        audit.record("device.staff_signed_in", device.tenant_id, user.id, device.id,
                     user_id=user.id, amr=amr)  # fmt: skip
        db.session.commit()
        attempt.succeeded()
        body: dict[str, Any] = {
            "access_token": issued.token,
            "issued_token_type": ACCESS_TOKEN_TYPE,  # RFC 8693 §2.2.1
            "token_type": issued.token_type,
            "expires_in": issued.expires_in,
            "scope": issued.scope,
        }
        return 200, body, response_headers(self.TOKEN_RESPONSE_HEADER, proof)
