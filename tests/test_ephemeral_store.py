"""The ephemeral store: claim-once, windowed counters, values; atomic across real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from authserver.ephemeral import StoreUnavailable
from tests.conftest import DATABASE_URL, REDIS_URL, ROOT, make_env


@pytest.fixture
def store(app):
    return app.extensions["authserver"].store


def test_claim_once_and_expiry(store, clock, settings):
    key = f"claim:{uuid.uuid4().hex}"
    assert store.claim_once(key, ttl=1) is True
    assert store.claim_once(key, ttl=1) is False
    clock.advance(2)
    deadline = time.monotonic() + 5  # Redis expires in real time, the SQL store by the app clock
    while not store.claim_once(key, ttl=60):
        assert time.monotonic() < deadline, "claim never expired"
        time.sleep(0.1)
    assert store.claim_once(key, ttl=60) is False


def test_hit_counts_within_a_window(store, clock):
    key = f"ctr:{uuid.uuid4().hex}"
    counts = [store.hit(key, window=60)[0] for _ in range(5)]
    assert counts == [1, 2, 3, 4, 5]
    assert store.count(key) == 5
    _, retry_after = store.hit(key, window=60)
    assert 1 <= retry_after <= 60


def test_hit_many_counts_each_key_in_its_own_window_in_order(store, clock):
    a, b, c = (f"ctr:{uuid.uuid4().hex}" for _ in range(3))
    store.hit(b, window=60)
    store.hit(b, window=60)
    assert store.hit_many([(a, 10), (b, 60), (c, 30)]) == [(1, 10), (3, 60), (1, 30)]
    clock.advance(11)  # a's window is over, b's and c's are not
    counts = store.hit_many([(c, 30), (a, 10), (b, 60)])
    assert [n for n, _ in counts] == [2, 1, 4]
    assert [left for _, left in counts] == [19, 10, 49]
    assert (store.count(a), store.count(b), store.count(c)) == (1, 4, 2)
    assert store.hit_many([(a, 10)]) == [(2, 10)]
    with pytest.raises(ValueError):
        store.hit_many([(a, 10), (a, 10)])


def test_values(store):
    key = f"val:{uuid.uuid4().hex}"
    assert store.get(key) is None
    store.put(key, "hello", ttl=60)
    assert store.get(key) == "hello"
    store.put(key, "again", ttl=60)
    assert store.get(key) == "again"
    store.delete(key)
    assert store.get(key) is None


def test_add_writes_only_over_nothing_or_an_expired_entry(store, clock):
    key = f"add:{uuid.uuid4().hex}"
    assert store.add(key, "first", ttl=1) is True
    assert store.add(key, "second", ttl=60) is False
    assert store.get(key) == "first"
    store.put(key, "changed", ttl=1)  # a put is never refused, and an add never overwrites it
    assert store.add(key, "stale", ttl=60) is False
    assert store.get(key) == "changed"
    clock.advance(2)  # both stores compare an entry's expiry with the app's clock
    assert store.add(key, "after", ttl=60) is True
    assert store.get(key) == "after"


def test_keys_are_bounded(store):
    with pytest.raises(ValueError):
        store.claim_once("x" * 201, ttl=1)


CLAIMER = """
import json, sys, time
from authserver import create_app
from authserver.config import load_settings
app = create_app(load_settings())
store = app.extensions["authserver"].store
prefix, start = sys.argv[1], float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
won = [i for i in range(200) if store.claim_once(f"{prefix}:{i}", ttl=60)]
print(json.dumps(won))
"""


def test_claim_once_holds_across_two_real_processes(app, tmp_path):
    """Two OS processes race for the same 200 keys: every key is won exactly once."""
    env = {**os.environ, **make_env(tmp_path / "procs")}
    # Both processes must use the test's database and store.
    settings = app.extensions["authserver"].settings
    env["DATABASE_URL"] = settings.database_url
    env["AUTHSERVER_REDIS_PREFIX"] = settings.redis_prefix
    prefix = f"race-{uuid.uuid4().hex}"
    start = time.time() + 3
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, prefix, str(start)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]
        results.append(set(json.loads(out)))
    a, b = results
    assert not a & b, "a key was claimed by both processes"
    assert a | b == set(range(200))


def test_unreachable_redis_fails_closed_with_503(tmp_path, world, http, app):
    """With Redis down, an operation that needs the store answers 503 + Retry-After, never 200."""
    from authserver.ephemeral import RedisStore

    state = app.extensions["authserver"]
    original = state.store
    creds = world.client()
    state.store = RedisStore("redis://127.0.0.1:1/0")  # nothing listens on port 1
    try:
        with pytest.raises(StoreUnavailable):
            state.store.claim_once("k", ttl=1)
        creds.client_secret = "wrong"  # a failed authentication must be counted: needs the store
        resp = http.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, headers=creds.auth_header()
        )
        assert resp.status_code == 503
        assert resp.get_json()["error"] == "temporarily_unavailable"
        assert int(resp.headers["Retry-After"]) >= 1
    finally:
        state.store = original


def test_unreachable_database_is_503_not_500(tmp_path):
    """With the database down, every endpoint that needs it answers 503 with a clear body."""
    from authserver import create_app
    from authserver.config import load_settings

    env = make_env(tmp_path / "down", DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    env.pop("REDIS_URL", None)
    app = create_app(load_settings(env))
    http = app.test_client()
    resp = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic Y2xpX3g6c2VjcmV0"},
    )
    assert resp.status_code == 503
    assert resp.get_json()["error"] == "temporarily_unavailable"
    assert resp.headers["Retry-After"]
    resp = http.get("/oauth/jwks")
    assert resp.status_code == 503
    with app.app_context():
        with pytest.raises(StoreUnavailable):
            app.extensions["authserver"].store.claim_once("k", ttl=1)


@pytest.mark.skipif(not DATABASE_URL, reason="the SQL store on PostgreSQL needs DATABASE_URL")
def test_sql_store_on_postgresql(app):
    """CI's distributed run also exercises the SQL store's PostgreSQL statements directly."""
    from authserver.ephemeral import SqlStore
    from authserver.models import db

    with app.app_context():
        store = SqlStore(db.engine)
    key = f"pg:{uuid.uuid4().hex}"
    assert store.claim_once(key, 60) is True
    assert store.claim_once(key, 60) is False
    assert [store.hit(key + "c", 60)[0] for _ in range(3)] == [1, 2, 3]
    assert store.add(key + "a", "v", 60) is True
    assert store.add(key + "a", "w", 60) is False
    assert store.get(key + "a") == "v"


def test_claim_or_hold_claims_a_free_key_and_extends_a_taken_one(store, clock):
    key = f"hold:{uuid.uuid4().hex}"
    assert store.claim_or_hold(key, ttl=4, hold_ttl=10) is True  # free: claimed for 4 s
    clock.advance(3)
    assert store.claim_or_hold(key, ttl=4, hold_ttl=10) is False  # taken: held 10 s from now
    clock.advance(9)
    assert store.claim_once(key, ttl=1) is False  # still held (13 - 3 = 10 s)
    assert store.claim_or_hold(key, ttl=4, hold_ttl=2) is False  # held again, 2 s from now
    clock.advance(2.5)
    assert store.claim_or_hold(key, ttl=4, hold_ttl=10) is True  # expired: claimed afresh
    clock.advance(3.5)
    assert store.claim_once(key, ttl=1) is False
    clock.advance(1)
    assert store.claim_once(key, ttl=1) is True
    other = f"hold:{uuid.uuid4().hex}"
    assert store.claim_once(other, ttl=5) is True
    assert store.claim_or_hold(other, ttl=5, hold_ttl=5) is False  # a claim is a claim


def test_give_back_undoes_one_hit_of_a_live_window(store, clock):
    key = f"t:{uuid.uuid4().hex}"
    assert [store.hit(key, window=60)[0] for _ in range(3)] == [1, 2, 3]
    store.give_back(key)
    assert store.count(key) == 2
    for _ in range(5):
        store.give_back(key)
    assert store.count(key) == 0  # never below zero
    assert store.hit(key, window=60)[0] == 1
    clock.advance(61)
    store.give_back(key)  # an expired window is left alone: a new one starts at 1
    assert store.hit(key, window=60)[0] == 1


@pytest.mark.skipif(not DATABASE_URL, reason="needs PostgreSQL (DATABASE_URL)")
def test_connections_the_server_closed_are_replaced_without_a_failure(app, monkeypatch):
    """No ping per checkout: a connection the server closed (a restart, an idle timeout) is
    pinged when it was idle, and the store tries once more on a fresh connection when one fails
    in use. Neither costs the client an error."""
    from sqlalchemy import create_engine, text

    from authserver import models
    from authserver.ephemeral import SqlStore

    name = f"drop-{uuid.uuid4().hex[:8]}"
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    engine = create_engine(url, connect_args={"application_name": name})
    killer = create_engine(url)

    def server_closes_them() -> None:
        with killer.begin() as conn:
            closed = conn.execute(
                text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                     "WHERE application_name = :name"), {"name": name}
            ).scalar()  # fmt: skip
        assert closed >= 1

    try:
        store = SqlStore(engine)
        key = f"pg:{uuid.uuid4().hex}"
        store.put(key, "v", 60)
        server_closes_them()
        assert store.get(key) == "v"  # in use: retried on a fresh connection
        assert store.claim_once(key + "c", 60) is True

        # An idle connection is pinged at checkout and replaced when the ping fails.
        monkeypatch.setattr(models, "IDLE_PING_SECONDS", 0.0)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        server_closes_them()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 2")).scalar() == 2
    finally:
        engine.dispose()
        killer.dispose()


@pytest.mark.skipif(not DATABASE_URL, reason="needs PostgreSQL (DATABASE_URL)")
def test_a_write_after_a_restart_goes_to_a_fresh_connection(app):
    """A write is never retried (it may have happened), so a connection the server has closed
    must be noticed before sending: the termination notice or end of file waiting on its socket
    tells, without a round trip. Busy connections (no idle ping due) included."""
    from sqlalchemy import bindparam, create_engine, text, update

    from authserver.direct import Direct
    from authserver.ephemeral import SqlStore
    from authserver.models import EphemeralEntry

    name = f"restart-{uuid.uuid4().hex[:8]}"
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    engine = create_engine(url, connect_args={"application_name": name})
    killer = create_engine(url)
    table = EphemeralEntry.__table__
    bump = update(table).where(table.c.key == bindparam("k")).values(counter=table.c.counter + 1)

    def server_closes_them() -> None:
        with killer.begin() as conn:
            closed = conn.execute(
                text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                     "WHERE application_name = :name"), {"name": name}
            ).scalar()  # fmt: skip
        assert closed >= 1
        time.sleep(0.2)  # the backends exit and their sockets close

    try:
        store, direct = SqlStore(engine), Direct(engine)
        key = f"pg:{uuid.uuid4().hex}"
        store.put(key, "v", 60)
        assert direct.write(bump, {"k": key}) == 1
        with engine.connect() as conn:  # a pooled connection, checked in a moment ago
            conn.execute(text("SELECT 1"))
        server_closes_them()
        assert direct.write(bump, {"k": key}) == 1  # no StoreUnavailable
        with engine.connect() as conn:  # not pinged (idle < IDLE_PING_SECONDS), still fine
            assert conn.execute(text("SELECT 2")).scalar() == 2
        with direct.transaction() as tx:
            assert tx.write(bump, {"k": key}) == 1
        server_closes_them()
        with direct.transaction() as tx:
            assert tx.write(bump, {"k": key}) == 1
        with engine.connect() as conn:
            counter = conn.execute(
                text("SELECT counter FROM ephemeral_entries WHERE key = :k"), {"k": key}
            ).scalar()
        assert counter == 4
    finally:
        engine.dispose()
        killer.dispose()


def _own_redis_store():
    """A RedisStore on a connection of its own (a name Redis can list and close)."""
    from authserver.ephemeral import RedisStore

    store = RedisStore(REDIS_URL, prefix=f"lean-{uuid.uuid4().hex[:8]}:")
    return store, store._redis


def _with_scripts_redis_has_not_seen(store):
    """The store's scripts, each made new to Redis (a comment of its own changes its SHA1): what
    a store meets after a Redis restart or SCRIPT FLUSH, without flushing other tests' scripts."""
    from authserver.ephemeral import _Script

    fresh = uuid.uuid4().hex
    for name in ("_claim", "_claim_or_hold", "_hit", "_give_back", "_compare_and_put"):
        setattr(store, name, _Script(getattr(store, name).text + f"\n-- {fresh}\n"))
    return store


@pytest.mark.skipif(not REDIS_URL, reason="needs Redis (REDIS_URL)")
def test_redis_that_does_not_know_a_script_gets_it_and_runs_it_once():
    """Scripts go by their SHA1: a script Redis does not have (after a restart or a flush) is
    answered NOSCRIPT, meaning it ran nothing; the store loads it and runs it once more. A claim
    is still won exactly once, a counter counts each hit once."""
    store, admin = _own_redis_store()
    _with_scripts_redis_has_not_seen(store)
    assert not any(admin.script_exists(store._claim.sha, store._hit.sha))
    assert store.claim_once("a", ttl=60) is True
    _with_scripts_redis_has_not_seen(store)
    assert store.claim_once("a", ttl=60) is False
    _with_scripts_redis_has_not_seen(store)
    assert store.hit_many([("n", 60), ("m", 60)]) == [(1, 60), (1, 60)]
    _with_scripts_redis_has_not_seen(store)
    count, left = store.hit("n", window=60)
    assert count == 2 and 59 <= left <= 60
    assert store.count("m") == 1
    assert admin.script_exists(store._hit.sha) == [True]  # loaded by the hit that needed it


@pytest.mark.skipif(not REDIS_URL, reason="needs Redis (REDIS_URL)")
def test_redis_closing_the_connection_costs_no_operation_an_error():
    """A connection Redis closed (a restart, CLIENT KILL, an idle timeout) is seen on its socket
    before anything is sent, so a write (never retried) goes to a fresh one too."""
    store, admin = _own_redis_store()
    store.put("v", "1", ttl=60)
    for op in (
        lambda: store.claim_once("c", ttl=60),  # a write
        lambda: store.put("v", "2", ttl=60),  # a write in MULTI/EXEC
        lambda: store.get("v"),  # a read
    ):
        own = store._one(("CLIENT", "ID"), read=True)  # this thread's connection, no other
        assert admin.client_kill_filter(_id=own) == 1
        time.sleep(0.1)  # the server has closed the socket
        op()
    assert store.get("v") == "2"
    assert store.claim_once("c", ttl=60) is False


@pytest.mark.skipif(not REDIS_URL, reason="needs Redis (REDIS_URL)")
def test_an_error_reply_in_a_batch_leaves_the_connection_in_step():
    """Several commands go in one write; when one of them is refused, every reply is still read,
    so the next operation gets its own answer, not a leftover."""
    store, admin = _own_redis_store()
    store.put("good", "yes", ttl=60)
    store.put("other", "no", ttl=60)
    admin.set(store._prefix + "bad", "a string, not a hash", ex=60)  # HMGET: WRONGTYPE
    connection = store._local.line[0]
    with pytest.raises(StoreUnavailable):
        store.get_many(["good", "bad", "other"])
    assert store.get("good") == "yes"
    assert store._local.line[0] is connection  # kept: nothing was left unread on it
    assert store.get_many(["good", "none"]) == {"good": "yes"}


@pytest.mark.skipif(not REDIS_URL, reason="needs Redis (REDIS_URL)")
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_process_never_shares_its_parents_redis_connection():
    """Server workers may be forked from a process that used the store: the child makes its own
    connection (on a shared socket, replies would reach the wrong process), and the parent's
    stays usable after the child is gone."""
    store, _ = _own_redis_store()
    taken = range(0, 200, 2)
    assert all(store.claim_once(f"k{i}", ttl=60) for i in taken)
    parents = store._local.line[0]._sock.getsockname()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: claims the taken keys again, reports what it won and its socket
        try:
            won = [i for i in taken if store.claim_once(f"k{i}", ttl=60)]
            own = store._local.line[0]._sock.getsockname()
            os.write(write, json.dumps({"won": won, "socket": list(own)}).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as f:
        child = json.loads(f.read())
    assert child["won"] == []
    assert tuple(child["socket"]) != parents
    assert [i for i in range(1, 200, 2) if store.claim_once(f"k{i}", ttl=60)] == list(
        range(1, 200, 2)
    )
    assert store._local.line[0]._sock.getsockname() == parents
