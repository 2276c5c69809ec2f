"""modules: configured software at a tenant (kiosk, KDS, ...) with a config, a common config per
type; device-flow grants remember the module a device enrolled as

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("device_authorizations", "refresh_families"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("module_id", sa.String(length=64), nullable=True))
    op.create_table(
        "modules",
        sa.Column("tenant_id", sa.String(length=48), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("production", sa.Boolean(), nullable=False),
        sa.Column("user_id", sa.String(length=48), nullable=True),
        sa.Column("location_id", sa.String(length=48), nullable=True),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=48), nullable=True),
        sa.Column("updated_by", sa.String(length=48), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
    )
    op.create_index("ix_modules_type", "modules", ["type"], unique=False)
    op.create_index("ix_modules_location_id", "modules", ["location_id"], unique=False)
    op.create_table(
        "module_type_configs",
        sa.Column("tenant_id", sa.String(length=48), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", sa.String(length=48), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("tenant_id", "type"),
    )


def downgrade() -> None:
    op.drop_table("module_type_configs")
    op.drop_index("ix_modules_location_id", table_name="modules")
    op.drop_index("ix_modules_type", table_name="modules")
    op.drop_table("modules")
    for table in ("device_authorizations", "refresh_families"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("module_id")
