"""device authorizations: no index on client_id (nothing reads them by client; each new
transaction, a hot-path insert, kept one more B-tree up to date for it)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 07:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_device_authorizations_client_id", table_name="device_authorizations")


def downgrade() -> None:
    op.create_index("ix_device_authorizations_client_id", "device_authorizations", ["client_id"])
