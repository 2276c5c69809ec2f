"""``GET /api/v1/audit-events``: the tenant's security events, for TENANT.ADMIN users."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import and_, or_, select

from authserver.audit import TYPES
from authserver.models import AuditEvent, db
from authserver.registry import pagination
from authserver.registry.access import require_registry_token, token_actor
from authserver.registry.problems import ForbiddenProblem, ValidationProblem
from authserver.registry.service import iso

bp = Blueprint("audit_events", __name__)


@bp.get("/api/v1/audit-events")
@require_registry_token()
def list_events() -> Response:
    token, user = token_actor()
    if user is None or "TENANT.ADMIN" not in (user.roles or []):
        raise ForbiddenProblem("Audit events are for users with the role TENANT.ADMIN.")
    limit = pagination.limit_or_400(request.args.get("limit"))
    query = select(AuditEvent).where(AuditEvent.tenant_id == token.tenant_id)
    if (type_ := request.args.get("type")) is not None:
        if type_ not in TYPES:
            raise ValidationProblem(f"type must be one of {', '.join(TYPES)}.")
        query = query.where(AuditEvent.type == type_)
    if (device_id := request.args.get("deviceId")) is not None:
        query = query.where(AuditEvent.device_id == device_id[:48])
    context = "audit:desc"
    if after := pagination.after_or_400(request.args.get("cursor"), context):
        value, last_id = after
        query = query.where(
            or_(
                AuditEvent.created_at < value,
                and_(AuditEvent.created_at == value, AuditEvent.id < last_id),
            )
        )
    rows = list(
        db.session.scalars(
            query.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc()).limit(limit + 1)
        )
    )
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = pagination.encode(rows[-1].created_at, rows[-1].id, context) if has_more else None
    data = [
        {
            "id": e.id,
            "type": e.type,
            "deviceId": e.device_id,
            "actor": e.actor,
            "data": e.data,
            "createdAt": iso(e.created_at),
        }
        for e in rows
    ]
    return jsonify(data=data, nextCursor=next_cursor, hasMore=has_more)
