"""device counts on SQLite: each tenant's live devices per status, kept by triggers in the same
transaction as every change, so that the list's ``count`` of a tenant (or of one status) is one
read however large the fleet (issue 16)

On SQLite only: its writers take turns, so a counter row is never a point of contention there.
PostgreSQL counts exactly up to 10,000 and estimates beyond (``authserver.devices.count_devices``).
Not in the models; tests/registry/test_device_bulk.py compares the counts with the lists after
every kind of change.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02 11:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

_ADD = """INSERT INTO device_counts (tenant_id, status, n) VALUES ({row}.tenant_id, {row}.status, 1)
            ON CONFLICT (tenant_id, status) DO UPDATE SET n = n + 1"""
_REMOVE = """UPDATE device_counts SET n = n - 1
            WHERE tenant_id = {row}.tenant_id AND status = {row}.status"""

STATEMENTS = (
    "CREATE TABLE device_counts (tenant_id VARCHAR(48) NOT NULL, status VARCHAR(16) NOT NULL,"
    " n INTEGER NOT NULL, PRIMARY KEY (tenant_id, status))",
    "CREATE TRIGGER device_counts_insert AFTER INSERT ON devices"
    " WHEN NEW.deleted_at IS NULL BEGIN " + _ADD.format(row="NEW") + "; END",
    "CREATE TRIGGER device_counts_update_old AFTER UPDATE OF tenant_id, status, deleted_at"
    " ON devices WHEN OLD.deleted_at IS NULL BEGIN " + _REMOVE.format(row="OLD") + "; END",
    "CREATE TRIGGER device_counts_update_new AFTER UPDATE OF tenant_id, status, deleted_at"
    " ON devices WHEN NEW.deleted_at IS NULL BEGIN " + _ADD.format(row="NEW") + "; END",
    "CREATE TRIGGER device_counts_delete AFTER DELETE ON devices"
    " WHEN OLD.deleted_at IS NULL BEGIN " + _REMOVE.format(row="OLD") + "; END",
    "INSERT INTO device_counts (tenant_id, status, n)"
    " SELECT tenant_id, status, count(*) FROM devices WHERE deleted_at IS NULL"
    " GROUP BY tenant_id, status",
)
TRIGGERS = ("device_counts_insert", "device_counts_update_old", "device_counts_update_new",
            "device_counts_delete")  # fmt: skip


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for trigger in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS device_counts")
