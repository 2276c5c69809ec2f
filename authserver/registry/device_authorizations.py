"""``POST /api/v1/device-authorizations/{userCode}``: the back office's "Accept Device" (seed 000).

The same decision as the verification page and ``authserver device approve``, made with a
``devices:write`` token of the code's tenant. A user token acts as that user; a service token can
approve enrolment of kiosks (device-subject clients), never a person's sign-in.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from authserver import device_flow
from authserver.limits import Throttled, account_code_entry
from authserver.models import User
from authserver.problems import (
    NotFoundProblem,
    TooManyRequestsProblem,
)
from authserver.registry import schema
from authserver.registry.access import require_registry_token, token_actor
from authserver.registry.bodies import json_body
from authserver.state import get_state

bp = Blueprint("device_authorizations", __name__)


@bp.post("/api/v1/device-authorizations/<user_code>")
@require_registry_token(write=True)
def decide(user_code: str) -> Response:
    token, user = token_actor()
    data = schema.DECISION.parse(json_body())
    account = user.id if user is not None else token.client_id
    try:
        record = device_flow.lookup(
            user_code[:64],
            account_code_entry(get_state().settings, token.tenant_id, account),
            tenant_id=token.tenant_id,
        )
    except Throttled as exc:
        raise TooManyRequestsProblem(
            "Too many unknown codes; retry later.", exc.retry_after
        ) from exc
    if record is None:
        # Another tenant's code is as unknown as a wrong one: nothing leaks across tenants.
        raise NotFoundProblem("No pending device authorization with this code.")
    # A refused decision is a named problem (authserver.problems) with its own status.
    done = device_flow.decide(
        record,
        user,
        data["decision"] == "approve",
        data.get("locationId"),
        data.get("tillId"),
        data.get("name"),
        actor_id=token.client_id if user is None else None,
        module_id=data.get("moduleId"),
    )
    return jsonify(
        data={
            "decision": str(done.status),
            "clientId": done.client_id,
            "deviceId": done.device_id,
            "moduleId": done.module_id,
            "scope": done.scope,
            "decidedBy": (user.id if isinstance(user, User) else token.client_id),
        }
    )
