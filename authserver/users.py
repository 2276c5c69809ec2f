"""People of a tenant, looked up for sign-in and for tokens about them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select

from authserver import credentials
from authserver.models import Tenant, User, db


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
