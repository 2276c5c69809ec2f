"""The embedded database's write-ahead log is copied back by one background thread, not by the
request whose commit happened to cross SQLite's threshold.

In WAL mode every commit appends its pages to the ``-wal`` file, and by default the commit that
takes it past 1,000 pages then copies them back into the database file and syncs both (a
checkpoint). That commit runs inside the write gate (``authserver.writegate``), so every writer
of every process waited for it. Measured on a 2-core VM under a stream of device
authorizations: a checkpoint of ~1,000 pages took 15-20 ms, about 85% of it waiting for the disk
with the CPU idle, once in every ~150 requests; with the copying moved here, the same run served
about a fifth more device authorizations and refreshes a second, and their p99 fell.

So every connection's own automatic checkpoint is only a backstop at ``BACKSTOP_PAGES`` (for a
process without this thread: the CLI, a test), and in a serving deployment one thread, the holder
of an exclusive ``flock`` on a file next to the database, runs a passive checkpoint every
``INTERVAL`` seconds. A passive checkpoint waits for no reader and no writer: it copies what has
been committed and not yet copied while writers go on appending. The other workers' threads try
the lock every ``STANDBY`` seconds, so one takes over when the holder's process exits. The next
writer after a complete copy starts the log from its beginning again (SQLite's own restart), so
the log stays a few hundred pages long and a reader finds a page in it quickly.

PostgreSQL and an in-memory database have no such file: there is nothing to start.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading

from sqlalchemy.engine import Engine

from authserver.writegate import database_file

log = logging.getLogger("authserver.checkpointer")

# A connection's automatic checkpoint (PRAGMA wal_autocheckpoint): far above what the thread
# leaves in the log (a few hundred pages at thousands of writes a second), so only a process
# without the thread, or a stalled one, checkpoints in a writer. 10,000 pages of 4 kB: 40 MB.
BACKSTOP_PAGES = 10_000
INTERVAL = 0.05
STANDBY = 1.0


class Checkpointer:
    """One database file's checkpointing thread; ``start`` it in every serving process."""

    def __init__(self, database: str, interval: float = INTERVAL, standby: float = STANDBY):
        self.database = database
        self.lock_path = f"{database}-checkpointer"
        self.interval = interval
        self.standby = standby
        self.active = threading.Event()  # this one holds the lock and checkpoints
        # The latest checkpoint's (pages in the log, pages of it in the database file).
        self.last: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_engine(cls, engine: Engine, **kwargs: float) -> Checkpointer | None:
        """The checkpointer of an embedded database file; None for PostgreSQL or memory (and
        for a ``file:`` URI, which this thread's plain connection would not read as one)."""
        database = database_file(engine)
        if database is None or database.startswith("file:"):
            return None
        return cls(database, **kwargs)

    def start(self) -> Checkpointer:
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpointer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        conn: sqlite3.Connection | None = None
        try:
            while not self._stop.is_set():
                if not self.active.is_set():
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:  # another process's thread checkpoints
                        self._stop.wait(self.standby)
                        continue
                    self.active.set()
                try:
                    if conn is None:
                        conn = sqlite3.connect(self.database, isolation_level=None)
                        conn.execute("PRAGMA wal_autocheckpoint=0")
                    _busy, frames, copied = conn.execute(
                        "PRAGMA wal_checkpoint(PASSIVE)"
                    ).fetchone()
                except sqlite3.Error as exc:
                    # A full disk, a removed file: writers still checkpoint at the backstop.
                    log.warning("checkpoint failed: %s", exc)
                    if conn is not None:
                        with contextlib.suppress(sqlite3.Error):
                            conn.close()
                    conn = None
                    self._stop.wait(self.standby)
                    continue
                self.last = (frames, copied)
                self._stop.wait(self.interval)
        finally:
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self.active.clear()
            os.close(fd)  # lets the lock go: another process's thread takes over
