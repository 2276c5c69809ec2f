"""Audit events for security-relevant actions, written in the transaction of the action."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from authserver.models import AuditEvent, db
from authserver.paging import After, Page, keyset_page
from authserver.security import new_id, now

TYPES = (
    "device.approved",
    "device.denied",
    "device.linked",
    "device.blocked",
    "device.activated",
    "device.unlinked",
    "device.deleted",
    "device.staff_signed_in",
    "device_code.reuse_detected",
    "authorization_code.reuse_detected",
    "consent.given",
    "consent.withdrawn",
    "refresh_token.reuse_detected",
    "key.rotated",
    "tenant.created",
    "tenant.updated",
    "tenant.disabled",
    "tenant.enabled",
    "tenant.deleted",
    "user.created",
    "user.updated",
    "user.disabled",
    "user.enabled",
    "user.deleted",
    "user.totp_enabled",
    "user.totp_removed",
    "role.granted",
    "role.revoked",
    "client.created",
    "client.updated",
    "client.disabled",
    "client.enabled",
    "client.deleted",
    "client.secret_rotated",
    "module.created",
    "module.updated",
    "module.deleted",
    "module.logged_out",
    "module_type.config_set",
    "owned_device.registered",
    "owned_device.unregistered",
    "issued_device.created",
    "issued_device.status_changed",
)


def record(
    type_: str,
    tenant_id: str | None,
    actor: str | None,
    device_id: str | None = None,
    **data: Any,
) -> None:
    """Add an event to the session; the caller's commit stores it with the change."""
    assert type_ in TYPES, type_
    db.session.add(
        AuditEvent(
            id=new_id("aud"),
            tenant_id=tenant_id,
            type=type_,
            device_id=device_id,
            actor=actor,
            data={k: v for k, v in data.items() if v is not None},
            created_at=now(),
        )
    )


def list_events(
    tenant_id: str, type_: str | None, device_id: str | None, after: After, limit: int
) -> Page[AuditEvent]:
    """A tenant's events, newest first."""
    query = select(AuditEvent).where(AuditEvent.tenant_id == tenant_id)
    if type_ is not None:
        query = query.where(AuditEvent.type == type_)
    if device_id is not None:
        query = query.where(AuditEvent.device_id == device_id)
    return keyset_page(
        query, AuditEvent.created_at, AuditEvent.id, after, limit, lambda e: e.created_at, True
    )
