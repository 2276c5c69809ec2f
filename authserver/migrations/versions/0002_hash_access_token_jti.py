"""keep no clear jti at rest: access tokens are recorded by a keyed hash of their jti

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 10:30:00

Security review F1: a clear ``jti`` in ``access_tokens`` or ``device_authorizations`` was enough,
with the (since fixed) ``alg: none`` hole, to mint a working token. The columns are renamed and
every existing value is replaced by its HMAC under the deployment's secret key, so tokens issued
before the upgrade stay valid.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from flask import current_app

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PURPOSE = "access-token-jti"  # authserver.tokens.JTI_HASH_PURPOSE, fixed here as it was then


def _hash_column(table: str, column: str) -> None:
    hasher = current_app.extensions["authserver"].hasher
    conn = op.get_bind()
    t = sa.table(table, sa.column(column, sa.String))
    values = [v for (v,) in conn.execute(sa.select(t.c[column]).where(t.c[column].is_not(None)))]
    for value in values:
        conn.execute(
            sa.update(t).where(t.c[column] == value).values({column: hasher.hash(PURPOSE, value)})
        )


def upgrade() -> None:
    with op.batch_alter_table("access_tokens") as batch:
        batch.alter_column(
            "jti", new_column_name="jti_hash", existing_type=sa.String(64), nullable=False
        )
    with op.batch_alter_table("device_authorizations") as batch:
        batch.alter_column(
            "access_jti",
            new_column_name="access_jti_hash",
            existing_type=sa.String(64),
            nullable=True,
        )
    _hash_column("access_tokens", "jti_hash")
    _hash_column("device_authorizations", "access_jti_hash")


def downgrade() -> None:
    # The clear values cannot be recovered from their hashes: recorded tokens are dropped (they
    # become inactive) and the columns get their old names back.
    op.execute("DELETE FROM access_tokens")
    op.execute("UPDATE device_authorizations SET access_jti_hash = NULL")
    with op.batch_alter_table("access_tokens") as batch:
        batch.alter_column(
            "jti_hash", new_column_name="jti", existing_type=sa.String(64), nullable=False
        )
    with op.batch_alter_table("device_authorizations") as batch:
        batch.alter_column(
            "access_jti_hash",
            new_column_name="access_jti",
            existing_type=sa.String(64),
            nullable=True,
        )
