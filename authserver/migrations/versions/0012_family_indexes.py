"""refresh families found by module and by user without a scan (module logout and re-enrolment,
a person's key or account revoked)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 19:50:00
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_refresh_families_tenant_module", "refresh_families", ["tenant_id", "module_id"]
    )
    op.create_index("ix_refresh_families_user_id", "refresh_families", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_refresh_families_user_id", table_name="refresh_families")
    op.drop_index("ix_refresh_families_tenant_module", table_name="refresh_families")
