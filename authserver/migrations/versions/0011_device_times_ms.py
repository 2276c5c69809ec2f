"""devices keep their times to the millisecond: created_at, updated_at and last_activity_at become
Unix milliseconds

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 19:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "UPDATE devices SET created_at = created_at * 1000, updated_at = updated_at * 1000, "
        "last_activity_at = last_activity_at * 1000"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE devices SET created_at = created_at / 1000, updated_at = updated_at / 1000, "
        "last_activity_at = last_activity_at / 1000"
    )
