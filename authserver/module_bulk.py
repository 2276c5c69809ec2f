"""Many modules at once (issue 16): create up to 10,000 in one request (all or nothing, every
failing row reported), log out or delete many by ids or by filter, and walk the filtered list for
an export. Each is what the single operation does (``authserver.modules``): an audit event per
module, and every token of a module's enrolment revoked in the same transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import bindparam, select

from authserver import bulk, modules
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
from authserver.models import Location, Module, User, db
from authserver.problems import ValidationProblem

MAX_ROWS = 10_000
CHUNK = 500
ACTIONS = ("logout", "delete")


def create_modules(
    tenant_id: str,
    actor_id: str,
    rows: list[dict[str, Any] | None],
    errors: list[RowError] | None = None,
    lines: list[int] | None = None,
) -> list[Module]:
    """Create every row's module (each a parsed ``ModuleCreate``; None for a row that did not
    parse, its error among ``errors``), or none: ``BulkRejected`` names every failing row
    (with its CSV ``lines``)."""
    check_count(len(rows), MAX_ROWS)
    report = RowReport(lines, errors)
    fail = report.fail
    taken = existing(
        Module.id, (r["id"] for r in rows if r is not None), Module.tenant_id == tenant_id
    )
    users = existing(
        User.id,
        (r["userId"] for r in rows if r is not None and r.get("userId")),
        User.tenant_id == tenant_id,
    )
    locations = existing(
        Location.id, (r["locationId"] for r in rows if r is not None and r.get("locationId")),
        Location.tenant_id == tenant_id,
    )  # fmt: skip
    first: dict[str, int] = {}
    for i, row in enumerate(rows):
        if row is None:
            continue
        try:
            modules.check_id(row["id"])
        except ValidationProblem as exc:
            fail(i, exc.detail, "id")
            continue
        if row["id"] in first:
            fail(i, f"This id is also in row {first[row['id']]}.", "id")
        elif row["id"] in taken:
            fail(i, "A module with this id exists.", "id")
        first.setdefault(row["id"], i)
        if row.get("userId") and row["userId"] not in users:
            fail(i, "No such user in this tenant.", "userId")
        if row.get("locationId") and row["locationId"] not in locations:
            fail(i, "No such location in this tenant.", "locationId")
    report.raise_if_any("{n} error(s) in the rows; nothing was created.")
    with creating("A module id was taken meanwhile; nothing was created. Send the request "
                  "again to see which."):  # fmt: skip
        made = [modules.stage_new(tenant_id, row, actor_id) for row in rows if row is not None]
    return made


def change_by_ids(tenant_id: str, actor_id: str, action: str, ids: list[str]) -> Outcome:
    """``action`` on each of ``ids``: every one a module of the tenant, or nothing changes."""
    assert action in ACTIONS, action

    def live(chunk: list[str]) -> set[str]:
        return existing(Module.id, chunk, Module.tenant_id == tenant_id)

    def apply(chunk: list[str], outcome: Outcome) -> None:
        _apply(tenant_id, actor_id, action, chunk, outcome)

    return by_ids(ids, live, apply, limit=MAX_ROWS, chunk=CHUNK, missing="No such module.")


def change_by_filter(
    tenant_id: str,
    actor_id: str,
    action: str,
    filters: dict[str, Any],
    after: str | None = None,
) -> Outcome:
    """``action`` on the modules ``filters`` select, up to ``MAX_ROWS`` per request
    (``has_more``: send it again). A logout selects in id order after the last one done, so a
    client following hasMore comes to an end; a delete removes what it selected."""
    assert action in ACTIONS, action
    stmt = modules.filtered_modules(select(Module.id), tenant_id, filters)
    stmt = stmt.where(Module.id > bindparam("after")).order_by(Module.id).limit(bindparam("n"))

    def next_ids(after: str, n: int) -> list[str]:
        return list(db.session.scalars(stmt, {"after": after, "n": n}))

    def apply(chunk: list[str], outcome: Outcome) -> None:
        _apply(tenant_id, actor_id, action, chunk, outcome)

    return by_filter(next_ids, apply, limit=MAX_ROWS, chunk=CHUNK, after=after)


def _apply(tenant_id: str, actor_id: str, action: str, ids: list[str], outcome: Outcome) -> None:
    """One transaction: ``action`` on the modules ``ids`` that still exist."""
    stmt = select(Module).where(Module.tenant_id == tenant_id, Module.id.in_(ids))
    found = list(db.session.scalars(locked(stmt.order_by(Module.id), "modules")))
    gone = set(ids) - {m.id for m in found}
    outcome.skipped += [{"id": i, "reason": "deleted"} for i in ids if i in gone]
    for module in found:
        if action == "delete":
            modules.stage_delete(module, actor_id)
        else:
            modules.stage_logout(module, actor_id)
    db.session.commit()
    outcome.changed += len(found)


def walk(tenant_id: str, filters: dict[str, Any], render: Callable[[Module], str]) -> Iterator[str]:
    """Every module ``filters`` select, by id, each as ``render`` makes it, page by page."""
    query = modules.filtered_modules(select(Module), tenant_id, filters)
    return bulk.walk(query, Module.id, Module.id, render)
