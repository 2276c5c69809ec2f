"""People of a tenant, looked up for sign-in and for tokens about them."""

from __future__ import annotations

import hmac
from typing import Any

from sqlalchemy import String, cast, func, literal_column, or_, select
from sqlalchemy import delete as sql_delete
from sqlalchemy.exc import IntegrityError

from authserver import (
    audit,
    authorization,
    credentials,
    customer_devices,
    limits,
    tokens,
    totp,
    trigram,
)
from authserver.models import AuthStrategy, Location, Tenant, User, db
from authserver.paging import After, Page, containing, escape_like, keyset_page
from authserver.problems import ConflictProblem, NotFoundProblem, ValidationProblem
from authserver.security import hash_password, new_id, now


def get(user_id: str) -> User | None:
    return db.session.get(User, user_id)


def get_active(user_id: str) -> User | None:
    """The user, if they and their tenant are active."""
    user = db.session.get(User, user_id)
    if user is None or not user.active:
        return None
    tenant = db.session.get(Tenant, user.tenant_id)
    return user if tenant is not None and tenant.active else None


def _in_active_tenant(tenant_id: str) -> Any:
    return (
        select(User)
        .join(Tenant, Tenant.id == User.tenant_id)
        .where(User.tenant_id == tenant_id, Tenant.active.is_(True))
    )


def find_by_login(tenant_id: str, login: str) -> User | None:
    """A user of an active tenant by login (a disabled tenant's users cannot sign in)."""
    return db.session.scalar(_in_active_tenant(tenant_id).where(User.login == login))


def find_by_staff_code(tenant_id: str, staff_code: str) -> User | None:
    """The staff code: the short code staff type on a terminal, unique per tenant."""
    hashed = credentials.staff_code_hash(tenant_id, staff_code)
    return db.session.scalar(_in_active_tenant(tenant_id).where(User.staff_code_hash == hashed))


def lookup_tenant(ref: str) -> Tenant | None:
    """A tenant by id or by name, as a person types it."""
    return db.session.scalar(select(Tenant).where(or_(Tenant.id == ref, Tenant.name == ref)))


def get_tenant(tenant_id: str) -> Tenant | None:
    return db.session.get(Tenant, tenant_id)


def tenant_name(tenant_id: str) -> str | None:
    tenant = get_tenant(tenant_id)
    return tenant.name if tenant is not None else None


# -- managing people (the API; seed 002) -----------------------------------------------------------

# The profile fields a body may carry, by their JSON names, and the columns they fill.
PROFILE = {
    "firstName": "first_name",
    "lastName": "last_name",
    "phone": "phone",
    "pushId": "push_id",
    "consents": "consents",
    "properties": "properties",
    "trusted": "trusted",
}
_CLEARED: dict[str, Any] = {
    "first_name": None, "last_name": None, "phone": None, "push_id": None, "consents": [],
    "properties": {}, "trusted": False,
}  # fmt: skip


def get_in_tenant(tenant_id: str, user_id: str) -> User:
    """A user of the tenant, or 404 (another tenant's user does not exist here)."""
    user = db.session.get(User, user_id)
    if user is None or user.tenant_id != tenant_id:
        raise NotFoundProblem("No such user.")
    return user


def _check_locations(tenant_id: str, roles: list[str]) -> None:
    wanted = {r.split("@", 1)[1] for r in roles if "@" in r}
    if not wanted:
        return
    found = set(
        db.session.scalars(
            select(Location.id).where(Location.tenant_id == tenant_id, Location.id.in_(wanted))
        )
    )
    missing = sorted(wanted - found)
    if missing:
        raise ValidationProblem(f"No such location: {', '.join(missing)}.", field="roles")


def _apply(user: User, data: dict[str, Any], actor: authorization.Actor) -> list[str]:
    """Set the fields of ``data`` (parsed by a registry schema) on ``user``; the names changed."""
    changed = []
    for name, column in PROFILE.items():
        if name in data:
            setattr(user, column, data[name])
            changed.append(name)
    if "login" in data:
        user.login = data["login"]
        changed.append("login")
    if "password" in data:
        user.password_hash = hash_password(data["password"])
        changed.append("password")
    if "staffCode" in data:
        code = data["staffCode"]
        user.staff_code_hash = credentials.staff_code_hash(user.tenant_id, code) if code else None
        changed.append("staffCode")
    if "roles" in data:
        before, after = set(user.roles or []), set(data["roles"])
        authorization.check_assign(actor, before ^ after)  # what is given and what is taken
        _check_locations(user.tenant_id, sorted(after))
        user.roles = sorted(after)
        changed.append("roles")
    if "kind" in data and data["kind"] != user.kind:
        user.kind = data["kind"]
        changed.append("kind")
    if not authorization.kind_fits(user):
        raise ValidationProblem(
            "A customer holds no roles and no staff code: make them staff first, or send "
            "kind staff.", field="kind",
        )  # fmt: skip
    if "active" in data and data["active"] != user.active:
        user.active = data["active"]
        changed.append("active")
    return changed


def _commit_unique() -> None:
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise ConflictProblem("The login or staff code is taken in this tenant.") from exc


def ends_tokens(changed: list[str], roles_taken: bool) -> bool:
    """A new password ends the sessions the old one opened (RFC 9700 §4.14: refresh tokens of a
    compromised account must not outlive its credential change); a role taken away ends the
    sign-ins it allowed (a staff member's on a terminal of that store); a new kind ends the
    tokens the old one got (a staff app's scopes for a new customer). For the API and the CLI."""
    return roles_taken or "password" in changed or "kind" in changed


def _after_update(
    user: User, changed: list[str], roles_taken: bool, actor_id: str, revoke: bool = True
) -> None:
    """Revocations and audit events of a change to an existing user, in its transaction
    (without ``revoke`` a deactivation leaves its revocation to the caller: a bulk change
    revokes a whole chunk's tokens at once, ``tokens.revoke_users``)."""
    if "active" in changed:
        if not user.active and revoke:
            tokens.revoke_subject(user_id=user.id)  # deactivated: every token ends at once
        audit.record("user.enabled" if user.active else "user.disabled", user.tenant_id,
                     actor_id, user_id=user.id)  # fmt: skip
    if ends_tokens(changed, roles_taken):
        tokens.revoke_subject(user_id=user.id)
    rest = [c for c in changed if c != "active"]
    if rest:
        audit.record("user.updated", user.tenant_id, actor_id, user_id=user.id, changed=rest)


def create(
    tenant_id: str,
    data: dict[str, Any],
    actor: authorization.Actor,
    actor_id: str,
    user_id: str | None,
) -> User:
    """A new user from a parsed ``UserCreate`` / ``UserReplace`` body."""
    if user_id is not None and db.session.get(User, user_id) is not None:
        raise ConflictProblem("A user with this id exists.")
    user = stage_new(tenant_id, data, actor, actor_id, user_id)
    _commit_unique()
    return user


def stage_new(
    tenant_id: str,
    data: dict[str, Any],
    actor: authorization.Actor,
    actor_id: str,
    user_id: str | None,
) -> User:
    """A new user in the session, checked as ``create`` checks it (roles the actor may give,
    their locations, the kind), and its audit event; the caller commits (a taken login, staff
    code or id shows there). Expunged again when a check fails."""
    t = now()
    user = User(
        id=user_id or new_id("usr"), tenant_id=tenant_id, login=data["login"], password_hash="",
        roles=[], active=True, created_at=t, updated_at=t, kind=authorization.STAFF_KIND,
        **_CLEARED,
    )  # fmt: skip
    db.session.add(user)
    try:
        with db.session.no_autoflush:  # a taken login shows at the commit, as a 409
            _apply(user, data, actor)
            audit.record("user.created", tenant_id, actor_id, user_id=user.id, login=user.login)
    except Exception:
        db.session.expunge(user)
        raise
    return user


def update(user: User, data: dict[str, Any], actor: authorization.Actor, actor_id: str) -> User:
    """Change ``user`` by a parsed ``UserUpdate`` body, as ``actor``."""
    authorization.check_manage(actor, user)
    return _update(user, data, actor, actor_id)


def update_self(user: User, data: dict[str, Any]) -> User:
    """A person changes their own profile (a parsed ``SelfUpdate`` body: no roles, login,
    password or status in it, so no right is needed beyond being them)."""
    assert not {"roles", "login", "password", "active", "trusted", "staffCode", "kind"} & set(data)
    return _update(user, data, None, user.id)


def _update(user: User, data: dict[str, Any], actor: authorization.Actor, actor_id: str) -> User:
    roles_before = set(user.roles or [])
    with db.session.no_autoflush:  # a taken login shows at the commit, as a 409
        changed = _apply(user, data, actor)
        user.updated_at = now()
        _after_update(user, changed, bool(roles_before - set(user.roles or [])), actor_id)
    _commit_unique()
    return user


def replace(user: User, data: dict[str, Any], actor: authorization.Actor, actor_id: str) -> User:
    """Replace every profile field of ``user`` (``PUT``): those not sent are cleared; roles and
    active likewise (none, and active); the password and staff code stay unless sent."""
    full = {name: data.get(name, None) for name in PROFILE}
    full["consents"] = data.get("consents", [])
    full["properties"] = data.get("properties", {})
    full["trusted"] = data.get("trusted", False)
    full["roles"] = data.get("roles", [])
    full["active"] = data.get("active", True)
    for name in ("login", "password", "staffCode", "kind"):
        if name in data:
            full[name] = data[name]
    return update(user, full, actor, actor_id)


def delete(user: User, actor: authorization.Actor, actor_id: str) -> None:
    """Delete a user: every token issued to or for them is revoked in the same transaction,
    their roles go with the row; an audit event remains."""
    stage_delete(user, actor, actor_id)
    db.session.commit()


def set_active(
    user: User, active: bool, actor: authorization.Actor, actor_id: str, revoke: bool = True
) -> None:
    """Enable or disable ``user`` as ``PATCH active`` does (disabling revokes every token of
    theirs; without ``revoke`` the caller does, ``tokens.revoke_users``, before it commits), in
    the caller's transaction."""
    authorization.check_manage(actor, user)
    if user.active != active:
        user.active = active
        user.updated_at = now()
        _after_update(user, ["active"], False, actor_id, revoke)


def stage_delete(
    user: User, actor: authorization.Actor, actor_id: str, revoke: bool = True
) -> None:
    """``delete`` in the caller's transaction (without ``revoke`` the caller revokes the
    user's tokens, ``tokens.revoke_users``, before it commits)."""
    if not (isinstance(actor, User) and actor.id == user.id):  # deleting oneself needs no role
        authorization.check_manage(actor, user)
    if revoke:
        tokens.revoke_subject(user_id=user.id)
    audit.record("user.deleted", user.tenant_id, actor_id, user_id=user.id, login=user.login)
    db.session.execute(sql_delete(AuthStrategy).where(AuthStrategy.user_id == user.id))
    customer_devices.forget_user(user.id)
    db.session.delete(user)


USER_FILTERS = ("login", "name", "role", "locationId", "active", "kind")


def list_users(tenant_id: str, filters: dict[str, str], after: After, limit: int) -> Page[User]:
    """A page of the tenant's users by login (``filtered_users``)."""
    query = filtered_users(select(User), tenant_id, filters)
    return keyset_page(query, User.login, User.id, after, limit, lambda u: u.login)


def holds_role(role: str) -> Any:
    """Whether a user holds ``role``, tenant-wide or at any location (a clause)."""
    roles_text = cast(User.roles, String)
    role = escape_like(role)
    return or_(roles_text.like(f'%"{role}"%', "\\"), roles_text.like(f'%"{role}@%', "\\"))


# SQLite's trigram index of login, first and last name (migration 0025): a search whose
# candidates across the database are at most this many reads them through the index; a broader
# one walks the tenant's people in login order, where matches that dense fill a page soon.
SEARCH_CANDIDATES = 10_000
_CANDIDATES: Any = trigram.candidates("user_search_keys", "user_id")


def _search_keys(filters: dict[str, str]) -> str | None:
    """The keys (a JSON array) of the people whose login holds ``login`` and whose first or
    last name holds ``name`` (the filters given, of 3 characters or more: a trigram's length)
    when SQLite's index can narrow the search to at most ``SEARCH_CANDIDATES``; else None."""
    terms = [
        trigram.phrase(filters[name].lower(), columns)
        for name, columns in (("login", "login"), ("name", "{first_name last_name}"))
        if len(filters.get(name, "")) >= 3
    ]
    if not terms:
        return None

    def first(stmt: Any, values: dict[str, Any]) -> Any:
        # In the session, flushed first (a text statement does not autoflush): a change by
        # filter sees its own transaction's people.
        db.session.flush()
        return db.session.execute(stmt, values).first()

    return trigram.candidate_keys("user_search", " AND ".join(terms), SEARCH_CANDIDATES, first)


def filtered_users(query: Any, tenant_id: str, filters: dict[str, str]) -> Any:
    """``query`` limited to the tenant's users ``filters`` select: ``login`` and ``name`` match
    a part (case-insensitively), ``role`` a role held tenant-wide or anywhere, ``locationId`` any
    role at that location, ``active`` true or false, ``kind`` staff or customer.

    A ``login`` or ``name`` search reads trigram indexes: PostgreSQL's serve the ``LIKE`` below
    (its planner chooses); on SQLite the candidates found in ``user_search`` are looked up by
    id (the tenant's column written ``+tenant_id`` so that SQLite cannot walk the tenant's
    index instead), and the ``LIKE`` still decides which match."""
    keys = _search_keys(filters)
    if keys is not None:
        query = query.where(
            literal_column("+users.tenant_id") == tenant_id,
            User.id.in_(_CANDIDATES.params(search_keys=keys)),
        )
    else:
        query = query.where(User.tenant_id == tenant_id)
    if "login" in filters:
        query = query.where(func.lower(User.login).like(containing(filters["login"].lower()), "\\"))
    if "name" in filters:
        part = containing(filters["name"].lower())
        query = query.where(
            or_(
                func.lower(User.first_name).like(part, "\\"),
                func.lower(User.last_name).like(part, "\\"),
            )
        )
    roles_text = cast(User.roles, String)
    if "role" in filters:
        query = query.where(holds_role(filters["role"]))
    if "locationId" in filters:
        loc = escape_like(filters["locationId"])
        query = query.where(roles_text.like(f'%@{loc}"%', "\\"))
    if "active" in filters:
        query = query.where(User.active.is_(filters["active"] == "true"))
    if "kind" in filters:
        query = query.where(User.kind == filters["kind"])
    return query


def grant_by_logins(
    tenant_id: str, role: str, location_id: str | None, logins: list[str],
    actor: authorization.Actor, actor_id: str,
) -> tuple[list[str], list[str]]:  # fmt: skip
    """Give ``role`` (at ``location_id``) to the tenant's users with these logins; the ids of
    those who have it now, and the logins found nowhere."""
    stored = f"{role}@{location_id}" if location_id else role
    if not authorization.is_known_role(stored):
        raise ValidationProblem("Unknown role or location.", field="locationId")
    authorization.check_assign(actor, [stored])
    _check_locations(tenant_id, [stored])
    found = list(
        db.session.scalars(select(User).where(User.tenant_id == tenant_id, User.login.in_(logins)))
    )
    for user in found:
        if stored not in (user.roles or []):
            user.roles = sorted({*(user.roles or []), stored})
            user.updated_at = now()
    by_login = {u.login for u in found}
    granted = sorted(u.id for u in found)
    audit.record("role.granted", tenant_id, actor_id, role=stored, user_ids=granted)
    db.session.commit()
    return granted, [login for login in logins if login not in by_login]


def revoke_globally(
    tenant_id: str, roles: list[str], actor: authorization.Actor, actor_id: str
) -> int:
    """Take ``roles`` (tenant-wide and at every location) from every user of the tenant but the
    actor; the number of users changed. Never SU."""
    if authorization.SU in roles:
        raise ValidationProblem("SU is never revoked this way.", field="roles")
    authorization.check_assign(actor, roles)
    changed = 0
    for user in db.session.scalars(select(User).where(User.tenant_id == tenant_id)):
        if isinstance(actor, User) and user.id == actor.id:
            continue  # never locks the caller out of their own roles
        kept = [r for r in (user.roles or []) if authorization.role_name(r) not in roles]
        if kept != list(user.roles or []):
            user.roles = kept
            user.updated_at = now()
            tokens.revoke_subject(user_id=user.id)  # what the roles allowed ends now
            changed += 1
    audit.record("role.revoked", tenant_id, actor_id, roles=roles, users=changed)
    db.session.commit()
    return changed


def change_consents(user: User, add: list[str], remove: list[str]) -> User:
    both = sorted(set(add) & set(remove))
    if both:
        raise ValidationProblem(f"Both set and unset: {', '.join(both)}.", field="set")
    consents = set(user.consents or []) | set(add)
    if len(consents) > 16:
        raise ValidationProblem("At most 16 consents.", field="set")
    user.consents = sorted(consents - set(remove))
    user.updated_at = now()
    db.session.commit()
    return user


# -- external identities (seed 002 auth strategies) -------------------------------------------------


MAX_STRATEGIES = 16


def upsert_strategy(user: User, data: dict[str, Any], actor: authorization.Actor,
                    actor_id: str) -> tuple[AuthStrategy, bool]:  # fmt: skip
    """Link (or update the link of) ``data["strategy"]``/``data["id"]`` to ``user``; True when
    created. An external identity belongs to one user of the tenant: linked to another, 409."""
    authorization.check_manage(actor, user)
    key = (user.tenant_id, data["strategy"], data["id"])
    link = db.session.get(AuthStrategy, key)
    created = link is None
    t = now()
    if link is None:
        if len(strategies_of(user)) >= MAX_STRATEGIES:
            raise ValidationProblem(
                f"A user has at most {MAX_STRATEGIES} external identities.", field="strategy"
            )
        link = AuthStrategy(tenant_id=key[0], strategy=key[1], external_id=key[2],
                            user_id=user.id, active=True, created_at=t)  # fmt: skip
        db.session.add(link)
    elif link.user_id != user.id:
        raise ConflictProblem("This external identity is linked to another user.")
    if "active" in data:
        link.active = data["active"]
    if "password" in data:
        link.password_hash = hash_password(data["password"]) if data["password"] else None
    link.updated_at = t
    audit.record("user.updated", user.tenant_id, actor_id, user_id=user.id,
                 changed=[f"authStrategy:{key[1]}"])  # fmt: skip
    db.session.commit()
    return link, created


def strategies_of(user: User) -> list[AuthStrategy]:
    return list(
        db.session.scalars(
            select(AuthStrategy)
            .where(AuthStrategy.user_id == user.id)
            .order_by(AuthStrategy.strategy, AuthStrategy.external_id)
        )
    )


def delete_strategy(user: User, strategy: str, external_id: str, actor: authorization.Actor,
                    actor_id: str) -> None:  # fmt: skip
    authorization.check_manage(actor, user)
    link = db.session.get(AuthStrategy, (user.tenant_id, strategy, external_id))
    if link is None or link.user_id != user.id:
        raise NotFoundProblem("This user has no such external identity.")
    db.session.delete(link)
    audit.record("user.updated", user.tenant_id, actor_id, user_id=user.id,
                 changed=[f"authStrategy:{strategy}"])  # fmt: skip
    db.session.commit()


def find_by_strategy(tenant_id: str, strategy: str, external_id: str,
                     email: str | None) -> User:  # fmt: skip
    """The user an active external identity is linked to. ``email``, when given, must be that
    user's login as well (it narrows; it never finds a user on its own: an unverified address
    must not link accounts)."""
    link = db.session.get(AuthStrategy, (tenant_id, strategy, external_id))
    user = db.session.get(User, link.user_id) if link is not None and link.active else None
    if user is None or (email and user.login.lower() != email.lower()):
        raise NotFoundProblem("No user with this external identity.")
    return user


# -- the second factor ------------------------------------------------------------------------------


def enable_totp(user: User, code: str, secret: str | None) -> User:
    """Turn on the pending secret once ``code`` proves it (``secret``, when sent, must be it)."""
    pending = totp.pending_secret(user)
    if pending is None:
        raise ConflictProblem("Generate a secret first (it is kept for ten minutes).")
    if secret is not None and not hmac.compare_digest(secret.upper(), pending):
        raise ValidationProblem("This is not the secret just generated.", field="secret")
    try:
        totp.check_code(user, code, now(), secret=pending)
    except (totp.TotpWrong, limits.Throttled) as exc:
        raise totp.problem_for(exc) from exc
    user.totp_secret_enc = totp.encrypt(user, pending)
    user.totp_enabled_at = now()
    user.updated_at = now()
    audit.record("user.totp_enabled", user.tenant_id, user.id, user_id=user.id)
    db.session.commit()
    totp.forget_pending(user)
    return user


def remove_totp(user: User, code: str | None, actor: authorization.Actor, actor_id: str) -> User:
    """Turn the second factor off: by the person with a current code (``code``), or by someone
    who may manage them (``code`` None)."""
    if code is not None:
        if not totp.enabled(user):
            raise ConflictProblem("No second factor is configured.")
        try:
            totp.check_code(user, code, now())
        except (totp.TotpWrong, limits.Throttled) as exc:
            raise totp.problem_for(exc) from exc
    else:
        authorization.check_manage(actor, user)
    user.totp_secret_enc = None
    user.totp_enabled_at = None
    user.updated_at = now()
    audit.record("user.totp_removed", user.tenant_id, actor_id, user_id=user.id)
    db.session.commit()
    return user
