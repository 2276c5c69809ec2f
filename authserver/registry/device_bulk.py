"""``/api/v1/devices/bulk...`` and ``/api/v1/devices/export``: a back office's many devices at
once (issue 16). The operations themselves are ``authserver.device_bulk``'s."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import orjson
from flask import Blueprint, Response, request, stream_with_context

from authserver import device_bulk
from authserver.bulk import RowError
from authserver.devices import DeviceQuery
from authserver.problems import ValidationProblem
from authserver.registry import pagination, schema
from authserver.registry.access import require_registry_token, token_actor
from authserver.registry.bodies import json_body
from authserver.registry.devices import QUERY_PARAMS, query_from_args
from authserver.registry.serialize import DEVICE_JSON_SQL, device_json
from authserver.state import get_state
from authserver.text import text_problem

bp = Blueprint("device_bulk", __name__)


def _actor() -> tuple[str, str]:
    token, user = token_actor()
    return token.tenant_id, (user.id if user is not None else token.client_id)


def _bulk_body_allowed() -> None:
    """A bulk body may be larger than any other (``AUTHSERVER_MAX_BULK_REQUEST_BYTES``); 413
    beyond, before it is read."""
    request.max_content_length = get_state().settings.max_bulk_request_bytes


# -- create many ---------------------------------------------------------------------------------

# The CSV columns: DeviceCreate's fields; these hold lists, separated by spaces in a cell.
CSV_COLUMNS = tuple(f.name for f in schema.DEVICE_CREATE.fields)
_CSV_LISTS = ("locationIds", "printerUids")


def _rows_from_json() -> tuple[list[Any], None]:
    body = schema.DEVICE_BULK_CREATE.parse(json_body())
    return body["devices"], None


def _rows_from_csv() -> tuple[list[Any], list[int]]:
    """The CSV's data rows as DeviceCreate bodies, and each one's line in the file."""
    charset = request.mimetype_params.get("charset")
    if charset and charset.lower() not in ("utf-8", "utf8"):
        raise ValidationProblem("The CSV must be UTF-8.")
    try:
        text = request.get_data(cache=True).decode("utf-8-sig")  # a spreadsheet's BOM is fine
    except UnicodeDecodeError as exc:
        raise ValidationProblem("The CSV must be UTF-8.") from exc
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise ValidationProblem(
                f"The first line names the columns: some of {', '.join(CSV_COLUMNS)}."
            )
        header = [h.strip() for h in header]
        unknown = sorted(set(header) - set(CSV_COLUMNS))
        if unknown:
            raise ValidationProblem(
                f"Unknown column(s): {', '.join(unknown)}; the columns are "
                f"{', '.join(CSV_COLUMNS)}."
            )
        if len(set(header)) != len(header):
            raise ValidationProblem("A column is named twice.")
        if "name" not in header:
            raise ValidationProblem("The column name is required.")
        rows: list[Any] = []
        lines: list[int] = []
        for cells in reader:
            if not cells or all(not c.strip() for c in cells):
                continue  # blank lines (a trailing one, most often) are not devices
            lines.append(reader.line_num)
            if len(rows) >= schema.BULK_LIMIT:
                rows.append(None)  # counted, not parsed: the request is refused for its size
                continue
            rows.append(_csv_row(header, cells))
    except csv.Error as exc:
        raise ValidationProblem(
            f"The CSV is malformed near line {reader.line_num}: {exc}."
        ) from exc
    return rows, lines


def _csv_row(header: list[str], cells: list[str]) -> Any:
    if len(cells) != len(header):
        return RowError(0, f"The line has {len(cells)} cells; the header names {len(header)}.")
    row: dict[str, Any] = {}
    for name, cell in zip(header, cells, strict=True):
        if cell == "":
            continue  # an empty cell: not given
        problem = text_problem(cell, single_line=True)
        if problem:
            return RowError(0, f"{name} {problem}.", name)
        row[name] = cell.split() if name in _CSV_LISTS else cell
    return row


def _parse_rows(
    items: list[Any], lines: list[int] | None
) -> tuple[list[dict[str, Any] | None], list[RowError]]:
    """Each row as DeviceCreate parses it (None where it does not), and every row's error."""
    device_bulk.check_row_count(len(items))
    parsed: list[dict[str, Any] | None] = []
    errors: list[RowError] = []
    for i, item in enumerate(items):
        line = lines[i] if lines else None
        parsed.append(None)
        if isinstance(item, RowError):
            errors.append(RowError(i, item.detail, item.field, line))
        elif not isinstance(item, dict):
            errors.append(RowError(i, "A row must be a JSON object.", None, line))
        else:
            try:
                parsed[i] = schema.DEVICE_CREATE.parse(item)
            except ValidationProblem as exc:
                field = exc.extra.get("field")
                field = field if isinstance(field, str) else None
                errors.append(RowError(i, exc.detail, field, line))
    return parsed, errors


@bp.post("/api/v1/devices/bulk")
@require_registry_token(write=True)
def bulk_create() -> Response:
    """Create up to 10,000 devices (JSON ``{"devices": [...]}`` or a CSV), all or none; the
    answer lists them in the order sent, each READY_TO_LINK one with its link code (shown this
    once)."""
    tenant_id, actor = _actor()
    _bulk_body_allowed()
    if request.mimetype == "text/csv":
        items, lines = _rows_from_csv()
    elif request.mimetype == "application/json":
        items, lines = _rows_from_json()  # type: ignore[assignment]
    else:
        raise ValidationProblem("Content-Type must be application/json or text/csv.")
    rows, errors = _parse_rows(items, lines)
    made = device_bulk.create_devices(tenant_id, actor, rows, lines, errors)
    data = [device_json(m.device, m.location_ids, m.link_code) for m in made]
    resp = Response(orjson.dumps({"data": data}), status=201, mimetype="application/json")
    resp.headers["Cache-Control"] = "no-store"  # link codes
    return resp


# -- block, unblock, delete many -----------------------------------------------------------------


def _query_of(filter_: dict[str, str]) -> DeviceQuery:
    return DeviceQuery(
        location_id=filter_.get("locationId"),
        name=filter_.get("name"),
        origin=filter_.get("origin"),
        status=filter_.get("status"),
        app_code=filter_.get("appCode"),
        external_id=filter_.get("externalId"),
        identifier=filter_.get("deviceIdentifier"),
        q=filter_.get("q"),
    )


def _change(action: str) -> Response:
    tenant_id, actor = _actor()
    _bulk_body_allowed()
    body = schema.DEVICE_BULK_CHANGE.parse(json_body())
    if ("ids" in body) == ("filter" in body):
        raise ValidationProblem("Send ids or filter (exactly one of them).")
    if "ids" in body:
        ids = body["ids"]
        if len(set(ids)) != len(ids):
            raise ValidationProblem("An id is given twice.", field="ids")
        outcome = device_bulk.change_by_ids(tenant_id, actor, action, ids)
    else:
        outcome = device_bulk.change_by_filter(tenant_id, actor, action, _query_of(body["filter"]))
    return Response(orjson.dumps({"data": outcome.as_dict()}), mimetype="application/json")


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

EXPORT_FORMATS = ("csv", "ndjson")
EXPORT_COLUMNS = ("id", "name", "status", "origin", "appCode", "externalId", "locationIds",
                  "tillId", "identifier", "printerUids", "lastActivityAt", "createdAt",
                  "updatedAt")  # fmt: skip


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        value = " ".join(value)
    text = str(value)
    # A cell a spreadsheet would run as a formula (CSV injection) is kept as text.
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def _export_csv(rows: Iterator[Any]) -> Iterator[bytes]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        item = orjson.loads(row.item)
        writer.writerow([_csv_cell(item.get(c)) for c in EXPORT_COLUMNS])
        if out.tell() > 65536:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode()


def _export_ndjson(rows: Iterator[Any]) -> Iterator[bytes]:
    buffered: list[str] = []
    size = 0
    for row in rows:
        buffered.append(row.item)
        size += len(row.item)
        if size > 65536:
            yield ("\n".join(buffered) + "\n").encode()
            buffered, size = [], 0
    if buffered:
        yield ("\n".join(buffered) + "\n").encode()


@bp.get("/api/v1/devices/export")
@require_registry_token()
def export() -> Response:
    """The devices the list's filters select, every one, streamed: ``format=csv`` (RFC 4180,
    a header line) or ``format=ndjson`` (a device's JSON per line, as in the list)."""
    tenant_id, _ = _actor()
    fmt = _format()
    query = query_from_args((*QUERY_PARAMS, "format"))
    rows = device_bulk.walk(tenant_id, query, DEVICE_JSON_SQL)
    if fmt == "csv":
        body, mimetype, name = _export_csv(rows), "text/csv", "devices.csv"
    else:
        body, mimetype, name = _export_ndjson(rows), "application/x-ndjson", "devices.ndjson"
    resp = Response(stream_with_context(body), mimetype=mimetype)
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _format() -> str:
    fmt = pagination.query_arg("format", EXPORT_FORMATS)
    if fmt is None:
        raise ValidationProblem("format is required: csv or ndjson.", parameter="format")
    return fmt
