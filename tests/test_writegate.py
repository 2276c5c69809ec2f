"""The embedded database's hot-path writers wait for each other on a file lock (which wakes the
next one at once) rather than in SQLite's busy handler (which sleeps 1-100 ms between tries)."""

from __future__ import annotations

import fcntl
import os
import threading
import time

import pytest
from sqlalchemy import create_engine

from authserver.direct import Direct
from authserver.ephemeral import SqlStore
from authserver.models import EphemeralEntry, db
from authserver.writegate import WriteGate
from tests.conftest import DATABASE_URL

pytestmark = pytest.mark.skipif(bool(DATABASE_URL), reason="the gate is the embedded SQLite's")


def test_only_a_database_file_has_a_gate(tmp_path):
    assert WriteGate(create_engine(f"sqlite:///{tmp_path}/a.db")).path == f"{tmp_path}/a.db-writers"
    assert WriteGate(create_engine("sqlite://")).path is None
    assert WriteGate(create_engine("sqlite:///:memory:")).path is None
    assert WriteGate(create_engine("postgresql://u@127.0.0.1/x")).path is None


def test_threads_of_one_process_exclude_each_other(tmp_path):
    gate = WriteGate(create_engine(f"sqlite:///{tmp_path}/a.db"))
    inside, overlaps = [0], []

    def writer() -> None:
        for _ in range(200):
            with gate.held():
                inside[0] += 1
                overlaps.append(inside[0])
                inside[0] -= 1

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(overlaps) == 1 and len(overlaps) == 800
    assert oct(os.stat(gate.path).st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("what", ["store write", "direct write", "direct transaction"])
def test_hot_path_writes_wait_for_the_gate_and_reads_do_not(app, what):
    with app.app_context():
        engine = db.engine
    gate = WriteGate(engine)
    assert gate.path is not None
    store, direct = SqlStore(engine), Direct(engine)
    table = EphemeralEntry.__table__
    bump = table.update().where(table.c.key == "k").values(counter=table.c.counter + 1)
    store.put("k", "v", 60)
    write = {
        "store write": lambda: store.hit("h", 60),
        "direct write": lambda: direct.write(bump, {}),
        "direct transaction": lambda: _in_transaction(direct, bump),
    }[what]
    held = os.open(gate.path, os.O_RDWR)  # another process's writer, as far as flock can tell
    fcntl.flock(held, fcntl.LOCK_EX)
    done = threading.Event()
    worker = threading.Thread(target=lambda: (write(), done.set()))
    try:
        worker.start()
        assert store.get("k") == "v"  # a read passes while the gate is held
        assert not done.wait(0.3)  # the write waits
    finally:
        fcntl.flock(held, fcntl.LOCK_UN)
        os.close(held)
    started = time.monotonic()
    assert done.wait(5)
    assert time.monotonic() - started < 0.2  # woken at once, not after a busy handler's sleep
    worker.join()


def _in_transaction(direct, stmt):
    with direct.transaction() as tx:
        tx.write(stmt, {})
