"""Who may do what with roles: one home for the rules, whatever the channel (API, /device, CLI).

Roles are strings on the user: ``TENANT.ADMIN`` or ``DEVICE.MANAGER`` for the whole tenant, or
``DEVICE.MANAGER@loc_...`` for one location. Managing the registry needs a tenant-wide role;
enrolling a kiosk (approving a device-flow code of a device-subject client) needs a tenant-wide
role or the role at the location the kiosk is placed in. Approving a sign-in (a user-subject
client: the token will be about the approver) needs nothing but being an active user of the code's
tenant, since the approver only signs themself in.

People are managed by TENANT.ADMIN (every role but SU) and USER.MANAGER (device managers and
staff); nobody gives a role they could not give, or changes a user holding one (so a user
manager cannot take over an administrator's account by resetting the password). SU, the seeds'
super user, is granted by the CLI only. A service token with ``users:write`` acts as a
TENANT.ADMIN of its tenant.

People are of one of two kinds. Staff hold roles and staff codes and run the back office;
customers (seed 003's end users) hold neither, never get a scope that manages the tenant, and
sign in only to the apps made for them. A client may admit one kind only (``user_kind``).
"""

from __future__ import annotations

from authserver.models import OAuthClient, User
from authserver.problems import NotAllowed, WrongTenant

__all__ = ["NotAllowed"]

SU = "SU"
TENANT_ADMIN = "TENANT.ADMIN"
USER_MANAGER = "USER.MANAGER"
DEVICE_MANAGER = "DEVICE.MANAGER"
STAFF = "STAFF"
CASHIER = "CASHIER"
DEVICE_ROLES = frozenset({SU, TENANT_ADMIN, DEVICE_MANAGER})
PEOPLE_ROLES = frozenset({SU, TENANT_ADMIN, USER_MANAGER})
# Every role a user can hold, and what it allows.
ROLES = {
    SU: "the seeds' super user: everything TENANT.ADMIN may; granted by the CLI only",
    TENANT_ADMIN: "everything in the tenant: devices, locations, people, roles, audit events",
    USER_MANAGER: "people and their roles, up to DEVICE.MANAGER and STAFF",
    DEVICE_MANAGER: "devices and locations; approves kiosks (for one location as @loc_...)",
    STAFF: "signs in on the tenant's terminals (at one location as @loc_...)",
    CASHIER: "the same as STAFF (its name in earlier releases)",
}
# Which roles each role may give (and take away, and hold on the users it changes).
_ASSIGNS = {
    SU: frozenset(ROLES) - {SU},
    TENANT_ADMIN: frozenset(ROLES) - {SU},
    USER_MANAGER: frozenset({DEVICE_MANAGER, STAFF, CASHIER}),
}
SERVICE_ASSIGNS = _ASSIGNS[TENANT_ADMIN]  # a service token with users:write
LOCATION_ID_LENGTH = 48
STAFF_KIND = "staff"
CUSTOMER_KIND = "customer"
USER_KINDS = (STAFF_KIND, CUSTOMER_KIND)
# The scopes that manage the tenant (its registry, people, settings, modules, customers'
# devices, clients): a customer's token never carries one, whatever the client may ask for.
_STAFF_SCOPE_PREFIXES = (
    "devices:", "users:", "tenant:", "modules:", "customer-devices:", "clients:",
)  # fmt: skip


def is_known_role(role: str) -> bool:
    """``ROLE`` or ``ROLE@loc_...`` for a role of the catalogue (SU only tenant-wide)."""
    name, at, location = role.partition("@")
    if name not in ROLES:
        return False
    if not at:
        return True
    return name != SU and location.startswith("loc_") and 4 < len(location) <= LOCATION_ID_LENGTH


def role_name(role: str) -> str:
    """``DEVICE.MANAGER`` of ``DEVICE.MANAGER@loc_1``."""
    return role.partition("@")[0]


def _roles(user: User) -> list[str]:
    return list(user.roles or [])


def _global_roles(user: User) -> set[str]:
    return {r for r in _roles(user) if "@" not in r}


def is_third_party_app(client: OAuthClient) -> bool:
    """A sign-in app (authorization code flow) the tenant did not mark as its own: it gets what
    the person consented to, and never their account's own settings (password-free changes,
    TOTP, deleting the account, their consents to other apps)."""
    return "authorization_code" in client.grant_types and not client.first_party


def reaches_own_account(client: OAuthClient | None) -> bool:
    """May a user's token from ``client`` reach ``/api/v1/users/me`` and its self-service?"""
    return client is not None and not is_third_party_app(client)


def is_customer(user: User) -> bool:
    return user.kind == CUSTOMER_KIND


def admits(client: OAuthClient, user: User) -> bool:
    """May ``user`` sign in to ``client`` at all: the client's kind of user, or any kind."""
    wanted = client.user_kind
    return wanted is None or wanted == user.kind


def not_for_you(client: OAuthClient) -> str:
    """Why ``admits`` said no, in words for the person."""
    if client.user_kind == CUSTOMER_KIND:
        return "This app is for customers; sign in with a customer account."
    return "This app is for staff; sign in with a staff account."


def scope_for(user: User, scope: str) -> str:
    """The part of ``scope`` a token about ``user`` may carry: a customer's, never a scope that
    manages the tenant (RFC 6749 §3.3: the server may issue less than was asked for).
    ``NotAllowed`` when a customer would get nothing of what was asked."""
    if not is_customer(user):
        return scope
    kept = " ".join(s for s in scope.split() if not manages_scope(s))
    if scope and not kept:
        raise NotAllowed("This app asks for nothing a customer may have.")
    return kept


def kind_fits(user: User) -> bool:
    """A customer holds no role and no staff code (both are for staff at the tenant's places)."""
    return not is_customer(user) or not (user.roles or user.staff_code_hash is not None)


def manages_registry(user: User) -> bool:
    """A tenant-wide device role: list, create, change and delete the tenant's devices."""
    return user.active and bool(DEVICE_ROLES & _global_roles(user))


def reads_audit_events(user: User) -> bool:
    """The tenant's audit trail is for its administrators."""
    return user.active and bool({SU, TENANT_ADMIN} & _global_roles(user))


def manages_tenant(user: User) -> bool:
    """The tenant's own settings (its properties) are for its administrators."""
    return user.active and bool({SU, TENANT_ADMIN} & _global_roles(user))


def manages_scope(scope: str) -> bool:
    """A scope that manages the tenant (``devices:write``, ``clients:read``...), as opposed to
    one about a person (``openid``, ``profile``, ``offline_access``...)."""
    return scope.startswith(_STAFF_SCOPE_PREFIXES)


def beyond(holder_scope: str, scopes: str) -> list[str]:
    """The scopes of ``scopes`` that manage the tenant and ``holder_scope`` lacks. A token may
    register or change a client only when this is empty for the client's scopes, old and new:
    a new client, a new redirect URI or a new secret would otherwise hand the caller powers
    its own token does not have."""
    held = set(holder_scope.split())
    return [s for s in dict.fromkeys(scopes.split()) if manages_scope(s) and s not in held]


def manages_people(user: User) -> bool:
    """A tenant-wide people role: list, create, change and delete the tenant's users."""
    return user.active and bool(PEOPLE_ROLES & _global_roles(user))


class Operator:
    """Whoever runs the CLI on the server: gives and takes every role, SU included."""


OPERATOR = Operator()
Actor = User | Operator | None  # None: a service token with users:write


def assignable(actor: Actor) -> frozenset[str]:
    """The role names ``actor`` may give or take."""
    if isinstance(actor, Operator):
        return frozenset(ROLES)
    if actor is None:
        return SERVICE_ASSIGNS
    if not actor.active:
        return frozenset()
    found: frozenset[str] = frozenset()
    for role in _global_roles(actor):
        found |= _ASSIGNS.get(role, frozenset())
    return found


def check_assign(actor: Actor, roles: list[str] | set[str]) -> None:
    """Raise ``NotAllowed`` unless ``actor`` may give (or take) every role of ``roles``."""
    allowed = assignable(actor)
    refused = sorted({role_name(r) for r in roles} - allowed)
    if refused:
        raise NotAllowed(f"You may not give or take the role(s) {', '.join(refused)}.")


def check_manage(actor: Actor, target: User) -> None:
    """Raise ``NotAllowed`` unless ``actor`` may change or delete ``target``: every role the
    target holds must be one the actor could give (no escalation through someone else's
    account)."""
    refused = sorted({role_name(r) for r in _roles(target)} - assignable(actor))
    if refused:
        raise NotAllowed(f"This user holds {', '.join(refused)}, which you may not manage.")


def enrolment_locations(user: User) -> frozenset[str] | None:
    """Where ``user`` may enrol devices: None for anywhere in the tenant, else the location ids
    of their location-scoped device roles (empty: nowhere)."""
    if manages_registry(user):
        return None
    if not user.active:
        return frozenset()
    scoped = (r.split("@", 1) for r in _roles(user) if "@" in r)
    return frozenset(loc for role, loc in scoped if role in DEVICE_ROLES)


def may_sign_in_on(user: User, device_location_ids: set[str] | frozenset[str]) -> bool:
    """Whether ``user`` may sign in on a device at those locations (seed 000 "device users"):
    an active user with a role for the whole tenant, or a role at one of the device's
    locations."""
    if not user.active or is_customer(user):
        return False
    return any("@" not in r or r.split("@", 1)[1] in device_location_ids for r in _roles(user))


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
        if not admits(client, user):  # signing oneself in on a shared screen: to this app?
            raise NotAllowed(not_for_you(client))
        return
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
