"""``/api/v1/locations``: stores, venues and warehouses of the tenant."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from authserver.devices import (
    LOCATION_KINDS,
    create_location,
    delete_location,
    get_location,
    list_locations,
    update_location,
)
from authserver.problems import ValidationProblem
from authserver.registry import pagination
from authserver.registry.access import require_registry_token, token_actor
from authserver.registry.bodies import json_body, required_name
from authserver.registry.serialize import location_json

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
def list_all() -> Response:
    token, _ = token_actor()
    limit = pagination.limit_or_400(pagination.query_arg("limit"))
    context = "locations:name"
    after = pagination.after_or_400(pagination.query_arg("cursor"), context)
    page = list_locations(token.tenant_id, after, limit)
    return pagination.page_response(page, context, lambda ls: [location_json(x) for x in ls])


@bp.post("/api/v1/locations")
@require_registry_token(write=True)
def create() -> Response:
    token, _ = token_actor()
    loc = create_location(token.tenant_id, _fields(json_body(), creating=True))
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
    return jsonify(data=location_json(update_location(loc, _fields(json_body(), creating=False))))


@bp.delete("/api/v1/locations/<location_id>")
@require_registry_token(write=True)
def delete_one(location_id: str) -> Response:
    token, _ = token_actor()
    delete_location(get_location(token.tenant_id, location_id))
    return jsonify(data={"id": location_id, "deleted": True})
