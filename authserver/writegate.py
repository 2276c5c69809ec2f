"""Writers of the embedded SQLite file queue in the kernel, not in SQLite's busy handler.

SQLite lets one writer at a time; a writer that finds the lock taken runs its busy handler,
which *sleeps* (1, 2, 5, 10 ... 100 ms) and tries again. A hot-path write takes tens of
microseconds, so under load from several worker processes most of a waiting writer's time is
that sleep: throughput falls and p99 latency climbs to tens of milliseconds. Here every hot-path
write (the state store's, the direct statements') first takes an exclusive ``flock`` on a file
next to the database; a blocked ``flock`` wakes the moment the holder lets go. SQLite's own lock
still decides (writes through the ORM session do not pass the gate and keep the busy timeout).

One descriptor per thread: ``flock`` locks belong to an open file description, so threads of one
process sharing a descriptor would not exclude each other. PostgreSQL needs none of this (row
locks, no file lock), nor does an in-memory database (one connection).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator

from sqlalchemy.engine import Engine


def database_file(engine: Engine) -> str | None:
    """The embedded database's file (what the gate's and the checkpointer's lock files sit
    next to); None for PostgreSQL or an in-memory database."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    in_memory = not database or database == ":memory:" or database.startswith("file::memory:")
    return None if in_memory else database


class WriteGate:
    def __init__(self, engine: Engine) -> None:
        database = database_file(engine)
        self.path = None if database is None else f"{database}-writers"
        self._local = threading.local()

    def enter(self) -> int | None:
        """Wait for the gate (exclusive among this database's hot-path writers, in every
        process); what ``leave`` takes. Pair them in try/finally, or use ``held``."""
        if self.path is None:
            return None
        fd = getattr(self._local, "fd", None)
        if fd is None:
            fd = self._local.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd  # type: ignore[no-any-return]

    @staticmethod
    def leave(fd: int | None) -> None:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        fd = self.enter()
        try:
            yield
        finally:
            self.leave(fd)
