"""``/api/v1/tenant/...``: the tenant's properties and its public configuration (seed 002)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from authserver import tenant_config, users
from authserver.models import TenantProperty, db
from authserver.problems import ForbiddenProblem, NotFoundProblem, ValidationProblem
from authserver.registry import pagination, schema
from authserver.registry.access import actor_id, require_tenant_admin_token, token_actor
from authserver.registry.bodies import json_body
from authserver.registry.serialize import deleted_response, iso
from authserver.resource import ResourceAuthError, authenticate_request

bp = Blueprint("tenant", __name__)


def property_json(prop: TenantProperty) -> dict[str, Any]:
    return {
        "property": prop.name,
        "value": tenant_config.shown_value(prop),
        "isPrivate": bool(prop.is_private),
        "isObfuscate": bool(prop.is_obfuscated),
        "createdAt": iso(prop.created_at),
        "updatedAt": iso(prop.updated_at),
    }


@bp.get("/api/v1/tenant/properties")
@require_tenant_admin_token()
def list_properties() -> Response:
    token, _ = token_actor()
    pagination.only_params("limit", "cursor", "isPrivate", "property")
    limit = pagination.limit_or_400(pagination.query_arg("limit"))
    private = pagination.query_arg("isPrivate", ("true", "false"))
    name = pagination.query_arg("property")
    context = "properties:name"
    after = pagination.after_or_400(pagination.query_arg("cursor"), context)
    page = tenant_config.list_properties(
        token.tenant_id, None if private is None else private == "true", name, after, limit
    )
    return pagination.page_response(page, context, lambda ps: [property_json(p) for p in ps])


@bp.get("/api/v1/tenant/properties/schema")
@require_tenant_admin_token()
def properties_schema() -> Response:
    """What a property change looks like (seed 002 getTenantPropertiesSchema)."""
    return jsonify(data=schema.PROPERTY.json_schema())


@bp.put("/api/v1/tenant/properties/<name>")
@require_tenant_admin_token(write=True)
def put_property(name: str) -> Response:
    token, _ = token_actor()
    data = schema.PROPERTY.parse(json_body())
    prop, created = tenant_config.upsert(token.tenant_id, name, data, actor_id())
    resp = jsonify(data=property_json(prop))
    resp.status_code = 201 if created else 200
    return resp


@bp.delete("/api/v1/tenant/properties/<name>")
@require_tenant_admin_token(write=True)
def delete_property(name: str) -> Response:
    token, _ = token_actor()
    tenant_config.delete(token.tenant_id, name, actor_id())
    return deleted_response(property=name)


@bp.patch("/api/v1/tenant/config")
@require_tenant_admin_token(write=True)
def patch_public_config() -> Response:
    """Set several public properties at once (seed 002 updatePublicConfig)."""
    token, _ = token_actor()
    body = schema.PUBLIC_CONFIG.parse(json_body())
    for name, value in body.items():  # all or none: one transaction
        tenant_config.upsert(token.tenant_id, name, {"value": value, "isPrivate": False},
                             actor_id(), commit=False)  # fmt: skip
    db.session.commit()
    return jsonify(data=tenant_config.public_config(token.tenant_id, None))


@bp.get("/api/v1/tenant/config")
def public_config() -> Response:
    """The public configuration, for front apps: with any token of the tenant, or without one
    for the tenant named by ``tenant`` (its id). Obfuscated values are masked."""
    pagination.only_params("filter", "tenant")
    prefix = pagination.query_arg("filter")
    if prefix is not None and not all(c.isalnum() or c in "_.-" for c in prefix):
        raise ValidationProblem("filter is a property name prefix: letters, digits, _ . -")
    if request.headers.get("Authorization"):
        try:
            tenant_id = authenticate_request((), dpop=False).tenant_id
        except ResourceAuthError as exc:
            return exc.response()
    else:
        ref = pagination.query_arg("tenant")
        if not ref:
            raise ValidationProblem("Send a token of the tenant, or its id as tenant.")
        tenant = users.get_tenant(ref)
        if tenant is None or not tenant.active:
            raise NotFoundProblem("No such tenant.")
        tenant_id = tenant.id
    tenant = users.get_tenant(tenant_id)
    if tenant is None or not tenant.active:
        raise ForbiddenProblem("The tenant is disabled.")
    return jsonify(data=tenant_config.public_config(tenant_id, prefix))
