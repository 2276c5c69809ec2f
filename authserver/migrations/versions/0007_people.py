"""people: users have a profile (names, phone, push id, consents, properties, trusted), linked
external identities (auth strategies) and a second factor; grants remember how the user signed
in; tenants have properties

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 16:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("first_name", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("last_name", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("phone", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("push_id", sa.String(length=256), nullable=True))
        batch.add_column(sa.Column("consents", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("properties", sa.JSON(), nullable=True))
        batch.add_column(
            sa.Column("trusted", sa.Boolean(), nullable=False, server_default=sa.text("false"))
        )
        batch.add_column(sa.Column("updated_at", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("totp_secret_enc", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("totp_enabled_at", sa.BigInteger(), nullable=True))
    for table in ("device_authorizations", "refresh_families"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("amr", sa.String(length=32), nullable=True))
    op.create_table(
        "user_auth_strategies",
        sa.Column("tenant_id", sa.String(length=48), nullable=False),
        sa.Column("strategy", sa.String(length=32), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=48), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("tenant_id", "strategy", "external_id"),
    )
    op.create_index(
        "ix_user_auth_strategies_user_id", "user_auth_strategies", ["user_id"], unique=False
    )
    op.create_table(
        "tenant_properties",
        sa.Column("tenant_id", sa.String(length=48), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("value_enc", sa.LargeBinary(), nullable=True),
        sa.Column("is_private", sa.Boolean(), nullable=False),
        sa.Column("is_obfuscated", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("tenant_id", "name"),
    )


def downgrade() -> None:
    op.drop_table("tenant_properties")
    op.drop_index("ix_user_auth_strategies_user_id", table_name="user_auth_strategies")
    op.drop_table("user_auth_strategies")
    for table in ("device_authorizations", "refresh_families"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("amr")
    with op.batch_alter_table("users") as batch:
        for column in ("totp_enabled_at", "totp_secret_enc", "updated_at", "trusted", "properties", "consents", "push_id", "phone",
                       "last_name", "first_name"):  # fmt: skip
            batch.drop_column(column)
