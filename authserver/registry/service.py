"""Registry operations: devices and locations of one tenant, statuses, link codes, token kills.

Every function takes the tenant from its caller, who took it from the token; nothing here reads a
tenant from the request. Blocking, unlinking and deleting a device revoke its tokens in the same
transaction as the change.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from authserver import audit
from authserver.config import USER_CODE_ALPHABET
from authserver.models import (
    AccessToken,
    Device,
    DeviceLocation,
    Location,
    RefreshFamily,
    db,
)
from authserver.security import keyed_hash, new_id, now, now_float
from authserver.state import get_state

STATUSES = ("READY_TO_LINK", "ACTIVE", "BLOCKED")
ORIGINS = ("api", "link", "device_flow")
APP_CODES = ("CLIENT", "ASSISTANT", "KIOSK", "UNKNOWN")
LOCATION_KINDS = ("store", "venue", "warehouse", "other")
LINK_CODE_PURPOSE = "link-code"
LINK_CODE_LENGTH = 12  # 12 base-20 characters: ~52 bits, and a user code + password on top
ACTIVITY_INTERVAL = 60


class RegistryError(Exception):
    """A refused change: ``kind`` is validation | conflict | not_found."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


_ID = re.compile(r"[A-Za-z0-9_-]{1,48}")


def iso(ts: int | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# -- link codes ----------------------------------------------------------------------------------


def normalise_link_code(typed: str) -> str:
    return "".join(c for c in typed.upper() if c in USER_CODE_ALPHABET)[: LINK_CODE_LENGTH * 2]


def link_code_hash(code: str) -> str:
    return keyed_hash(LINK_CODE_PURPOSE, normalise_link_code(code))


def new_link_code() -> tuple[str, str]:
    raw = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(LINK_CODE_LENGTH))
    shown = "-".join(raw[i : i + 4] for i in range(0, LINK_CODE_LENGTH, 4))
    return shown, link_code_hash(raw)


# -- locations -----------------------------------------------------------------------------------


def location_json(loc: Location) -> dict[str, Any]:
    return {
        "id": loc.id,
        "name": loc.name,
        "kind": loc.kind,
        "createdAt": iso(loc.created_at),
        "updatedAt": iso(loc.updated_at),
    }


def get_location(tenant_id: str, location_id: str) -> Location:
    loc = db.session.get(Location, location_id) if _ID.fullmatch(location_id) else None
    if loc is None or loc.tenant_id != tenant_id:
        raise RegistryError("not_found", "No such location.")
    return loc


def check_location_ids(tenant_id: str, ids: Iterable[str]) -> list[str]:
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return []
    if not all(_ID.fullmatch(i) for i in wanted):
        raise RegistryError("validation", "Location ids are letters, digits, _ and -.")
    found = set(
        db.session.scalars(
            select(Location.id).where(Location.tenant_id == tenant_id, Location.id.in_(wanted))
        )
    )
    missing = [i for i in wanted if i not in found]
    if missing:
        raise RegistryError("validation", f"Unknown location id(s): {', '.join(missing)}.")
    return wanted


def delete_location(loc: Location) -> None:
    active = db.session.scalar(
        select(func.count())
        .select_from(DeviceLocation)
        .join(Device, Device.id == DeviceLocation.device_id)
        .where(
            DeviceLocation.location_id == loc.id,
            Device.deleted_at.is_(None),
            Device.status != "BLOCKED",
        )
    )
    if active:
        raise RegistryError("conflict", "The location still has active devices.")
    db.session.execute(delete(DeviceLocation).where(DeviceLocation.location_id == loc.id))
    db.session.delete(loc)
    db.session.commit()


# -- devices -------------------------------------------------------------------------------------


def set_device_locations(device_id: str, location_ids: list[str]) -> None:
    db.session.execute(delete(DeviceLocation).where(DeviceLocation.device_id == device_id))
    if location_ids:
        db.session.execute(
            insert(DeviceLocation),
            [{"device_id": device_id, "location_id": loc} for loc in location_ids],
        )


def locations_of(device_ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {d: [] for d in device_ids}
    if device_ids:
        rows = db.session.execute(
            select(DeviceLocation.device_id, DeviceLocation.location_id)
            .where(DeviceLocation.device_id.in_(device_ids))
            .order_by(DeviceLocation.location_id)
        )
        for device_id, location_id in rows:
            out[device_id].append(location_id)
    return out


def device_json(device: Device, location_ids: list[str], link_code: str | None = None) -> dict:
    data: dict[str, Any] = {
        "id": device.id,
        "name": device.name,
        "status": device.status,
        "origin": device.origin,
        "appCode": device.app_code,
        "externalId": device.external_id,
        "locationIds": location_ids,
        "tillId": device.till_id,
        "identifier": device.identifier,
        "systemInformation": device.system_information,
        "dpopJkt": device.dpop_jkt,
        "lastActivityAt": iso(device.last_activity_at),
        "lastTenantUserId": device.last_tenant_user_id,
        "createdAt": iso(device.created_at),
        "createdBy": device.created_by,
        "updatedAt": iso(device.updated_at),
        "updatedBy": device.updated_by,
    }
    if link_code is not None:
        data["linkCode"] = link_code  # shown once; stored only as a hash
        data["linkCodeExpiresAt"] = iso(device.link_code_expires_at)
    return data


def get_device(tenant_id: str, device_id: str) -> Device:
    device = db.session.get(Device, device_id) if _ID.fullmatch(device_id) else None
    if device is None or device.tenant_id != tenant_id or device.deleted_at is not None:
        raise RegistryError("not_found", "No such device.")
    return device


def revoke_device_tokens(device_id: str) -> None:
    """Every access token and refresh family of the device, at once (DESIGN invariant 3)."""
    t = now()
    db.session.execute(
        update(AccessToken)
        .where(AccessToken.device_id == device_id, AccessToken.revoked_at.is_(None))
        .values(revoked_at=t)
    )
    db.session.execute(
        update(RefreshFamily)
        .where(RefreshFamily.device_id == device_id, RefreshFamily.revoked_at.is_(None))
        .values(revoked_at=t, revoked_reason="device_status")
    )
    families = select(RefreshFamily.id).where(RefreshFamily.device_id == device_id)
    db.session.execute(
        update(AccessToken)
        .where(AccessToken.family_id.in_(families), AccessToken.revoked_at.is_(None))
        .values(revoked_at=t)
    )


def _issue_link_code(device: Device) -> str:
    shown, hashed = new_link_code()
    device.link_code_hash = hashed
    device.link_code_expires_at = now() + get_state().settings.link_code_ttl
    return shown


def _commit_unique() -> None:
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise RegistryError("conflict", "A device with this externalId already exists.") from exc


def create_device(tenant_id: str, actor: str, data: dict[str, Any]) -> tuple[Device, str | None]:
    t = now()
    to_link = data.get("status") == "READY_TO_LINK"
    device = Device(
        id=new_id("dev"),
        tenant_id=tenant_id,
        name=data["name"],
        status="READY_TO_LINK" if to_link else "ACTIVE",
        origin="link" if to_link else "api",
        app_code=data.get("appCode") or "UNKNOWN",
        external_id=data.get("externalId"),
        till_id=data.get("tillId"),
        created_at=t,
        created_by=actor,
        updated_at=t,
        updated_by=actor,
    )
    locations = check_location_ids(tenant_id, data.get("locationIds") or [])
    link_code = _issue_link_code(device) if to_link else None
    db.session.add(device)
    try:
        db.session.flush()
    except IntegrityError as exc:
        db.session.rollback()
        raise RegistryError("conflict", "A device with this externalId already exists.") from exc
    set_device_locations(device.id, locations)
    _commit_unique()
    return device, link_code


def update_device(device: Device, actor: str, data: dict[str, Any]) -> str | None:
    """Apply a PATCH; returns a new link code when the device was set READY_TO_LINK."""
    link_code = None
    for field, attr in (
        ("name", "name"),
        ("tillId", "till_id"),
        ("appCode", "app_code"),
        ("externalId", "external_id"),
    ):
        if field in data:
            setattr(device, attr, data[field])
    if "locationIds" in data:
        set_device_locations(device.id, check_location_ids(device.tenant_id, data["locationIds"]))
    status = data.get("status")
    if status is not None and (status != device.status or status == "READY_TO_LINK"):
        # READY_TO_LINK again gives a still-unlinked device a fresh code.
        link_code = _change_status(device, status, actor)
    device.updated_at = now()
    device.updated_by = actor
    _commit_unique()
    return link_code


def _change_status(device: Device, status: str, actor: str) -> str | None:
    event = {"BLOCKED": "device.blocked", "ACTIVE": "device.activated"}.get(
        status, "device.unlinked"
    )
    audit.record(event, device.tenant_id, actor, device.id, previous=device.status)
    if status == "BLOCKED":
        revoke_device_tokens(device.id)
        device.status = "BLOCKED"
        return None
    if status == "ACTIVE":
        linked = device.identifier is not None
        audit_device = device.origin == "api" and device.link_code_hash is None
        if not (linked or audit_device):
            raise RegistryError("conflict", "Only a linked device can be made ACTIVE; link it.")
        device.status = "ACTIVE"
        return None
    # READY_TO_LINK: unlink (seed 000): tokens revoked, identifier and key cleared, new code.
    revoke_device_tokens(device.id)
    device.status = "READY_TO_LINK"
    device.identifier = None
    device.dpop_jkt = None
    return _issue_link_code(device)


def delete_device(device: Device, actor: str) -> None:
    """Soft delete: gone from lists and lookups, tokens revoked, externalId free again."""
    revoke_device_tokens(device.id)
    audit.record("device.deleted", device.tenant_id, actor, device.id)
    t = now()
    device.deleted_at = t
    device.updated_at = t
    device.updated_by = actor
    device.link_code_hash = None
    db.session.commit()


_recent_activity: dict[str, float] = {}


def touch_activity(device_id: str) -> None:
    """lastActivityAt, written at most once a minute per device (not on every request).

    A process that touched the device within the minute skips even the store; otherwise the
    shared claim picks one writer per minute across every process.
    """
    t = now_float()
    if t - _recent_activity.get(device_id, float("-inf")) < ACTIVITY_INTERVAL:
        return
    if len(_recent_activity) > 10_000:
        _recent_activity.clear()  # bounded memory; only costs a store call per device
    _recent_activity[device_id] = t
    if get_state().store.claim_once(f"activity:{device_id}", ttl=ACTIVITY_INTERVAL):
        db.session.execute(
            update(Device).where(Device.id == device_id).values(last_activity_at=now())
        )
        db.session.commit()
