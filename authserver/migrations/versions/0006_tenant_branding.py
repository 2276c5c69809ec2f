"""tenants have an accent colour and a logo for the verification page

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("accent_colour", sa.String(length=7), nullable=True))
        batch.add_column(sa.Column("logo_url", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("logo_url")
        batch.drop_column("accent_colour")
