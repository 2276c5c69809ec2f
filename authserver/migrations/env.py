"""Alembic environment: runs on the connection ``authserver.migrate`` hands it."""

from __future__ import annotations

from alembic import context

from authserver.models import db

config = context.config
target_metadata = db.metadata


def run_migrations_online() -> None:
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place: batch mode copies the table.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
