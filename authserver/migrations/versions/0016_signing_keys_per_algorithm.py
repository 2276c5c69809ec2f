"""signing keys per algorithm: one current and one next key for each algorithm the server signs
with (access tokens in the configured one, ID tokens in RS256 by default, OIDC Core §15.1)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_STATES = ("current", "next")


def _recreate(columns: list[str]) -> None:
    for state in _STATES:
        where = sa.text(f"state = '{state}'")
        op.drop_index(
            f"uq_signing_keys_{state}",
            table_name="signing_keys",
            sqlite_where=where,
            postgresql_where=where,
        )
        op.create_index(
            f"uq_signing_keys_{state}",
            "signing_keys",
            columns,
            unique=True,
            sqlite_where=where,
            postgresql_where=where,
        )


def upgrade() -> None:
    _recreate(["alg", "state"])


def downgrade() -> None:
    # Only one algorithm's keys can stay current and next: the others' are retired.
    op.execute(
        "UPDATE signing_keys SET state = 'retired' WHERE state IN ('current', 'next') "
        "AND alg <> (SELECT alg FROM signing_keys WHERE state = 'current' "
        "ORDER BY activated_at LIMIT 1)"
    )
    _recreate(["state"])
