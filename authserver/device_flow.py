"""RFC 8628 device authorization: the transactions, user codes, the decision, single redemption.

Shared by the device authorization endpoint and grant (``grants/device_code.py``), the
verification page, ``authserver device approve`` and ``POST /api/v1/device-authorizations/...``,
so every path applies the same rules: a code is decided once, only by a user of the client's tenant,
only by the user who claimed it, and redeemed at most once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from authserver import audit, authorization, metrics
from authserver.config import USER_CODE_ALPHABET, USER_CODE_GROUP, USER_CODE_LENGTH
from authserver.limits import Charges, charge
from authserver.models import Client, Device, DeviceAuthorization, Location, User, db
from authserver.registry.service import set_device_locations
from authserver.security import keyed_hash, new_id, now
from authserver.state import get_state
from authserver.text import text_problem

DEVICE_CODE_PURPOSE = "device-code"
USER_CODE_PURPOSE = "device-user-code"
MAX_DEVICE_NAME = 100
MAX_SYSTEM_INFORMATION = 2000
SLOW_DOWN_STEP = 5  # RFC 8628 §3.5: the interval grows by 5 seconds


class DecisionError(Exception):
    """A decision that cannot be made; ``code`` is machine-readable, the message human-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_label(code: str, what: str, value: str | None, limit: int) -> None:
    """One rule for the names and till ids people give devices, on every channel (F9, F12)."""
    if value is None:
        return
    if not 1 <= len(value) <= limit:
        raise DecisionError(code, f"{what} is 1-{limit} characters.")
    problem = text_problem(value)
    if problem:
        raise DecisionError(code, f"{what} {problem}.")


def normalise_user_code(typed: str) -> str:
    """RFC 8628 §6.1: case-insensitive, dashes and spaces ignored, other characters dropped."""
    return "".join(c for c in typed.upper() if c in USER_CODE_ALPHABET)[: USER_CODE_LENGTH * 2]


def format_user_code(code: str) -> str:
    """Groups of five, easy to read aloud: ``BCDFG-HJKLM``."""
    return "-".join(code[i : i + USER_CODE_GROUP] for i in range(0, len(code), USER_CODE_GROUP))


def _user_code_hash(code: str) -> str:
    return keyed_hash(USER_CODE_PURPOSE, code)


def device_code_hash(code: str) -> str:
    return keyed_hash(DEVICE_CODE_PURPOSE, code)


@dataclass(frozen=True)
class StartedAuthorization:
    device_code: str
    user_code: str  # formatted XXXXX-XXXXX
    record: DeviceAuthorization


def start(
    client: Client,
    scope: str,
    device_name: str | None,
    system_information: str | None,
    dpop_jkt: str | None,
) -> StartedAuthorization:
    """Create a transaction with a fresh device code (256 bits) and a unique user code."""
    settings = get_state().settings
    t = now()
    for _ in range(8):
        device_code = secrets.token_urlsafe(32)  # RFC 8628 §5.2: very high entropy
        user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
        ucode_hash = _user_code_hash(user_code)
        # A user code must be unique among live codes; an expired one may be reused.
        db.session.execute(
            delete(DeviceAuthorization).where(
                DeviceAuthorization.user_code_hash == ucode_hash,
                DeviceAuthorization.expires_at <= t,
            )
        )
        record = DeviceAuthorization(
            id=new_id("dva"),
            device_code_hash=device_code_hash(device_code),
            user_code_hash=ucode_hash,
            client_id=client.client_id,
            tenant_id=client.tenant_id,
            scope=scope,
            device_name=device_name,
            system_information=system_information,
            dpop_jkt=dpop_jkt,
            interval=settings.device_poll_interval,
            created_at=t,
            expires_at=t + settings.device_code_ttl,
            status="pending",
        )
        db.session.add(record)
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()  # a live code with the same user code: draw again
            continue
        return StartedAuthorization(device_code, format_user_code(user_code), record)
    raise RuntimeError("could not draw a unique user code")


def find_live(user_code: str) -> DeviceAuthorization | None:
    """The pending, unexpired transaction for a typed user code (normalised), or None."""
    code = normalise_user_code(user_code)
    if len(code) != USER_CODE_LENGTH:
        return None
    record = db.session.scalar(
        select(DeviceAuthorization).where(
            DeviceAuthorization.user_code_hash == _user_code_hash(code)
        )
    )
    if record is None or record.expires_at <= now() or record.status != "pending":
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
    client: Client,
    record: DeviceAuthorization,
    location_id: str | None,
    approve: bool = True,
) -> None:
    """The one approval rule for every channel (``authserver.authorization``), as a
    ``DecisionError``. Denying needs the right to approve somewhere, not at a given location."""
    try:
        if approve:
            authorization.check_approval(user, client, record.tenant_id, location_id)
        elif client.device_subject != "user" and not authorization.may_enrol_somewhere(user):
            raise authorization.NotAllowed("You are not allowed to decide device requests.")
    except authorization.NotAllowed as exc:
        raise DecisionError("forbidden", str(exc)) from exc


def claim(record: DeviceAuthorization, user: User) -> None:
    """The first signed-in user to open a code claims it; nobody else may then decide it."""
    if user.tenant_id != record.tenant_id:
        raise DecisionError("wrong_tenant", "This code belongs to another organisation.")
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
        raise DecisionError("claimed", "Another person is already handling this code.")


def decide(
    record: DeviceAuthorization,
    user: User | None,
    approve: bool,
    location_id: str | None = None,
    till_id: str | None = None,
    name: str | None = None,
    auth_time: int | None = None,
    actor_id: str | None = None,
) -> DeviceAuthorization:
    """Approve or deny a pending transaction, atomically, as ``user`` of the client's tenant.

    Without a user (a back-office service, ``actor_id`` its client id) only kiosk enrolment can be
    approved: a sign-in token's subject is the approving person, so a person must approve it.
    """
    client = db.session.get(Client, record.client_id)
    if client is None or not client.active:
        raise DecisionError("invalid_client", "The client is no longer registered.")
    if user is not None and (user.tenant_id != record.tenant_id or not user.active):
        raise DecisionError("wrong_tenant", "This code belongs to another organisation.")
    if user is not None:
        check_rights(user, client, record, location_id if approve else None, approve)
    if user is None and approve and client.device_subject == "user":
        raise DecisionError("user_required", "A person must approve a sign-in; use a user token.")
    actor = user.id if user is not None else actor_id
    if actor is None:
        raise ValueError("decide needs a user or an actor id")
    if location_id is not None:
        loc = db.session.get(Location, location_id)
        if loc is None or loc.tenant_id != record.tenant_id:
            raise DecisionError("invalid_location", "No such location.")
    check_label("invalid_till", "A till id", till_id, 100)
    check_label("invalid_name", "A device name", name, MAX_DEVICE_NAME)
    t = now()
    result = db.session.execute(
        update(DeviceAuthorization)
        .where(
            DeviceAuthorization.id == record.id,
            DeviceAuthorization.status == "pending",
            DeviceAuthorization.expires_at > t,
            or_(DeviceAuthorization.claimed_by.is_(None), DeviceAuthorization.claimed_by == actor),
        )
        .values(
            status="approved" if approve else "denied",
            claimed_by=actor,
            user_id=user.id if user is not None else None,
            decided_at=t,
            auth_time=auth_time or t,
            location_id=location_id,
            till_id=till_id,
            device_name=name or record.device_name,
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        db.session.rollback()
        db.session.refresh(record)
        if record.claimed_by and record.claimed_by != actor:
            raise DecisionError("claimed", "Another person is already handling this code.")
        if record.expires_at <= t:
            raise DecisionError("expired", "This code has expired.")
        raise DecisionError("decided", "This code has already been used.")
    db.session.refresh(record)
    if approve and client.device_subject == "device":
        try:
            record.device_id = _enrol_device(record, actor, user, t).id
        except DecisionError:
            db.session.rollback()  # the approval above is undone with it
            raise
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
    if device is not None and device.status == "BLOCKED":
        # A blocked kiosk cannot unblock itself by enrolling again with the same key.
        raise DecisionError("blocked", "This device is blocked; an administrator must unblock it.")
    if device is None:
        device = Device(
            id=new_id("dev"),
            tenant_id=record.tenant_id,
            origin="device_flow",
            app_code="KIOSK",
            created_at=t,
            created_by=actor,
            identifier=secrets.token_hex(16),
            dpop_jkt=record.dpop_jkt,
        )
        db.session.add(device)
    device.name = record.device_name or "Kiosk"
    device.status = "ACTIVE"
    device.till_id = record.till_id
    device.system_information = record.system_information
    if user is not None:
        device.last_tenant_user_id = user.id
    device.updated_at = t
    device.updated_by = actor
    db.session.flush()
    set_device_locations(device.id, [record.location_id] if record.location_id else [])
    return device


def find_user(tenant_id: str, login: str) -> User | None:
    return db.session.scalar(select(User).where(User.tenant_id == tenant_id, User.login == login))
