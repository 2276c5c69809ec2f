"""``/api/v1/modules``: the tenant's modules and their configs (seed 002), for the back office, and
``/api/v1/modules/me/...`` for a device enrolled as a module.

A device polls its config cheaply: every config answer has a strong ``ETag`` (a hash of the
answer), and ``If-None-Match`` with it gives ``304 Not Modified`` while nothing changed
(RFC 9110 §13.1.2, §15.4.5).
"""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Blueprint, Response, jsonify, request

from authserver import modules
from authserver.models import Module
from authserver.problems import ValidationProblem
from authserver.registry import pagination, schema
from authserver.registry.access import (
    actor_id,
    require_module_token,
    require_modules_token,
    token_actor,
)
from authserver.registry.bodies import json_body
from authserver.registry.serialize import deleted_response, iso

bp = Blueprint("modules", __name__)

LIST_PARAMS = frozenset({"limit", "cursor", "type", "locationId", "userId", "production", "id",
                         "configName", "configValue", "effective"})  # fmt: skip


def module_json(module: Module, effective: bool = False) -> dict[str, Any]:
    found = {
        "id": module.id,
        "type": module.type,
        "production": bool(module.production),
        "userId": module.user_id,
        "locationId": module.location_id,
        "config": module.config or {},
        "createdAt": iso(module.created_at),
        "createdBy": module.created_by,
        "updatedAt": iso(module.updated_at),
        "updatedBy": module.updated_by,
    }
    if effective:
        found["effectiveConfig"] = modules.effective_config(module)
    return found


def conditional(data: Any) -> Response:
    """``{"data": ...}`` with a strong ETag; 304 when the request's ``If-None-Match`` has it."""
    resp = jsonify(data=data)
    resp.set_etag(hashlib.sha256(resp.get_data()).hexdigest()[:32])
    resp.headers["Cache-Control"] = "private, no-cache"  # keep it, but ask again each time
    resp.make_conditional(request.environ)  # 304 with no body when the tag matches
    return resp


def _type_or_400(value: str) -> str:
    if value not in modules.TYPES:
        raise ValidationProblem(f"type must be one of {', '.join(modules.TYPES)}.", field="type")
    return value


@bp.get("/api/v1/modules")
@require_modules_token()
def list_all() -> Response:
    token, _ = token_actor()
    pagination.only_params(*LIST_PARAMS)
    limit = pagination.limit_or_400(pagination.query_arg("limit"))
    filters: dict[str, Any] = {
        name: pagination.query_arg(name) for name in ("locationId", "userId", "id")
    }
    module_type = pagination.query_arg("type")
    filters["type"] = _type_or_400(module_type) if module_type is not None else None
    production = pagination.query_arg("production", ("true", "false"))
    filters["production"] = None if production is None else production == "true"
    name, value = pagination.query_arg("configName"), pagination.query_arg("configValue")
    if (name is None) != (value is None):
        raise ValidationProblem("configName and configValue go together.")
    if name is not None and not modules.CONFIG_FILTER.fullmatch(name):
        raise ValidationProblem("configName is config.<member>: letters, digits and _.")
    filters["configName"], filters["configValue"] = name, value
    effective = pagination.query_arg("effective", ("true", "false")) == "true"
    context = "modules:id"
    after = pagination.after_or_400(pagination.query_arg("cursor"), context)
    page = modules.list_modules(token.tenant_id, filters, after, limit)
    return pagination.page_response(
        page, context, lambda ms: [module_json(m, effective) for m in ms]
    )


@bp.post("/api/v1/modules")
@require_modules_token(write=True)
def create() -> Response:
    token, _ = token_actor()
    module = modules.create(token.tenant_id, schema.MODULE_CREATE.parse(json_body()), actor_id())
    resp = jsonify(data=module_json(module))
    resp.status_code = 201
    return resp


@bp.get("/api/v1/modules/<module_id>")
@require_modules_token()
def get_one(module_id: str) -> Response:
    token, _ = token_actor()
    return jsonify(data=module_json(modules.get(token.tenant_id, module_id)))


@bp.put("/api/v1/modules/<module_id>")
@require_modules_token(write=True)
def replace(module_id: str) -> Response:
    token, _ = token_actor()
    module = modules.get(token.tenant_id, module_id)
    data = schema.MODULE_REPLACE.parse(json_body())
    return jsonify(data=module_json(modules.update(module, data, actor_id(), replace=True)))


@bp.patch("/api/v1/modules/<module_id>")
@require_modules_token(write=True)
def patch(module_id: str) -> Response:
    token, _ = token_actor()
    module = modules.get(token.tenant_id, module_id)
    data = schema.MODULE_UPDATE.parse(json_body())
    return jsonify(data=module_json(modules.update(module, data, actor_id())))


@bp.delete("/api/v1/modules/<module_id>")
@require_modules_token(write=True)
def delete_one(module_id: str) -> Response:
    token, _ = token_actor()
    modules.delete(modules.get(token.tenant_id, module_id), actor_id())
    return deleted_response(id=module_id)


@bp.post("/api/v1/modules/<module_id>/logout")
@require_modules_token(write=True)
def logout(module_id: str) -> Response:
    """Seed 002 logoutModule: the device enrolled as the module loses its tokens at once."""
    token, _ = token_actor()
    modules.logout(modules.get(token.tenant_id, module_id), actor_id())
    return jsonify(data={"id": module_id, "loggedOut": True})


@bp.get("/api/v1/modules/<module_id>/config")
@require_modules_token()
def effective_config(module_id: str) -> Response:
    token, _ = token_actor()
    return conditional(modules.effective_config(modules.get(token.tenant_id, module_id)))


@bp.get("/api/v1/module-types/<module_type>/config")
@require_modules_token()
def get_common_config(module_type: str) -> Response:
    token, _ = token_actor()
    return conditional(modules.common_config(token.tenant_id, _type_or_400(module_type)))


@bp.put("/api/v1/module-types/<module_type>/config")
@require_modules_token(write=True)
def set_common_config(module_type: str) -> Response:
    token, _ = token_actor()
    config = modules.set_common_config(
        token.tenant_id,
        _type_or_400(module_type),
        schema.MODULE_COMMON_CONFIG.parse(json_body()),
        actor_id(),
    )
    return jsonify(data=config)


# -- the calling module (seed 002 getModuleConfig, getModuleCommonConfig) --------------------------


def _my_module() -> Module:
    token, _ = token_actor()
    assert token.module_id is not None
    return modules.get(token.tenant_id, token.module_id)


@bp.get("/api/v1/modules/me")
@require_module_token()
def me() -> Response:
    return conditional(module_json(_my_module()))


@bp.get("/api/v1/modules/me/config")
@require_module_token()
def my_config() -> Response:
    return conditional(modules.effective_config(_my_module()))


@bp.get("/api/v1/modules/me/common-config")
@require_module_token()
def my_common_config() -> Response:
    module = _my_module()
    return conditional(modules.common_config(module.tenant_id, module.type))
