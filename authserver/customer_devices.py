"""Customers' devices (seed 003): the phones, watches and tablets they own, and the cards and
hardware tokens the tenant issues to them.

An *owned* device is registered by its owner with their own token; its identifier (an IMEI) is
unique per customer among registered devices, and nobody else sees or touches it. When the
registering request carried a DPoP-bound token, the device keeps that key's thumbprint: the key
lives on the phone, so unregistering the phone revokes every token bound to it. A back office or
a service lists a customer's devices and the live push targets (registered, with a push id that
has not expired) to send notifications.

An *issued* device is created and moved along its lifecycle by the back office; only a masked
identifier is kept (at most four digits in clear, never a whole card number), and each status
change is recorded with who made it and when. The customer reads their own, with the history.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from authserver import audit, tokens
from authserver.models import IssuedDevice, IssuedDeviceStatus, OwnedDevice, User, db
from authserver.paging import After, Page, keyset_page
from authserver.problems import ConflictProblem, NotFoundProblem, ValidationProblem
from authserver.security import new_id, now

_ID = re.compile(r"[A-Za-z0-9_-]{1,48}")

# -- owned devices -------------------------------------------------------------------------------

OWNED_FIELDS = {
    "operatingSystem": "operating_system",
    "nickname": "nickname",
    "brandName": "brand",
    "modelName": "model",
    "installationId": "installation_id",
    "pushId": "push_id",
    "pushExpiresAt": "push_expires_at",
}


def register(user: User, data: dict[str, Any], jkt: str | None) -> OwnedDevice:
    """The customer's new device; 409 when one of theirs already has the identifier."""
    t = now()
    device = OwnedDevice(
        id=new_id("own"),
        tenant_id=user.tenant_id,
        user_id=user.id,
        external_id=data["externalDeviceIdentifier"],
        dpop_jkt=jkt,
        created_at=t,
        updated_at=t,
    )
    for name, attr in OWNED_FIELDS.items():
        setattr(device, attr, data.get(name))
    db.session.add(device)
    audit.record("owned_device.registered", user.tenant_id, user.id, user_id=user.id,
                 owned_device_id=device.id)  # fmt: skip
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise ConflictProblem(
            "You have a registered device with this identifier.", field="externalDeviceIdentifier"
        ) from exc
    return device


def get_owned(user: User, device_id: str) -> OwnedDevice:
    """One of ``user``'s devices (registered or not); another's is as unknown as none."""
    device = db.session.get(OwnedDevice, device_id) if _ID.fullmatch(device_id) else None
    if device is None or device.user_id != user.id or device.tenant_id != user.tenant_id:
        raise NotFoundProblem("No such device.")
    return device


def update_owned(device: OwnedDevice, data: dict[str, Any]) -> OwnedDevice:
    if device.unregistered_at is not None:
        raise ConflictProblem("The device is unregistered.")
    for name, attr in OWNED_FIELDS.items():
        if name in data:
            setattr(device, attr, data[name])
    device.updated_at = now()
    db.session.commit()
    return device


def unregister(device: OwnedDevice, actor_id: str) -> OwnedDevice:
    """Unregister: no more pushes (its push id is forgotten), its identifier free again, and the
    tokens bound to its key revoked in the same transaction."""
    if device.unregistered_at is None:
        t = now()
        device.unregistered_at = t
        device.updated_at = t
        device.push_id = None
        device.push_expires_at = None
        if device.dpop_jkt is not None:
            tokens.revoke_key(device.tenant_id, device.user_id, device.dpop_jkt,
                              "device_unregistered")  # fmt: skip
        audit.record("owned_device.unregistered", device.tenant_id, actor_id,
                     user_id=device.user_id, owned_device_id=device.id)  # fmt: skip
        db.session.commit()
    return device


def list_owned(user_id: str, status: str | None, after: After, limit: int) -> Page[OwnedDevice]:
    """The customer's devices, oldest first: ``ACTIVE`` (registered) or ``UNREGISTERED`` ones
    only, or all."""
    query = select(OwnedDevice).where(OwnedDevice.user_id == user_id)
    if status == "ACTIVE":
        query = query.where(OwnedDevice.unregistered_at.is_(None))
    elif status == "UNREGISTERED":
        query = query.where(OwnedDevice.unregistered_at.is_not(None))
    return keyset_page(query, OwnedDevice.created_at, OwnedDevice.id, after, limit,
                       lambda d: d.created_at)  # fmt: skip


def push_targets(user_id: str) -> list[OwnedDevice]:
    """The customer's registered devices with a push id that has not expired."""
    t = now()
    query = select(OwnedDevice).where(
        OwnedDevice.user_id == user_id,
        OwnedDevice.unregistered_at.is_(None),
        OwnedDevice.push_id.is_not(None),
        (OwnedDevice.push_expires_at.is_(None)) | (OwnedDevice.push_expires_at > t),
    )
    return list(db.session.scalars(query.order_by(OwnedDevice.created_at, OwnedDevice.id)))


# -- issued devices ------------------------------------------------------------------------------

ISSUED_KINDS = ("PAYMENT_CARD", "HARDWARE_TOKEN", "OTHER")
ISSUED_STATUSES = ("ORDERED", "ACTIVE", "BLOCKED", "LOST", "EXPIRED", "CLOSED")
# The lifecycle: what each status may become. CLOSED is final; LOST and EXPIRED only close.
TRANSITIONS: dict[str, frozenset[str]] = {
    "ORDERED": frozenset({"ACTIVE", "CLOSED"}),
    "ACTIVE": frozenset({"BLOCKED", "LOST", "EXPIRED", "CLOSED"}),
    "BLOCKED": frozenset({"ACTIVE", "LOST", "EXPIRED", "CLOSED"}),
    "LOST": frozenset({"CLOSED"}),
    "EXPIRED": frozenset({"CLOSED"}),
    "CLOSED": frozenset(),
}
MASKED = re.compile(r"[0-9A-Za-z* -]{4,32}")
MAX_CLEAR_DIGITS = 4


def check_masked(value: str) -> str:
    """A masked identifier: 4-32 of digits, letters, ``*``, space and ``-``, at most four digits
    in clear (PCI DSS 3.4: a whole card number is never stored)."""
    if not MASKED.fullmatch(value) or "*" not in value:
        raise ValidationProblem(
            "maskedIdentifier is 4-32 of 0-9 A-Z a-z * space -, masked with *.",
            field="maskedIdentifier",
        )
    if sum(c.isdigit() for c in value) > MAX_CLEAR_DIGITS:
        raise ValidationProblem(
            f"maskedIdentifier shows at most {MAX_CLEAR_DIGITS} digits; mask the rest with *.",
            field="maskedIdentifier",
        )
    return value


def issue(user: User, data: dict[str, Any], actor_id: str) -> IssuedDevice:
    t = now()
    status = data.get("status", "ORDERED")
    device = IssuedDevice(
        id=new_id("isd"),
        tenant_id=user.tenant_id,
        user_id=user.id,
        kind=data["kind"],
        masked_identifier=check_masked(data["maskedIdentifier"]),
        label=data.get("label"),
        status=status,
        created_at=t,
        created_by=actor_id,
        updated_at=t,
    )
    db.session.add(device)
    db.session.add(IssuedDeviceStatus(id=new_id("ids"), issued_device_id=device.id, seq=1,
                                      status=status, changed_by=actor_id, changed_at=t,
                                      reason=data.get("reason")))  # fmt: skip
    audit.record("issued_device.created", user.tenant_id, actor_id, user_id=user.id,
                 issued_device_id=device.id, status=status)  # fmt: skip
    db.session.commit()
    return device


def get_issued(user: User, device_id: str) -> IssuedDevice:
    device = db.session.get(IssuedDevice, device_id) if _ID.fullmatch(device_id) else None
    if device is None or device.user_id != user.id or device.tenant_id != user.tenant_id:
        raise NotFoundProblem("No such issued device.")
    return device


class IllegalTransition(ConflictProblem):
    code = "illegal_transition"


def change_status(
    device: IssuedDevice, status: str, actor_id: str, reason: str | None
) -> IssuedDevice:
    """Move along the lifecycle; anything else is a 409 naming what is allowed."""
    allowed = TRANSITIONS[device.status]
    if status not in allowed:
        shown = ", ".join(sorted(allowed)) or "nothing (it is final)"
        raise IllegalTransition(f"An issued device that is {device.status} can become {shown}.")
    t = now()
    previous = device.status
    # Conditional on the status read: of two concurrent changes one wins, the other is a 409.
    won = db.session.execute(
        update(IssuedDevice)
        .where(IssuedDevice.id == device.id, IssuedDevice.status == previous)
        .values(status=status, updated_at=t)
    ).rowcount  # type: ignore[attr-defined]
    if won != 1:
        db.session.rollback()
        raise IllegalTransition("The issued device changed meanwhile; read it again.")
    seq = (db.session.scalar(select(func.max(IssuedDeviceStatus.seq)).where(
        IssuedDeviceStatus.issued_device_id == device.id)) or 0) + 1  # fmt: skip
    db.session.add(IssuedDeviceStatus(id=new_id("ids"), issued_device_id=device.id, seq=seq,
                                      status=status, changed_by=actor_id, changed_at=t,
                                      reason=reason))  # fmt: skip
    audit.record("issued_device.status_changed", device.tenant_id, actor_id,
                 user_id=device.user_id, issued_device_id=device.id, previous=previous,
                 status=status)  # fmt: skip
    db.session.commit()  # expires ``device``: its next read loads the new status
    return device


def statuses_of(device: IssuedDevice) -> list[IssuedDeviceStatus]:
    """Its statuses, oldest first."""
    return list(
        db.session.scalars(
            select(IssuedDeviceStatus)
            .where(IssuedDeviceStatus.issued_device_id == device.id)
            .order_by(IssuedDeviceStatus.seq)
        )
    )


def list_issued(user_id: str, status: str | None, after: After, limit: int) -> Page[IssuedDevice]:
    query = select(IssuedDevice).where(IssuedDevice.user_id == user_id)
    if status is not None:
        query = query.where(IssuedDevice.status == status)
    return keyset_page(query, IssuedDevice.created_at, IssuedDevice.id, after, limit,
                       lambda d: d.created_at)  # fmt: skip


def forget_user(user_id: str) -> None:
    """A deleted user's devices go with them (in the caller's transaction)."""
    issued = select(IssuedDevice.id).where(IssuedDevice.user_id == user_id)
    db.session.execute(
        delete(IssuedDeviceStatus).where(IssuedDeviceStatus.issued_device_id.in_(issued))
    )
    db.session.execute(delete(IssuedDevice).where(IssuedDevice.user_id == user_id))
    db.session.execute(delete(OwnedDevice).where(OwnedDevice.user_id == user_id))
