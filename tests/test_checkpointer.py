"""The embedded database's write-ahead log is copied back by a background thread, one in the
deployment, and not by the writer whose commit crossed SQLite's default threshold (a writer
holds the write gate while it commits, so every other writer waited for its copy)."""

from __future__ import annotations

import gc
import hashlib
import logging
import time
from pathlib import Path

import pytest

from authserver import serve
from authserver.checkpointer import BACKSTOP_PAGES, Checkpointer
from authserver.ephemeral import SqlStore, own_connection
from authserver.models import db
from tests.conftest import DATABASE_URL

sqlite_only = pytest.mark.skipif(bool(DATABASE_URL), reason="the embedded SQLite's log")


def _database(app) -> tuple[object, str]:
    with app.app_context():
        engine = db.engine
    return engine, engine.url.database


def _digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _wait(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@sqlite_only
def test_every_connection_leaves_the_copying_to_the_thread(app):
    engine, _ = _database(app)
    with engine.connect() as conn:  # the session's pool
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == BACKSTOP_PAGES
    own = own_connection(engine, Exception).dbapi_connection  # the store's and Direct's kind
    try:
        assert own.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == BACKSTOP_PAGES
    finally:
        own.close()
    assert BACKSTOP_PAGES >= 10 * 1000  # SQLite's default is 1,000 pages


@sqlite_only
def test_writes_append_to_the_log_and_the_thread_copies_them_back(app):
    engine, path = _database(app)
    store = SqlStore(engine)
    before = _digest(path)
    for i in range(1500):  # each its own commit: over 1,500 pages, past SQLite's default
        store.put(f"checkpoint-test:{i}", "v" * 200, 60)
    # No writer copied anything back: the database file is as it was, byte for byte.
    assert _digest(path) == before
    checkpointer = Checkpointer.for_engine(engine, interval=0.02).start()
    try:
        assert _wait(lambda: checkpointer.last is not None and checkpointer.last[1] > 1000)
        frames, copied = checkpointer.last
        assert copied == frames  # all of it, though no writer waited for it
        assert _digest(path) != before
        assert store.get("checkpoint-test:1499") == "v" * 200
    finally:
        checkpointer.stop()
    assert not checkpointer.active.is_set()


@sqlite_only
def test_one_thread_in_the_deployment_checkpoints_and_another_takes_over(app):
    engine, _ = _database(app)
    first = Checkpointer.for_engine(engine, interval=0.02, standby=0.02).start()
    second = Checkpointer.for_engine(engine, interval=0.02, standby=0.02)
    try:
        assert first.active.wait(5)
        second.start()  # after the first holds the lock: otherwise either may win it
        assert not second.active.wait(0.3)  # the lock is another open file: as another process
        first.stop()  # its process exits
        assert second.active.wait(5)
    finally:
        first.stop()
        second.stop()


@sqlite_only
def test_a_failing_checkpoint_is_logged_and_the_thread_goes_on(tmp_path, caplog):
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"not a database" * 512)
    checkpointer = Checkpointer(str(broken), interval=0.02, standby=0.02)
    with caplog.at_level(logging.WARNING, logger="authserver.checkpointer"):
        checkpointer.start()
        try:
            assert _wait(lambda: len(caplog.records) >= 2)  # tried, failed, tried again
            assert checkpointer.active.is_set() and checkpointer._thread.is_alive()
        finally:
            checkpointer.stop()
    assert "checkpoint failed" in caplog.records[0].getMessage()


def test_no_checkpointer_for_postgresql_or_memory():
    from sqlalchemy import create_engine

    assert Checkpointer.for_engine(create_engine("sqlite://")) is None
    assert Checkpointer.for_engine(create_engine("sqlite:///:memory:")) is None
    assert Checkpointer.for_engine(create_engine("postgresql://u@127.0.0.1/x")) is None


def test_a_serving_process_starts_the_thread_and_freezes_what_it_built(app, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(gc, "collect", lambda *a: calls.append("collect") or 0)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    assert serve.settle(app) is app
    assert calls == ["collect", "freeze"]  # garbage first: frozen garbage is never freed
    checkpointer = app.extensions.get("authserver.checkpointer")
    if DATABASE_URL:
        assert checkpointer is None
        return
    try:
        assert checkpointer.active.wait(5)
    finally:
        checkpointer.stop()
