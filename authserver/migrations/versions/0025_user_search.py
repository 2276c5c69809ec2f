"""people at scale: the list's substring searches (``login``, ``name``) read trigram indexes, and
its ``kind`` and ``active`` filters an index in the list's order (issue 16)

- Both backends: B-tree indexes on (tenant, kind, login, id) and (tenant, active, login, id), in the
  models. A back office listing its staff among a million customers, or its disabled people,
  reads a range of one of them instead of every person of the tenant.
- PostgreSQL: ``pg_trgm`` GIN indexes on the lowered login, first name and last name (as 0019
  made for devices), with short pending lists (64 kB, as 0023 explains). Not in the models (they
  exist for one backend); tests/system/test_migrations.py checks them by name.
- SQLite: ``user_search``, an FTS5 trigram table of login, first name and last name, whose rowid
  is a key of ``user_search_keys`` (an INTEGER PRIMARY KEY, which VACUUM keeps), kept in step by
  triggers on every insert, update of a searched column and delete, whoever writes (as 0020 made
  for devices). ``authserver.users`` asks it for the candidates of a term and still applies the
  search's own ``LIKE``, so the index only narrows what is read. A SQLite built without FTS5's
  trigram tokenizer (3.34+) gets no table, and searches read the tenant's people as before.

On PostgreSQL the indexes are built in the migration's transaction, not ``CONCURRENTLY``: the
build holds a SHARE lock on ``users`` (reads go on; sign-ups, profile changes and bulk jobs
wait) for as long as it takes, minutes for a million people. Upgrade such a database in a quiet
hour, as with migration 0019 for devices.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-03 14:00:00
"""

from __future__ import annotations

import logging

from alembic import op
from sqlalchemy.exc import OperationalError

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

# (index, column) of each trigram index; authserver.users searches lower(column) with LIKE.
TRIGRAM_INDEXES = (
    ("ix_users_login_trgm", "login"),
    ("ix_users_first_name_trgm", "first_name"),
    ("ix_users_last_name_trgm", "last_name"),
)
PENDING_LIST_KB = 64

SQLITE_STATEMENTS = (
    "CREATE TABLE user_search_keys (key INTEGER PRIMARY KEY, user_id VARCHAR(48) NOT NULL UNIQUE)",
    "CREATE VIRTUAL TABLE user_search USING fts5(login, first_name, last_name, tokenize='trigram')",
    """CREATE TRIGGER user_search_insert AFTER INSERT ON users BEGIN
        INSERT INTO user_search_keys (user_id) VALUES (NEW.id);
        INSERT INTO user_search (rowid, login, first_name, last_name)
            SELECT key, NEW.login, NEW.first_name, NEW.last_name
            FROM user_search_keys WHERE user_id = NEW.id;
    END""",
    """CREATE TRIGGER user_search_update AFTER UPDATE OF login, first_name, last_name ON users
    BEGIN
        DELETE FROM user_search
            WHERE rowid = (SELECT key FROM user_search_keys WHERE user_id = OLD.id);
        INSERT INTO user_search (rowid, login, first_name, last_name)
            SELECT key, NEW.login, NEW.first_name, NEW.last_name
            FROM user_search_keys WHERE user_id = NEW.id;
    END""",
    """CREATE TRIGGER user_search_delete AFTER DELETE ON users BEGIN
        DELETE FROM user_search
            WHERE rowid = (SELECT key FROM user_search_keys WHERE user_id = OLD.id);
        DELETE FROM user_search_keys WHERE user_id = OLD.id;
    END""",
    # The people there already.
    "INSERT INTO user_search_keys (user_id) SELECT id FROM users ORDER BY created_at, id",
    """INSERT INTO user_search (rowid, login, first_name, last_name)
        SELECT k.key, u.login, u.first_name, u.last_name
        FROM users u JOIN user_search_keys k ON k.user_id = u.id""",
)
SQLITE_TRIGGERS = ("user_search_insert", "user_search_update", "user_search_delete")


def _has_trigram_fts() -> bool:
    try:
        op.execute("CREATE VIRTUAL TABLE temp.user_search_probe USING fts5(x, tokenize='trigram')")
    except OperationalError:
        return False
    op.execute("DROP TABLE temp.user_search_probe")
    return True


def upgrade() -> None:
    op.create_index("ix_users_tenant_kind_login", "users", ["tenant_id", "kind", "login", "id"])
    op.create_index("ix_users_tenant_active_login", "users", ["tenant_id", "active", "login", "id"])
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for index, column in TRIGRAM_INDEXES:
            op.execute(
                f"CREATE INDEX IF NOT EXISTS {index} ON users USING gin"
                f" (lower({column}) gin_trgm_ops) WITH (gin_pending_list_limit = {PENDING_LIST_KB})"
            )
    elif dialect == "sqlite":
        if not _has_trigram_fts():
            log.warning(
                "SQLite without FTS5 trigram: people searches read every person of a tenant"
            )
            return
        for statement in SQLITE_STATEMENTS:
            op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for index, _ in TRIGRAM_INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {index}")
    elif dialect == "sqlite":
        for trigger in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS user_search")
        op.execute("DROP TABLE IF EXISTS user_search_keys")
    op.drop_index("ix_users_tenant_active_login", table_name="users")
    op.drop_index("ix_users_tenant_kind_login", table_name="users")
