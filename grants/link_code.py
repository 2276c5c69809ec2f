"""The link-code grant (seed 000 "Link a physical device"): a terminal pre-registered in the
back office is linked once with its link code plus a staff member's staff code (seed 000 calls it
"user code") or login, and password, and gets device tokens, bound to its DPoP key when it
presents a proof.

``urn:authserver:params:oauth:grant-type:link-code`` at the token endpoint (parameters
``link_code``, ``staff_code`` or its seed-000 name ``user_code``, or ``username``, and
``password``, and ``totp`` for a user with a second factor), and the same ``link_device`` behind ``POST /api/v1/devices/{linkCode}/link``.
Wrong code, user or password all give one ``invalid_grant``; guesses are limited per link code,
per address and network and per account; the link code is consumed by
``registry.service.consume_link_code``, so it links one terminal at most.
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

from authserver import credentials, users
from authserver.device_flow import MAX_SYSTEM_INFORMATION
from authserver.devices import consume_link_code, find_linkable
from authserver.errors import TooManyAttemptsError
from authserver.limits import Limit, Throttled, charge, sign_in
from authserver.models import OAuthClient
from authserver.security import verify_password
from authserver.state import get_state
from authserver.tokens import TokenSubject
from grants import LINK_CODE, REFRESH_TOKEN
from grants.common import (
    bound_family,
    check_dpop,
    resolve_scope,
    response_headers,
    second_factor,
    token_response,
)
from grants.dpop import DPoPProof


def link_device(
    client: OAuthClient,
    *,
    link_code: str,
    password: str,
    staff_code: str | None,
    username: str | None,
    system_information: str | None,
    proof: DPoPProof | None,
    ip: str,
    scope: str | None = None,
    totp_code: str | None = None,
) -> dict[str, Any]:
    """Link the device behind ``link_code`` and issue its tokens; raises OAuth2Error."""
    granted = resolve_scope(client, scope)
    state = get_state()
    s = state.settings
    # Charged before anything is checked (no lookup, no argon2 work while a limit is full), so
    # concurrent guesses cannot exceed the limits: per address and network, per account as typed
    # (whatever address the guesses come from), per link code.
    account = f"code:{staff_code}" if staff_code else f"login:{username}"
    charges = sign_in(
        s,
        "link",
        client.tenant_id,
        account,
        ip,
        per_ip=(s.link_failures_per_ip, s.link_failure_window),
    )
    code_limit = Limit("link-code", s.link_failures_per_code, s.link_failure_window, "link code")
    charges.append((code_limit, credentials.link_code_hash(link_code)))
    try:
        attempt = charge(state.store, charges)
    except Throttled as exc:
        raise TooManyAttemptsError(exc.retry_after) from exc

    device = find_linkable(client.tenant_id, link_code)
    user = None
    if device is not None:
        if staff_code:
            user = users.find_by_staff_code(device.tenant_id, staff_code)
        elif username:
            user = users.find_by_login(device.tenant_id, username)
    # Always one argon2 verification, so timing does not tell a wrong code from a wrong password.
    password_ok = verify_password(password, user.password_hash if user else None)
    if not (device is not None and user is not None and user.active and password_ok):
        raise InvalidGrantError("The link code, user or password is wrong.")  # charges stay
    second_factor(user, totp_code, attempt)  # every interactive sign-in asks for it
    jkt = proof.jkt if proof else None
    if not consume_link_code(device, user, client.client_id, jkt, system_information):
        raise InvalidGrantError("The link code, user or password is wrong.")
    who = TokenSubject(device.id, device_id=device.id)
    family = None
    if client.check_grant_type(REFRESH_TOKEN):
        family = bound_family(client, who, granted, proof)
    body = token_response(client, who, granted, proof, family=family)
    # Given back only after the commit: on SQLite a store write while this transaction held the
    # database would wait for itself.
    attempt.succeeded()
    return body


class LinkCodeGrant(grants.BaseGrant, grants.TokenEndpointMixin):
    GRANT_TYPE = LINK_CODE
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def validate_token_request(self) -> None:
        form = self.request.form
        if not form.get("link_code") or not form.get("password"):
            raise InvalidRequestError("link_code and password are required.")
        if form.get("staff_code") and form.get("user_code"):
            raise InvalidRequestError("Send staff_code or user_code, not both.")
        if not (form.get("staff_code") or form.get("user_code") or form.get("username")):
            raise InvalidRequestError("staff_code (or user_code) or username is required.")
        if len(form.get("system_information") or "") > MAX_SYSTEM_INFORMATION:
            # The same bound as the link URL and the device authorization request.
            raise InvalidRequestError("system_information is too long.")
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError("The client is not registered for the link-code grant.")
        self.request.client = client
        self.request.dpop = check_dpop(self.request, client)

    @hooked
    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        form = self.request.form
        proof = self.request.dpop
        body = link_device(
            self.request.client,
            link_code=form["link_code"],
            password=form["password"],
            staff_code=form.get("staff_code") or form.get("user_code"),
            username=form.get("username"),
            system_information=form.get("system_information"),
            proof=proof,
            scope=self.request.payload.scope,
            ip=self.request.remote_addr or "-",
            totp_code=form.get("totp"),
        )
        return 200, body, response_headers(self.TOKEN_RESPONSE_HEADER, proof)
