"""``GET /api/v1/audit-events``: the tenant's security events, for TENANT.ADMIN users."""

from __future__ import annotations

from flask import Blueprint, Response

from authserver.audit import TYPES, list_events
from authserver.authorization import reads_audit_events
from authserver.problems import ForbiddenProblem
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
    pagination.only_params("limit", "cursor", "type", "deviceId")
    limit = pagination.limit_or_400(pagination.query_arg("limit"))
    type_ = pagination.query_arg("type", TYPES)
    device_id = pagination.query_arg("deviceId")
    context = "audit:desc"
    after = pagination.after_or_400(pagination.query_arg("cursor"), context)
    page = list_events(
        token.tenant_id, type_, device_id[:48] if device_id is not None else None, after, limit
    )
    return pagination.page_response(page, context, lambda es: [audit_event_json(e) for e in es])
