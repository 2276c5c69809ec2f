"""Keyset pagination with opaque, signed cursors.

A cursor holds the sort key and id of the last item of a page, plus the sort it belongs to; it is
signed so a client cannot forge positions (it could not reach other tenants' rows anyway: the
tenant filter comes from the token). Walking pages while rows are created and deleted gives no
duplicates and skips none that existed throughout, because each page starts strictly after the
previous page's last (key, id).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from typing import Any

import orjson
from flask import Response, jsonify, request

from authserver.paging import Page
from authserver.problems import ValidationProblem
from authserver.state import get_state
from authserver.text import is_clean

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_QUERY_VALUE = 200


def query_arg(name: str, allowed: tuple[str, ...] | None = None) -> str | None:
    """One query parameter of a registry list, strictly: given at most once, at most 200
    characters, no control characters, one of ``allowed`` when there is a list."""
    values = request.args.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise ValidationProblem(f"{name} is given more than once.")
    value = values[0]
    if len(value) > MAX_QUERY_VALUE:
        raise ValidationProblem(f"{name} is too long.")
    if not is_clean(value, single_line=False):
        raise ValidationProblem(f"{name} contains control characters.")
    if allowed is not None and value not in allowed:
        raise ValidationProblem(f"{name} must be one of {', '.join(allowed)}.")
    return value


def only_params(*names: str) -> None:
    """Refuse a query parameter this list does not know, naming it: a filter misspelt or from
    another API must never quietly give the unfiltered list (a script acting on ``data[0]``
    would act on the wrong item)."""
    unknown = sorted(set(request.args) - set(names))
    if unknown:
        raise ValidationProblem(
            f"Unknown query parameter(s): {', '.join(unknown)}; this list takes "
            f"{', '.join(sorted(names))}.",
            parameter=unknown[0],
        )


class CursorError(ValueError):
    pass


def _mac(payload: bytes) -> bytes:
    return hmac.new(_cursor_key(get_state().settings.secret_key), payload, "sha256").digest()[:16]


@functools.lru_cache(maxsize=4)
def _cursor_key(secret_key: bytes) -> bytes:
    """The cursors' own key, derived from the server's secret once per secret."""
    return hashlib.sha256(b"cursor\x00" + secret_key).digest()


def encode(value: Any, item_id: str, context: str) -> str:
    payload = json.dumps({"v": value, "id": item_id, "c": context}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(_mac(payload) + payload).rstrip(b"=").decode()


def decode(cursor: str, context: str) -> tuple[Any, str]:
    if len(cursor) > 1024:
        raise CursorError("cursor too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError) as exc:
        raise CursorError("malformed cursor") from exc
    mac, payload = raw[:16], raw[16:]
    if len(mac) != 16 or not hmac.compare_digest(mac, _mac(payload)):
        raise CursorError("invalid cursor")
    data = json.loads(payload)
    if data.get("c") != context:
        raise CursorError("the cursor belongs to another sort order or list")
    return data.get("v"), str(data["id"])


def parse_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not re.fullmatch(r"[0-9]{1,3}", raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise CursorError(f"limit must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def limit_or_400(raw: str | None) -> int:
    try:
        return parse_limit(raw)
    except CursorError as exc:
        raise ValidationProblem(str(exc)) from exc


def after_or_400(cursor: str | None, context: str) -> tuple[Any, str] | None:
    """The (sort key, id) a page starts after, or None for the first page."""
    if not cursor:
        return None
    try:
        return decode(cursor, context)
    except CursorError as exc:
        raise ValidationProblem(str(exc)) from exc


def page_response(
    page: Page[Any], context: str, render: Callable[[list[Any]], list[Any]]
) -> Response:
    """``{"data": [...], "nextCursor": ..., "hasMore": ...}`` for a page of a list (DESIGN)."""
    next_cursor = _next_cursor(page, context)
    return jsonify(data=render(page.items), nextCursor=next_cursor, hasMore=page.has_more)


def rendered_page_response(
    page: Page[Any], context: str, count: int | None = None, count_exact: bool = True
) -> Response:
    """The same document for a page whose rows carry each item as JSON text (``item``, built
    by the database): the texts joined, nothing parsed or encoded again. With ``count``, the
    number of items the whole list has (``count``) and whether it is exact (``countExact``)."""
    next_cursor = _next_cursor(page, context)
    total = b""
    if count is not None:
        total = b',"count":%d,"countExact":%s' % (count, b"true" if count_exact else b"false")
    body = b"".join((
        b'{"data":[', ",".join([row.item for row in page.items]).encode(),
        b'],"nextCursor":', orjson.dumps(next_cursor),
        b',"hasMore":', b"true" if page.has_more else b"false", total, b"}",
    ))  # fmt: skip
    return Response(body, mimetype="application/json")


def _next_cursor(page: Page[Any], context: str) -> str | None:
    after = page.after()
    return encode(after[0], after[1], context) if after is not None else None
