"""Who may do what with roles: one home for the rules, whatever the channel (API, /device, CLI).

Roles are strings on the user: ``TENANT.ADMIN`` or ``DEVICE.MANAGER`` for the whole tenant, or
``DEVICE.MANAGER@loc_...`` for one location. Managing the registry needs a tenant-wide role;
enrolling a kiosk (approving a device-flow code of a device-subject client) needs a tenant-wide
role or the role at the location the kiosk is placed in. Approving a sign-in (a user-subject
client: the token will be about the approver) needs nothing but being an active user of the code's
tenant, since the approver only signs themself in.
"""

from __future__ import annotations

from authserver.models import OAuthClient, User
from authserver.problems import NotAllowed, WrongTenant

__all__ = ["NotAllowed"]

TENANT_ADMIN = "TENANT.ADMIN"
DEVICE_MANAGER = "DEVICE.MANAGER"
CASHIER = "CASHIER"
DEVICE_ROLES = frozenset({TENANT_ADMIN, DEVICE_MANAGER})
# Every role a user can hold, and what it allows.
ROLES = {
    TENANT_ADMIN: "everything in the tenant: devices, locations, audit events, approvals",
    DEVICE_MANAGER: "devices and locations; approves kiosks (for one location as @loc_...)",
    CASHIER: "signs in on the tenant's terminals (at one location as @loc_...)",
}


def is_known_role(role: str) -> bool:
    """``ROLE`` or ``ROLE@loc_...`` for a role of the catalogue."""
    name, at, location = role.partition("@")
    if name not in ROLES:
        return False
    return not at or (location.startswith("loc_") and 4 < len(location) <= 48)


def _roles(user: User) -> list[str]:
    return list(user.roles or [])


def manages_registry(user: User) -> bool:
    """A tenant-wide device role: list, create, change and delete the tenant's devices."""
    return user.active and bool(DEVICE_ROLES & set(_roles(user)))


def reads_audit_events(user: User) -> bool:
    """The tenant's audit trail is for its administrators."""
    return user.active and TENANT_ADMIN in _roles(user)


def enrolment_locations(user: User) -> frozenset[str] | None:
    """Where ``user`` may enrol devices: None for anywhere in the tenant, else the location ids
    of their location-scoped device roles (empty: nowhere)."""
    if manages_registry(user):
        return None
    if not user.active:
        return frozenset()
    scoped = (r.split("@", 1) for r in _roles(user) if "@" in r)
    return frozenset(loc for role, loc in scoped if role in DEVICE_ROLES)


def may_enrol_somewhere(user: User) -> bool:
    places = enrolment_locations(user)
    return places is None or bool(places)


def check_approval(
    user: User, client: OAuthClient, tenant_id: str, location_id: str | None
) -> None:
    """Raise ``NotAllowed`` unless ``user`` may approve a device-flow code of ``client``."""
    if not user.active or user.tenant_id != tenant_id:
        raise WrongTenant("This code belongs to another organisation.")
    if client.device_subject == "user":
        return  # signing oneself in on a shared screen
    places = enrolment_locations(user)
    if places is None:
        return
    if not places:
        raise NotAllowed(
            "You are not allowed to add devices. Ask an administrator (TENANT.ADMIN or "
            "DEVICE.MANAGER) to approve it."
        )
    if location_id not in places:
        raise NotAllowed("Choose a location where you manage devices.")
