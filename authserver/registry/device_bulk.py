"""``/api/v1/devices/bulk...`` and ``/api/v1/devices/export``: a back office's many devices at
once (issue 16). The operations themselves are ``authserver.device_bulk``'s."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from authserver import device_bulk
from authserver.devices import DeviceQuery
from authserver.problems import ValidationProblem
from authserver.registry import schema
from authserver.registry.access import actor_id, require_registry_token, token_actor
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
from authserver.registry.devices import FILTERS, QUERY_PARAMS, query_from_args
from authserver.registry.serialize import DEVICE_JSON_SQL, device_json

bp = Blueprint("device_bulk", __name__)


# -- create many ---------------------------------------------------------------------------------

# The CSV columns: DeviceCreate's fields; these hold lists, separated by spaces in a cell.
CSV_COLUMNS = tuple(f.name for f in schema.DEVICE_CREATE.fields)
_CONVERT = lists_and_flags(lists=("locationIds", "printerUids"))


@bp.post("/api/v1/devices/bulk")
@require_registry_token(write=True)
def bulk_create() -> Response:
    """Create up to 10,000 devices (JSON ``{"devices": [...]}`` or a CSV), all or none; the
    answer lists them in the order sent, each READY_TO_LINK one with its link code (shown this
    once)."""
    token, _ = token_actor()
    tenant_id, actor = token.tenant_id, actor_id()
    allow_bulk_body(tenant_id)
    lines: list[int] | None = None
    if request.mimetype == "text/csv":
        items, lines = csv_rows(CSV_COLUMNS, "name", _CONVERT, device_bulk.MAX_ROWS)
    elif request.mimetype == "application/json":
        items = schema.DEVICE_BULK_CREATE.parse(json_body())["devices"]
    else:
        raise ValidationProblem("Content-Type must be application/json or text/csv.")
    rows, errors = parse_rows(items, lines, schema.DEVICE_CREATE, device_bulk.MAX_ROWS)
    made = device_bulk.create_devices(tenant_id, actor, rows, lines, errors)
    return created_response([device_json(m.device, m.location_ids, m.link_code) for m in made])


# -- block, unblock, delete many -----------------------------------------------------------------


def _query_of(filter_: dict[str, str]) -> DeviceQuery:
    filters: dict[str, Any] = {field: filter_.get(name) for name, field, _ in FILTERS}
    return DeviceQuery(**filters)


def _change(action: str) -> Response:
    token, _ = token_actor()
    tenant_id, actor = token.tenant_id, actor_id()
    allow_bulk_body(tenant_id)
    body = schema.DEVICE_BULK_CHANGE.parse(json_body())
    ids, filter_ = ids_or_filter(body)
    restore = bool(body.get("restoreSessions"))
    if "restoreSessions" in body and action != "unblock":
        raise ValidationProblem("restoreSessions applies to unblocking.", field="restoreSessions")
    if ids is not None:
        outcome = device_bulk.change_by_ids(tenant_id, actor, action, ids, restore)
    else:
        assert filter_ is not None
        query = _query_of(filter_)
        outcome = device_bulk.change_by_filter(
            tenant_id, actor, action, query, body.get("after"), restore
        )
    return outcome_response(outcome)


@bp.post("/api/v1/devices/bulk/block")
@require_registry_token(write=True)
def bulk_block() -> Response:
    return _change("block")


@bp.post("/api/v1/devices/bulk/unblock")
@require_registry_token(write=True)
def bulk_unblock() -> Response:
    return _change("unblock")


@bp.post("/api/v1/devices/bulk/delete")
@require_registry_token(write=True)
def bulk_delete() -> Response:
    return _change("delete")


# -- export --------------------------------------------------------------------------------------

EXPORT_COLUMNS = ("id", "name", "status", "origin", "appCode", "externalId", "locationIds",
                  "tillId", "identifier", "printerUids", "lastActivityAt", "createdAt",
                  "updatedAt")  # fmt: skip


@bp.get("/api/v1/devices/export")
@require_registry_token()
def export() -> Response:
    """The devices the list's filters select, every one, streamed: ``format=csv`` (RFC 4180,
    a header line) or ``format=ndjson`` (a device's JSON per line, as in the list)."""
    tenant_id = token_actor()[0].tenant_id
    fmt = export_format()
    query = query_from_args((*QUERY_PARAMS, "format"))
    rows = device_bulk.walk(tenant_id, query, DEVICE_JSON_SQL)
    return export_response(fmt, "devices", (row.item for row in rows), EXPORT_COLUMNS)
