"""``/api/v1/modules/bulk...`` and ``/api/v1/modules/export``: a back office's many modules at
once (issue 16). The operations themselves are ``authserver.module_bulk``'s."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Response, request

from authserver import module_bulk, modules
from authserver.problems import ValidationProblem
from authserver.registry import pagination, schema
from authserver.registry.access import actor_id, require_modules_token, token_actor
from authserver.registry.bodies import json_body
from authserver.registry.bulk_io import (
    allow_bulk_body,
    created_response,
    csv_rows,
    export_format,
    export_response,
    ids_or_filter,
    lists_and_flags,
    outcome_response,
    parse_rows,
)
from authserver.registry.modules import module_json

bp = Blueprint("module_bulk", __name__)


# The CSV columns: ModuleCreate's fields; config is its JSON text.
CSV_COLUMNS = tuple(f.name for f in schema.MODULE_CREATE.fields)
_FLAGS = lists_and_flags(flags=("production",))


def _convert(name: str, cell: str) -> Any:
    if name == "config":
        try:
            return orjson.loads(cell)
        except orjson.JSONDecodeError:
            return cell  # not an object: the row's config error says so
    return _FLAGS(name, cell)


@bp.post("/api/v1/modules/bulk")
@require_modules_token(write=True)
def bulk_create() -> Response:
    """Create up to 10,000 modules (JSON ``{"modules": [...]}`` or a CSV), all or none, in
    the order sent."""
    token, _ = token_actor()
    allow_bulk_body(token.tenant_id)
    lines: list[int] | None = None
    if request.mimetype == "text/csv":
        items, lines = csv_rows(CSV_COLUMNS, "id", _convert, module_bulk.MAX_ROWS)
    elif request.mimetype == "application/json":
        items = schema.MODULE_BULK_CREATE.parse(json_body())["modules"]
    else:
        raise ValidationProblem("Content-Type must be application/json or text/csv.")
    rows, errors = parse_rows(items, lines, schema.MODULE_CREATE, module_bulk.MAX_ROWS)
    made = module_bulk.create_modules(token.tenant_id, actor_id(), rows, errors, lines)
    return created_response([module_json(m) for m in made])


def _filters(filter_: dict[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = dict(filter_)
    if "production" in found:
        found["production"] = found["production"] == "true"
    return found


def _change(action: str) -> Response:
    token, _ = token_actor()
    allow_bulk_body(token.tenant_id)
    body = schema.MODULE_BULK_CHANGE.parse(json_body())
    ids, filter_ = ids_or_filter(body)
    if ids is not None:
        outcome = module_bulk.change_by_ids(token.tenant_id, actor_id(), action, ids)
    else:
        assert filter_ is not None
        outcome = module_bulk.change_by_filter(
            token.tenant_id, actor_id(), action, _filters(filter_), body.get("after")
        )
    return outcome_response(outcome)


@bp.post("/api/v1/modules/bulk/logout")
@require_modules_token(write=True)
def bulk_logout() -> Response:
    return _change("logout")


@bp.post("/api/v1/modules/bulk/delete")
@require_modules_token(write=True)
def bulk_delete() -> Response:
    return _change("delete")


EXPORT_COLUMNS = ("id", "type", "production", "userId", "locationId", "config", "createdAt",
                  "createdBy", "updatedAt", "updatedBy")  # fmt: skip
_EXPORT_FILTERS = ("type", "locationId", "userId", "production", "id")


def _export_line(module: Any) -> str:
    return orjson.dumps(module_json(module)).decode()


@bp.get("/api/v1/modules/export")
@require_modules_token()
def export() -> Response:
    """The modules the list's filters select, every one, by id, streamed (CSV: config as its
    JSON text)."""
    token, _ = token_actor()
    fmt = export_format()
    pagination.only_params("format", *_EXPORT_FILTERS)
    filters: dict[str, Any] = {}
    for name in _EXPORT_FILTERS:
        allowed = {"type": modules.TYPES, "production": ("true", "false")}.get(name)
        value = pagination.query_arg(name, tuple(allowed) if allowed else None)
        if value is not None:
            filters[name] = value
    filters = _filters(filters)
    lines = module_bulk.walk(token.tenant_id, filters, _export_line)
    return export_response(fmt, "modules", lines, EXPORT_COLUMNS)
