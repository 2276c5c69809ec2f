"""devices: printers and the last order (seed 000), found by identifier, what unblocking with
restored sessions needs; device-flow requests remember the identifier a device gives itself

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 19:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("printer_uids", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("last_order_uid", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("block_mark", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("mark_before_block", sa.String(length=32), nullable=True))
    op.create_index(
        "uq_devices_tenant_identifier",
        "devices",
        ["tenant_id", "identifier"],
        unique=True,
        sqlite_where=sa.text("deleted_at IS NULL AND identifier IS NOT NULL"),
        postgresql_where=sa.text("deleted_at IS NULL AND identifier IS NOT NULL"),
    )
    with op.batch_alter_table("device_authorizations") as batch:
        batch.add_column(sa.Column("device_identifier", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("device_authorizations") as batch:
        batch.drop_column("device_identifier")
    op.drop_index("uq_devices_tenant_identifier", table_name="devices")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("mark_before_block")
        batch.drop_column("block_mark")
        batch.drop_column("last_order_uid")
        batch.drop_column("printer_uids")
