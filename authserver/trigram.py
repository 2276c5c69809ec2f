"""Substring searches through SQLite's FTS5 trigram tables (devices: migration 0020; people: 0025).

A search for a part of a text (``lower(column) LIKE '%term%'``) reads every row of a tenant
unless an index finds the candidates. PostgreSQL's ``pg_trgm`` GIN indexes serve that ``LIKE``
itself. On SQLite an FTS5 table with the trigram tokenizer, kept in step by triggers, is asked
for the rows whose columns hold the term as one phrase (its characters, in order); the search's
own ``LIKE`` still decides among them, so the index only ever narrows what is read.

Each such table's rowid is the key of a ``*_search_keys`` table (an INTEGER PRIMARY KEY, which
VACUUM keeps) that maps it to the row's id. The probe lists at most ``cap`` + 1 candidates'
keys as a JSON array, in one read; a term with more candidates than ``cap`` is left to the
caller's walk of its sort index, where matches that dense fill a page soon.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import bindparam, func, literal_column, select, table, text
from sqlalchemy import column as sql_column

from authserver.models import db

_SQLITE_HAS: dict[tuple[str, str], bool] = {}


def sqlite_has(name: str) -> bool:
    """Whether this SQLite database has the table ``name`` (made by a SQLite-only migration;
    one read per database and name)."""
    key = (str(db.engine.url), name)
    if key not in _SQLITE_HAS:
        _SQLITE_HAS[key] = (
            db.session.scalar(
                select(literal_column("1"))
                .select_from(table("sqlite_master"))
                .where(literal_column("name") == name)
            )
            is not None
        )
    return _SQLITE_HAS[key]


def phrase(term: str, columns: str = "") -> str:
    """An FTS5 query for ``term`` as one phrase (``"`` doubled, every other character plain),
    in ``columns`` (FTS5's ``name`` or ``{a b}`` column filter) when given."""
    quoted = '"' + term.replace('"', '""') + '"'
    return f"{columns} : {quoted}" if columns else quoted


_PROBES: dict[str, Any] = {}


def probe(fts_table: str) -> Any:
    """The statement that lists the keys (a JSON array built by SQLite) of at most ``:cap`` rows
    of ``fts_table`` matching ``:fts``, and how many it found: ``(n, keys)``."""
    stmt = _PROBES.get(fts_table)
    if stmt is None:
        stmt = _PROBES[fts_table] = text(
            f"SELECT count(*), json_group_array(rowid) FROM"  # noqa: S608 - our own table names
            f" (SELECT rowid FROM {fts_table} WHERE {fts_table} MATCH :fts LIMIT :cap)"
        ).columns(sql_column("n"), sql_column("keys"))
    return stmt


def candidates(keys_table: str, id_column: str) -> Any:
    """The ids (``id_column`` of ``keys_table``) of the keys bound as ``:search_keys``."""
    keys = table(keys_table, sql_column("key"), sql_column(id_column))
    return select(keys.c[id_column]).where(
        keys.c.key.in_(
            select(literal_column("value")).select_from(func.json_each(bindparam("search_keys")))
        )
    )


def candidate_keys(
    fts_table: str, fts: str, cap: int, first: Callable[[Any, dict[str, Any]], Any]
) -> str | None:
    """The keys (a JSON array) of the rows of ``fts_table`` that match ``fts`` when there are at
    most ``cap``, read by ``first`` (a statement and its values to its first row: the caller's
    connection); None on another database than SQLite, without the table, or with more."""
    if db.engine.dialect.name != "sqlite" or not sqlite_has(fts_table):
        return None
    found = first(probe(fts_table), {"fts": fts, "cap": cap + 1})
    return found[1] if found is not None and found[0] <= cap else None
