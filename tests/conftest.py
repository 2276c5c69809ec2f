"""Fixtures: a fresh app per test on the configured backends, factories for the world, a clock.

The suite runs on the embedded default (SQLite file per test, SQL ephemeral store) unless
``DATABASE_URL`` / ``REDIS_URL`` point at real PostgreSQL / Redis, as CI's second run does.
"""

from __future__ import annotations

import base64
import functools
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import make_url, text
from sqlalchemy.exc import ProgrammingError

from authserver import create_app, migrate
from authserver.admin import create_client, create_tenant, create_user, prepare_database
from authserver.config import Settings, load_settings
from authserver.models import db

ROOT = Path(__file__).resolve().parent.parent


def _worker_database(url: str, worker: str) -> str:
    """Under pytest-xdist (``-n``) each worker has a PostgreSQL database of its own beside the
    configured one, created on first use, so workers never empty each other's tables. Redis
    needs nothing: every test has its own key prefix (``make_env``)."""
    from sqlalchemy import create_engine

    base, name = url.rsplit("/", 1)
    own = f"{name}_{worker}"
    admin = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1),
                          isolation_level="AUTOCOMMIT")  # fmt: skip
    try:
        with admin.connect() as conn:
            found = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": own})
            if found.scalar() is None:
                conn.execute(text(f'CREATE DATABASE "{own}"'))
    finally:
        admin.dispose()
    return f"{base}/{own}"


if os.environ.get("DATABASE_URL") and os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["DATABASE_URL"] = _worker_database(
        os.environ["DATABASE_URL"], os.environ["PYTEST_XDIST_WORKER"]
    )
DATABASE_URL = os.environ.get("DATABASE_URL")
REDIS_URL = os.environ.get("REDIS_URL")
BACKEND = ("postgresql" if DATABASE_URL else "sqlite") + ("+redis" if REDIS_URL else "")


def pytest_report_header(config: Any) -> str:
    return f"authserver backends: {BACKEND}"


def _compile_url_builders_once() -> None:
    """Werkzeug compiles a Python function per URL rule of every app it routes (about 60 ms an
    app here, most of an in-process test's set-up); the suite makes an app per test from the
    same rules. The function depends only on the rule's text and whether it appends unknown
    arguments (converters are looked up on the rule when it runs), so each is compiled once.
    Rules with defaults, whose values a converter resolves at compile time, are left alone."""
    from werkzeug.routing.rules import Rule

    original = Rule._compile_builder
    built: dict[tuple[str, tuple[Any, ...], bool], Any] = {}

    def compile_builder(self: Rule, append_unknown: bool = True) -> Any:
        if self.defaults:
            return original(self, append_unknown)
        key = (self.rule, tuple(self._trace), append_unknown)
        if key not in built:
            built[key] = original(self, append_unknown)
        return built[key]

    Rule._compile_builder = compile_builder  # type: ignore[method-assign]


_compile_url_builders_once()
_RSA_POOL: list[Any] = []


@pytest.fixture(autouse=True)
def _pooled_rsa_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every app makes an RS256 current and next key (ID tokens), and a 2048-bit RSA key takes
    ~50 ms to generate: in-process tests draw them from a pool made once per worker, in order
    from its start in every test, so the keys of one test's database are still all distinct.
    Real generation runs in every live server the suite starts (tests/system)."""
    from keys import algorithms

    real = algorithms.generate
    drawn = iter(range(1 << 30))

    def generate(alg: str) -> algorithms.AsymmetricKey:
        if alg != "RS256":
            return real(alg)
        i = next(drawn)
        while len(_RSA_POOL) <= i:
            _RSA_POOL.append(real(alg))
        return _RSA_POOL[i]

    monkeypatch.setattr(algorithms, "generate", generate)


class Clock:
    """A controllable clock: starts at the wall clock, moves only when a test says so."""

    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def b64key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def make_env(instance: Path, **extra: str) -> dict[str, str]:
    """Environment for an app or server process of one test: its own instance dir and secrets."""
    env = {
        "AUTHSERVER_INSTANCE_PATH": str(instance),
        "AUTHSERVER_KEY_ENCRYPTION_KEY": b64key(),
        "AUTHSERVER_SECRET_KEY": b64key(),
        "AUTHSERVER_REDIS_PREFIX": f"test-{uuid.uuid4().hex}:",
    }
    if DATABASE_URL:
        env["DATABASE_URL"] = DATABASE_URL
    if REDIS_URL:
        env["REDIS_URL"] = REDIS_URL
    env.update(extra)
    return env


_schema_fresh = False


def reset_database(app: Flask) -> None:
    """PostgreSQL is shared by the whole run: the schema is rebuilt once per worker (a database
    left by an older checkout may lack columns), then every table is emptied before each test.
    A test that dropped tables (tests/system/test_migrations.py) makes the next one rebuild."""
    global _schema_fresh
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            return
        if not _schema_fresh:
            _rebuild_schema()
            _schema_fresh = True
        # The tallies (migration 0022) are kept by triggers, which TRUNCATE does not run.
        tables = [t.name for t in reversed(db.metadata.sorted_tables)] + ["device_tallies"]
        names = ", ".join(tables)
        try:
            with db.engine.begin() as conn:
                conn.execute(text(f"TRUNCATE {names} CASCADE"))
                stamped = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except ProgrammingError:  # a table is missing
            stamped = None
        if stamped != _head_revision():  # build the schema again
            _rebuild_schema()
            with db.engine.begin() as conn:
                conn.execute(text(f"TRUNCATE {names} CASCADE"))


@functools.cache
def _head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()


def _rebuild_schema() -> None:
    """Built by the migrations, as every server builds it: with what exists only on PostgreSQL
    (trigram indexes, the device tallies and their triggers), which the models lack."""
    with db.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    db.engine.dispose()
    migrate.upgrade()


_sqlite_template: Path | None = None


def _copy_migrated_sqlite(settings: Settings) -> None:
    """Start a test's SQLite file from a copy of one migrated to head once per worker: running
    the seventeen migrations took most of every in-process test's set-up. The copy is the same
    schema the migrations make (alembic finds it at head and does nothing); the migrations
    themselves run in tests/test_migrations.py and in every live server."""
    global _sqlite_template
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    target = Path(url.database)
    if target.exists() or _sqlite_template is None:
        return
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # as the app makes it
    shutil.copyfile(_sqlite_template, target)


@pytest.fixture(scope="session", autouse=True)
def _migrated_sqlite_template() -> None:
    """The file ``_copy_migrated_sqlite`` copies, made before any test's clock starts: the
    migrations write a revocation mark for every older token (0005) at the time they run, and
    a test's tokens must not be older than it."""
    global _sqlite_template
    if DATABASE_URL:
        return
    where = Path(tempfile.mkdtemp(prefix="authserver-template-"))
    template_settings = load_settings(make_env(where / "instance"))
    template_app = create_app(template_settings, clock=Clock())
    with template_app.app_context():
        migrate.upgrade()
        with db.engine.begin() as conn:
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        db.engine.dispose()
    _sqlite_template = Path(make_url(template_settings.database_url).database or "")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return make_env(tmp_path / "instance")


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return load_settings(env)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def overrides() -> dict[str, Any]:
    """Settings a test module changes, e.g. ``@pytest.mark.parametrize("overrides", ...)``."""
    return {}


@pytest.fixture
def app(settings: Settings, clock: Clock, overrides: dict[str, Any]) -> Iterator[Flask]:
    settings = settings.with_overrides(**overrides)
    _copy_migrated_sqlite(settings)
    app = create_app(settings, clock=clock)
    app.testing = True
    reset_database(app)
    with app.app_context():
        prepare_database()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def http(app: Flask) -> FlaskClient:
    return app.test_client()


@dataclass
class ClientCreds:
    client_id: str
    client_secret: str | None
    tenant_id: str

    @property
    def basic(self) -> tuple[str, str]:
        assert self.client_secret
        return (self.client_id, self.client_secret)

    def auth_header(self) -> dict[str, str]:
        raw = f"{self.client_id}:{self.client_secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


class World:
    """Factories for tenants, users and clients, through the same services the CLI uses."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def tenant(self, name: str | None = None) -> str:
        with self.app.app_context():
            return create_tenant(name or f"tenant-{uuid.uuid4().hex[:8]}").id

    def client(
        self,
        tenant_id: str | None = None,
        grant_types: tuple[str, ...] = ("client_credentials",),
        auth_method: str = "client_secret_basic",
        scope: str = "devices:read devices:write",
    ) -> ClientCreds:
        tenant_id = tenant_id or self.tenant()
        with self.app.app_context():
            from authserver.models import Tenant

            tenant = db.session.get(Tenant, tenant_id)
            created = create_client(tenant, "test client", list(grant_types), auth_method, scope)
            return ClientCreds(created.client.client_id, created.client_secret, tenant_id)

    def user(
        self,
        tenant_id: str,
        login: str = "alice",
        password: str = "correct horse",
        staff_code: str | None = None,
        roles: tuple[str, ...] = (),
        kind: str = "staff",
    ) -> str:
        with self.app.app_context():
            from authserver.models import Tenant

            return create_user(
                db.session.get(Tenant, tenant_id), login, password, staff_code, list(roles),
                kind=kind,
            ).id  # fmt: skip


@pytest.fixture
def world(app: Flask) -> World:
    return World(app)


def table_counts(app: Flask) -> dict[str, int]:
    """Rows per table (the ephemeral store's aside): what a request that must change nothing
    leaves as it was."""
    with app.app_context():
        with db.engine.connect() as conn:
            return {
                t.name: conn.execute(text(f"SELECT count(*) FROM {t.name}")).scalar_one()
                for t in db.metadata.sorted_tables
                if t.name != "ephemeral_entries"
            }


def cc_token(http: FlaskClient, creds: ClientCreds, **form: str) -> Any:
    """A client-credentials token request with HTTP Basic; returns the response."""
    return http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", **form},
        headers=creds.auth_header(),
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    env: dict[str, str]
    proc: subprocess.Popen[bytes]

    def cli(self, *args: str) -> Any:
        """Run the authserver CLI against this server's database; returns parsed JSON stdout."""
        import json

        out = subprocess.run(
            [sys.executable, "-m", "authserver.cli", *args],
            env={**os.environ, **self.env},
            capture_output=True,
            check=True,
            cwd=ROOT,
        )
        return json.loads(out.stdout)

    def service_client(self, tenant_name: str, scope: str = "devices:read", *extra: str) -> Any:
        """A new tenant and a client-credentials client in it, made through the CLI."""
        tenant = self.cli("tenants", "create", tenant_name)
        return self.cli(
            "clients",
            "create",
            "--tenant",
            tenant["id"],
            "--name",
            "svc",
            "--grant-type",
            "client_credentials",
            "--scope",
            scope,
            *extra,
        )


def reset_shared_database(env: dict[str, str]) -> None:
    """On PostgreSQL (shared by the run) empty the tables a server process will use."""
    if DATABASE_URL and env.get("DATABASE_URL", DATABASE_URL) == DATABASE_URL:
        scratch = create_app(load_settings(env))
        reset_database(scratch)
        with scratch.app_context():
            db.engine.dispose()


def start_server(env: dict[str, str], workers: int = 1, reset: bool = True) -> LiveServer:
    """Start ``authserver serve`` on a free port; on PostgreSQL, from empty tables."""
    if reset:
        reset_shared_database(env)
    port = free_port()
    full_env = {**os.environ, **env, "AUTHSERVER_WORKERS": str(workers)}
    full_env.pop("AUTHSERVER_ISSUER", None)
    # The server's log goes to a file, not a pipe: nobody reads a pipe while the test runs, and
    # a full one (64 kB of request logs) would stop the server mid-test.
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "authserver.cli", "serve", "--port", str(port)],
        env=full_env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"server exited: {log.read().decode()[-2000:]}")
        try:
            if requests.get(f"{url}/oauth/jwks", timeout=1).status_code == 200:
                return LiveServer(url, {**env, "AUTHSERVER_ISSUER": url}, proc)
        except requests.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start within 30 s")


def stop_server(server: LiveServer) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(make_env(tmp_path / "live-instance"))
    try:
        yield server
    finally:
        stop_server(server)
