"""device tallies on both backends: each tenant's live devices per status, origin and appCode,
kept by triggers in the same transaction as every change, so that the list's ``count`` filtered
by any of those three (or by none) is one small read however large the fleet (issue 16)

Replaces SQLite's ``device_counts`` (0021, per status only).

- SQLite: one row per (tenant, status, origin, appCode), kept by row triggers. Its writers take
  turns, so a tally row is never a point of contention there.
- PostgreSQL: a counter row updated by every change would make concurrent writers of a tenant
  wait for each other's commit. Instead each statement that changes devices *appends* its net
  change per (tenant, status, origin, appCode) (a statement trigger reading the transition
  tables: a bulk chunk of 500 adds a row or two), and ``authserver.devices.count_devices`` sums
  them, folding a tenant's rows into one per combination once they are many. Appending takes no
  lock another writer waits for.

Not in the models; tests/registry/test_device_bulk.py compares the counts with the lists after
every kind of change, on both backends.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-02 14:00:00
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

_CREATE = (
    "CREATE TABLE device_tallies (tenant_id VARCHAR(48) NOT NULL, status VARCHAR(16) NOT NULL,"
    " origin VARCHAR(16) NOT NULL, app_code VARCHAR(16) NOT NULL, n BIGINT NOT NULL{key})"
)
_BACKFILL = (
    "INSERT INTO device_tallies (tenant_id, status, origin, app_code, n)"
    " SELECT tenant_id, status, origin, app_code, count(*) FROM devices"
    " WHERE deleted_at IS NULL GROUP BY tenant_id, status, origin, app_code"
)
_WATCHED = "tenant_id, status, origin, app_code, deleted_at"

# -- SQLite: row triggers on a keyed tally ---------------------------------------------------------
_ADD = (
    "INSERT INTO device_tallies (tenant_id, status, origin, app_code, n)"
    " VALUES ({row}.tenant_id, {row}.status, {row}.origin, {row}.app_code, 1)"
    " ON CONFLICT (tenant_id, status, origin, app_code) DO UPDATE SET n = n + 1"
)
_REMOVE = (
    "UPDATE device_tallies SET n = n - 1 WHERE tenant_id = {row}.tenant_id"
    " AND status = {row}.status AND origin = {row}.origin AND app_code = {row}.app_code"
)
SQLITE = (
    "DROP TRIGGER IF EXISTS device_counts_insert",
    "DROP TRIGGER IF EXISTS device_counts_update_old",
    "DROP TRIGGER IF EXISTS device_counts_update_new",
    "DROP TRIGGER IF EXISTS device_counts_delete",
    "DROP TABLE IF EXISTS device_counts",
    _CREATE.format(key=", PRIMARY KEY (tenant_id, status, origin, app_code)"),
    "CREATE TRIGGER device_tallies_insert AFTER INSERT ON devices"
    " WHEN NEW.deleted_at IS NULL BEGIN " + _ADD.format(row="NEW") + "; END",
    f"CREATE TRIGGER device_tallies_update_old AFTER UPDATE OF {_WATCHED}"
    " ON devices WHEN OLD.deleted_at IS NULL BEGIN " + _REMOVE.format(row="OLD") + "; END",
    f"CREATE TRIGGER device_tallies_update_new AFTER UPDATE OF {_WATCHED}"
    " ON devices WHEN NEW.deleted_at IS NULL BEGIN " + _ADD.format(row="NEW") + "; END",
    "CREATE TRIGGER device_tallies_delete AFTER DELETE ON devices"
    " WHEN OLD.deleted_at IS NULL BEGIN " + _REMOVE.format(row="OLD") + "; END",
    _BACKFILL,
)
SQLITE_TRIGGERS = ("device_tallies_insert", "device_tallies_update_old",
                   "device_tallies_update_new", "device_tallies_delete")  # fmt: skip

# -- PostgreSQL: statement triggers append net changes ---------------------------------------------
_LIVE = (
    "SELECT tenant_id, status, origin, app_code, {sign} AS n FROM {rows} WHERE deleted_at IS NULL"
)
_APPEND = (
    "INSERT INTO device_tallies (tenant_id, status, origin, app_code, n)"
    " SELECT tenant_id, status, origin, app_code, sum(n) FROM ({changes}) AS c"
    " GROUP BY tenant_id, status, origin, app_code HAVING sum(n) <> 0"
)


def _append(*parts: tuple[str, int]) -> str:
    """The statement that appends the net change of a statement's transition tables."""
    changes = " UNION ALL ".join(_LIVE.format(sign=sign, rows=rows) for rows, sign in parts)
    return _APPEND.format(changes=changes)


def _function(name: str, body: str) -> str:
    return (
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" BEGIN {body}; RETURN NULL; END $$"
    )


POSTGRESQL = (
    _CREATE.format(key=""),
    "CREATE INDEX ix_device_tallies_tenant ON device_tallies (tenant_id)",
    _function("device_tallies_inserted", _append(("new_rows", 1))),
    _function("device_tallies_updated", _append(("new_rows", 1), ("old_rows", -1))),
    _function("device_tallies_deleted", _append(("old_rows", -1))),
    _function("device_tallies_truncated", "DELETE FROM device_tallies"),
    "CREATE TRIGGER device_tallies_insert AFTER INSERT ON devices"
    " REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT"
    " EXECUTE FUNCTION device_tallies_inserted()",
    # Transition tables allow no column list (UPDATE OF): every update statement runs it, and
    # one that changes none of the key (a device's activity time) appends nothing.
    "CREATE TRIGGER device_tallies_update AFTER UPDATE ON devices"
    " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT"
    " EXECUTE FUNCTION device_tallies_updated()",
    "CREATE TRIGGER device_tallies_delete AFTER DELETE ON devices"
    " REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT"
    " EXECUTE FUNCTION device_tallies_deleted()",
    # TRUNCATE runs no delete trigger: it empties the tallies too.
    "CREATE TRIGGER device_tallies_truncate AFTER TRUNCATE ON devices FOR EACH STATEMENT"
    " EXECUTE FUNCTION device_tallies_truncated()",
    _BACKFILL,
)
POSTGRESQL_TRIGGERS = ("device_tallies_insert", "device_tallies_update", "device_tallies_delete",
                       "device_tallies_truncate")  # fmt: skip


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in SQLITE if sqlite else POSTGRESQL:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS device_tallies")
        # Back to 0021's counts per status, rebuilt from the devices.
        path = Path(__file__).with_name("0021_device_counts.py")
        spec = importlib.util.spec_from_file_location("migration_0021", path)
        assert spec is not None and spec.loader is not None
        previous = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(previous)
        for statement in previous.STATEMENTS:
            op.execute(statement)
        return
    for trigger in POSTGRESQL_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON devices")
    for function in ("device_tallies_inserted", "device_tallies_updated", "device_tallies_deleted",
                     "device_tallies_truncated"):  # fmt: skip
        op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    op.execute("DROP TABLE IF EXISTS device_tallies")
