"""users.user_code_hash is the staff code's: "user code" now means only RFC 8628's code

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 11:00:00

The stored hashes are unchanged (same purpose string, authserver.credentials.STAFF_CODE).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_tenant_user_code", type_="unique")
        batch.alter_column(
            "user_code_hash", new_column_name="staff_code_hash", existing_type=sa.String(64)
        )
    with op.batch_alter_table("users") as batch:
        batch.create_unique_constraint(
            "uq_users_tenant_staff_code", ["tenant_id", "staff_code_hash"]
        )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_tenant_staff_code", type_="unique")
        batch.alter_column(
            "staff_code_hash", new_column_name="user_code_hash", existing_type=sa.String(64)
        )
    with op.batch_alter_table("users") as batch:
        batch.create_unique_constraint("uq_users_tenant_user_code", ["tenant_id", "user_code_hash"])
