"""What revokes a self-contained access token, without a database row per token.

An access token (RFC 9068 JWT) names everything its life depends on: its client, tenant, refresh
family (``sid``), device (``did``) and user (``uid``), and its issue time (in the ``jti``, to the
millisecond). Revoking writes a small entry that outlives every token it could affect:

- ``deny``: one token, by the keyed hash of its ``jti`` (RFC 7009 revocation, a reused code);
- ``mark``: a not-before time for a client, tenant, family, device or user; every token of it
  issued at or before that moment is dead (blocking, unlinking or deleting a device, revoking a
  family, disabling a user, client or tenant).

Checking a token is one read of the shared store for all its entries (DESIGN invariant 3: in
effect on the very next request, in every process).

Durability. On the SQL store the entries are rows of the same database, written in the
transaction of the change that causes them (atomic with it). With Redis they are written to Redis
first (a failure aborts the change: fail closed) and to the ``revocations`` table in the change's
transaction; an epoch key tells a Redis that lost its data (restart without persistence, a
flush), and the first check after that reloads the entries from the table before answering.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from authserver.ephemeral import _ENTRIES, RedisStore, StoreUnavailable
from authserver.models import Revocation, db
from authserver.security import now_float
from authserver.state import get_state

log = logging.getLogger("authserver.revocation")
KINDS = ("all", "client", "tenant", "family", "device", "user", "module", "jkt")
EPOCH_KEY = "rvk:epoch"
# Entries outlive the tokens they can affect by this much (clock skew between nodes).
MARGIN_SECONDS = 60


def _mark_key(kind: str, ident: str) -> str:
    return f"rvk:{kind}:{ident}"


def _deny_key(jti_hash: str) -> str:
    return f"rvk:jti:{jti_hash}"


def _lifetime() -> int:
    return get_state().settings.max_token_lifetime + MARGIN_SECONDS


def _now_ms() -> int:
    return int(now_float() * 1000)


def _write(key: str, value: str) -> None:
    write_entry(key, value, _lifetime())


def write_entry(
    key: str, value: str, ttl: int, session: Any = None, store_first: bool = True
) -> None:
    """One entry of the state store, durable with the transaction of ``session`` (the request's
    by default; see the module docstring). The client configuration version uses it too.
    ``store_first=False``: the database row only; the caller puts it in Redis after commit."""
    write_entries([key], value, ttl, session, store_first)


def write_entries(
    keys: list[str], value: str, ttl: int, session: Any = None, store_first: bool = True
) -> None:
    """``write_entry`` of one value under each of ``keys``: one round trip to Redis and one
    statement to the database (a bulk block revokes 500 devices so)."""
    state = get_state()
    session = session if session is not None else db.session
    row: dict[str, Any] = {"value": value, "expires_at_ms": _now_ms() + ttl * 1000}
    if isinstance(state.store, RedisStore):
        if store_first:
            state.store.put_many(keys, value, ttl)  # write-ahead: a refusal aborts the change
        table: Any = Revocation.__table__
    else:
        table = _ENTRIES
        row["counter"] = 0
    insert = postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table).values([{"key": key, **row} for key in keys])  # one multi-row INSERT
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[table.c.key],
            set_={"value": stmt.excluded.value, "expires_at_ms": stmt.excluded.expires_at_ms},
        )
    )


def deny(jti_hash: str) -> None:
    """Revoke one access token (in the caller's transaction)."""
    _write(_deny_key(jti_hash), "1")


def mark(kind: str, ident: str) -> str:
    """Revoke every token of ``kind`` ``ident`` issued until now (in the caller's transaction);
    the value written."""
    return mark_many(kind, [ident])


def mark_many(kind: str, idents: list[str]) -> str:
    """``mark`` for each of ``idents`` (a bulk block or delete), one value for all: one round
    trip to Redis and one statement to the database, in the caller's transaction."""
    assert kind in KINDS, kind
    value = str(_now_ms())
    if idents:
        write_entries([_mark_key(kind, ident) for ident in idents], value, _lifetime())
    return value


def current_mark(kind: str, ident: str) -> str | None:
    """The mark of ``kind`` ``ident`` as it stands (its time in ms), or None."""
    return current_marks(kind, [ident])[ident]


def current_marks(kind: str, idents: list[str]) -> dict[str, str | None]:
    """The mark of each of ``idents``: one read of the store (and of the database for what
    Redis lacks: it may have lost an entry; the durable copy)."""
    keys = {_mark_key(kind, ident): ident for ident in idents}
    store = get_state().store
    found = store.get_many(list(keys)) if keys else {}
    if isinstance(store, RedisStore):
        missing = [k for k in keys if k not in found]
        if missing:
            found.update(_from_database(missing))
    return {ident: found.get(key) for key, ident in keys.items()}


def restore_mark(kind: str, ident: str, value: str | None) -> None:
    """Put a mark back to ``value`` (what it was before the change now undone; None: none), in
    the caller's transaction: the durable copy (and, on the SQL store, the store itself). A
    loosening write, so Redis comes after the commit (``restore_in_store``); a failure in between
    leaves the stricter mark."""
    assert kind in KINDS, kind
    write_entry(_mark_key(kind, ident), value or "0", _lifetime(), store_first=False)


def restore_in_store(kind: str, ident: str, expected: str, value: str | None) -> bool:
    """After the commit of ``restore_mark``: Redis gets ``value`` only if the mark is still
    ``expected`` (the one the undone change wrote). A change made meanwhile (the device blocked
    again) keeps its stricter mark. True when written (always, on the SQL store)."""
    store = get_state().store
    if not isinstance(store, RedisStore):
        return True
    return store.compare_and_put(_mark_key(kind, ident), expected, value or "0", _lifetime())


def is_revoked(jti_hash: str, issued_ms: int, subjects: list[tuple[str, str]]) -> bool:
    """Whether a token (``issued_ms``, and its ``(kind, id)`` subjects) has been revoked."""
    store = get_state().store
    keys = [_deny_key(jti_hash), *(_mark_key(k, i) for k, i in subjects)]
    if isinstance(store, RedisStore):
        try:
            found = store.get_many([*keys, EPOCH_KEY])
            if EPOCH_KEY not in found:  # Redis lost its data: refill it first
                reload_into_store()
                found = store.get_many(keys)
        except StoreUnavailable:
            # Every entry is also in the database (changes fail while Redis is down), so the
            # answer stays exact without it.
            found = _from_database(keys)
    else:
        found = store.get_many(keys)
    if _deny_key(jti_hash) in found:
        return True
    return any(int(found[key]) >= issued_ms for key in keys[1:] if key in found)


def _from_database(keys: list[str]) -> dict[str, str]:
    rows = db.session.execute(
        select(Revocation.key, Revocation.value).where(
            Revocation.key.in_(keys), Revocation.expires_at_ms > _now_ms()
        )
    ).all()
    return {key: value for key, value in rows}


def reload_into_store() -> None:
    """Copy every live entry from the ``revocations`` table into Redis, then set the epoch."""
    state = get_state()
    now_ms = _now_ms()
    rows = db.session.execute(
        select(Revocation.key, Revocation.value, Revocation.expires_at_ms).where(
            Revocation.expires_at_ms > now_ms
        )
    ).all()
    for key, value, expires_ms in rows:
        state.store.put(key, value, (expires_ms - now_ms) / 1000)
    state.store.put(EPOCH_KEY, str(now_ms), 10 * 365 * 86400)
    log.warning("revocation entries reloaded into the state store (%d)", len(rows))
