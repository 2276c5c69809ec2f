"""``GET /api/v1/audit-events``: the tenant's security events, for TENANT.ADMIN users."""

from __future__ import annotations

from flask import Blueprint, Response, request

from authserver.audit import TYPES, list_events
from authserver.authorization import reads_audit_events
from authserver.problems import ForbiddenProblem, ValidationProblem
from authserver.registry import pagination
from authserver.registry.access import require_registry_token, token_actor
from authserver.registry.serialize import audit_event_json

bp = Blueprint("audit_events", __name__)


@bp.get("/api/v1/audit-events")
@require_registry_token()
def list_all() -> Response:
    token, user = token_actor()
    if user is None or not reads_audit_events(user):
        raise ForbiddenProblem("Audit events are for users with the role TENANT.ADMIN.")
    limit = pagination.limit_or_400(request.args.get("limit"))
    type_ = request.args.get("type")
    if type_ is not None and type_ not in TYPES:
        raise ValidationProblem(f"type must be one of {', '.join(TYPES)}.")
    device_id = request.args.get("deviceId")
    context = "audit:desc"
    after = pagination.after_or_400(request.args.get("cursor"), context)
    page = list_events(
        token.tenant_id, type_, device_id[:48] if device_id is not None else None, after, limit
    )
    return pagination.page_response(page, context, lambda es: [audit_event_json(e) for e in es])
