"""access tokens are self-contained: no row per token; revocation entries instead

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 13:00:00

Tokens issued before this upgrade name no revocation subjects in their claims, so a mark for
"all" is written now: they stop being accepted (clients fetch new ones, as after any key
rotation), and nothing revoked can come back.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from flask import current_app

from authserver.security import now_float

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("access_tokens")
    op.create_table(
        "revocations",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_revocations_expires_at_ms", "revocations", ["expires_at_ms"])
    settings = current_app.extensions["authserver"].settings
    # Every token issued before this moment (by the app's clock, as every revocation entry).
    now_ms = int(now_float() * 1000) - 1
    expires = now_ms + (settings.max_token_lifetime + 60) * 1000
    mark = {"key": "rvk:all:*", "value": str(now_ms), "expires_at_ms": expires}
    op.bulk_insert(
        sa.table(
            "revocations",
            sa.column("key", sa.String),
            sa.column("value", sa.String),
            sa.column("expires_at_ms", sa.BigInteger),
        ),
        [mark],
    )
    op.bulk_insert(  # the SQL state store reads its own table
        sa.table(
            "ephemeral_entries",
            sa.column("key", sa.String),
            sa.column("value", sa.Text),
            sa.column("counter", sa.Integer),
            sa.column("expires_at_ms", sa.BigInteger),
        ),
        [{**mark, "counter": 0}],
    )


def downgrade() -> None:
    op.drop_index("ix_revocations_expires_at_ms", table_name="revocations")
    op.drop_table("revocations")
    op.create_table(
        "access_tokens",
        sa.Column("jti_hash", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=48), nullable=False),
        sa.Column("tenant_id", sa.String(length=48), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.String(length=48), nullable=True),
        sa.Column("device_id", sa.String(length=48), nullable=True),
        sa.Column("family_id", sa.String(length=48), nullable=True),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("jkt", sa.String(length=64), nullable=True),
        sa.Column("token_type", sa.String(length=16), nullable=False),
        sa.Column("issued_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("jti_hash"),
    )
