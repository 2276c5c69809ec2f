"""Schema migrations (Alembic): ``authserver db upgrade`` and ``authserver serve`` apply them."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text

from authserver.models import db

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def upgrade(revision: str = "head") -> None:
    """Bring the database to ``revision``, inside the current app context.

    A database created before migrations existed (tables but no ``alembic_version``) is stamped
    at the first revision, whose schema it has, and then upgraded.
    """
    cfg = alembic_config()
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Several app nodes starting at once: one migrates, the others wait, then find
            # nothing to do. Released at the end of the transaction.
            conn.execute(text("SELECT pg_advisory_xact_lock(424242)"))
        cfg.attributes["connection"] = conn
        tables = set(inspect(conn).get_table_names())
        if "tenants" in tables and "alembic_version" not in tables:
            command.stamp(cfg, "0001")
        command.upgrade(cfg, revision)


def stamp(revision: str = "head") -> None:
    """Record ``revision`` as applied without running anything (a schema built from the models)."""
    cfg = alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.stamp(cfg, revision)


def revision(message: str) -> None:
    """Write a new migration from the difference between the models and the database."""
    cfg = alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True)
