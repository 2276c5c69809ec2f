"""The bodies of bulk requests and the streams of exports (issue 16), for every kind of item:
rows as JSON or CSV checked one by one with a report of every failing row, a bulk body's own size
limit, and CSV / NDJSON exports streamed a page at a time."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson
from flask import Response, request, stream_with_context

from authserver import limits
from authserver.bulk import Outcome, RowError, check_count
from authserver.problems import TooManyRequestsProblem, ValidationProblem
from authserver.registry import pagination, schema
from authserver.state import get_state
from authserver.text import text_problem

# A CSV cell's text as a body's member: a list (separated by spaces), a flag, or text.
Convert = Callable[[str, str], Any]


def allow_bulk_body(tenant_id: str) -> None:
    """Admit a bulk write of ``tenant_id``: within the tenant's budget of bulk requests
    (``limits.bulk_request``; 429 with Retry-After beyond; every request counts, whatever its
    outcome), and with a body that may be larger than any other
    (``AUTHSERVER_MAX_BULK_REQUEST_BYTES``; 413 beyond, before it is read)."""
    state = get_state()
    try:
        limits.charge(state.store, limits.bulk_request(state.settings, tenant_id))
    except limits.Throttled as exc:
        raise TooManyRequestsProblem(
            "Too many bulk requests for this tenant; try again later.", exc.retry_after
        ) from exc
    request.max_content_length = state.settings.max_bulk_request_bytes


def lists_and_flags(lists: Iterable[str] = (), flags: Iterable[str] = ()) -> Convert:
    """A ``Convert`` for columns that hold lists (separated by spaces) or flags (true, false)."""
    as_list, as_flag = frozenset(lists), frozenset(flags)

    def convert(name: str, cell: str) -> Any:
        if name in as_list:
            return cell.split()
        if name in as_flag:
            return {"true": True, "false": False}.get(cell.lower(), cell)
        return cell

    return convert


def csv_rows(
    columns: tuple[str, ...], required: str, convert: Convert, limit: int
) -> tuple[list[Any], list[int]]:
    """The request's CSV (UTF-8, a header line naming some of ``columns``, ``required`` among
    them) as one body per data line, and each one's line in the file; a line that cannot be a
    body is a ``RowError`` in its place. Blank lines are skipped; lines beyond ``limit`` are
    counted, not read."""
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
                f"The first line names the columns: some of {', '.join(columns)}."
            )
        header = [h.strip() for h in header]
        unknown = sorted(set(header) - set(columns))
        if unknown:
            raise ValidationProblem(
                f"Unknown column(s): {', '.join(unknown)}; the columns are {', '.join(columns)}."
            )
        if len(set(header)) != len(header):
            raise ValidationProblem("A column is named twice.")
        if required not in header:
            raise ValidationProblem(f"The column {required} is required.")
        rows: list[Any] = []
        lines: list[int] = []
        for cells in reader:
            if not cells or all(not c.strip() for c in cells):
                continue  # blank lines (a trailing one, most often) are not items
            lines.append(reader.line_num)
            if len(rows) >= limit:
                rows.append(None)  # counted, not parsed: the request is refused for its size
                continue
            rows.append(_csv_row(header, cells, convert))
    except csv.Error as exc:
        raise ValidationProblem(
            f"The CSV is malformed near line {reader.line_num}: {exc}."
        ) from exc
    return rows, lines


def _csv_row(header: list[str], cells: list[str], convert: Convert) -> Any:
    if len(cells) != len(header):
        return RowError(0, f"The line has {len(cells)} cells; the header names {len(header)}.")
    row: dict[str, Any] = {}
    for name, cell in zip(header, cells, strict=True):
        if cell == "":
            continue  # an empty cell: not given
        problem = text_problem(cell, single_line=True)
        if problem:
            return RowError(0, f"{name} {problem}.", name)
        row[name] = convert(name, cell)
    return row


def parse_rows(
    items: list[Any], lines: list[int] | None, body: schema.Body, limit: int
) -> tuple[list[dict[str, Any] | None], list[RowError]]:
    """Each row as ``body`` parses it (None where it does not), and every row's error."""
    check_count(len(items), limit)
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
                parsed[i] = body.parse(item)
            except ValidationProblem as exc:
                field = exc.extra.get("field")
                field = field if isinstance(field, str) else None
                errors.append(RowError(i, exc.detail, field, line))
    return parsed, errors


def ids_or_filter(body: dict[str, Any]) -> tuple[list[str] | None, dict[str, str] | None]:
    """A bulk change's ``ids`` (distinct) or ``filter``: exactly one of them (``after`` goes
    with a filter only)."""
    if ("ids" in body) == ("filter" in body):
        raise ValidationProblem("Send ids or filter (exactly one of them).")
    if "ids" in body and body.get("after") is not None:
        raise ValidationProblem("after goes with a filter, not with ids.", field="after")
    ids = body.get("ids")
    if ids is not None and len(set(ids)) != len(ids):
        raise ValidationProblem("An id is given twice.", field="ids")
    return ids, body.get("filter")


def outcome_response(outcome: Outcome) -> Response:
    """``200 {"data": outcome}`` of a bulk change."""
    return Response(orjson.dumps({"data": outcome.as_dict()}), mimetype="application/json")


def created_response(data: list[dict[str, Any]]) -> Response:
    """``201 {"data": [...]}``, never stored by a cache (it may carry codes shown once)."""
    resp = Response(orjson.dumps({"data": data}), status=201, mimetype="application/json")
    resp.headers["Cache-Control"] = "no-store"
    return resp


# -- exports -------------------------------------------------------------------------------------

EXPORT_FORMATS = ("csv", "ndjson")


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    elif isinstance(value, dict):
        value = orjson.dumps(value).decode()
    text = str(value)
    # A cell a spreadsheet would run as a formula (CSV injection) is kept as text.
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def _csv_stream(items: Iterator[dict[str, Any]], columns: tuple[str, ...]) -> Iterator[bytes]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180
    writer.writerow(columns)
    for item in items:
        writer.writerow([csv_cell(item.get(c)) for c in columns])
        if out.tell() > 65536:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode()


def _ndjson_stream(lines: Iterator[str]) -> Iterator[bytes]:
    buffered: list[str] = []
    size = 0
    for line in lines:
        buffered.append(line)
        size += len(line)
        if size > 65536:
            yield ("\n".join(buffered) + "\n").encode()
            buffered, size = [], 0
    if buffered:
        yield ("\n".join(buffered) + "\n").encode()


def export_format() -> str:
    fmt = pagination.query_arg("format", EXPORT_FORMATS)
    if fmt is None:
        raise ValidationProblem("format is required: csv or ndjson.", parameter="format")
    return fmt


def export_response(
    fmt: str,
    name: str,
    lines: Iterator[str],
    columns: tuple[str, ...],
    for_csv: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Response:
    """An export of ``lines`` (each item's JSON text), streamed: NDJSON as they are, CSV with
    ``columns`` of each (after ``for_csv``); an attachment named ``name``.csv / .ndjson."""
    if fmt == "csv":
        items = (orjson.loads(line) for line in lines)
        if for_csv is not None:
            items = (for_csv(item) for item in items)
        body, mimetype = _csv_stream(items, columns), "text/csv"
    else:
        body, mimetype = _ndjson_stream(lines), "application/x-ndjson"
    resp = Response(stream_with_context(body), mimetype=mimetype)
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    resp.headers["Cache-Control"] = "no-store"
    return resp
