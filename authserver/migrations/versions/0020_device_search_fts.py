"""device search on SQLite: an FTS5 trigram index of the devices' name, externalId, identifier
and till, kept in step by triggers in the same transaction as every change (issue 16)

On SQLite only (PostgreSQL has its trigram indexes, 0019). ``device_search`` is an FTS5 table
(trigram tokenizer) whose rowid is a key of ``device_search_keys``: a device's stable integer
key, an INTEGER PRIMARY KEY (kept by VACUUM, unlike a table's implicit rowid, which VACUUM and
batch migrations may renumber). Only live devices are indexed. Triggers on ``devices`` add, change
and remove the entries with each insert, update of a searched column or of ``deleted_at``, and
delete, so the index cannot fall out of step with the table whoever writes it.

``authserver.devices`` uses the index to find the candidates of a substring search and still
applies the search's own ``LIKE`` to them, so the index only ever narrows what is read; it never
decides a result. A SQLite built without FTS5 or its trigram tokenizer (3.34+) gets no index, and
the searches read the tenant's devices as before.

Nothing here is in the models (they hold no virtual tables or triggers);
tests/system/test_migrations.py checks the objects by name and the searches' plans.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import logging

from alembic import op
from sqlalchemy.exc import OperationalError

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

STATEMENTS = (
    "CREATE TABLE device_search_keys"
    " (key INTEGER PRIMARY KEY, device_id VARCHAR(48) NOT NULL UNIQUE)",
    "CREATE VIRTUAL TABLE device_search"
    " USING fts5(name, external_id, identifier, till_id, tokenize='trigram')",
    # A new device: its key, and its entry when live.
    """CREATE TRIGGER device_search_insert AFTER INSERT ON devices BEGIN
        INSERT INTO device_search_keys (device_id) VALUES (NEW.id);
        INSERT INTO device_search (rowid, name, external_id, identifier, till_id)
            SELECT key, NEW.name, NEW.external_id, NEW.identifier, NEW.till_id
            FROM device_search_keys WHERE device_id = NEW.id AND NEW.deleted_at IS NULL;
    END""",
    # A searched column or deleted_at changed: the entry is replaced (or removed, once deleted).
    """CREATE TRIGGER device_search_update
        AFTER UPDATE OF name, external_id, identifier, till_id, deleted_at ON devices BEGIN
        DELETE FROM device_search
            WHERE rowid = (SELECT key FROM device_search_keys WHERE device_id = OLD.id);
        INSERT INTO device_search (rowid, name, external_id, identifier, till_id)
            SELECT key, NEW.name, NEW.external_id, NEW.identifier, NEW.till_id
            FROM device_search_keys WHERE device_id = NEW.id AND NEW.deleted_at IS NULL;
    END""",
    """CREATE TRIGGER device_search_delete AFTER DELETE ON devices BEGIN
        DELETE FROM device_search
            WHERE rowid = (SELECT key FROM device_search_keys WHERE device_id = OLD.id);
        DELETE FROM device_search_keys WHERE device_id = OLD.id;
    END""",
    # The devices there already.
    "INSERT INTO device_search_keys (device_id) SELECT id FROM devices ORDER BY created_at, id",
    """INSERT INTO device_search (rowid, name, external_id, identifier, till_id)
        SELECT k.key, d.name, d.external_id, d.identifier, d.till_id
        FROM devices d JOIN device_search_keys k ON k.device_id = d.id
        WHERE d.deleted_at IS NULL""",
)
TRIGGERS = ("device_search_insert", "device_search_update", "device_search_delete")


def _has_trigram_fts() -> bool:
    try:
        op.execute(
            "CREATE VIRTUAL TABLE temp.device_search_probe USING fts5(x, tokenize='trigram')"
        )
    except OperationalError:
        return False
    op.execute("DROP TABLE temp.device_search_probe")
    return True


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    if not _has_trigram_fts():
        log.warning("SQLite without FTS5 trigram: device searches read every device of a tenant")
        return
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for trigger in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS device_search")
    op.execute("DROP TABLE IF EXISTS device_search_keys")
