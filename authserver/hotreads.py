"""Reads on the hot paths: statements compiled once, run on a per-thread autocommit connection.

A read through the ORM session costs a connection checkout, a transaction, result processing and
a session close on every request; for ``GET /devices/me``, a refresh token's lookup or a page of
devices that was most of the request. Here a SQLAlchemy Core ``select`` is compiled once per
dialect, and each call is one ``execute`` on this thread's own connection (autocommit, so it sees
what has been committed, as a fresh session would). Rows come back as named tuples with the
statement's column names, so code reads ``row.name`` as it would from SQLAlchemy.

Only reads belong here (writes go through the session, in the request's transaction). A
connection the server dropped is replaced and the read tried once more.
"""

from __future__ import annotations

import contextlib
import threading
from collections import namedtuple
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql import Select

from authserver.ephemeral import StoreUnavailable


class _Compiled:
    __slots__ = ("stmt", "sql", "names", "defaults", "row")

    def __init__(
        self, stmt: Any, sql: str, names: list[str] | None, defaults: dict[str, Any], row: Any
    ) -> None:
        # ``stmt`` is kept so that its id() (the cache key) stays its own.
        self.stmt, self.sql, self.names, self.defaults, self.row = stmt, sql, names, defaults, row


class HotReads:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = engine.dialect
        self._local = threading.local()
        self._compiled: dict[int, _Compiled] = {}
        dbapi = engine.dialect.loaded_dbapi
        self._unavailable = (dbapi.OperationalError, dbapi.InterfaceError, OperationalError)
        self._positional = engine.dialect.positional

    def _compile(self, stmt: Select[Any]) -> _Compiled:
        found = self._compiled.get(id(stmt))
        if found is None:
            compiled = stmt.compile(dialect=self._dialect)
            if any(b.expanding for b in compiled.binds.values()):
                raise ValueError("hot reads take no expanding (IN list) parameters")
            names = list(compiled.positiontup or []) if self._positional else None
            columns = [c.key for c in stmt.selected_columns]
            row = namedtuple("Row", columns)  # type: ignore[misc, arg-type]  # noqa: PYI024
            defaults = {k: v for k, v in compiled.params.items() if v is not None}
            found = _Compiled(stmt, compiled.string, names, defaults, row)
            self._compiled[id(stmt)] = found
        return found

    def _connection(self) -> Any:
        fairy = getattr(self._local, "fairy", None)
        if fairy is None:
            try:
                fairy = self._engine.raw_connection()
            except self._unavailable as exc:
                raise StoreUnavailable("database unreachable") from exc
            fairy.detach()
            raw: Any = fairy.dbapi_connection
            if self._positional:
                raw.isolation_level = None  # sqlite3: autocommit
            else:
                raw.autocommit = True
            self._local.fairy = fairy
        return fairy.dbapi_connection

    def all(self, stmt: Select[Any], params: dict[str, Any]) -> list[Any]:
        """Every row of ``stmt`` (a module-level Core select with bound parameters)."""
        c = self._compile(stmt)
        values = {**c.defaults, **params} if c.defaults else params
        args: Any = [values[name] for name in c.names] if c.names is not None else values
        for attempt in (1, 2):
            conn = self._connection()
            cur = conn.cursor()
            try:
                cur.execute(c.sql, args)
                return [c.row(*r) for r in cur.fetchall()]
            except self._unavailable as exc:
                dropped = self._dialect.is_disconnect(exc, conn, None)  # type: ignore[arg-type]
                if dropped:
                    fairy = self._local.fairy
                    self._local.fairy = None
                    with contextlib.suppress(Exception):
                        fairy.dbapi_connection.close()
                if attempt == 2 or not dropped:
                    raise StoreUnavailable("database unreachable") from exc
            finally:
                with contextlib.suppress(Exception):
                    cur.close()
        raise AssertionError("unreachable")  # pragma: no cover

    def first(self, stmt: Select[Any], params: dict[str, Any]) -> Any | None:
        rows = self.all(stmt, params)
        return rows[0] if rows else None


def hot() -> HotReads:
    """This app's hot reads."""
    from authserver.state import get_state

    reads = get_state().reads
    assert reads is not None
    return reads
