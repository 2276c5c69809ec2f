"""Many devices at once (issue 16): create up to 10,000 in one request, block, unblock or
delete many by ids or by filter, and walk the filtered list for an export.

Creating is all-or-nothing: every row is checked (its fields, its locations, its externalId
against the tenant's devices and the other rows) before anything is written, a failing batch
answers with every failing row, and the devices are inserted in one transaction.

A status change or a delete does what the single-device operation does, device by device: an
audit event with the acting user or client, and (block, delete) every token of the device revoked
in the same transaction as the change (DESIGN invariant 3). It runs in transactions of ``CHUNK``
devices, so no request holds the database's write lock for long; each transaction reads its
devices again under the lock (PostgreSQL: ``FOR UPDATE``; SQLite: its single write lock, taken
first), so a device changed meanwhile is judged as it is now. Each operation is idempotent: a
request that failed half-way (the store unreachable) is finished by sending it again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, bindparam, case, insert, literal, select, update

from authserver import revocation, tokens
from authserver.bulk import (
    Outcome,
    RowError,
    RowReport,
    by_filter,
    by_ids,
    check_count,
    creating,
    existing,
    locked,
)
from authserver.devices import (
    DeviceQuery,
    can_be_active,
    drivers,
    filter_params,
    filtered,
    new_device,
    search_devices,
)
from authserver.models import (
    AuditEvent,
    Device,
    DeviceLocation,
    DeviceOrigin,
    DeviceStatus,
    Location,
    db,
)
from authserver.security import new_id, now, now_ms

MAX_ROWS = 10_000  # rows of one bulk creation; ids of one bulk change; changes of one request
CHUNK = 500  # devices per transaction of a bulk change
ACTIONS = ("block", "unblock", "delete")


# -- creating many -----------------------------------------------------------------------------


@dataclass
class Created:
    device: Device  # not in the session: the values inserted
    location_ids: list[str]
    link_code: str | None


def check_row_count(count: int, what: str = "rows") -> None:
    check_count(count, MAX_ROWS, what)


def create_devices(
    tenant_id: str,
    actor: str,
    rows: list[dict[str, Any] | None],
    lines: list[int] | None = None,
    errors: list[RowError] | None = None,
) -> list[Created]:
    """Create every row's device (each a ``DeviceCreate`` body already parsed; None for a row
    that failed to parse, its error among ``errors``), or none: ``BulkRejected`` names every
    row that cannot be created."""
    check_row_count(len(rows))
    report = RowReport(lines, errors)
    # Each externalId once in the batch, and not taken by a live device of the tenant.
    taken = existing(
        Device.external_id,
        (r["externalId"] for r in rows if r is not None and r.get("externalId") is not None),
        Device.tenant_id == tenant_id,
        Device.deleted_at.is_(None),
    )
    report.once_and_free(rows, "externalId", taken, "externalId is also in row {row}.",
                         "A device with this externalId already exists.")  # fmt: skip
    # Every location named exists in the tenant.
    named = {loc for row in rows if row is not None for loc in row.get("locationIds") or []}
    known = existing(Location.id, named, Location.tenant_id == tenant_id)
    for i, row in enumerate(rows):
        unknown = [loc for loc in (row or {}).get("locationIds") or [] if loc not in known]
        if unknown:
            report.fail(i, f"Unknown location id(s): {', '.join(unknown)}.", "locationIds")
    report.raise_if_any("{n} row(s) cannot be created; nothing was.")

    made: list[Created] = []
    t = now_ms()
    for row in rows:
        assert row is not None  # a row that did not parse is an error above
        device, link_code = new_device(tenant_id, actor, row, t)
        made.append(Created(device, list(dict.fromkeys(row.get("locationIds") or [])), link_code))
    columns = [c.key for c in Device.__table__.c]  # type: ignore[attr-defined]
    # An externalId taken between the check and the insert (a concurrent request): a 409.
    with creating("A device with one of these externalIds was created meanwhile; nothing was "
                  "created. Send the request again to see which."):  # fmt: skip
        for start in range(0, len(made), CHUNK):  # statements of bounded size, one transaction
            part = made[start : start + CHUNK]
            # One multi-row INSERT (not executemany, which psycopg runs row by row): the
            # tally trigger on PostgreSQL (migration 0022) runs once per statement.
            db.session.execute(
                insert(Device.__table__).values(  # type: ignore[arg-type]
                    [{c: getattr(m.device, c) for c in columns} for m in part]
                )
            )
            links = [{"device_id": m.device.id, "location_id": loc}
                     for m in part for loc in m.location_ids]  # fmt: skip
            if links:
                db.session.execute(insert(DeviceLocation.__table__), links)  # type: ignore[arg-type]
    return made


# -- changing many -------------------------------------------------------------------------------


# Which devices an action can change: the filter form selects only these, so that sending a
# request again never selects what the last one could not change (a client following hasMore
# would go round for ever).
_ACTIONABLE = {
    "block": Device.status != DeviceStatus.BLOCKED,
    "unblock": (Device.status == DeviceStatus.BLOCKED)
    & (
        Device.identifier.is_not(None)  # devices.can_be_active, said in SQL
        | ((Device.origin == DeviceOrigin.API) & Device.link_code_hash.is_(None))
    ),
    "delete": None,
}


def change_by_ids(
    tenant_id: str, actor: str, action: str, ids: list[str], restore: bool = False
) -> Outcome:
    """``action`` on each of ``ids`` (distinct, at most ``MAX_ROWS``). An id that is not a live
    device of the tenant fails the whole request before anything changes (``BulkRejected``)."""
    assert action in ACTIONS, action

    def live(chunk: list[str]) -> set[str]:
        return existing(Device.id, chunk, Device.tenant_id == tenant_id,
                        Device.deleted_at.is_(None))  # fmt: skip

    def apply(chunk: list[str], outcome: Outcome) -> None:
        _apply(tenant_id, actor, action, chunk, outcome, restore)

    return by_ids(ids, live, apply, limit=MAX_ROWS, chunk=CHUNK, missing="No such device.")


def change_by_filter(
    tenant_id: str,
    actor: str,
    action: str,
    query: DeviceQuery,
    after: str | None = None,
    restore: bool = False,
) -> Outcome:
    """``action`` on the devices ``query`` selects that it can change, up to ``MAX_ROWS`` per
    request; ``has_more`` when others remain (the same request again goes on from there)."""
    assert action in ACTIONS, action
    params = filter_params(tenant_id, query)
    stmt = filtered(select(Device.id), query, *drivers(params))
    actionable = _ACTIONABLE[action]
    if actionable is not None:
        stmt = stmt.where(actionable)
    stmt = stmt.where(Device.id > bindparam("after")).order_by(Device.id).limit(bindparam("n"))

    def next_ids(after: str, n: int) -> list[str]:
        return list(db.session.scalars(stmt, {**params, "after": after, "n": n}))

    def apply(chunk: list[str], outcome: Outcome) -> None:
        _apply(tenant_id, actor, action, chunk, outcome, restore)

    return by_filter(next_ids, apply, limit=MAX_ROWS, chunk=CHUNK, after=after)


_CHUNK_ROWS = (
    select(
        Device.id,
        Device.status,
        Device.identifier,
        Device.origin,
        Device.link_code_hash,
        Device.block_mark,
        Device.mark_before_block,
    )  # fmt: skip
    .where(
        Device.tenant_id == bindparam("tenant_id"),
        Device.deleted_at.is_(None),
        Device.id.in_(bindparam("ids", expanding=True)),
    )
    .order_by(Device.id)
)


def _apply(
    tenant_id: str, actor: str, action: str, ids: list[str], outcome: Outcome, restore: bool
) -> None:
    """One transaction: ``action`` on the devices ``ids`` as they are now, audited, their tokens
    revoked with the change (``restore``: an unblock brings back what the block ended, as PATCH
    with restoreSessions does)."""
    stmt = locked(_CHUNK_ROWS, "devices")
    rows = db.session.execute(stmt, {"tenant_id": tenant_id, "ids": ids}).all()
    gone = set(ids) - {r.id for r in rows}
    outcome.skipped += [{"id": i, "reason": "deleted"} for i in ids if i in gone]
    t, t_ms = now(), now_ms()
    todo: list[Any] = []
    for r in rows:
        if action == "block" and r.status == DeviceStatus.BLOCKED:
            outcome.skipped.append({"id": r.id, "reason": "already_blocked"})
        elif action == "unblock" and r.status != DeviceStatus.BLOCKED:
            outcome.skipped.append({"id": r.id, "reason": "not_blocked"})
        elif action == "unblock" and not can_be_active(r):
            # As PATCH status ACTIVE: only a linked device (or an audit device) can be ACTIVE.
            outcome.skipped.append({"id": r.id, "reason": "not_linked"})
        else:
            todo.append(r)
    if not todo:
        db.session.rollback()
        return
    changing = [r.id for r in todo]
    if action == "block":
        # What an unblock with restored sessions would put back: each device's mark before.
        before = revocation.current_marks("device", changing)
        block_mark = tokens.revoke_devices(changing, tokens.BLOCKED)
        # One statement for the chunk (not one per device): PostgreSQL's tally trigger
        # (migration 0022) runs once per statement.
        db.session.execute(
            update(Device)
            .where(Device.id.in_(changing))
            .values(status=DeviceStatus.BLOCKED, block_mark=block_mark,
                    mark_before_block=case(
                        {i: literal(m, String(32)) for i, m in before.items()}, value=Device.id
                    ), updated_at=t_ms,
                    updated_by=actor)
            .execution_options(synchronize_session=False)
        )  # fmt: skip
        event = "device.blocked"
    elif action == "unblock":
        if restore:
            # In the unblock's own transaction: what each block ended lives again.
            for r in todo:
                tokens.restore_device(r.id, r.mark_before_block)
        else:
            tokens.keep_blocked_sessions_dead(changing)
        db.session.execute(
            update(Device)
            .where(Device.id.in_(changing))
            .values(
                status=DeviceStatus.ACTIVE,
                block_mark=None,
                mark_before_block=None,
                updated_at=t_ms,
                updated_by=actor,
            )  # fmt: skip
            .execution_options(synchronize_session=False)
        )
        event = "device.activated"
    else:
        tokens.revoke_devices(changing)
        db.session.execute(
            update(Device)
            .where(Device.id.in_(changing))
            .values(deleted_at=t, link_code_hash=None, updated_at=t_ms, updated_by=actor)
            .execution_options(synchronize_session=False)
        )
        event = "device.deleted"
    db.session.execute(
        insert(AuditEvent.__table__),  # type: ignore[arg-type]
        [{"id": new_id("aud"), "tenant_id": tenant_id, "type": event, "device_id": r.id,
          "actor": actor, "data": _event_data(action, r.status, restore), "created_at": t}
         for r in todo],
    )  # fmt: skip
    db.session.commit()
    outcome.changed += len(todo)
    if action == "unblock" and restore:
        for r in todo:
            if r.block_mark is not None:
                # Redis last, and only where the mark is still the block's (devices.update_device).
                revocation.restore_in_store("device", r.id, r.block_mark, r.mark_before_block)


def _event_data(action: str, previous: str, restore: bool) -> dict[str, Any]:
    # As the single-device operations record them (devices._change_status, delete_device).
    data: dict[str, Any] = {"bulk": True}
    if restore:
        data["restored_sessions"] = True
    if action != "delete":
        data["previous"] = previous
    return data


# -- export --------------------------------------------------------------------------------------


def walk(tenant_id: str, query: DeviceQuery, rendered: Any, page: int = 1000) -> Iterator[Any]:
    """Every device ``query`` selects, in its sort, page by page (each page its own short read
    outside the session, so an export of a million devices holds no transaction open). Which
    index leads is chosen once, for every page."""
    chosen = filter_params(tenant_id, query)
    after = None
    while True:
        found = search_devices(tenant_id, query, after, page, rendered, chosen)
        yield from found.items
        after = found.after()
        if not found.has_more or after is None:
            return
