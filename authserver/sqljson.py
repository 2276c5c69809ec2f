"""JSON built by the database: a list's items rendered in the statement that reads them.

Reading a page of 50 devices as typed columns and building each item in Python cost more than
the rest of the request together (a value object per column per row, then a dict per row, then
the encoder). Here the statement returns each item as JSON text, built in C by SQLite's
``json_object`` or PostgreSQL's ``row_to_json``, and the page is those texts joined.

Each construct compiles to both dialects and gives what the Python wire format gives
(``registry.serialize``; ``tests/registry/test_devices.py`` holds a list's items equal to the
items read one by one):

- ``JsonObject(("key", expr), ...)``: an object, keys in the order given;
- ``IsoMs(column)``: Unix milliseconds as ``2026-11-30T12:00:00.123Z``, NULL as null;
- ``JsonList(column)``: a JSON column holding a list, with NULL and JSON null as ``[]``;
- ``JsonIds(column, where)``: the values of ``column`` in rows matching ``where``, sorted, as
  a list (a correlated subquery: a device's locations).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement


class JsonObject(ColumnElement[str]):
    inherit_cache = False  # built once per statement shape, never per request
    type = Text()

    def __init__(self, *pairs: tuple[str, Any]) -> None:
        for key, _ in pairs:
            if not key.isidentifier():  # keys are written into the SQL: our own names only
                raise ValueError(f"not a JSON key of ours: {key!r}")
        self.pairs = pairs


@compiles(JsonObject, "sqlite")
def _object_sqlite(element: JsonObject, compiler: Any, **kw: Any) -> str:
    args = ", ".join(f"'{key}', {compiler.process(expr, **kw)}" for key, expr in element.pairs)
    return f"json_object({args})"


@compiles(JsonObject, "postgresql")
def _object_postgresql(element: JsonObject, compiler: Any, **kw: Any) -> str:
    # row_to_json of a one-row subquery whose columns are named as the keys, in the order given:
    # a quarter less of the database's time than json_build_object for a page of devices, and
    # compact (no spaces around the colons). As text, so the driver does not parse it.
    # Keys are identifiers (checked when built) and the expressions compiled from our columns:
    # no value is in the text.
    columns = ", ".join(f'{compiler.process(expr, **kw)} AS "{key}"' for key, expr in element.pairs)
    return f"(SELECT row_to_json(o) FROM (SELECT {columns}) AS o)::text"  # noqa: S608


class _OfColumn(ColumnElement[str]):
    """A construct of one column; each dialect's text is its ``@compiles`` function's."""

    inherit_cache = False

    def __init__(self, column: Any) -> None:
        self.column = column


class IsoMs(_OfColumn):
    inherit_cache = False  # SQLAlchemy asks each class for its own
    type = String()


@compiles(IsoMs, "sqlite")
def _iso_sqlite(element: IsoMs, compiler: Any, **kw: Any) -> str:
    # %f is seconds with milliseconds (SS.SSS); SQLite rounds the Julian day to whole
    # milliseconds, so an integer count of milliseconds comes back exactly.
    return f"strftime('%Y-%m-%dT%H:%M:%fZ', {compiler.process(element.column, **kw)} / 1000.0, 'unixepoch')"


@compiles(IsoMs, "postgresql")
def _iso_postgresql(element: IsoMs, compiler: Any, **kw: Any) -> str:
    # The epoch plus that many milliseconds, as a timestamp without time zone (so neither the
    # session's time zone nor a fraction of a second in floating point plays a part): exact,
    # and cheaper than to_timestamp of a numeric division.
    column = compiler.process(element.column, **kw)
    return (
        f"to_char(TIMESTAMP '1970-01-01' + {column} * INTERVAL '1 millisecond', "
        '\'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"\')'
    )


class JsonList(_OfColumn):
    inherit_cache = False
    type = Text()


@compiles(JsonList, "sqlite")
def _list_sqlite(element: JsonList, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return f"json(coalesce(nullif({column}, 'null'), '[]'))"


@compiles(JsonList, "postgresql")
def _list_postgresql(element: JsonList, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return f"coalesce(nullif({column}::text, 'null'), '[]')::json"


class JsonIds(ColumnElement[str]):
    inherit_cache = False
    type = Text()

    def __init__(self, column: Any, where: Any) -> None:
        self.column, self.where = column, where


@compiles(JsonIds, "sqlite")
def _ids_sqlite(element: JsonIds, compiler: Any, **kw: Any) -> str:
    # Aggregated from an ordered subquery: SQLite feeds the aggregate in that order (3.44's
    # ORDER BY inside json_group_array is not in every SQLite Python ships with). json(): a
    # subquery's result loses its JSON subtype, which json_object needs to embed an array.
    column = compiler.process(element.column, **kw)
    table = compiler.preparer.format_table(element.column.table)
    where = compiler.process(element.where, **kw)
    # Compiled from our own columns and tables: no value is in the text.
    select = f"SELECT {column} AS v FROM {table} WHERE {where} ORDER BY {column}"  # noqa: S608
    return f"json((SELECT json_group_array(v) FROM ({select})))"  # noqa: S608


@compiles(JsonIds, "postgresql")
def _ids_postgresql(element: JsonIds, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    table = compiler.preparer.format_table(element.column.table)
    where = compiler.process(element.where, **kw)
    # Compiled from our own columns and tables: no value is in the text.
    select = f"SELECT json_agg({column} ORDER BY {column}) FROM {table} WHERE {where}"  # noqa: S608
    return f"coalesce(({select}), '[]'::json)"


class KeptOnPostgresql(ColumnElement[str]):
    """``rendered`` (a construct above) on SQLite; on PostgreSQL ``kept``, a column that a
    trigger keeps equal to it in the transaction of every change (migration 0024): the database
    renders once per write instead of once per read."""

    inherit_cache = False
    type = Text()

    def __init__(self, kept: Any, rendered: Any) -> None:
        self.kept, self.rendered = kept, rendered


@compiles(KeptOnPostgresql)
def _kept_default(element: KeptOnPostgresql, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.rendered, **kw))


@compiles(KeptOnPostgresql, "postgresql")
def _kept_postgresql(element: KeptOnPostgresql, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.kept, **kw))
