"""``/api/v1/locations``: stores, venues and warehouses of the tenant."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from authserver.devices import (
    create_location,
    delete_location,
    get_location,
    list_locations,
    update_location,
)
from authserver.registry import pagination, schema
from authserver.registry.access import require_registry_token, token_actor
from authserver.registry.bodies import json_body
from authserver.registry.serialize import deleted_response, location_json

bp = Blueprint("locations", __name__)


@bp.get("/api/v1/locations")
@require_registry_token()
def list_all() -> Response:
    token, _ = token_actor()
    pagination.only_params("limit", "cursor")
    limit = pagination.limit_or_400(pagination.query_arg("limit"))
    context = "locations:name"
    after = pagination.after_or_400(pagination.query_arg("cursor"), context)
    page = list_locations(token.tenant_id, after, limit)
    return pagination.page_response(page, context, lambda ls: [location_json(x) for x in ls])


@bp.post("/api/v1/locations")
@require_registry_token(write=True)
def create() -> Response:
    token, _ = token_actor()
    loc = create_location(token.tenant_id, schema.LOCATION_CREATE.parse(json_body()))
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
    return jsonify(
        data=location_json(update_location(loc, schema.LOCATION_UPDATE.parse(json_body())))
    )


@bp.delete("/api/v1/locations/<location_id>")
@require_registry_token(write=True)
def delete_one(location_id: str) -> Response:
    token, _ = token_actor()
    delete_location(get_location(token.tenant_id, location_id))
    return deleted_response(id=location_id)
