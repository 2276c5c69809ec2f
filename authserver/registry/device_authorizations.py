"""``POST /api/v1/device-authorizations/{userCode}``: the back office's "Accept Device" (seed 000).

The same decision as the verification page and ``authserver device approve``, made with a
``devices:write`` token of the code's tenant. A user token acts as that user; a service token can
approve enrolment of kiosks (device-subject clients), never a person's sign-in.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from authserver import device_flow
from authserver.limits import SlotLimiter
from authserver.models import User
from authserver.registry.access import require_registry_token, token_actor
from authserver.registry.bodies import json_body
from authserver.registry.problems import (
    ConflictProblem,
    NotFoundProblem,
    TooManyRequestsProblem,
    ValidationProblem,
)
from authserver.state import get_state

bp = Blueprint("device_authorizations", __name__)

FAILURES_PER_CLIENT = 10
FAILURE_WINDOW = 600
_STATUS = {
    "blocked": 409,
    "claimed": 409,
    "decided": 409,
    "expired": 409,
    "wrong_tenant": 404,
    "invalid_client": 409,
    "user_required": 409,
}


def _body() -> dict[str, Any]:
    data = json_body()
    allowed = {"decision", "locationId", "tillId", "name"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValidationProblem(f"Unknown field(s): {', '.join(unknown)}.")
    if data.get("decision") not in ("approve", "deny"):
        raise ValidationProblem('decision must be "approve" or "deny".')
    for field in ("locationId", "tillId", "name"):
        if data.get(field) is not None and not isinstance(data[field], str):
            raise ValidationProblem(f"{field} must be a string.")
    return data


@bp.post("/api/v1/device-authorizations/<user_code>")
@require_registry_token(write=True)
def decide(user_code: str) -> Response:
    token, user = token_actor()
    data = _body()
    limiter = SlotLimiter(get_state().store, "dvaapi", FAILURES_PER_CLIENT, FAILURE_WINDOW)
    slot = limiter.acquire(token.client_id)
    if slot is None:
        raise TooManyRequestsProblem(
            "Too many unknown codes; retry later.", retryAfter=FAILURE_WINDOW
        )
    record = device_flow.find_live(user_code[:64])
    if record is None or record.tenant_id != token.tenant_id:
        # The slot stays taken. Another tenant's code is as unknown as a wrong one: nothing leaks across tenants.
        raise NotFoundProblem("No pending device authorization with this code.")
    limiter.release(slot)
    try:
        done = device_flow.decide(
            record,
            user,
            data["decision"] == "approve",
            data.get("locationId"),
            data.get("tillId"),
            data.get("name"),
            actor_id=token.client_id if user is None else None,
        )
    except device_flow.DecisionError as exc:
        status = _STATUS.get(exc.code, 400)
        problem = (
            ConflictProblem
            if status == 409
            else (NotFoundProblem if status == 404 else ValidationProblem)
        )
        raise problem(str(exc), code=exc.code) from exc
    return jsonify(
        data={
            "decision": "approved" if done.status == "approved" else "denied",
            "clientId": done.client_id,
            "deviceId": done.device_id,
            "scope": done.scope,
            "decidedBy": (user.id if isinstance(user, User) else token.client_id),
        }
    )
