"""Clients as the hot path sees them: immutable views cached per process, invalidated in every
process at once by a version kept in the state store.

Every token, introspection and revocation request authenticates a client. Reading its row each
time cost a third of a token request, so each process keeps a ``ClientView`` per client id,
tagged with the version of the client configuration it was read under. The version is read with
the client-authentication lockout in one store round trip (``oauth2.server``); a view whose tag
differs from it is read again. Any change to a client or a tenant bumps the version:

- on the SQL store, in the change's own transaction (atomic with it);
- with Redis, before the change commits (a store that cannot take it aborts the change: fail
  closed) and once more after it has committed (a process that read the row between the two
  would otherwise keep the old one under the new version).

The bump is automatic (SQLAlchemy session events): code that changes a client or a tenant in any
way (the ORM, an UPDATE or DELETE statement) cannot forget it. A view also expires after
``MAX_AGE`` seconds whatever the version says, which bounds the effect of a lost post-commit
bump; unknown client ids are never cached (a guesser cannot fill the memory).
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from itertools import chain
from typing import Any

from flask import g, has_app_context
from sqlalchemy import bindparam, event, select
from sqlalchemy.orm import Session, UOWTransaction

from authserver.ephemeral import RedisStore
from authserver.models import Client, OAuthClient, Tenant, db
from authserver.state import get_state

log = logging.getLogger("authserver.clients")

VERSION_KEY = "ver:clients"
VERSION_TTL = 10 * 365 * 86400
MAX_AGE = 60.0
MAX_ENTRIES = 10_000
MAX_CLIENT_ID_CHARS = 128


@dataclass(frozen=True)
class ClientView(OAuthClient):
    """A client as it was when read: what authentication and the grants need, nothing more."""

    client_id: str
    tenant_id: str
    name: str
    secret_hash: str | None
    auth_method: str
    grant_types: tuple[str, ...]
    scope: str
    dpop_bound: bool
    dpop_binding: str
    device_subject: str
    active: bool
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    first_party: bool = False
    require_par: bool = False
    id_token_alg: str | None = None
    user_kind: str | None = None


_COLUMNS = [Client.__table__.c[name] for name in ClientView.__dataclass_fields__]  # type: ignore[attr-defined]
# One statement: the client, only while its tenant is active.
_BY_ID = (
    select(*_COLUMNS)
    .join(Tenant, Tenant.id == Client.tenant_id)
    .where(Client.client_id == bindparam("client_id"), Tenant.active.is_(True))
)


def _load(client_id: str) -> ClientView | None:
    row = db.session.execute(_BY_ID, {"client_id": client_id}).first()
    if row is None:
        return None
    data = row._asdict()
    for name in ("grant_types", "redirect_uris", "post_logout_redirect_uris"):
        data[name] = tuple(data[name] or ())
    return ClientView(**data)


def version() -> str:
    """The client configuration's current version: the one read with this request's lockout
    check when there was one, else from the store (written when missing)."""
    found = g.get("clients_version") if has_app_context() else None
    if found:
        return str(found)
    store = get_state().store
    current = store.get(VERSION_KEY)
    if current is None:
        current = _new_version()
    return current


def _new_version() -> str:
    value = secrets.token_hex(8)
    get_state().store.put(VERSION_KEY, value, VERSION_TTL)
    return value


def find(client_id: str) -> ClientView | None:
    """The client ``client_id`` of an active tenant, from the cache when it is current."""
    if not client_id or len(client_id) > MAX_CLIENT_ID_CHARS:
        return None
    current = version()
    _cache = get_state().client_cache
    entry = _cache.get(client_id)
    now = time.monotonic()
    if entry is not None and entry[0] == current and now - entry[1] < MAX_AGE:
        return entry[2]
    view = _load(client_id)
    if view is None:
        _cache.pop(client_id, None)
        return None
    if len(_cache) >= MAX_ENTRIES:
        _cache.clear()
    _cache[client_id] = (current, now, view)
    return view


# -- invalidation ----------------------------------------------------------------------------------

_FLAG = "clients_changed"


def _touches_clients(session: Session) -> bool:
    return any(
        isinstance(obj, Client | Tenant)
        for obj in chain(session.new, session.dirty, session.deleted)
    )


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, flush_context: UOWTransaction) -> None:
    if _touches_clients(session):
        session.info[_FLAG] = True


@event.listens_for(Session, "do_orm_execute")
def _on_statement(state: Any) -> None:
    if (state.is_update or state.is_delete) and state.bind_mapper is not None:
        if state.bind_mapper.class_ in (Client, Tenant):
            state.session.info[_FLAG] = True


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    if not (session.info.get(_FLAG) or _touches_clients(session)):
        return
    session.info[_FLAG] = True
    from authserver import revocation  # the same durable write as a revocation entry

    # SQL store: in this transaction. Redis: written ahead (a failure aborts the change).
    revocation.write_entry(VERSION_KEY, secrets.token_hex(8), VERSION_TTL, session)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if not session.info.pop(_FLAG, False):
        return
    state = get_state()
    state.client_cache.clear()  # this process at once
    if isinstance(state.store, RedisStore):
        try:
            _new_version()
        except Exception:  # the change is committed; views expire after MAX_AGE at the latest
            log.exception("could not bump the client configuration version after a change")


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_FLAG, None)
