"""What every bulk operation of the registry shares (issue 16): the report of failing rows, the
outcome of a change, and the two ways a change names its items (ids, or a filter), run in
transactions of bounded size.

A change by ids checks every id first: one that is not an item of the tenant fails the request
before anything changes. A change by filter selects, chunk by chunk in id order, the items the
action can change, up to a number per request; ``has_more`` then tells the client to send the
same request again (with ``after``, the outcome's ``last_id``, to go on from there; an action
that leaves its items selected, such as a module's logout, needs it). Each chunk is one
transaction that reads its items again under a lock (``locked``), so an item changed meanwhile is
judged as it is now; a failure (the store unreachable) leaves the chunks before it done and its
own undone, and the same request again finishes the job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.exc import IntegrityError

from authserver.models import db
from authserver.paging import keyset_page
from authserver.problems import ConflictProblem, ValidationProblem

MAX_REPORTED_ERRORS = 1_000


@dataclass
class RowError:
    """Why one row (or id) of a bulk request fails: its position (from 0) in the array or among
    a CSV's data rows, the field when one is to blame, and for CSV the file's line."""

    index: int
    detail: str
    field: str | None = None
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"index": self.index, "detail": self.detail}
        if self.field is not None:
            found["field"] = self.field
        if self.line is not None:
            found["line"] = self.line
        return found


def reported(errors: list[RowError]) -> dict[str, Any]:
    """A problem's members for failing rows or ids: ``errors`` (the first
    ``MAX_REPORTED_ERRORS``) and ``errorCount`` (all of them)."""
    return {"errors": [e.as_dict() for e in errors[:MAX_REPORTED_ERRORS]],
            "errorCount": len(errors)}  # fmt: skip


class BulkRejected(ValidationProblem):
    """A bulk request with rows (or ids) that fail: nothing was changed; ``errors`` says which
    and why."""

    def __init__(self, detail: str, errors: list[RowError]) -> None:
        super().__init__(detail, **reported(errors))


class RowReport:
    """The errors of a bulk creation's rows as they are found, each with its CSV line."""

    def __init__(self, lines: list[int] | None, errors: list[RowError] | None = None) -> None:
        self.lines = lines
        self.errors = list(errors or [])

    def fail(self, index: int, detail: str, field: str | None = None) -> None:
        line = self.lines[index] if self.lines else None
        self.errors.append(RowError(index, detail, field, line))

    def failed(self) -> set[int]:
        return {e.index for e in self.errors}

    def once_and_free(
        self, rows: list[dict[str, Any] | None], member: str, taken: set[str], also: str,
        exists: str,
    ) -> None:  # fmt: skip
        """Each value of ``member`` once in the batch (``also``, formatted with the row it is
        also in) and not ``taken`` already (``exists``)."""
        first: dict[str, int] = {}
        for i, row in enumerate(rows):
            value = row.get(member) if row is not None else None
            if value is None:
                continue
            if value in first:
                self.fail(i, also.format(row=first[value]), member)
            elif value in taken:
                self.fail(i, exists, member)
            first.setdefault(value, i)

    def raise_if_any(self, detail: str) -> None:
        """``BulkRejected`` (``detail`` formatted with the count) when a row failed: nothing is
        written, the session's work is undone."""
        if self.errors:
            db.session.rollback()
            self.errors.sort(key=lambda e: e.index)
            raise BulkRejected(detail.format(n=len(self.errors)), self.errors)


def existing(column: Any, values: Iterable[str], *where: Any, chunk: int = 500) -> set[str]:
    """Which of ``values`` ``column`` holds in the rows ``where`` selects (a tenant's), read
    in statements of ``chunk`` values."""
    wanted = sorted(set(values))
    stmt = select(column).where(*where, column.in_(bindparam("values", expanding=True)))
    found: set[str] = set()
    for start in range(0, len(wanted), chunk):
        found.update(db.session.scalars(stmt, {"values": wanted[start : start + chunk]}))
    return found


def locked(stmt: Any, table: str) -> Any:
    """``stmt`` (a chunk's read) to run under a lock until the commit: on SQLite the database's
    write lock, taken now by a write that changes nothing in ``table``; elsewhere the rows'
    (``FOR UPDATE``)."""
    if db.engine.dialect.name == "sqlite":
        db.session.execute(text(f"UPDATE {table} SET id = id WHERE 0"))  # noqa: S608 - a name of ours
        return stmt
    return stmt.with_for_update()


def check_count(count: int, limit: int, what: str = "rows") -> None:
    if count == 0:
        raise ValidationProblem(f"There are no {what}.")
    if count > limit:
        raise ValidationProblem(f"At most {limit} {what} per request; this has {count}.")


@dataclass
class Outcome:
    """What a bulk change did: ``changed`` items, ``skipped`` ones (id and why), and whether
    more items match the filter (``has_more``: send the same request again to go on)."""

    matched: int = 0
    changed: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    has_more: bool = False
    last_id: str | None = None  # by filter: the last id selected (``after`` goes on from it)

    def as_dict(self) -> dict[str, Any]:
        return {"matched": self.matched, "changed": self.changed, "skipped": self.skipped,
                "hasMore": self.has_more, "lastId": self.last_id}  # fmt: skip


# apply(ids, outcome): one transaction that changes what it can of ``ids`` and records it.
Apply = Callable[[list[str], Outcome], None]


def by_ids(
    ids: list[str],
    live: Callable[[list[str]], set[str]],
    apply: Apply,
    *,
    limit: int,
    chunk: int,
    missing: str,
    admit: Callable[[], None] | None = None,
) -> Outcome:
    """``apply`` to ``ids`` (distinct) chunk by chunk, once ``live`` (given a chunk of ids, those
    that are items of the tenant) knows every one of them; else ``BulkRejected`` naming each
    unknown id (``missing`` says what it is not) and nothing changes. ``admit``, called then
    before any change, may refuse the request for what ``live`` saw."""
    check_count(len(ids), limit, "ids")
    position = {item_id: i for i, item_id in enumerate(ids)}
    found: set[str] = set()
    for start in range(0, len(ids), chunk):
        found |= live(ids[start : start + chunk])
    db.session.rollback()  # end the read: each chunk's transaction reads again
    unknown = [RowError(position[i], missing) for i in ids if i not in found]
    if unknown:
        raise BulkRejected(f"{len(unknown)} id(s) are unknown; nothing changed.", unknown)
    if admit is not None:
        admit()
    outcome = Outcome(matched=len(ids))
    for start in range(0, len(ids), chunk):
        apply(ids[start : start + chunk], outcome)
    return outcome


def by_filter(
    next_ids: Callable[[str, int], list[str]],
    apply: Apply,
    *,
    limit: int,
    chunk: int,
    after: str | None = None,
) -> Outcome:
    """``apply`` to what ``next_ids(after, n)`` selects (at most n ids greater than ``after``,
    in id order, of the items the action can change), up to ``limit`` per request, starting
    after ``after`` (a previous request's ``last_id``) when given."""
    outcome = Outcome()
    after = after or ""
    while True:
        budget = limit - outcome.matched
        if budget <= 0:
            outcome.has_more = bool(next_ids(after, 1))
            db.session.rollback()
            return outcome
        ids = next_ids(after, min(chunk, budget))
        db.session.rollback()  # end the read: the chunk's transaction reads again
        if not ids:
            return outcome
        outcome.matched += len(ids)
        apply(ids, outcome)
        after = outcome.last_id = ids[-1]


@contextmanager
def creating(conflict: str) -> Iterator[None]:
    """The writes of a bulk creation, committed all together, or (a unique value taken by a
    concurrent request since the rows were checked) none of them: a 409 saying ``conflict``."""
    try:
        yield
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise ConflictProblem(conflict) from exc


def walk(
    query: Any, key: Any, id_column: Any, render: Callable[[Any], str], page: int = 1000
) -> Iterator[str]:
    """Every row of ``query`` in (``key``, id) order, each as ``render`` makes it, page by page.
    A page is read and rendered, and its transaction ended, before any of it is yielded: a
    client that reads an export slowly holds no transaction open."""
    after = None
    while True:
        found = keyset_page(query, key, id_column, after, page, lambda item: getattr(
            item, key.key))  # fmt: skip
        lines = [render(item) for item in found.items]
        after = found.after()
        more = found.has_more and after is not None
        db.session.rollback()
        yield from lines
        if not more:
            return
