"""Keyset pagination for the services: a page starts strictly after the previous page's last
(sort key, id), so walking pages while rows come and go gives no duplicates and skips none that
existed throughout. The cursor that carries (sort key, id) to the client is
``authserver.registry.pagination``'s (signed, opaque)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import BindParameter, Column, Select, bindparam, literal, tuple_

from authserver.models import db

T = TypeVar("T")
After = tuple[Any, str] | None


@dataclass
class Page(Generic[T]):
    items: list[T]
    has_more: bool
    last_key: Callable[[T], Any]

    def after(self) -> tuple[Any, str] | None:
        """(sort key, id) of the last item, when there is a next page."""
        if not self.has_more or not self.items:
            return None
        last = self.items[-1]
        return self.last_key(last), last.id  # type: ignore[attr-defined]


def escape_like(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern with ``ESCAPE '\\'``: its %, _ and \\ match
    only themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def containing(text: str) -> str:
    """The LIKE pattern of values that contain ``text`` (escaped)."""
    return f"%{escape_like(text)}%"


def keyset(
    query: Select[Any], key: Any, id_column: Any, after: After, descending: bool = False
) -> Select[Any]:
    """``query`` from after (sort key, id), ordered by (``key``, ``id_column``).

    The position is one row-value comparison, ``(key, id) > (:key, :id)``: both databases seek
    to it in an index on (…, key, id), so a page deep in a long list costs what the first does.
    (The equivalent ``key > :key OR (key = :key AND id > :id)`` is an index scan from the
    start, filtered row by row.) A NULL key compares as neither: the same as the OR form."""
    if after is not None:
        value, last_id = after
        position = tuple_(key, id_column)
        bound = tuple_(_typed(value, key), _typed(last_id, id_column))
        query = query.where(position < bound if descending else position > bound)
        if not isinstance(getattr(key, "expression", key), Column):
            # Implied by the row value, but SQLite seeks on an indexed expression only with a
            # plain comparison (rows of the cursor's own key are then read from its first).
            at = _typed(value, key)
            query = query.where(key <= at if descending else key >= at)
    if descending:
        return query.order_by(key.desc(), id_column.desc())
    return query.order_by(key.asc(), id_column.asc())


def _typed(value: Any, column: Any) -> Any:
    """A value to compare with ``column`` in a row value, bound with the column's type (inside
    a tuple nothing else gives it one, and PostgreSQL compares only alike types)."""
    if isinstance(value, BindParameter):
        return bindparam(value.key, type_=column.type)
    return literal(value, column.type)


def keyset_page(
    query: Select[Any],
    key: Any,
    id_column: Any,
    after: After,
    limit: int,
    last_key: Callable[[Any], Any],
    descending: bool = False,
    rows: bool = False,
) -> Page[Any]:
    """Run ``query`` for one page of ``limit`` items ordered by (``key``, ``id_column``): ORM
    objects, or with ``rows`` the rows of a query of columns (cheaper, read-only)."""
    stmt = keyset(query, key, id_column, after, descending).limit(limit + 1)
    items = list(db.session.execute(stmt) if rows else db.session.scalars(stmt))
    return Page(items[:limit], len(items) > limit, last_key)
