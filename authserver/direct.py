"""Statements on the hot paths: compiled once, run on a per-thread autocommit connection.

A statement through the ORM session costs a connection checkout, a transaction, result
processing and a session close on every request; for ``GET /devices/me``, a refresh token's
lookup or a page of devices that was most of the request. Here a SQLAlchemy Core statement is
compiled once per dialect, and each call is one ``execute`` on this thread's own connection
(autocommit: a read sees what has been committed, as a fresh session would; a write is its own
transaction). Rows come back as named tuples with the statement's column names, so code reads
``row.name`` as it would from SQLAlchemy.

What belongs here: reads, and writes that are a whole change on their own (one statement,
atomic by itself, such as a new device authorization). Anything that must commit together with
other changes goes through the session. A read on a connection the server dropped is tried once
more on a fresh one; a write is not (it may have happened): the caller gets StoreUnavailable.
"""

from __future__ import annotations

import contextlib
import threading
from collections import namedtuple
from collections.abc import Iterator
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.sql import Select

from authserver.ephemeral import StoreUnavailable, own_connection
from authserver.models import closed_by_server
from authserver.writegate import WriteGate


class _Compiled:
    __slots__ = ("stmt", "sql", "names", "defaults", "row")

    def __init__(
        self, stmt: Any, sql: str, names: list[str] | None, defaults: dict[str, Any], row: Any
    ) -> None:
        # ``stmt`` is kept so that its id() (the cache key) stays its own.
        self.stmt, self.sql, self.names, self.defaults, self.row = stmt, sql, names, defaults, row


def _processed(make: Any, processors: list[tuple[int, Any]]) -> Any:
    def processed(values: Any) -> Any:
        out = list(values)
        for i, proc in processors:
            if out[i] is not None:  # NULL is None for every type
                out[i] = proc(out[i])
        return make(out)

    return processed


class Direct:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = engine.dialect
        self._local = threading.local()
        self._compiled: dict[int, _Compiled] = {}
        dbapi = engine.dialect.loaded_dbapi
        self._unavailable = (dbapi.OperationalError, dbapi.InterfaceError, OperationalError)
        self._integrity = dbapi.IntegrityError
        self._positional = engine.dialect.positional
        self._gate = WriteGate(engine)

    def _compile(self, stmt: Any) -> _Compiled:
        found = self._compiled.get(id(stmt))
        if found is None:
            compiled = stmt.compile(dialect=self._dialect)
            if any(b.expanding for b in compiled.binds.values()):
                raise ValueError("hot reads take no expanding (IN list) parameters")
            names = list(compiled.positiontup or []) if self._positional else None
            selected = list(getattr(stmt, "selected_columns", ()))
            columns = [c.key for c in selected] or ["nothing"]
            row = namedtuple("Row", columns)._make  # type: ignore[misc, arg-type, attr-defined]  # noqa: PYI024
            # Values the driver does not give as the column's type says (on SQLite: JSON as
            # text, booleans as 0/1) go through SQLAlchemy's own result processors, so that a
            # row reads as the ORM's object would; the other columns are taken as they come.
            # The processor is asked for without the driver's type code: right for the types
            # hot reads select (text, integers, booleans, JSON); a Numeric column would need it.
            processors = [
                (i, proc)
                for i, col in enumerate(selected)
                if (proc := col.type._cached_result_processor(self._dialect, None)) is not None
            ]
            if processors:
                row = _processed(row, processors)
            defaults = {k: v for k, v in compiled.params.items() if v is not None}
            found = _Compiled(stmt, compiled.string, names, defaults, row)
            self._compiled[id(stmt)] = found
        return found

    def _connection(self) -> Any:
        fairy = getattr(self._local, "fairy", None)
        if fairy is not None and closed_by_server(fairy.dbapi_connection):
            # The server went away and came back (a restart): reconnect before sending, so
            # that a write, which is never retried, does not fail on a connection known dead.
            with contextlib.suppress(Exception):
                fairy.dbapi_connection.close()
            fairy = None
        if fairy is None:
            fairy = self._local.fairy = own_connection(self._engine, self._unavailable)
        return fairy.dbapi_connection

    def all(self, stmt: Select[Any], params: dict[str, Any]) -> list[Any]:
        """Every row of ``stmt`` (a module-level Core select with bound parameters)."""
        return self._run(stmt, params, read=True)  # type: ignore[no-any-return]

    def write(self, stmt: Any, params: dict[str, Any]) -> int:
        """Run one insert, update or delete on its own (committed at once); the row count.
        Integrity errors (a unique index) reach the caller as SQLAlchemy's IntegrityError."""
        return self._run(stmt, params, read=False)  # type: ignore[no-any-return]

    def _run(self, stmt: Any, params: dict[str, Any], read: bool) -> Any:
        c = self._compile(stmt)
        values = {**c.defaults, **params} if c.defaults else params
        args: Any = [values[name] for name in c.names] if c.names is not None else values
        for attempt in (1, 2):
            conn = self._connection()
            cur = conn.cursor()
            try:
                held = None if read else self._gate.enter()
                try:
                    cur.execute(c.sql, args)
                except self._integrity as exc:
                    raise IntegrityError(c.sql, None, exc) from exc
                finally:
                    if held is not None:
                        WriteGate.leave(held)
                if not read:
                    return cur.rowcount
                make = c.row
                return [make(r) for r in cur.fetchall()]
            except self._unavailable as exc:
                dropped = self._dialect.is_disconnect(exc, conn, None)  # type: ignore[arg-type]
                if dropped:
                    fairy = self._local.fairy
                    self._local.fairy = None
                    with contextlib.suppress(Exception):
                        fairy.dbapi_connection.close()
                if attempt == 2 or not dropped or not read:
                    raise StoreUnavailable("database unreachable") from exc
            finally:
                with contextlib.suppress(Exception):
                    cur.close()
        raise AssertionError("unreachable")  # pragma: no cover

    @contextlib.contextmanager
    def transaction(self) -> Iterator[_Transaction]:
        """Several writes committed together on this thread's connection (SQLite: ``BEGIN
        IMMEDIATE``, so the write lock is taken, or waited for, up front). Nothing is retried:
        a failure rolls back and raises (a lost connection as StoreUnavailable)."""
        conn = self._connection()
        tx = _Transaction(self, conn)
        with self._gate.held():
            try:
                conn.execute("BEGIN IMMEDIATE" if self._positional else "BEGIN")
                yield tx
                conn.execute("COMMIT")
            except self._unavailable as exc:
                self._abort(conn)
                raise StoreUnavailable("database unreachable") from exc
            except BaseException:
                self._abort(conn)
                raise

    def _abort(self, conn: Any) -> None:
        try:
            conn.execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - the connection is gone: a fresh one next time
            fairy = self._local.fairy
            self._local.fairy = None
            with contextlib.suppress(Exception):
                fairy.dbapi_connection.close()

    def first(self, stmt: Select[Any], params: dict[str, Any]) -> Any | None:
        rows = self.all(stmt, params)
        return rows[0] if rows else None


class _Transaction:
    def __init__(self, direct: Direct, conn: Any) -> None:
        self._direct, self._conn = direct, conn

    def write(self, stmt: Any, params: dict[str, Any]) -> int:
        c = self._direct._compile(stmt)
        values = {**c.defaults, **params} if c.defaults else params
        args: Any = [values[name] for name in c.names] if c.names is not None else values
        cur = self._conn.cursor()
        try:
            cur.execute(c.sql, args)
        except self._direct._integrity as exc:
            raise IntegrityError(c.sql, None, exc) from exc
        try:
            return int(cur.rowcount)
        finally:
            cur.close()


def direct() -> Direct:
    """This app's direct statements."""
    from authserver.state import get_state

    found = get_state().direct
    assert found is not None
    return found
