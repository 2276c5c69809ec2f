"""``/api/v1/locations``: stores, venues and warehouses of the tenant."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from sqlalchemy import and_, or_, select

from authserver.models import Location, db
from authserver.registry import pagination
from authserver.registry.access import require_registry_token, token_actor
from authserver.registry.bodies import json_body, required_name
from authserver.registry.problems import ValidationProblem
from authserver.registry.service import (
    LOCATION_KINDS,
    delete_location,
    get_location,
    location_json,
)
from authserver.security import new_id, now

bp = Blueprint("locations", __name__)


def _fields(body: dict[str, Any], creating: bool) -> dict[str, Any]:
    unknown = sorted(set(body) - {"name", "kind"})
    if unknown:
        raise ValidationProblem(f"Unknown field(s): {', '.join(unknown)}.")
    data: dict[str, Any] = {}
    if creating or "name" in body:
        data["name"] = required_name(body, "name", 200)
    if "kind" in body or creating:
        kind = body.get("kind", "store")
        if kind not in LOCATION_KINDS:
            raise ValidationProblem(f"kind must be one of {', '.join(LOCATION_KINDS)}.")
        data["kind"] = kind
    return data


@bp.get("/api/v1/locations")
@require_registry_token()
def list_locations() -> Response:
    from flask import request

    token, _ = token_actor()
    limit = pagination.limit_or_400(request.args.get("limit"))
    query = select(Location).where(Location.tenant_id == token.tenant_id)
    context = "locations:name"
    if after := pagination.after_or_400(request.args.get("cursor"), context):
        value, last_id = after
        query = query.where(
            or_(Location.name > value, and_(Location.name == value, Location.id > last_id))
        )
    rows = list(db.session.scalars(query.order_by(Location.name, Location.id).limit(limit + 1)))
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = pagination.encode(rows[-1].name, rows[-1].id, context) if has_more else None
    return jsonify(data=[location_json(x) for x in rows], nextCursor=next_cursor, hasMore=has_more)


@bp.post("/api/v1/locations")
@require_registry_token(write=True)
def create_location() -> Response:
    token, _ = token_actor()
    data = _fields(json_body(), creating=True)
    t = now()
    loc = Location(id=new_id("loc"), tenant_id=token.tenant_id, created_at=t, updated_at=t, **data)
    db.session.add(loc)
    db.session.commit()
    resp = jsonify(data=location_json(loc))
    resp.status_code = 201
    return resp


@bp.get("/api/v1/locations/<location_id>")
@require_registry_token()
def get_one(location_id: str) -> Response:
    token, _ = token_actor()
    return jsonify(data=location_json(get_location(token.tenant_id, location_id)))


@bp.patch("/api/v1/locations/<location_id>")
@require_registry_token(write=True)
def patch_location(location_id: str) -> Response:
    token, _ = token_actor()
    loc = get_location(token.tenant_id, location_id)
    for key, value in _fields(json_body(), creating=False).items():
        setattr(loc, key, value)
    loc.updated_at = now()
    db.session.commit()
    return jsonify(data=location_json(loc))


@bp.delete("/api/v1/locations/<location_id>")
@require_registry_token(write=True)
def delete_one(location_id: str) -> Response:
    token, _ = token_actor()
    delete_location(get_location(token.tenant_id, location_id))
    return jsonify(data={"id": location_id, "deleted": True})
