"""device search on PostgreSQL: trigram (pg_trgm) GIN indexes on the lowered name, externalId,
identifier and till, which the list's substring searches (``name``, ``q``: ``lower(col) LIKE '%...%'``)
use instead of reading every device of the tenant (issue 16)

On PostgreSQL only: ``pg_trgm`` ships with PostgreSQL (contrib) and is a trusted extension since
PostgreSQL 13, so the database's owner may create it. The indexes are not in the models (they
exist for one backend); tests/system/test_migrations.py checks them by name.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 08:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

# (index, column) of each trigram index; authserver.devices searches lower(column) with LIKE.
TRIGRAM_INDEXES = (
    ("ix_devices_name_trgm", "name"),
    ("ix_devices_external_id_trgm", "external_id"),
    ("ix_devices_identifier_trgm", "identifier"),
    ("ix_devices_till_id_trgm", "till_id"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for index, column in TRIGRAM_INDEXES:
        op.execute(
            f"CREATE INDEX IF NOT EXISTS {index} ON devices USING gin (lower({column}) gin_trgm_ops)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for index, _ in TRIGRAM_INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {index}")
