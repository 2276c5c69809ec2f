"""What every bulk operation of the registry shares (issue 16): the report of failing rows, the
outcome of a change, and the two ways a change names its items (ids, or a filter), run in
transactions of bounded size.

A change by ids checks every id first: one that is not an item of the tenant fails the request
before anything changes. A change by filter selects, chunk by chunk in id order, the items the
action can change, up to a number per request; ``has_more`` then tells the client to send the
same request again (with ``after``, the outcome's ``last_id``, to go on from there; an action
that leaves its items selected, such as a module's logout, needs it). Each chunk is one transaction that reads its items again under a lock, so
an item changed meanwhile is judged as it is now; a failure (the store unreachable) leaves the
chunks before it done and its own undone, and the same request again finishes the job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

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


class BulkRejected(ValidationProblem):
    """A bulk request with rows (or ids) that fail: nothing was changed; ``errors`` says which
    and why (the first ``MAX_REPORTED_ERRORS``; ``errorCount`` all of them)."""

    def __init__(self, detail: str, errors: list[RowError]) -> None:
        shown = [e.as_dict() for e in errors[:MAX_REPORTED_ERRORS]]
        super().__init__(detail, errors=shown, errorCount=len(errors))


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
) -> Outcome:
    """``apply`` to ``ids`` (distinct) chunk by chunk, once ``live`` (given a chunk of ids, those
    that are items of the tenant) knows every one of them; else ``BulkRejected`` naming each
    unknown id (``missing`` says what it is not) and nothing changes."""
    check_count(len(ids), limit, "ids")
    position = {item_id: i for i, item_id in enumerate(ids)}
    found: set[str] = set()
    for start in range(0, len(ids), chunk):
        found |= live(ids[start : start + chunk])
    db.session.rollback()  # end the read: each chunk's transaction reads again
    unknown = [RowError(position[i], missing) for i in ids if i not in found]
    if unknown:
        raise BulkRejected(f"{len(unknown)} id(s) are unknown; nothing changed.", unknown)
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


def commit_created(taken: str) -> None:
    """Commit a bulk creation, all of it or (a unique value taken by a concurrent request since
    the rows were checked: ``taken`` says which kind) none of it, as a 409."""
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise ConflictProblem(
            f"{taken} was taken meanwhile; nothing was created. Send the request again to see "
            "which."
        ) from exc


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
