"""Many people at once (issue 16): create up to 10,000 users in one request, disable, enable or
delete many by ids or by filter, and walk the filtered list for an export.

The rules are those of one user (``authserver.users``): the roles a caller may give, the users
a caller may manage (no escalation through someone else's account), the kind, the audit events,
and the tokens a disabled or deleted user loses in the same transaction. Creating is all or
nothing with a report of every failing row. A password costs an argon2 hash (tens of
milliseconds of CPU by design), so a request carries at most ``MAX_PASSWORDS`` of them; people
without one sign in by their staff code or an auth strategy, or set one later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import bindparam, inspect, select

from authserver import authorization, bulk, credentials, tokens, users
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
    reported,
)
from authserver.models import User, db
from authserver.problems import ForbiddenProblem, Problem, ValidationProblem

MAX_ROWS = 10_000
MAX_PASSWORDS = 100
CHUNK = 500
ACTIONS = ("disable", "enable", "delete")


class BulkForbidden(ForbiddenProblem):
    """A bulk change naming users the caller may not manage: nothing changed."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(
            f"{len(errors)} user(s) hold roles you may not manage; nothing changed.",
            **reported(errors),
        )


def create_users(
    tenant_id: str,
    actor: authorization.Actor,
    actor_id: str,
    rows: list[dict[str, Any] | None],
    lines: list[int] | None = None,
    errors: list[RowError] | None = None,
) -> list[User]:
    """Create every row's user (each a parsed ``UserCreate``; None for a row that did not
    parse, its error among ``errors``), or none: ``BulkRejected`` names every failing row."""
    check_count(len(rows), MAX_ROWS)
    passwords = sum(1 for r in rows if r is not None and "password" in r)
    if passwords > MAX_PASSWORDS:
        raise ValidationProblem(
            f"At most {MAX_PASSWORDS} rows with a password per request (each is an argon2 "
            f"hash); this has {passwords}. Send the others in more requests, or without one."
        )
    report = RowReport(lines, errors)
    # Logins, staff codes and ids: each once in the batch and not taken already.
    for member, what, taken in (
        ("login", "login", existing(User.login, _values(rows, "login"),
                                    User.tenant_id == tenant_id)),
        ("staffCode", "staff code", _taken_staff_codes(tenant_id, rows)),
        ("id", "id", existing(User.id, _values(rows, "id"))),
    ):  # fmt: skip
        report.once_and_free(rows, member, taken, f"This {what} is also in row {{row}}.",
                             f"The {what} is taken.")  # fmt: skip
    made: list[User] = []
    failed = report.failed()
    for i, row in enumerate(rows):
        if row is None or i in failed:
            continue
        try:
            made.append(users.stage_new(tenant_id, row, actor, actor_id, row.get("id")))
        except Problem as exc:
            field = exc.extra.get("field")
            report.fail(i, exc.detail, field if isinstance(field, str) else None)
    report.raise_if_any("{n} error(s) in the rows; nothing was created.")
    with creating("A login, staff code or id was taken meanwhile; nothing was created. Send "
                  "the request again to see which."):  # fmt: skip
        db.session.flush()
    return made


def _values(rows: list[dict[str, Any] | None], member: str) -> list[str]:
    return sorted({r[member] for r in rows if r is not None and r.get(member) is not None})


def _taken_staff_codes(tenant_id: str, rows: list[dict[str, Any] | None]) -> set[str]:
    codes = {credentials.staff_code_hash(tenant_id, c): c for c in _values(rows, "staffCode")}
    return {codes[h] for h in existing(User.staff_code_hash, codes, User.tenant_id == tenant_id)}


# -- changing many -------------------------------------------------------------------------------

# Which users an action can change: the filter form selects only these (a client following
# hasMore must come to an end).
_ACTIONABLE = {"disable": User.active.is_(True), "enable": User.active.is_(False), "delete": None}


def change_by_ids(
    tenant_id: str, actor: authorization.Actor, actor_id: str, action: str, ids: list[str]
) -> Outcome:
    """``action`` on each of ``ids``: every one a user of the tenant whom the caller may manage,
    or nothing changes (``BulkRejected`` for unknown ids, ``BulkForbidden`` for the others)."""
    assert action in ACTIONS, action
    position = {user_id: i for i, user_id in enumerate(ids)}
    refused: list[RowError] = []

    def live(chunk: list[str]) -> set[str]:
        found = set()
        for user in db.session.scalars(select(User).where(
                User.tenant_id == tenant_id, User.id.in_(chunk))):  # fmt: skip
            found.add(user.id)
            if not _may(actor, user, action):
                refused.append(RowError(position[user.id], "You may not manage this user."))
        return found

    def admit() -> None:
        if refused:
            raise BulkForbidden(sorted(refused, key=lambda e: e.index))

    def apply(chunk: list[str], outcome: Outcome) -> None:
        _apply(tenant_id, actor, actor_id, action, chunk, outcome)

    return by_ids(ids, live, apply, limit=MAX_ROWS, chunk=CHUNK, missing="No such user.",
                  admit=admit)  # fmt: skip


def change_by_filter(
    tenant_id: str,
    actor: authorization.Actor,
    actor_id: str,
    action: str,
    filters: dict[str, str],
    after: str | None = None,
) -> Outcome:
    """``action`` on the users ``filters`` select that it can change, up to ``MAX_ROWS`` per
    request (``has_more``: the same request again goes on). Users holding a role the caller may
    not manage are not selected (so a client following hasMore comes to an end); one who got
    such a role meanwhile is skipped (``not_permitted``). The caller is never selected: a
    filter must not disable or delete the account it acts with (and with it, perhaps, the
    tenant's last administrator); that takes naming oneself by id."""
    assert action in ACTIONS, action
    stmt = users.filtered_users(select(User.id), tenant_id, filters)
    actionable = _ACTIONABLE[action]
    if actionable is not None:
        stmt = stmt.where(actionable)
    for role in sorted(set(authorization.ROLES) - authorization.assignable(actor)):
        stmt = stmt.where(~users.holds_role(role))
    if isinstance(actor, User):
        stmt = stmt.where(User.id != _id_of(actor))
    stmt = stmt.where(User.id > bindparam("after")).order_by(User.id).limit(bindparam("n"))

    def next_ids(after: str, n: int) -> list[str]:
        return list(db.session.scalars(stmt, {"after": after, "n": n}))

    def apply(chunk: list[str], outcome: Outcome) -> None:
        _apply(tenant_id, actor, actor_id, action, chunk, outcome)

    return by_filter(next_ids, apply, limit=MAX_ROWS, chunk=CHUNK, after=after)


def _may(actor: authorization.Actor, user: User, action: str) -> bool:
    if action == "delete" and isinstance(actor, User) and actor.id == user.id:
        return True  # as deleting oneself one by one
    try:
        authorization.check_manage(actor, user)
    except Problem:
        return False
    return True


def _apply(
    tenant_id: str,
    actor: authorization.Actor,
    actor_id: str,
    action: str,
    ids: list[str],
    outcome: Outcome,
) -> None:
    """One transaction: ``action`` on the users ``ids`` as they are now, each as the single
    operation does it (its audit event, its tokens revoked with the change), with the caller's
    rights as they are now: a caller disabled or deleted since the request began (by an earlier
    chunk, or by someone else) stops it here, a 403 with what was done before."""
    stmt = locked(
        select(User).where(User.tenant_id == tenant_id, User.id.in_(ids)).order_by(User.id),
        "users",
    )
    if isinstance(actor, User):
        actor = db.session.get(User, _id_of(actor), populate_existing=True)
        if actor is None or not actor.active:
            db.session.rollback()
            raise ForbiddenProblem(
                "Your account was disabled or deleted during this request; it stopped there.",
                outcome=outcome.as_dict(),
            )
    found = list(db.session.scalars(stmt))
    if isinstance(actor, User):
        found.sort(key=lambda u: u.id == actor.id)  # the caller's own change last
    gone = set(ids) - {u.id for u in found}
    outcome.skipped += [{"id": i, "reason": "deleted"} for i in ids if i in gone]
    changed = 0
    ended = []  # the people whose tokens end with this transaction: revoked at once, below
    for user in found:
        if not _may(actor, user, action):
            outcome.skipped.append({"id": user.id, "reason": "not_permitted"})
        elif action == "delete":
            users.stage_delete(user, actor, actor_id, revoke=False)
            ended.append(user.id)
            changed += 1
        elif user.active == (action == "enable"):
            reason = "already_active" if user.active else "already_disabled"
            outcome.skipped.append({"id": user.id, "reason": reason})
        else:
            users.set_active(user, action == "enable", actor, actor_id, revoke=False)
            if action == "disable":
                ended.append(user.id)
            changed += 1
    tokens.revoke_users(ended)
    db.session.commit()
    outcome.changed += changed


def _id_of(user: User) -> str:
    """A user's id without loading the row again (it may be gone since)."""
    identity = inspect(user).identity
    assert identity is not None
    return str(identity[0])


def walk(tenant_id: str, filters: dict[str, str], render: Callable[[User], str]) -> Iterator[str]:
    """Every user ``filters`` select, by login, each as ``render`` makes it, page by page."""
    query = users.filtered_users(select(User), tenant_id, filters)
    return bulk.walk(query, User.login, User.id, render)
