"""The Alembic migrations build exactly the schema the models describe (autogenerate: no diff)."""

from __future__ import annotations

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from authserver import create_app
from authserver.config import load_settings
from authserver.migrate import upgrade
from authserver.models import db
from tests.conftest import DATABASE_URL, make_env


def assert_no_diff(app) -> None:
    with app.app_context():
        upgrade()
        upgrade()  # idempotent
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
    assert diff == [], f"models and migrations differ: {diff}"


def test_migrations_match_the_models_on_sqlite(tmp_path):
    env = make_env(tmp_path / "mig")
    env.pop("DATABASE_URL", None)
    app = create_app(load_settings(env))
    assert_no_diff(app)


@pytest.mark.skipif(not DATABASE_URL, reason="needs DATABASE_URL pointing at PostgreSQL")
def test_migrations_match_the_models_on_postgresql(tmp_path):
    name = f"authserver_mig_{uuid.uuid4().hex[:8]}"
    admin = create_engine(
        DATABASE_URL.replace("postgresql://", "postgresql+psycopg://", 1),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        base = DATABASE_URL.rsplit("/", 1)[0]
        app = create_app(load_settings(make_env(tmp_path / "pg", DATABASE_URL=f"{base}/{name}")))
        assert_no_diff(app)
        with app.app_context():
            db.engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_cli_db_upgrade(app):
    from authserver.cli import main

    result = app.test_cli_runner().invoke(main, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert '"up to date"' in result.stdout
