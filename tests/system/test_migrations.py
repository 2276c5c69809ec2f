"""The Alembic migrations build exactly the schema the models describe (autogenerate: no diff)."""

from __future__ import annotations

import uuid
import warnings
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, create_engine, text

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
            with warnings.catch_warnings():
                # SQLite's reflection cannot read an index on an expression, so autogenerate
                # skips those there (PostgreSQL compares them); they are compared by their SQL
                # below instead.
                warnings.filterwarnings("ignore", ".*expression-based index.*")
                context = MigrationContext.configure(
                    conn, opts={"include_object": _not_backend_only}
                )
                diff = compare_metadata(context, db.metadata)
            if conn.dialect.name == "sqlite":
                for index in _expression_indexes():
                    sql = conn.execute(
                        text("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :n"),
                        {"n": index.name},
                    ).scalar()
                    assert sql is not None, f"the migrations make no index {index.name}"
                    made = sql.split("(", 1)[1].rsplit(")", 1)[0]
                    wanted = ", ".join(e.name if isinstance(e, Column) else str(e)
                                       for e in index.expressions)  # fmt: skip
                    assert made == wanted, (index.name, made, wanted)
    assert diff == [], f"models and migrations differ: {diff}"


# PostgreSQL's trigram indexes (migrations 0019, 0025) exist for one backend, not in the models.
TRIGRAM_INDEXES = {"ix_devices_name_trgm", "ix_devices_external_id_trgm",
                   "ix_devices_identifier_trgm", "ix_devices_till_id_trgm"}  # fmt: skip
USER_TRIGRAM_INDEXES = {"ix_users_login_trgm", "ix_users_first_name_trgm",
                        "ix_users_last_name_trgm"}  # fmt: skip


# SQLite's trigram searches (migrations 0020 and 0025: a key table and an FTS5 table with its
# shadow tables) and device tallies (0022, on PostgreSQL too), kept by triggers; not in the
# models either.
FTS_TABLES = ("device_search", "device_search_keys", "device_tallies", "user_search")


# PostgreSQL's devices keep each device's JSON as the API shows it (0024), kept by triggers.
KEPT_COLUMNS = {"api_json"}


def _not_backend_only(obj: Any, name: str | None, kind: str, reflected: bool, other: Any) -> bool:
    if kind == "table" and name is not None and name.startswith(FTS_TABLES):
        return False
    if kind == "column" and name in KEPT_COLUMNS:
        return False
    return not (kind == "index" and name in TRIGRAM_INDEXES | USER_TRIGRAM_INDEXES)


def _expression_indexes() -> list[Any]:
    return [
        index
        for table in db.metadata.tables.values()
        for index in table.indexes
        if any(not isinstance(e, Column) for e in index.expressions)
    ]


def test_migrations_match_the_models_on_sqlite(tmp_path):
    env = make_env(tmp_path / "mig")
    env.pop("DATABASE_URL", None)
    app = create_app(load_settings(env))
    assert_no_diff(app)
    # The triggers that keep SQLite's search indexes and device tallies in step (0020, 0022,
    # 0025): a later batch migration of devices or users rebuilds the table and would drop them.
    with app.app_context(), db.engine.connect() as conn:
        made = dict(conn.execute(text(
            "SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger'")).all())  # fmt: skip
    assert {name for name, table in made.items() if table == "devices"} == {
        "device_search_insert", "device_search_update", "device_search_delete",
        "device_tallies_insert", "device_tallies_update_old", "device_tallies_update_new",
        "device_tallies_delete"}  # fmt: skip
    assert {name for name, table in made.items() if table == "users"} == {
        "user_search_insert", "user_search_update", "user_search_delete"}  # fmt: skip


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
            assert_substring_searches_use_the_trigram_indexes()
            assert_people_searches_use_the_trigram_indexes()
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


def test_upgrading_leaves_no_clear_jti_and_no_pre_upgrade_token_alive(tmp_path):
    """Migration 0002 replaced each recorded clear jti by its keyed hash; 0005 drops the per-token
    records altogether (tokens are self-contained). A token issued before the upgrade names no
    revocation subjects, so it is refused afterwards rather than risk a revoked one coming back;
    and a database reader of the upgraded database sees no jti."""
    from authserver.admin import create_client, create_tenant, prepare_database
    from authserver.security import now
    from tests.conftest import reset_database
    from tests.test_secrets_at_rest import dump_database

    env = make_env(tmp_path / "old")
    app = create_app(load_settings(env))
    reset_database(app)
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            # Everything, with what only the migrations make (tallies, their functions).
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        upgrade("0001")
        from keys.encryption import KeyEncryptor
        from keys.rotation import ensure_keys

        state = app.extensions["authserver"]
        ensure_keys(
            db.session, state.settings, KeyEncryptor(state.settings.key_encryption_key), now()
        )
        t = now()
        claims = {
            "iss": state.settings.issuer,
            "sub": "cli_old",
            "aud": state.settings.audience,
            "client_id": "cli_old",
            "scope": "devices:read",
            "jti": "old-clear-jti-0123456789",
            "iat": t,
            "exp": t + 600,
            "tenant": "ten_old",
        }
        token = state.keyring.sign(claims, "at+jwt")
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO access_tokens (jti, client_id, tenant_id, subject, scope, "
                    "token_type, issued_at, expires_at) VALUES (:jti, 'cli_old', 'ten_old', "
                    "'cli_old', 'devices:read', 'Bearer', :t, :e)"
                ),
                {"jti": claims["jti"], "t": t, "e": t + 600},
            )
        upgrade("0002")
        with db.engine.connect() as conn:
            stored = conn.execute(text("SELECT jti_hash FROM access_tokens")).scalar_one()
        assert stored != claims["jti"] and len(stored) == 64
        prepare_database()  # upgrades to head, as `authserver serve` does
        tenant = create_tenant("Old", "ten_old")
        creds = create_client(tenant, "rs", ["client_credentials"], scope="devices:read")
        client_id, secret = creds.client.client_id, creds.client_secret
        db.session.remove()
    body = (
        app.test_client()
        .post(
            "/oauth/introspect",
            data={"token": token},
            headers={"Authorization": _basic(client_id, secret)},
        )
        .get_json()
    )
    assert body == {"active": False}
    assert claims["jti"] not in dump_database(app)
    with app.app_context():
        db.engine.dispose()


def _basic(client_id: str, secret: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def assert_substring_searches_use_the_trigram_indexes() -> None:
    """On PostgreSQL the device list's ``q`` and ``name`` searches read the trigram indexes
    (migration 0019) rather than every device of the tenant (the plan, not a timing)."""
    from sqlalchemy import insert

    from authserver import devices
    from authserver.admin import create_tenant
    from authserver.models import Device

    tenant = create_tenant("search").id
    rows = [{"id": f"dev_{i:06d}", "tenant_id": tenant, "name": f"Till {i}", "status": "ACTIVE",
             "origin": "api", "external_id": f"ext-{i}", "identifier": f"SN{i:09d}",
             "created_at": i, "updated_at": i} for i in range(5000)]  # fmt: skip
    db.session.execute(insert(Device.__table__), rows)
    db.session.commit()
    with db.engine.connect() as conn:
        conn.execute(text("ANALYZE devices"))
        made = set(conn.execute(text(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'devices'")).scalars())  # fmt: skip
        assert made >= TRIGRAM_INDEXES, made
        # Their pending lists are short (migration 0023): a search reads at most 64 kB of
        # entries not yet sorted into the index, however many changes came before it.
        every = dict(conn.execute(text("SELECT relname, reloptions FROM pg_class")).all())
        options = {name: every[name] for name in TRIGRAM_INDEXES}
        assert options == {i: ["gin_pending_list_limit=64"] for i in TRIGRAM_INDEXES}, options
        for query, params in (
            (devices.DeviceQuery(q="x"), {"q": "%xt-4242%"}),
            (devices.DeviceQuery(name="x"), {"name": "%till 4242%"}),
        ):
            compiled = devices._search_statement(query, False, None, (False, False)).compile(
                dialect=db.engine.dialect
            )
            values = {**compiled.params, "tenant_id": tenant, "limit": 51, **params}
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            # On a table this small the tenant's B-tree wins; dropped in this transaction (and
            # rolled back), what is left shows that the trigram indexes serve the search.
            for other in {i for i in made - TRIGRAM_INDEXES if i.startswith(("ix_", "uq_"))}:
                conn.execute(text(f"DROP INDEX {other}"))
            plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + compiled.string,
                                                                values))  # fmt: skip
            assert "_trgm" in plan, plan
            conn.rollback()


def assert_people_searches_use_the_trigram_indexes() -> None:
    """On PostgreSQL the people list's ``login`` and ``name`` searches read the trigram indexes
    of migration 0025 (short pending lists, as the devices'), the plan rather than a timing."""
    from sqlalchemy import insert, select

    from authserver import users
    from authserver.admin import create_tenant
    from authserver.models import User

    tenant = create_tenant("people search").id
    rows = [{"id": f"usr_{i:06d}", "tenant_id": tenant, "login": f"user{i}@shop.example",
             "password_hash": "", "kind": "customer", "roles": [], "active": True,
             "created_at": i, "first_name": "Anna", "last_name": f"Nowak{i}"}
            for i in range(5000)]  # fmt: skip
    db.session.execute(insert(User.__table__), rows)
    db.session.commit()
    with db.engine.connect() as conn:
        conn.execute(text("ANALYZE users"))
        made = set(conn.execute(text(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'users'")).scalars())  # fmt: skip
        assert made >= USER_TRIGRAM_INDEXES, made
        every = dict(conn.execute(text("SELECT relname, reloptions FROM pg_class")).all())
        options = {name: every[name] for name in USER_TRIGRAM_INDEXES}
        assert options == {i: ["gin_pending_list_limit=64"] for i in USER_TRIGRAM_INDEXES}
        for filters, index in (({"login": "user4242@"}, "ix_users_login_trgm"),
                               ({"name": "nowak4242"}, "ix_users_last_name_trgm")):  # fmt: skip
            stmt = users.filtered_users(select(User.id), tenant, filters)
            stmt = stmt.order_by(User.login, User.id).limit(51)
            sql = str(stmt.compile(dialect=db.engine.dialect,
                                   compile_kwargs={"literal_binds": True}))  # fmt: skip
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            # On a table this small the tenant's B-trees win; dropped in this transaction (and
            # rolled back), what is left shows that the trigram indexes serve the search.
            for other in {i for i in made - USER_TRIGRAM_INDEXES if i.startswith("ix_")}:
                conn.execute(text(f"DROP INDEX {other}"))
            for unique in ("uq_users_tenant_login", "uq_users_tenant_staff_code"):
                conn.execute(text(f"ALTER TABLE users DROP CONSTRAINT {unique}"))
            plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql))
            assert index in plan, plan
            conn.rollback()
