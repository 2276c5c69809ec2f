"""an issued device's history: one status per place in its order (unique device and seq), which
also finds a device's history by the device

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 22:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "uq_issued_device_statuses_device_seq",
        "issued_device_statuses",
        ["issued_device_id", "seq"],
        unique=True,
    )
    op.drop_index("ix_issued_device_statuses_issued_device_id", table_name="issued_device_statuses")


def downgrade() -> None:
    op.create_index(
        "ix_issued_device_statuses_issued_device_id", "issued_device_statuses", ["issued_device_id"]
    )
    op.drop_index("uq_issued_device_statuses_device_seq", table_name="issued_device_statuses")
