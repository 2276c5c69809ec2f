"""``/api/v1/users/bulk...`` and ``/api/v1/users/export``: a back office's many people at once
(issue 16). The operations themselves are ``authserver.people_bulk``'s."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Response, request

from authserver import people_bulk, users
from authserver.problems import ValidationProblem
from authserver.registry import pagination, schema
from authserver.registry.access import actor_id, require_people_token, token_actor
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
from authserver.registry.people import user_filters
from authserver.registry.serialize import user_json

bp = Blueprint("people_bulk", __name__)

# The CSV columns: UserCreate's fields but properties (an object has no cell).
CSV_COLUMNS = tuple(f.name for f in schema.USER_CREATE.fields if f.name != "properties")
_LISTS_AND_FLAGS = lists_and_flags(lists=("roles", "consents"), flags=("trusted", "active"))


def _convert(name: str, cell: str) -> Any:
    value = _LISTS_AND_FLAGS(name, cell)
    if name == "roles":  # ROLE or ROLE@locationId, as the API spells {"role", "locationId"}
        return [dict(zip(("role", "locationId"), r.split("@", 1), strict=False)) for r in value]
    return value


@bp.post("/api/v1/users/bulk")
@require_people_token(write=True)
def bulk_create() -> Response:
    """Create up to 10,000 users (JSON ``{"users": [...]}`` or a CSV), all or none, in the
    order sent."""
    token, actor = token_actor()
    allow_bulk_body(token.tenant_id)
    lines: list[int] | None = None
    if request.mimetype == "text/csv":
        items, lines = csv_rows(CSV_COLUMNS, "login", _convert, people_bulk.MAX_ROWS)
    elif request.mimetype == "application/json":
        items = schema.USER_BULK_CREATE.parse(json_body())["users"]
    else:
        raise ValidationProblem("Content-Type must be application/json or text/csv.")
    rows, errors = parse_rows(items, lines, schema.USER_CREATE, people_bulk.MAX_ROWS)
    made = people_bulk.create_users(token.tenant_id, actor, actor_id(), rows, lines, errors)
    return created_response([user_json(u) for u in made])


def _change(action: str) -> Response:
    token, actor = token_actor()
    allow_bulk_body(token.tenant_id)
    body = schema.USER_BULK_CHANGE.parse(json_body())
    ids, filter_ = ids_or_filter(body)
    if ids is not None:
        outcome = people_bulk.change_by_ids(token.tenant_id, actor, actor_id(), action, ids)
    else:
        assert filter_ is not None
        outcome = people_bulk.change_by_filter(
            token.tenant_id, actor, actor_id(), action, filter_, body.get("after")
        )
    return outcome_response(outcome)


@bp.post("/api/v1/users/bulk/disable")
@require_people_token(write=True)
def bulk_disable() -> Response:
    return _change("disable")


@bp.post("/api/v1/users/bulk/enable")
@require_people_token(write=True)
def bulk_enable() -> Response:
    return _change("enable")


@bp.post("/api/v1/users/bulk/delete")
@require_people_token(write=True)
def bulk_delete() -> Response:
    return _change("delete")


EXPORT_COLUMNS = ("id", "login", "kind", "firstName", "lastName", "phone", "active", "roles",
                  "consents", "trusted", "passwordSet", "staffCodeSet", "totpEnabled",
                  "createdAt", "updatedAt")  # fmt: skip


def _export_line(user: Any) -> str:
    return orjson.dumps(user_json(user)).decode()


@bp.get("/api/v1/users/export")
@require_people_token()
def export() -> Response:
    """The users the list's filters select, every one, by login, streamed (CSV: roles as
    ROLE or ROLE@locationId, separated by spaces)."""
    token, _ = token_actor()
    fmt = export_format()
    pagination.only_params("format", *users.USER_FILTERS)
    filters = user_filters()
    lines = people_bulk.walk(token.tenant_id, filters, _export_line)
    return export_response(fmt, "users", lines, EXPORT_COLUMNS, _csv_roles)


def _csv_roles(item: dict[str, Any]) -> dict[str, Any]:
    item["roles"] = [
        r["role"] + (f"@{r['locationId']}" if r.get("locationId") else "") for r in item["roles"]
    ]
    return item
