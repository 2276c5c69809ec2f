"""The link-code grant (seed 000 "Link a physical device"): a terminal pre-registered in the
back office is linked once with its link code plus a staff member's user code (or login) and
password, and gets device tokens, bound to its DPoP key when it presents a proof.

``urn:authserver:params:oauth:grant-type:link-code`` at the token endpoint, and the same
``link_device`` behind ``POST /api/v1/devices/{linkCode}/link``. Wrong code, user or password all
give one ``invalid_grant``; guesses are limited per link code and per address; a link code is
consumed by a conditional UPDATE, so it links one terminal at most.
"""

from __future__ import annotations

import secrets
from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import (
    InvalidGrantError,
    InvalidRequestError,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.hooks import hooked
from sqlalchemy import select, update

from authserver import audit
from authserver.admin import user_code_hash
from authserver.errors import TooManyAttemptsError
from authserver.limits import Limit, Throttled, charge, sign_in
from authserver.models import Client, Device, User, db
from authserver.registry.service import link_code_hash
from authserver.security import now, verify_password
from authserver.state import get_state
from grants import LINK_CODE, REFRESH_TOKEN
from grants.common import (
    TokenSubject,
    check_dpop,
    new_refresh_family,
    resolve_scope,
    response_headers,
    token_response,
)
from grants.dpop import DPoPProof

MAX_FIELD = 1024


def link_device(
    client: Client,
    *,
    link_code: str,
    password: str,
    user_code: str | None,
    username: str | None,
    system_information: str | None,
    proof: DPoPProof | None,
    ip: str,
    scope: str | None = None,
) -> dict[str, Any]:
    """Link the device behind ``link_code`` and issue its tokens; raises OAuth2Error."""
    granted = resolve_scope(client, scope)
    state = get_state()
    s = state.settings
    # Charged before anything is checked (no lookup, no argon2 work while a limit is full), so
    # concurrent guesses cannot exceed the limits: per address and network, per account as typed
    # (whatever address the guesses come from), per link code.
    account = f"code:{user_code}" if user_code else f"login:{username}"
    charges = sign_in(
        s,
        "link",
        client.tenant_id,
        account,
        ip,
        per_ip=(s.link_failures_per_ip, s.link_failure_window),
    )
    code_limit = Limit("link-code", s.link_failures_per_code, s.link_failure_window, "link code")
    charges.append((code_limit, link_code_hash(link_code)))
    try:
        attempt = charge(state.store, charges)
    except Throttled as exc:
        raise TooManyAttemptsError(exc.retry_after) from exc

    t = now()
    hashed = link_code_hash(link_code)
    device = db.session.scalar(select(Device).where(Device.link_code_hash == hashed))
    usable = (
        device is not None
        and device.deleted_at is None
        and device.status == "READY_TO_LINK"
        and (device.link_code_expires_at or 0) > t
        and device.tenant_id == client.tenant_id
    )
    user = None
    if usable and device is not None:
        if user_code:
            user = db.session.scalar(
                select(User).where(
                    User.tenant_id == device.tenant_id,
                    User.user_code_hash == user_code_hash(device.tenant_id, user_code),
                )
            )
        elif username:
            user = db.session.scalar(
                select(User).where(User.tenant_id == device.tenant_id, User.login == username)
            )
    # Always one argon2 verification, so timing does not tell a wrong code from a wrong password.
    password_ok = verify_password(password, user.password_hash if user else None)
    if not (usable and user is not None and user.active and password_ok):
        raise InvalidGrantError("The link code, user or password is wrong.")  # charges stay
    assert device is not None and user is not None

    # Consume the link code: only one request can move the device out of READY_TO_LINK.
    won = db.session.execute(
        update(Device)
        .where(
            Device.id == device.id,
            Device.link_code_hash == hashed,
            Device.status == "READY_TO_LINK",
        )
        .values(
            status="ACTIVE",
            link_code_hash=None,
            link_code_expires_at=None,
            identifier=secrets.token_hex(16),
            dpop_jkt=proof.jkt if proof else None,
            system_information=system_information or device.system_information,
            last_tenant_user_id=user.id,
            updated_at=t,
            updated_by=user.id,
        )
    ).rowcount  # type: ignore[attr-defined]
    if won != 1:
        db.session.rollback()
        raise InvalidGrantError("The link code, user or password is wrong.")
    audit.record(
        "device.linked",
        device.tenant_id,
        user.id,
        device.id,
        client_id=client.client_id,
        dpop_jkt=proof.jkt if proof else None,
    )
    who = TokenSubject(device.id, device_id=device.id)
    family = None
    if client.check_grant_type(REFRESH_TOKEN):
        family = new_refresh_family(client, who, granted, proof)
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
        if not (form.get("user_code") or form.get("username")):
            raise InvalidRequestError("user_code or username is required.")
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
            user_code=form.get("user_code"),
            username=form.get("username"),
            system_information=form.get("system_information"),
            proof=proof,
            scope=self.request.payload.scope,
            ip=self.request.remote_addr or "-",
        )
        return 200, body, response_headers(self.TOKEN_RESPONSE_HEADER, proof)
