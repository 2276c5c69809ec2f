"""The registry's wire format: camelCase JSON, ISO 8601 times (DESIGN "Device registry")."""

from __future__ import annotations

import time
from typing import Any

from flask import Response, jsonify, request
from sqlalchemy import Text, literal_column

from authserver.models import (
    AuditEvent,
    AuthStrategy,
    Device,
    DeviceLocation,
    Location,
    Tenant,
    User,
)
from authserver.sqljson import IsoMs, JsonIds, JsonList, JsonObject, KeptOnPostgresql

_ISO_CACHE: dict[int, str] = {}


def iso(ts: int | None) -> str | None:
    """Unix seconds as ISO 8601 UTC with milliseconds (``2026-11-30T12:00:00.000Z``)."""
    if ts is None:
        return None
    text = _ISO_CACHE.get(ts)
    if text is None:
        if len(_ISO_CACHE) >= 8192:  # bounded: a page's times repeat, the whole history does not
            _ISO_CACHE.clear()
        text = _ISO_CACHE[ts] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))
    return text


def iso_ms(ms: int | None) -> str | None:
    """Unix milliseconds as ISO 8601 UTC with milliseconds."""
    if ms is None:
        return None
    seconds, millis = divmod(ms, 1000)
    text = iso(seconds)
    assert text is not None
    return f"{text[:-5]}.{millis:03d}Z"


def location_json(loc: Location) -> dict[str, Any]:
    return {
        "id": loc.id,
        "name": loc.name,
        "kind": loc.kind,
        "createdAt": iso(loc.created_at),
        "updatedAt": iso(loc.updated_at),
    }


def device_json(
    device: Any, location_ids: list[str], link_code: str | None = None
) -> dict[str, Any]:
    """A device: a ``Device``, or a row of its columns (``devices.DEVICE_COLUMNS``); both have
    the columns as attributes."""
    d = device
    data: dict[str, Any] = {
        "id": d.id,
        "name": d.name,
        "status": d.status,
        "origin": d.origin,
        "appCode": d.app_code,
        "externalId": d.external_id,
        "locationIds": location_ids,
        "tillId": d.till_id,
        "identifier": d.identifier,
        "systemInformation": d.system_information,
        "dpopJkt": d.dpop_jkt,
        "lastActivityAt": iso_ms(d.last_activity_at),
        "lastTenantUserId": d.last_tenant_user_id,
        "printerUids": list(d.printer_uids or []),
        "lastOrderUid": d.last_order_uid,
        "createdAt": iso_ms(d.created_at),
        "createdBy": d.created_by,
        "updatedAt": iso_ms(d.updated_at),
        "updatedBy": d.updated_by,
    }
    if link_code is not None:
        data["linkCode"] = link_code  # shown once; stored only as a hash
        data["linkCodeExpiresAt"] = iso(d.link_code_expires_at)
    return data


# ``device_json`` built by the database, for lists (``authserver.sqljson``): the same keys in the
# same order, the same values (a device reads the same in a list as on its own).
DEVICE_JSON_RENDERED = JsonObject(
    ("id", Device.id),
    ("name", Device.name),
    ("status", Device.status),
    ("origin", Device.origin),
    ("appCode", Device.app_code),
    ("externalId", Device.external_id),
    ("locationIds", JsonIds(DeviceLocation.location_id, DeviceLocation.device_id == Device.id)),
    ("tillId", Device.till_id),
    ("identifier", Device.identifier),
    ("systemInformation", Device.system_information),
    ("dpopJkt", Device.dpop_jkt),
    ("lastActivityAt", IsoMs(Device.last_activity_at)),
    ("lastTenantUserId", Device.last_tenant_user_id),
    ("printerUids", JsonList(Device.printer_uids)),
    ("lastOrderUid", Device.last_order_uid),
    ("createdAt", IsoMs(Device.created_at)),
    ("createdBy", Device.created_by),
    ("updatedAt", IsoMs(Device.updated_at)),
    ("updatedBy", Device.updated_by),
)
# On PostgreSQL the same text is kept in the row by a trigger (migration 0024), and read from there.
DEVICE_JSON_SQL = KeptOnPostgresql(literal_column("devices.api_json", Text), DEVICE_JSON_RENDERED)


def role_json(role: str) -> dict[str, Any]:
    name, _, location = role.partition("@")
    return {"role": name, "locationId": location or None}


def user_json(user: User) -> dict[str, Any]:
    """A user as the API shows them: never a password or a staff code, only whether set."""
    return {
        "id": user.id,
        "login": user.login,
        "kind": user.kind,
        "firstName": user.first_name,
        "lastName": user.last_name,
        "phone": user.phone,
        "pushId": user.push_id,
        "consents": list(user.consents or []),
        "properties": dict(user.properties or {}),
        "trusted": bool(user.trusted),
        "active": bool(user.active),
        "roles": [role_json(r) for r in user.roles or []],
        "passwordSet": bool(user.password_hash),
        "staffCodeSet": user.staff_code_hash is not None,
        "totpEnabled": user.totp_secret_enc is not None,
        "createdAt": iso(user.created_at),
        "updatedAt": iso(user.updated_at or user.created_at),
    }


def strategy_json(link: AuthStrategy) -> dict[str, Any]:
    return {
        "strategy": link.strategy,
        "id": link.external_id,
        "userId": link.user_id,
        "active": bool(link.active),
        "passwordSet": link.password_hash is not None,
        "createdAt": iso(link.created_at),
        "updatedAt": iso(link.updated_at),
    }


CONTACT_FIELDS = ("id", "login", "firstName", "lastName", "phone", "pushId", "consents", "active")


def contact_json(user: User) -> dict[str, Any]:
    """What a service needs to reach a person (seed 002 getUserContact): part of the user."""
    whole = user_json(user)
    return {name: whole[name] for name in CONTACT_FIELDS}


def tenant_catalog_json(tenant: Tenant) -> dict[str, Any]:
    """The tenant as other services see it (seed 002 getCatalogTenant)."""
    return {
        "id": tenant.id,
        "name": tenant.name,
        "active": bool(tenant.active),
        "accentColour": tenant.accent_colour,
        "logoUrl": tenant.logo_url,
        "createdAt": iso(tenant.created_at),
    }


def device_user_json(user: User) -> dict[str, Any]:
    return {"id": user.id, "login": user.login, "roles": user.roles}


def audit_event_json(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "deviceId": event.device_id,
        "actor": event.actor,
        "data": event.data,
        "createdAt": iso(event.created_at),
    }


def deleted_response(**ids: Any) -> Response:
    """The answer to every DELETE: ``{"deleted": true, "data": {<ids>, "deleted": true}}`` (seed
    001's ``{"deleted": true}``, in this API's envelope), or ``204 No Content`` when the request
    says ``Prefer: return=minimal`` (RFC 7240 §4.2; seed 000's answer)."""
    prefer = request.headers.get("Prefer", "")
    if "return=minimal" in [p.strip() for part in prefer.split(",") for p in part.split(";")]:
        resp = Response(status=204)
        resp.headers["Preference-Applied"] = "return=minimal"
        return resp
    return jsonify(deleted=True, data={**ids, "deleted": True})
