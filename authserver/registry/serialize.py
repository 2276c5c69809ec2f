"""The registry's wire format: camelCase JSON, ISO 8601 times (DESIGN "Device registry")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from authserver.models import AuditEvent, Device, Location, User


def iso(ts: int | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def location_json(loc: Location) -> dict[str, Any]:
    return {
        "id": loc.id,
        "name": loc.name,
        "kind": loc.kind,
        "createdAt": iso(loc.created_at),
        "updatedAt": iso(loc.updated_at),
    }


def device_json(
    device: Device, location_ids: list[str], link_code: str | None = None
) -> dict[str, Any]:
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
