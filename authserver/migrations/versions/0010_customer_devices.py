"""customer devices (seed 003): devices customers own (phones with push ids) and devices the
tenant issues to them (cards, hardware tokens) with their status history

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 19:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "owned_devices",
        sa.Column("id", sa.String(length=48), nullable=False),
        sa.Column("tenant_id", sa.String(length=48), nullable=False),
        sa.Column("user_id", sa.String(length=48), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("operating_system", sa.String(length=100), nullable=True),
        sa.Column("nickname", sa.String(length=100), nullable=True),
        sa.Column("brand", sa.String(length=100), nullable=True),
        sa.Column("model", sa.String(length=100), nullable=True),
        sa.Column("installation_id", sa.String(length=128), nullable=True),
        sa.Column("push_id", sa.String(length=512), nullable=True),
        sa.Column("push_expires_at", sa.BigInteger(), nullable=True),
        sa.Column("dpop_jkt", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("unregistered_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_owned_devices_tenant_id", "owned_devices", ["tenant_id"])
    op.create_index("ix_owned_devices_user_id", "owned_devices", ["user_id"])
    op.create_index(
        "uq_owned_devices_user_identifier",
        "owned_devices",
        ["user_id", "external_id"],
        unique=True,
        sqlite_where=sa.text("unregistered_at IS NULL"),
        postgresql_where=sa.text("unregistered_at IS NULL"),
    )
    op.create_table(
        "issued_devices",
        sa.Column("id", sa.String(length=48), nullable=False),
        sa.Column("tenant_id", sa.String(length=48), nullable=False),
        sa.Column("user_id", sa.String(length=48), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("masked_identifier", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=48), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_issued_devices_tenant_id", "issued_devices", ["tenant_id"])
    op.create_index("ix_issued_devices_user_id", "issued_devices", ["user_id"])
    op.create_table(
        "issued_device_statuses",
        sa.Column("id", sa.String(length=48), nullable=False),
        sa.Column("issued_device_id", sa.String(length=48), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("changed_by", sa.String(length=48), nullable=False),
        sa.Column("changed_at", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["issued_device_id"], ["issued_devices.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_issued_device_statuses_issued_device_id", "issued_device_statuses", ["issued_device_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_issued_device_statuses_issued_device_id", table_name="issued_device_statuses")
    op.drop_table("issued_device_statuses")
    op.drop_index("ix_issued_devices_user_id", table_name="issued_devices")
    op.drop_index("ix_issued_devices_tenant_id", table_name="issued_devices")
    op.drop_table("issued_devices")
    op.drop_index("uq_owned_devices_user_identifier", table_name="owned_devices")
    op.drop_index("ix_owned_devices_user_id", table_name="owned_devices")
    op.drop_index("ix_owned_devices_tenant_id", table_name="owned_devices")
    op.drop_table("owned_devices")
