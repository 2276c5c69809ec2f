"""device sort indexes: every sortBy of the device list is an index on (tenant, key, id), so a
page in any order and at any depth is an index seek (issue 16)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 07:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_devices_tenant_name", "devices", ["tenant_id", "name", "id"])
    op.create_index("ix_devices_tenant_updated", "devices", ["tenant_id", "updated_at", "id"])
    op.create_index(
        "ix_devices_tenant_activity",
        "devices",
        ["tenant_id", sa.text("coalesce(last_activity_at, 0)"), "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_devices_tenant_activity", table_name="devices")
    op.drop_index("ix_devices_tenant_updated", table_name="devices")
    op.drop_index("ix_devices_tenant_name", table_name="devices")
