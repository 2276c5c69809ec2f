"""device search on PostgreSQL: the trigram indexes' pending lists kept short (64 kB, from 4 MB)

A GIN index takes new entries into a pending list, unsorted, and moves them into the index in
batches; until then every search reads the whole list. With PostgreSQL's default of 4 MB, the
entries of a few thousand recent changes are read on every search (any change of a device that
touches an indexed column, its activity time among them, rewrites its entries), and a ``q``
search at 100,000 devices took 25-35 ms instead of 3 (measured 2026-12-02, bench/scale.py).
At 64 kB (PostgreSQL's smallest) the batches are small, a change costs about the same, and a
search reads at most a few dozen pending entries (issue 16).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-02 18:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

# The indexes of migration 0019.
TRIGRAM_INDEXES = (
    "ix_devices_name_trgm",
    "ix_devices_external_id_trgm",
    "ix_devices_identifier_trgm",
    "ix_devices_till_id_trgm",
)
PENDING_LIST_KB = 64


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for index in TRIGRAM_INDEXES:
        op.execute(f"ALTER INDEX {index} SET (gin_pending_list_limit = {PENDING_LIST_KB})")
        # What waits in the list now is moved into the index at once.
        op.execute(f"SELECT gin_clean_pending_list('{index}'::regclass)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for index in TRIGRAM_INDEXES:
        op.execute(f"ALTER INDEX {index} RESET (gin_pending_list_limit)")
