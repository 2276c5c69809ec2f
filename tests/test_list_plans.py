"""Lists stay flat as a tenant grows (issue 16): every sort of the device list reads an index in
its order (no sort of the tenant's rows), and a cursor seeks to its position in that index
instead of scanning from the first row. Checked on the query plan, not by timing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from authserver import devices
from authserver.models import db

SORTS = ("createdAt", "name", "updatedAt", "lastActivityAt")
INDEX = {
    "createdAt": "ix_devices_tenant_created",
    "name": "ix_devices_tenant_name",
    "updatedAt": "ix_devices_tenant_updated",
    "lastActivityAt": "ix_devices_tenant_activity",
}


def plan(stmt: Any, params: dict[str, Any]) -> str:
    compiled = stmt.compile(dialect=db.engine.dialect)
    values = {**compiled.params, **params}
    args: Any = values
    if compiled.positiontup is not None:
        args = tuple(values[name] for name in compiled.positiontup)
    with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # The test's tables are tiny (and their statistics whatever earlier tests left):
            # make the planner show what it does with a big one, where reading an index in the
            # page's order beats sorting the tenant. A sort is still what it does when no index
            # gives the order.
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            conn.execute(text("SET LOCAL enable_bitmapscan = off"))
            conn.execute(text("SET LOCAL enable_sort = off"))
            rows = conn.exec_driver_sql("EXPLAIN " + compiled.string, args).all()
        else:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string, args).all()
    return "\n".join(str(r[-1]) for r in rows)


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("sort", SORTS)
def test_every_device_sort_reads_its_index_in_order_and_a_cursor_seeks(app, sort, descending):
    with app.app_context():
        for with_cursor in (False, True):
            query = devices.DeviceQuery(sort_by=sort, descending=descending)
            stmt = devices._search_statement(query, with_cursor, None, (False, False))
            key = "Till 7" if sort == "name" else 1_796_000_000_000
            params = {"tenant_id": "ten_x", "limit": 51, "after_key": key, "after_id": "dev_x"}
            found = plan(stmt, params)
            assert INDEX[sort] in found, found
            if db.engine.dialect.name == "postgresql":
                assert "Sort" not in found and "Index Scan" in found, found
                if with_cursor:  # the position is part of the index condition: a seek
                    cond = next(line for line in found.splitlines() if "Index Cond" in line)
                    assert "ROW(" in cond, found
            else:
                assert "TEMP B-TREE" not in found, found
                if with_cursor:
                    # SQLite seeks on the row value; on an expression key, on the key.
                    seek = "<expr>" if sort == "lastActivityAt" else ",id)"
                    assert f"{seek}>" in found.replace(" ", "") or f"{seek}<" in found.replace(
                        " ", ""
                    ), found
