"""Clients cached per process (``authserver.clients``): every change is seen by every process on
its next request, and a warm token request reads no client row.

Two apps built from the same settings share the database and the state store as two server
processes do; each has its own cache.
"""

from __future__ import annotations

import pytest
from sqlalchemy import event, update

from authserver import admin, create_app
from authserver.clients import VERSION_KEY
from authserver.models import Client, Tenant, db
from tests.conftest import cc_token


@pytest.fixture
def other(app, clock):
    """A second process of the same deployment."""
    second = create_app(app.extensions["authserver"].settings, clock=clock)
    second.testing = True
    yield second.test_client()
    with second.app_context():
        db.session.remove()
        db.engine.dispose()


def statements(app):
    """Every SQL statement the app's engine runs while the returned list is in use."""
    seen: list[str] = []
    with app.app_context():
        engine = db.engine

    def record(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    return seen, lambda: event.remove(engine, "before_cursor_execute", record)


def test_a_warm_token_request_reads_no_client_row(app, http, world):
    creds = world.client()
    assert cc_token(http, creds).status_code == 200  # the cache is filled
    seen, stop = statements(app)
    try:
        assert cc_token(http, creds).status_code == 200
    finally:
        stop()
    assert not [s for s in seen if "clients" in s or "tenants" in s], seen
    # Nothing is written either: the only statements (SQL store) are reads of the store.
    assert all(s.lstrip().upper().startswith("SELECT") for s in seen), seen


def _in(app, fn):
    with app.app_context():
        fn()


@pytest.mark.parametrize(
    "change",
    [
        "disable client",
        "delete client",
        "rotate secret",
        "disable tenant",
        "bulk update",
        "drop grant type",
    ],
)
def test_every_change_reaches_every_process_on_its_next_request(app, http, other, world, change):
    creds = world.client()
    bystander = world.client()
    assert cc_token(other, creds).status_code == 200  # `other` has the client cached
    assert cc_token(other, bystander).status_code == 200

    def run():
        client = db.session.get(Client, creds.client_id)
        if change == "disable client":
            admin.set_client_active(client, False)
        elif change == "delete client":
            admin.delete_client(client)
        elif change == "rotate secret":
            admin.rotate_client_secret(client)
        elif change == "disable tenant":
            admin.set_tenant_active(db.session.get(Tenant, creds.tenant_id), False)
        elif change == "bulk update":  # a statement, not an object: seen all the same
            db.session.execute(
                update(Client).where(Client.client_id == creds.client_id).values(active=False)
            )
            db.session.commit()
        elif change == "drop grant type":
            client.grant_types = ["refresh_token"]
            db.session.commit()

    _in(app, run)
    resp = cc_token(other, creds)
    if change == "drop grant type":
        assert resp.status_code == 400 and resp.get_json()["error"] == "unauthorized_client"
    else:
        assert resp.status_code == 401 and resp.get_json()["error"] == "invalid_client"
    if change != "disable tenant":  # the bystander shares the tenant
        assert cc_token(other, bystander).status_code == 200


def test_a_rolled_back_change_leaves_the_caches_alone(app, http, world):
    creds = world.client()
    assert cc_token(http, creds).status_code == 200
    store = app.extensions["authserver"].store

    def run():
        before = store.get(VERSION_KEY)
        db.session.get(Client, creds.client_id).active = False
        db.session.flush()
        db.session.rollback()
        db.session.get(Client, creds.client_id).name = "renamed"  # a commit that follows
        db.session.commit()
        assert store.get(VERSION_KEY) != before
        assert db.session.get(Client, creds.client_id).active is True

    _in(app, run)
    assert cc_token(http, creds).status_code == 200


def test_a_change_refused_by_the_store_is_not_made(app, world):
    """With Redis, the version is written before the change commits: a store that cannot take
    it aborts the change (fail closed), so no process keeps a client the database disabled."""
    from authserver.ephemeral import RedisStore, StoreUnavailable

    creds = world.client()
    state = app.extensions["authserver"]
    original = state.store
    state.store = RedisStore("redis://127.0.0.1:1/0")  # nothing listens on port 1
    try:
        with app.app_context():
            client = db.session.get(Client, creds.client_id)
            with pytest.raises(StoreUnavailable):
                admin.set_client_active(client, False)
            db.session.rollback()
    finally:
        state.store = original
    with app.app_context():
        assert db.session.get(Client, creds.client_id).active is True


def test_a_lost_version_is_recreated_and_the_cache_reloaded(app, http, world):
    """A Redis that lost its data (or a first start) has no version: one is written, and views
    cached under another version are read again."""
    creds = world.client()
    assert cc_token(http, creds).status_code == 200
    store = app.extensions["authserver"].store
    with app.app_context():
        store.delete(VERSION_KEY)
        cached = app.extensions["authserver"].client_cache[creds.client_id]
    assert cc_token(http, creds).status_code == 200
    with app.app_context():
        assert store.get(VERSION_KEY) is not None
        assert app.extensions["authserver"].client_cache[creds.client_id][0] != cached[0]


def test_unknown_client_ids_are_not_cached(app, http, world):
    from tests.conftest import ClientCreds

    for i in range(20):
        ghost = ClientCreds(f"cli_ghost_{i}", "secret", "ten_x")
        assert cc_token(http, ghost).status_code == 401
    assert not app.extensions["authserver"].client_cache
