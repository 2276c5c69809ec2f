"""The ephemeral-state store: claim-once with expiry, counters over a window, short-lived values.

Two implementations behind one interface: Redis when ``REDIS_URL`` is set, a table in the same SQL
database otherwise. Both are atomic across processes: every operation is a single Redis command
(or MULTI block) or a single SQL statement with ``ON CONFLICT``. When the backing service cannot be
reached every operation raises ``StoreUnavailable``; callers never treat that as "not seen" (fail
closed), the app turns it into a 503 with ``Retry-After``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import Table
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from authserver.models import EphemeralEntry, closed_by_server
from authserver.writegate import WriteGate

# The Core table behind the model: every statement here is one Core statement.
_ENTRIES = cast(Table, EphemeralEntry.__table__)

MAX_KEY_LENGTH = 200


class StoreUnavailable(Exception):
    """The ephemeral store (Redis or the database) did not answer."""


class EphemeralStore(Protocol):
    def claim_once(self, key: str, ttl: float) -> bool:
        """True for exactly one caller until ``ttl`` seconds after the successful claim."""

    def claim_or_hold(self, key: str, ttl: float, hold_ttl: float) -> bool:
        """``claim_once`` (True, claimed for ``ttl``); when ``key`` is claimed already, keep it
        claimed until ``hold_ttl`` seconds from now instead (False). One atomic operation."""

    def hit(self, key: str, window: int) -> tuple[int, int]:
        """Count one event in a fixed window; returns (count including this one, seconds left)."""

    def hit_many(self, items: list[tuple[str, int]]) -> list[tuple[int, int]]:
        """``hit`` for each distinct ``(key, window)``, in one round trip; results in order."""

    def count(self, key: str) -> int:
        """The current count of a window without adding to it (0 once it has expired)."""

    def give_back(self, key: str) -> None:
        """Undo one ``hit`` of a live window (never below 0; nothing once it has expired)."""

    def put(self, key: str, value: str, ttl: float) -> None: ...

    def add(self, key: str, value: str, ttl: float) -> bool:
        """``put`` only when ``key`` holds no live entry (a cache fill that must not overwrite
        what a change wrote meanwhile); True when written. One atomic operation."""

    def get(self, key: str) -> str | None: ...

    def get_many(self, keys: list[str]) -> dict[str, str]:
        """The live values among ``keys``, in one round trip."""

    def delete(self, key: str) -> None: ...

    def ping(self) -> None: ...


def _check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError("ephemeral key must be 1-200 characters; hash long inputs first")
    return key


_CLAIM = """
local v = redis.call('HGET', KEYS[1], 'e')
if v and tonumber(v) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'e', ARGV[2])
redis.call('HDEL', KEYS[1], 'v', 'c')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
_CLAIM_OR_HOLD = """
local v = redis.call('HGET', KEYS[1], 'e')
if v and tonumber(v) > tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'e', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return 0
end
redis.call('HSET', KEYS[1], 'e', ARGV[2])
redis.call('HDEL', KEYS[1], 'v', 'c')
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""
# Count one event in each key's window: KEYS are the counters, ARGV[1] the time (ms), then per
# key its window's end and the key's lifetime (ms). Returns count, ms left, for each key.
_HIT = """
local now = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  local e = tonumber(redis.call('HGET', key, 'e') or '0')
  if e <= now then
    redis.call('HSET', key, 'c', 1, 'e', ARGV[2 * i])
    redis.call('PEXPIRE', key, ARGV[2 * i + 1])
    out[2 * i - 1], out[2 * i] = 1, tonumber(ARGV[2 * i]) - now
  else
    out[2 * i - 1], out[2 * i] = redis.call('HINCRBY', key, 'c', 1), e - now
  end
end
return out
"""
_GIVE_BACK = """
local e = tonumber(redis.call('HGET', KEYS[1], 'e') or '0')
local c = tonumber(redis.call('HGET', KEYS[1], 'c') or '0')
if e > tonumber(ARGV[1]) and c > 0 then redis.call('HINCRBY', KEYS[1], 'c', -1) end
return 1
"""
# Keys outlive their logical expiry by this much, so that a node whose clock runs a little
# behind still sees them; reads compare the stored expiry with the caller's clock.
_GRACE_MS = 60_000


# Put a value only if the key holds no live entry: ARGV value, now, expiry, key lifetime (ms).
_ADD = """
local e = redis.call('HGET', KEYS[1], 'e')
if e and tonumber(e) > tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'e', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""
# Put a value only if the entry still holds ``expected`` (and has not expired).
_COMPARE_AND_PUT = """
local v = redis.call('HGET', KEYS[1], 'v')
local e = redis.call('HGET', KEYS[1], 'e')
if (not v) or (not e) or v ~= ARGV[1] or tonumber(e) <= tonumber(ARGV[3]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'e', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""


def _pack(args: tuple[str | int, ...]) -> bytes:
    """One command in the Redis protocol (RESP): an array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            b = arg.encode()
        elif type(arg) is int:  # not a bool, not a float (b"%d" would truncate one silently)
            b = b"%d" % arg
        else:
            raise TypeError(f"a Redis argument is str or int, not {type(arg).__name__}")
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class RedisStore:
    """Each operation is one Lua script or command: atomic across every process.

    Expiry is a timestamp from the app's clock kept in the entry, as in the SQL store, so both
    stores behave the same (and tests can move the clock); Redis TTLs only collect garbage.

    Every operation is one round trip on this thread's own connection: redis-py's connection
    (the URL's password, database, TLS and timeouts), used without the client's pool, pipeline
    and retry layers, which cost more CPU than the round trip itself. Scripts are sent by their
    SHA1 and loaded once when Redis does not know them. A read on a connection that failed is
    tried once more on a fresh one; a write is not (it may have happened): StoreUnavailable.
    """

    def __init__(
        self, url: str, prefix: str = "authserver:", clock: Callable[[], float] = time.time
    ) -> None:
        self._redis = redis.Redis.from_url(
            url,
            socket_timeout=2,
            socket_connect_timeout=2,
            health_check_interval=30,
            retry_on_timeout=False,
            # No retries inside redis-py (its default retries a connect ten times): an
            # unreachable Redis is a StoreUnavailable within the connect timeout, and this
            # class decides what may be tried again (a read, once).
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        pool = self._redis.connection_pool
        self._new_connection = lambda: pool.connection_class(**pool.connection_kwargs)
        self._local = threading.local()
        self._prefix = prefix
        self._clock = clock
        self._claim = _Script(_CLAIM)
        self._claim_or_hold = _Script(_CLAIM_OR_HOLD)
        self._hit = _Script(_HIT)
        self._give_back = _Script(_GIVE_BACK)
        self._compare_and_put = _Script(_COMPARE_AND_PUT)
        self._add = _Script(_ADD)

    def _k(self, key: str) -> str:
        return self._prefix + _check_key(key)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _connection(self) -> Any:
        """This thread's connection: made on first use, and again after a fork (a child never
        shares its parent's socket) or when the server has closed it (a restart), which one poll
        of the socket shows before anything is sent."""
        line = getattr(self._local, "line", None)
        pid = os.getpid()
        if line is not None:
            conn, owner = line
            if owner == pid and not closed_by_server(conn._sock):
                return conn
            self._drop(conn if owner == pid else None)
        conn = self._new_connection()
        conn.connect()
        self._local.line = (conn, pid)
        return conn

    def _drop(self, conn: Any) -> None:
        self._local.line = None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.disconnect()

    def _send(self, commands: list[tuple[str | int, ...]], *, read: bool) -> list[Any]:
        """Send ``commands`` in one write and read their replies, in order. Every reply is read
        before an error reply raises, so the connection stays in step: StoreUnavailable (LOADING,
        READONLY replica, OOM, ...), or NoScriptError for ``_run_script`` to handle."""
        packed = b"".join(_pack(c) for c in commands)
        for attempt in (1, 2):
            conn = None
            try:
                conn = self._connection()
                conn.send_packed_command([packed], check_health=False)
                replies, error = [], None
                for _ in commands:
                    try:
                        replies.append(conn.read_response())
                    except redis.ResponseError as exc:
                        replies.append(None)
                        error = error or exc
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self._drop(conn)
                if attempt == 2 or not read:
                    raise StoreUnavailable("redis unreachable") from exc
                continue
            except redis.RedisError as exc:  # pragma: no cover - e.g. an authentication error
                self._drop(conn)
                raise StoreUnavailable(f"redis error: {type(exc).__name__}") from exc
            if error is None:
                return replies
            if isinstance(error, redis.exceptions.NoScriptError):
                raise error
            raise StoreUnavailable(f"redis error: {type(error).__name__}") from error
        raise AssertionError("unreachable")  # pragma: no cover

    def _one(self, command: tuple[str | int, ...], *, read: bool) -> Any:
        return self._send([command], read=read)[0]

    def _run_script(self, script: _Script, keys: list[str], args: Sequence[str | int]) -> Any:
        """EVALSHA; when Redis does not have the script (a restart, a flush), it is loaded and
        run again: a NOSCRIPT reply means it did not run at all."""
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            return self._one(command, read=False)
        except redis.exceptions.NoScriptError:
            self._one(("SCRIPT", "LOAD", script.text), read=False)
            try:
                return self._one(command, read=False)
            except redis.exceptions.NoScriptError as exc:  # flushed again in between
                raise StoreUnavailable("redis error: NoScriptError") from exc

    def claim_once(self, key: str, ttl: float) -> bool:
        now = self._now_ms()
        ms = max(1, int(ttl * 1000))
        return bool(self._run_script(self._claim, [self._k(key)], [now, now + ms, ms + _GRACE_MS]))

    def claim_or_hold(self, key: str, ttl: float, hold_ttl: float) -> bool:
        now = self._now_ms()
        ms, hold_ms = max(1, int(ttl * 1000)), max(1, int(hold_ttl * 1000))
        args = [now, now + ms, now + hold_ms, ms + _GRACE_MS, hold_ms + _GRACE_MS]
        return bool(self._run_script(self._claim_or_hold, [self._k(key)], args))

    def hit(self, key: str, window: int) -> tuple[int, int]:
        return self.hit_many([(key, window)])[0]

    def hit_many(self, items: list[tuple[str, int]]) -> list[tuple[int, int]]:
        if len({key for key, _ in items}) != len(items):
            raise ValueError("hit_many needs distinct keys")
        now = self._now_ms()
        keys: list[str] = []
        args: list[str | int] = [now]
        for key, window in items:
            ms = window * 1000
            keys.append(self._k(key))
            args += [now + ms, ms + _GRACE_MS]
        flat = self._run_script(self._hit, keys, args)  # one script: one round trip
        return [
            (int(flat[i]), max(1, -(-int(flat[i + 1]) // 1000))) for i in range(0, len(flat), 2)
        ]

    def count(self, key: str) -> int:
        c, e = self._one(("HMGET", self._k(key), "c", "e"), read=True)
        if c is None or e is None or int(e) <= self._now_ms():
            return 0
        return int(c)

    def give_back(self, key: str) -> None:
        self._run_script(self._give_back, [self._k(key)], [self._now_ms()])

    def put(self, key: str, value: str, ttl: float) -> None:
        self.put_many([key], value, ttl)

    def put_many(self, keys: list[str], value: str, ttl: float) -> None:
        """One value under each of ``keys``, in one transaction and one round trip."""
        now = self._now_ms()
        ms = max(1, int(ttl * 1000))
        commands: list[tuple[str | int, ...]] = [("MULTI",)]
        for key in keys:
            k = self._k(key)
            commands += [("DEL", k), ("HSET", k, "v", value, "e", now + ms),
                         ("PEXPIRE", k, ms + _GRACE_MS)]  # fmt: skip
        commands.append(("EXEC",))
        self._send(commands, read=False)

    def add(self, key: str, value: str, ttl: float) -> bool:
        now = self._now_ms()
        ms = max(1, int(ttl * 1000))
        return bool(
            self._run_script(self._add, [self._k(key)], [value, now, now + ms, ms + _GRACE_MS])
        )

    def compare_and_put(self, key: str, expected: str, value: str, ttl: float) -> bool:
        """``put`` only if the entry holds ``expected``, atomically; True when written."""
        now = self._now_ms()
        ms = max(1, int(ttl * 1000))
        args: list[str | int] = [expected, value, now, now + ms, ms + _GRACE_MS]
        return bool(self._run_script(self._compare_and_put, [self._k(key)], args))

    def get(self, key: str) -> str | None:
        v, e = self._one(("HMGET", self._k(key), "v", "e"), read=True)
        if v is None or e is None or int(e) <= self._now_ms():
            return None
        return str(v)

    def get_many(self, keys: list[str]) -> dict[str, str]:
        now = self._now_ms()
        replies = self._send([("HMGET", self._k(key), "v", "e") for key in keys], read=True)
        found = {}
        for key, (v, e) in zip(keys, replies, strict=True):
            if v is not None and e is not None and int(e) > now:
                found[key] = str(v)
        return found

    def delete(self, key: str) -> None:
        self._one(("DEL", self._k(key)), read=False)

    def ping(self) -> None:
        self._one(("PING",), read=True)


class _Script:
    __slots__ = ("text", "sha")

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()  # noqa: S324 - Redis names scripts so


def own_connection(engine: Engine, unavailable: tuple[type[Exception], ...]) -> Any:
    """A connection for one thread's own use, in autocommit mode: made from the engine (its
    connect-time settings: SQLite's WAL and busy timeout), then detached from the pool, so no
    checkout, reset or ping is paid per use. Unreachable: StoreUnavailable."""
    try:
        fairy = engine.raw_connection()
    except unavailable as exc:
        raise StoreUnavailable("database unreachable") from exc
    fairy.detach()
    raw: Any = fairy.dbapi_connection
    if engine.dialect.name == "sqlite":
        raw.isolation_level = None  # sqlite3: autocommit
    else:
        raw.autocommit = True
    return fairy


class SqlStore:
    """The embedded store: one table, one statement per operation, its own short transactions.

    Operations run on their own pooled connection and commit at once, independent of the
    request's session, so a claim is durable the moment it is granted (like a Redis SET NX).
    They are hot (a DPoP proof's replay claim, the revocation check of every token), so each is a
    pre-rendered SQL string sent on the raw DBAPI connection: no statement is built, compiled or
    cached per call. A connection that the server dropped (a PostgreSQL restart) is discarded
    and the operation tried once more on a fresh one; the pool does no ping per checkout.
    """

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._clock = clock
        dialect = engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):  # pragma: no cover - configuration error
            raise RuntimeError(f"SqlStore supports sqlite and postgresql, not {dialect}")
        mark = "?" if dialect == "sqlite" else "%s"
        self._sql = {name: sql.replace("?", mark) for name, sql in _SQL.items()}
        self._mark = mark
        self._in: dict[int, str] = {}
        self._ops = 0
        dbapi = engine.dialect.loaded_dbapi
        # Errors of the database or the connection (refused, dropped, SQLite busy past its
        # timeout), as opposed to a bug in a statement.
        self._unavailable = (dbapi.OperationalError, dbapi.InterfaceError, OperationalError)
        self._local = threading.local()
        self._gate = WriteGate(engine)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _connection(self) -> Any:
        """This thread's own connection, in autocommit mode: every statement is its own
        transaction, and no pool checkout, reset or commit round trip is paid per operation."""
        fairy = getattr(self._local, "fairy", None)
        if fairy is not None and closed_by_server(fairy.dbapi_connection):
            # The server went away and came back (a restart): reconnect before sending, so
            # that a write, which is never retried, does not fail on a connection known dead.
            with contextlib.suppress(Exception):
                fairy.dbapi_connection.close()
            fairy = None
        if fairy is None:
            fairy = self._local.fairy = own_connection(self._engine, self._unavailable)
        return fairy.dbapi_connection

    def _drop_connection(self) -> None:
        fairy = getattr(self._local, "fairy", None)
        self._local.fairy = None
        if fairy is not None:
            with contextlib.suppress(Exception):
                fairy.dbapi_connection.close()

    def _run(self, sql: str, params: tuple[Any, ...], rows: str = "none") -> Any:
        """One statement, committed on its own; ``rows``: none, one or all."""
        gate = None if sql.startswith("SELECT") else self._gate
        for attempt in (1, 2):
            conn = self._connection()
            try:
                cur = conn.cursor()
                held = gate.enter() if gate else None
                try:
                    cur.execute(sql, params)
                    if rows == "none":
                        return None
                    return cur.fetchone() if rows == "one" else cur.fetchall()
                finally:
                    if held is not None:
                        WriteGate.leave(held)
                    cur.close()
            except self._unavailable as exc:
                dropped = self._engine.dialect.is_disconnect(
                    exc,  # type: ignore[arg-type]
                    conn,
                    None,
                )
                if dropped:
                    self._drop_connection()
                if attempt == 2 or not dropped:
                    raise StoreUnavailable("database unreachable") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _maybe_sweep(self) -> None:
        # Expired rows are ignored by every read; sweep them now and then so the table stays small.
        self._ops += 1
        if self._ops % 500 == 0:
            self._run(self._sql["sweep"], (self._now_ms(),))

    def claim_once(self, key: str, ttl: float) -> bool:
        now = self._now_ms()
        exp = now + max(1, int(ttl * 1000))
        # Take over the row only if the previous claim has expired: one atomic statement, so of
        # two concurrent callers exactly one gets a row back.
        row = self._run(self._sql["claim"], (_check_key(key), exp, now), "one")
        self._maybe_sweep()
        return row is not None

    def claim_or_hold(self, key: str, ttl: float, hold_ttl: float) -> bool:
        now = self._now_ms()
        exp, hold_exp = now + max(1, int(ttl * 1000)), now + max(1, int(hold_ttl * 1000))
        row = self._run(
            self._sql["claim_or_hold"], (_check_key(key), exp, now, hold_exp, now), "one"
        )
        self._maybe_sweep()
        return int(row[0]) == 1

    def hit(self, key: str, window: int) -> tuple[int, int]:
        now = self._now_ms()
        exp = now + window * 1000
        row = self._run(self._sql["hit"], (_check_key(key), exp, now, now), "one")
        self._maybe_sweep()
        count, expires = row
        return int(count), max(1, -(-(int(expires) - now) // 1000))

    def hit_many(self, items: list[tuple[str, int]]) -> list[tuple[int, int]]:
        if len(items) == 1:
            return [self.hit(*items[0])]
        keys = [_check_key(key) for key, _ in items]
        if len(set(keys)) != len(keys):
            raise ValueError("hit_many needs distinct keys")
        now = self._now_ms()
        values = ", ".join([f"({self._mark}, 1, {self._mark})"] * len(items))
        sql = self._sql["hit_many"].replace("(VALUES)", values)
        params: list[Any] = []
        for key, window in items:
            params += [key, now + window * 1000]
        rows = self._run(sql, (*params, now, now), "all")
        self._maybe_sweep()
        found = {key: (int(count), int(expires)) for key, count, expires in rows}
        return [(found[key][0], max(1, -(-(found[key][1] - now) // 1000))) for key in keys]

    def count(self, key: str) -> int:
        row = self._run(self._sql["count"], (_check_key(key), self._now_ms()), "one")
        return int(row[0]) if row else 0

    def give_back(self, key: str) -> None:
        self._run(self._sql["give_back"], (_check_key(key), self._now_ms()))

    def put(self, key: str, value: str, ttl: float) -> None:
        exp = self._now_ms() + max(1, int(ttl * 1000))
        self._run(self._sql["put"], (_check_key(key), value, exp))

    def add(self, key: str, value: str, ttl: float) -> bool:
        now = self._now_ms()
        exp = now + max(1, int(ttl * 1000))
        row = self._run(self._sql["add"], (_check_key(key), value, exp, now), "one")
        self._maybe_sweep()
        return row is not None

    def get(self, key: str) -> str | None:
        row = self._run(self._sql["get"], (_check_key(key), self._now_ms()), "one")
        return row[0] if row else None

    def get_many(self, keys: list[str]) -> dict[str, str]:
        if not keys:
            return {}
        sql = self._in.get(len(keys))
        if sql is None:
            marks = ", ".join([self._mark] * len(keys))
            sql = self._in[len(keys)] = self._sql["get_many"].replace("(IN)", f"({marks})")
        rows = self._run(sql, (*[_check_key(k) for k in keys], self._now_ms()), "all")
        return {key: value for key, value in rows if value is not None}

    def delete(self, key: str) -> None:
        self._run(self._sql["delete"], (_check_key(key),))

    def ping(self) -> None:
        self._run("SELECT 1", (), "one")


# The SQL store's statements, written once for both dialects (``?`` becomes ``%s`` on
# PostgreSQL). In an UPDATE every SET expression sees the row as it was, in both.
_SQL = {
    "claim": "INSERT INTO ephemeral_entries (key, counter, expires_at_ms) VALUES (?, 1, ?) "
    "ON CONFLICT (key) DO UPDATE SET expires_at_ms = excluded.expires_at_ms, counter = 1, "
    "value = NULL WHERE ephemeral_entries.expires_at_ms <= ? RETURNING key",
    # counter 1: claimed now (new, or taken over once expired); more: held, and extended.
    "claim_or_hold": "INSERT INTO ephemeral_entries (key, counter, expires_at_ms) VALUES (?, 1, ?) "
    "ON CONFLICT (key) DO UPDATE SET "
    "expires_at_ms = CASE WHEN ephemeral_entries.expires_at_ms <= ? THEN excluded.expires_at_ms "
    "ELSE ? END, "
    "counter = CASE WHEN ephemeral_entries.expires_at_ms <= ? THEN 1 "
    "ELSE ephemeral_entries.counter + 1 END, value = NULL "
    "RETURNING counter",
    "hit": "INSERT INTO ephemeral_entries (key, counter, expires_at_ms) VALUES (?, 1, ?) "
    "ON CONFLICT (key) DO UPDATE SET "
    "counter = CASE WHEN ephemeral_entries.expires_at_ms <= ? THEN 1 "
    "ELSE ephemeral_entries.counter + 1 END, "
    "expires_at_ms = CASE WHEN ephemeral_entries.expires_at_ms <= ? THEN excluded.expires_at_ms "
    "ELSE ephemeral_entries.expires_at_ms END "
    "RETURNING counter, expires_at_ms",
    "hit_many": "INSERT INTO ephemeral_entries (key, counter, expires_at_ms) VALUES (VALUES) "
    "ON CONFLICT (key) DO UPDATE SET "
    "counter = CASE WHEN ephemeral_entries.expires_at_ms <= ? THEN 1 "
    "ELSE ephemeral_entries.counter + 1 END, "
    "expires_at_ms = CASE WHEN ephemeral_entries.expires_at_ms <= ? THEN excluded.expires_at_ms "
    "ELSE ephemeral_entries.expires_at_ms END "
    "RETURNING key, counter, expires_at_ms",
    "count": "SELECT counter FROM ephemeral_entries WHERE key = ? AND expires_at_ms > ?",
    "give_back": "UPDATE ephemeral_entries SET counter = counter - 1 "
    "WHERE key = ? AND expires_at_ms > ? AND counter > 0",
    "put": "INSERT INTO ephemeral_entries (key, value, counter, expires_at_ms) VALUES (?, ?, 0, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, counter = 0, "
    "expires_at_ms = excluded.expires_at_ms",
    # Written only over nothing or an expired entry: of two concurrent callers one gets a row.
    "add": "INSERT INTO ephemeral_entries (key, value, counter, expires_at_ms) VALUES (?, ?, 0, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, counter = 0, "
    "expires_at_ms = excluded.expires_at_ms WHERE ephemeral_entries.expires_at_ms <= ? "
    "RETURNING key",
    "get": "SELECT value FROM ephemeral_entries WHERE key = ? AND expires_at_ms > ?",
    "get_many": "SELECT key, value FROM ephemeral_entries WHERE key IN (IN) AND expires_at_ms > ?",
    "delete": "DELETE FROM ephemeral_entries WHERE key = ?",
    "sweep": "DELETE FROM ephemeral_entries WHERE expires_at_ms < ?",
}
