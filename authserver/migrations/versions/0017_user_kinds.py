"""user kinds: a tenant's people are staff or customers (seed 003's end users), and a sign-in
client may be for one kind only

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 23:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Everyone who exists already was made as staff (roles, staff codes): they stay staff.
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="staff")
        )
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("user_kind", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("user_kind")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("kind")
