"""RFC 8628 device authorization: the one owner of a transaction's life.

    start -> (lookup by user code, claim) -> decide: approved | denied
          -> polls: pending / slow_down -> redeem (once) -> a second redemption revokes

Every step that reads or writes ``device_authorizations`` is here; the device authorization
endpoint and the polling grant (``grants/device_code.py``), the verification page,
``authserver device approve`` and ``POST /api/v1/device-authorizations/...`` call these steps, so
every path applies the same rules: a code is decided once, only by someone allowed to
(``authserver.authorization``) of the client's tenant, only by whoever claimed it, and redeemed
at most once, also under concurrent polls from several processes (DESIGN invariant 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.exc import IntegrityError

from authserver import audit, authorization, credentials, metrics, modules, revocation, tokens
from authserver.credentials import (
    USER_CODE_LENGTH,
    format_user_code,
    normalise_user_code,
    user_code_hash,
)
from authserver.devices import set_device_locations
from authserver.direct import direct
from authserver.limits import Charges, charge
from authserver.models import (
    AppCode,
    AuthorizationStatus,
    Client,
    Device,
    DeviceAuthorization,
    DeviceOrigin,
    DeviceStatus,
    Location,
    OAuthClient,
    RefreshFamily,
    User,
    db,
)
from authserver.problems import (
    ClientGone,
    CodeClaimed,
    CodeDecided,
    CodeExpired,
    DecisionError,
    DeviceBlocked,
    IdentifierTaken,
    InvalidLocation,
    InvalidModule,
    InvalidName,
    InvalidTill,
    NotAllowed,
    UserRequired,
    ValidationProblem,
    WrongTenant,
)
from authserver.security import new_id, now, now_ms
from authserver.state import get_state
from authserver.text import text_problem
from authserver.tokens import TokenSubject

MAX_DEVICE_NAME = 100
MAX_SYSTEM_INFORMATION = 2000
SLOW_DOWN_STEP = 5  # RFC 8628 §3.5: the interval grows by 5 seconds
POLL_TOLERANCE = 0.5  # seconds of network jitter between a client's timer and our clock


def check_label(error: type[DecisionError], what: str, value: str | None, limit: int) -> None:
    """One rule for the names and till ids people give devices, on every channel (F9, F12)."""
    if value is None:
        return
    if not 1 <= len(value) <= limit:
        raise error(f"{what} is 1-{limit} characters.")
    problem = text_problem(value)
    if problem:
        raise error(f"{what} {problem}.")


@dataclass(frozen=True)
class StartedAuthorization:
    device_code: str
    user_code: str  # formatted XXXXX-XXXXX
    id: str


# Built once (no statement construction per request), on the table: Core, not the ORM.
_TABLE: Any = DeviceAuthorization.__table__
_DELETE_EXPIRED_USER_CODE = _TABLE.delete().where(
    _TABLE.c.user_code_hash == bindparam("b_user_code_hash"),
    _TABLE.c.expires_at <= bindparam("b_now"),
)
_NEW_COLUMNS = (
    "id", "device_code_hash", "user_code_hash", "client_id", "tenant_id", "scope", "device_name",
    "system_information", "dpop_jkt", "interval", "created_at", "expires_at", "status",
    "module_id", "device_identifier",
)  # fmt: skip
_INSERT = _TABLE.insert().values({name: bindparam(f"v_{name}") for name in _NEW_COLUMNS})


def start(
    client: OAuthClient,
    scope: str,
    device_name: str | None,
    system_information: str | None,
    dpop_jkt: str | None,
    module_id: str | None = None,
    device_identifier: str | None = None,
) -> StartedAuthorization:
    """Create a transaction with a fresh device code (256 bits) and a unique user code.

    A user code is unique among the stored codes (a unique index): a live duplicate means
    drawing again, an expired one is deleted and its code reused."""
    settings = get_state().settings
    t = now()
    for _ in range(8):
        device_code, device_code_hash = credentials.new_device_code()
        user_code = credentials.new_user_code()
        ucode_hash = user_code_hash(user_code)
        record_id = new_id("dva")
        row = {
            "v_id": record_id,
            "v_device_code_hash": device_code_hash,
            "v_user_code_hash": ucode_hash,
            "v_client_id": client.client_id,
            "v_tenant_id": client.tenant_id,
            "v_scope": scope,
            "v_device_name": device_name,
            "v_system_information": system_information,
            "v_dpop_jkt": dpop_jkt,
            "v_interval": settings.device_poll_interval,
            "v_created_at": t,
            "v_expires_at": t + settings.device_code_ttl,
            "v_status": str(AuthorizationStatus.PENDING),
            "v_module_id": module_id,
            "v_device_identifier": device_identifier,
        }
        for _attempt in (1, 2):
            try:
                direct().write(_INSERT, row)  # one statement, committed on its own
                return StartedAuthorization(device_code, format_user_code(user_code), record_id)
            except IntegrityError:
                pass
            freed = direct().write(
                _DELETE_EXPIRED_USER_CODE, {"b_user_code_hash": ucode_hash, "b_now": t}
            )
            if freed == 0:
                break  # a live code has this user code: draw another
    raise RuntimeError("could not draw a unique user code")


def find_live(user_code: str) -> DeviceAuthorization | None:
    """The pending, unexpired transaction for a typed user code (normalised), or None."""
    code = normalise_user_code(user_code)
    if len(code) != USER_CODE_LENGTH:
        return None
    record = db.session.scalar(
        select(DeviceAuthorization).where(
            DeviceAuthorization.user_code_hash == user_code_hash(code)
        )
    )
    if record is None or record.expires_at <= now() or record.status != AuthorizationStatus.PENDING:
        return None
    return record


def lookup(
    typed: str, charges: Charges, tenant_id: str | None = None
) -> DeviceAuthorization | None:
    """Compare a typed user code after charging the attempt to ``charges`` (RFC 8628 §5.1).

    Raises ``Throttled`` without comparing when a limit is full. A right code gives its charges
    back; a wrong one keeps them. With ``tenant_id`` (a signed-in user, a back-office client)
    only that tenant's codes match: another tenant's code is as wrong as a made-up one.
    """
    attempt = charge(get_state().store, charges)
    record = find_live(typed)
    if record is None or (tenant_id is not None and record.tenant_id != tenant_id):
        return None
    attempt.succeeded()
    return record


def check_rights(
    user: User,
    client: OAuthClient,
    record: DeviceAuthorization,
    location_id: str | None,
    approve: bool,
) -> None:
    """The one approval rule for every channel (``authserver.authorization``). Denying needs
    the right to approve somewhere, not at a given location."""
    if approve:
        authorization.check_approval(user, client, record.tenant_id, location_id)
    elif client.device_subject != "user" and not authorization.may_enrol_somewhere(user):
        raise NotAllowed("You are not allowed to decide device requests.")


def claim(record: DeviceAuthorization, user: User) -> None:
    """The first signed-in user to open a code claims it; nobody else may then decide it."""
    if user.tenant_id != record.tenant_id:
        raise WrongTenant("This code belongs to another organisation.")
    result = db.session.execute(
        update(DeviceAuthorization)
        .where(
            DeviceAuthorization.id == record.id,
            or_(
                DeviceAuthorization.claimed_by.is_(None), DeviceAuthorization.claimed_by == user.id
            ),
        )
        .values(claimed_by=user.id)
    )
    db.session.commit()
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise CodeClaimed("Another person is already handling this code.")


def decide(
    record: DeviceAuthorization,
    user: User | None,
    approve: bool,
    location_id: str | None = None,
    till_id: str | None = None,
    name: str | None = None,
    auth_time: int | None = None,
    actor_id: str | None = None,
    amr: str | None = None,
    module_id: str | None = None,
) -> DeviceAuthorization:
    """Approve or deny a pending transaction, atomically, as ``user`` of the client's tenant.

    Without a user (a back-office service, ``actor_id`` its client id) only kiosk enrolment can be
    approved: a sign-in token's subject is the approving person, so a person must approve it.
    ``module_id``: the module a kiosk enrols as (the approver's choice, else the one the device
    asked for); the module's earlier enrolment is logged out with the approval.
    """
    client = db.session.get(Client, record.client_id)
    if client is None or not client.active:
        raise ClientGone("The client is no longer registered.")
    if user is not None and (user.tenant_id != record.tenant_id or not user.active):
        raise WrongTenant("This code belongs to another organisation.")
    if user is not None:
        check_rights(user, client, record, location_id if approve else None, approve)
    if user is None and approve and client.device_subject == "user":
        raise UserRequired("A person must approve a sign-in; use a user token.")
    actor = user.id if user is not None else actor_id
    if actor is None:
        raise ValueError("decide needs a user or an actor id")
    if location_id is not None:
        loc = db.session.get(Location, location_id)
        if loc is None or loc.tenant_id != record.tenant_id:
            raise InvalidLocation("No such location.")
    check_label(InvalidTill, "A till id", till_id, 100)
    check_label(InvalidName, "A device name", name, MAX_DEVICE_NAME)
    module_id = module_id or record.module_id
    if module_id is not None and approve:
        if client.device_subject != "device":
            raise InvalidModule("Only a device enrolment can be a module's.")
        try:
            module = modules.enrolment_check(record.tenant_id, module_id)
        except ValidationProblem as exc:
            raise InvalidModule(exc.detail) from exc
        places = authorization.enrolment_locations(user) if user is not None else None
        if places is not None and module.location_id not in places:
            # Enrolling as a module logs its device out and hands over its config: a person
            # who approves at some locations only may do it for a module of theirs only.
            raise NotAllowed("You may not enrol a device as this module.")
    scope = record.scope
    if user is not None and approve and client.device_subject == "user":
        scope = authorization.scope_for(user, record.scope)  # a customer's: no staff scopes
    _void_pending(record)
    t = now()
    result = db.session.execute(
        update(DeviceAuthorization)
        .where(
            DeviceAuthorization.id == record.id,
            DeviceAuthorization.status == AuthorizationStatus.PENDING,
            DeviceAuthorization.expires_at > t,
            or_(DeviceAuthorization.claimed_by.is_(None), DeviceAuthorization.claimed_by == actor),
        )
        .values(
            status=AuthorizationStatus.APPROVED if approve else AuthorizationStatus.DENIED,
            claimed_by=actor,
            user_id=user.id if user is not None else None,
            decided_at=t,
            auth_time=auth_time or t,
            amr=amr if user is not None else None,
            location_id=location_id,
            till_id=till_id,
            device_name=name or record.device_name,
            module_id=module_id if approve else record.module_id,
            scope=scope,
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        db.session.rollback()
        db.session.refresh(record)
        if record.claimed_by and record.claimed_by != actor:
            raise CodeClaimed("Another person is already handling this code.")
        if record.expires_at <= t:
            raise CodeExpired("This code has expired.")
        raise CodeDecided("This code has already been used.")
    db.session.refresh(record)
    if approve and client.device_subject == "device":
        try:
            record.device_id = _enrol_device(record, actor, user, t).id
        except DecisionError:
            db.session.rollback()  # the approval above is undone with it
            raise
        if record.module_id is not None:
            _end_earlier_enrolments(record)
    audit.record(
        "device.approved" if approve else "device.denied",
        record.tenant_id,
        actor,
        record.device_id,
        client_id=record.client_id,
        user_code_id=record.id,
    )
    metrics.DEVICE_FLOW.labels("approved" if approve else "denied").inc()
    db.session.commit()
    return record


def _end_earlier_enrolments(record: DeviceAuthorization) -> None:
    """A module runs on one device at a time (seed 002 "the current token"): approving a device
    as the module ends every earlier enrolment as it, exactly, whatever its age and not by a
    time mark (so the new enrolment's tokens are never caught by one, whatever the clocks of
    the nodes): earlier approvals not redeemed yet are denied, the module's live refresh
    families are revoked (each with its access tokens), and the access token each earlier
    redemption issued is denied (the record keeps its hash for as long as it can live)."""
    t = record.tenant_id
    same_module = (DeviceAuthorization.tenant_id == t) & (
        DeviceAuthorization.module_id == record.module_id
    )
    db.session.execute(
        update(DeviceAuthorization)
        .where(
            same_module,
            DeviceAuthorization.status == AuthorizationStatus.APPROVED,
            DeviceAuthorization.id != record.id,
        )
        .values(status=AuthorizationStatus.DENIED)
    )
    families = db.session.scalars(
        select(RefreshFamily.id).where(
            RefreshFamily.tenant_id == t,
            RefreshFamily.module_id == record.module_id,
            # Live ones, and those only a device block revoked: revoked now for good, so that
            # unblocking that device with its sessions restored never revives the enrolment.
            tokens.REVOCABLE,
        )
    ).all()
    for family_id in families:
        tokens.revoke_family(family_id, "module_reenrolled")
    first_tokens = db.session.scalars(
        select(DeviceAuthorization.access_jti_hash).where(
            same_module,
            DeviceAuthorization.status == AuthorizationStatus.REDEEMED,
            DeviceAuthorization.id != record.id,
            DeviceAuthorization.access_jti_hash.is_not(None),
        )
    ).all()
    for jti_hash in cast(list[str], first_tokens):  # none is NULL: the query leaves those out
        revocation.deny(jti_hash)


def _enrol_device(record: DeviceAuthorization, actor: str, user: User | None, t: int) -> Device:
    """Kiosk enrolment: create or update the registry entry the token's subject will be."""
    device = None
    if record.dpop_jkt:
        # The same physical kiosk (same key) enrolling again updates its entry.
        device = db.session.scalar(
            select(Device).where(
                Device.tenant_id == record.tenant_id,
                Device.dpop_jkt == record.dpop_jkt,
                Device.deleted_at.is_(None),
            )
        )
    if device is not None and device.status == DeviceStatus.BLOCKED:
        # A blocked kiosk cannot unblock itself by enrolling again with the same key.
        raise DeviceBlocked("This device is blocked; an administrator must unblock it.")
    # The identifier a device gives itself is how the registry finds it (exact search): it
    # stays unique among the tenant's live devices by a partial unique index, which refuses a
    # taken one at the flush below (concurrent approvals included).
    wanted = record.device_identifier
    if device is None:
        device = Device(
            id=new_id("dev"),
            tenant_id=record.tenant_id,
            origin=DeviceOrigin.DEVICE_FLOW,
            app_code=AppCode.KIOSK,
            created_at=now_ms(),
            created_by=actor,
            identifier=wanted or credentials.new_device_identifier(),
            dpop_jkt=record.dpop_jkt,
        )
        db.session.add(device)
    elif wanted is not None:
        device.identifier = wanted
    device.name = record.device_name or "Kiosk"
    device.status = DeviceStatus.ACTIVE
    device.till_id = record.till_id
    device.system_information = record.system_information
    if user is not None:
        device.last_tenant_user_id = user.id
    device.updated_at = now_ms()
    device.updated_by = actor
    try:
        db.session.flush()
    except IntegrityError as exc:  # the identifier is another live device's of the tenant
        raise IdentifierTaken("Another device of this organisation has this identifier.") from exc
    set_device_locations(device.id, [record.location_id] if record.location_id else [])
    return device


# -- polling and redemption (RFC 8628 §3.4-3.5) ------------------------------------------------------


def get(record_id: str) -> DeviceAuthorization | None:
    return db.session.get(DeviceAuthorization, record_id)


# -- the pending poll, answered from the state store ---------------------------------------------
# A pending transaction's poll reads its facts (id, client, expiry, key binding) from a store
# entry fetched in the client authentication's round trip; the database is read when the entry
# is missing or void. The entry is filled only over nothing (``add``), and a decision voids it
# (``_DECIDED``) before its change commits (Redis) or in its transaction (the SQL store), so a
# fill from a read made before the decision cannot outlive it: a poll never answers "pending"
# for a decided transaction after the decision's request has returned. The void lives until the
# transaction has expired (plus a margin for clocks and stalls), so a fill that comes later than
# that, however long its poll stalled between its read and the fill, holds an expired
# transaction and answers ``expired_token``, as the row would. The interval, which a too-early
# poll grows, has its own entry, written before the row; readers take the larger.
PENDING_CACHE_SECONDS = 60
VOID_MARGIN_SECONDS = 120
_DECIDED = "decided"
_PENDING = str(AuthorizationStatus.PENDING)


@dataclass(frozen=True)
class PollView:
    """What a poll needs of a transaction; ``get(id)`` gives the whole record."""

    id: str
    client_id: str
    status: str
    interval: int
    expires_at: int
    dpop_jkt: str | None
    code_hash: str


def _pending_key(code_hash: str) -> str:
    return f"dvp:{code_hash}"


def _interval_key(code_hash: str) -> str:
    return f"dvi:{code_hash}"


def poll_keys(device_code: str) -> tuple[str, list[str]]:
    """The keyed hash of ``device_code`` and the store keys a poll reads (``find_for_client``)."""
    code_hash = credentials.device_code_hash(device_code)
    return code_hash, [_pending_key(code_hash), _interval_key(code_hash)]


def find_for_client(client: OAuthClient, code_hash: str, known: dict[str, str]) -> PollView | None:
    """The transaction of a device code (by its keyed hash), if it is this client's: another
    client's code is as unknown as a made-up one. ``known``: what the store held of
    ``poll_keys`` (read with the client authentication)."""
    grown = int(known.get(_interval_key(code_hash)) or 0)
    cached = known.get(_pending_key(code_hash))
    if cached is not None and cached != _DECIDED:
        # The client id last: the only field not of our own alphabet (a registered client id).
        record_id, expires_at, interval, jkt, client_id = cached.split("|", 4)
        view = PollView(
            record_id, client_id, _PENDING, max(int(interval), grown), int(expires_at),
            jkt or None, code_hash,
        )  # fmt: skip
    else:
        row = direct().first(_BY_DEVICE_CODE, {"b_hash": code_hash})
        if row is None:
            return None
        view = PollView(
            row.id, row.client_id, row.status, max(row.interval, grown), row.expires_at,
            row.dpop_jkt, code_hash,
        )  # fmt: skip
        left = row.expires_at - now()
        if cached is None and row.status == _PENDING and left > 0:
            fields = (row.id, str(row.expires_at), str(row.interval), row.dpop_jkt, row.client_id)
            get_state().store.add(
                _pending_key(code_hash), "|".join(f or "" for f in fields),
                min(PENDING_CACHE_SECONDS, left),
            )  # fmt: skip
    if view.client_id != client.client_id:
        return None
    return view


def _void_pending(record: DeviceAuthorization) -> None:
    """Before a decision changes the row: the pending poll's store entry says to read the row.
    Written as revocation entries are: to Redis before the change (a refused write aborts it)
    and with the decision's transaction (on the SQL store, the entry itself; with Redis, the
    durable copy that a Redis which lost its data is reloaded from)."""
    ttl = max(record.expires_at - now(), 0) + VOID_MARGIN_SECONDS
    revocation.write_entry(_pending_key(record.device_code_hash), _DECIDED, ttl)


_BY_DEVICE_CODE = select(
    _TABLE.c.id,
    _TABLE.c.client_id,
    _TABLE.c.status,
    _TABLE.c.interval,
    _TABLE.c.expires_at,
    _TABLE.c.dpop_jkt,
).where(_TABLE.c.device_code_hash == bindparam("b_hash"))
_GROW_INTERVAL = (
    _TABLE.update()
    # Only ever longer: a concurrent poll that computed a shorter interval does not undo it.
    .where(_TABLE.c.id == bindparam("b_id"), _TABLE.c.interval < bindparam("b_interval"))
    .values(interval=bindparam("b_interval"))
)


class Poll(StrEnum):
    PENDING = "authorization_pending"
    SLOW_DOWN = "slow_down"


def poll(record: PollView) -> Poll:
    """RFC 8628 §3.5 for a pending transaction: ``SLOW_DOWN`` when polled faster than its
    interval, which then grows by 5 s for this and every later poll.

    The poll slot is claimed atomically in the shared store, so concurrent polls in several
    processes cannot both pass. A poll answered slow_down restarts the wait with the grown
    interval; a client that then waits that interval is served, so it never stays stuck.
    """
    state = get_state()
    slot = f"poll:{record.id}"
    interval = min(record.interval + SLOW_DOWN_STEP, state.settings.device_code_ttl)
    # One atomic operation: the slot is claimed for the interval, or, when a poll came too
    # early, held until the grown interval from now (the wait counts from this request too),
    # so the slot is never free in between for a concurrent poll.
    if state.store.claim_or_hold(
        slot, ttl=record.interval - POLL_TOLERANCE, hold_ttl=interval - POLL_TOLERANCE
    ):
        return Poll.PENDING
    if interval != record.interval:  # at the cap already: nothing to write
        left = record.expires_at - now()
        if left > 0:  # the store first: a poll answered from it then sees the grown interval
            state.store.put(_interval_key(record.code_hash), str(interval), left)
        direct().write(_GROW_INTERVAL, {"b_id": record.id, "b_interval": interval})
    return Poll.SLOW_DOWN


def redeem(record: DeviceAuthorization) -> bool:
    """approved -> redeemed, by a conditional UPDATE: only one request ever gets True. A loser
    revokes what the winner got (``revoke_reused``) before returning False."""
    won = db.session.execute(
        update(DeviceAuthorization)
        .where(
            DeviceAuthorization.id == record.id,
            DeviceAuthorization.status == AuthorizationStatus.APPROVED,
        )
        .values(status=AuthorizationStatus.REDEEMED, redeemed_at=now())
    ).rowcount  # type: ignore[attr-defined]
    if won == 1:
        return True
    db.session.rollback()
    db.session.refresh(record)
    revoke_reused(record)
    return False


def revoke_reused(record: DeviceAuthorization) -> None:
    """A device code redeemed twice: whoever holds the first tokens may be an attacker
    (RFC 6749 §10.5 by analogy, RFC 9700 §4.14.2): the family and the access token go."""
    audit.record("device_code.reuse_detected", record.tenant_id, record.client_id, record.device_id)
    if record.family_id:
        tokens.revoke_family(record.family_id, "device_code_reused")
    if record.access_jti_hash:
        revocation.deny(record.access_jti_hash)
    db.session.commit()


def token_subject(record: DeviceAuthorization, client: OAuthClient) -> TokenSubject | None:
    """Whom the tokens of a just-redeemed transaction are about, or None (and the redemption is
    rolled back) when the device was blocked or deleted, or the approver deactivated, since."""
    if not tokens.grant_is_live(family_id=None, device_id=record.device_id, user_id=record.user_id):
        db.session.rollback()
        return None
    if client.device_subject == "user" and record.user_id is not None:
        return TokenSubject(
            record.user_id, user_id=record.user_id, auth_time=record.auth_time, amr=record.amr
        )
    return TokenSubject(
        record.device_id or record.id, device_id=record.device_id, module=record.module_id
    )


def remember_issued(record: DeviceAuthorization, family_id: str | None, jti: str) -> None:
    """What the redemption issued, kept (the jti as a keyed hash) to revoke it on reuse."""
    record.family_id = family_id
    record.access_jti_hash = credentials.jti_hash(jti)
