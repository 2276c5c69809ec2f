"""People of a tenant, looked up for sign-in and for tokens about them."""

from __future__ import annotations

from sqlalchemy import or_, select

from authserver import credentials
from authserver.models import Tenant, User, db


def get(user_id: str) -> User | None:
    return db.session.get(User, user_id)


def get_active(user_id: str) -> User | None:
    user = db.session.get(User, user_id)
    return user if user is not None and user.active else None


def find_by_login(tenant_id: str, login: str) -> User | None:
    return db.session.scalar(select(User).where(User.tenant_id == tenant_id, User.login == login))


def find_by_staff_code(tenant_id: str, staff_code: str) -> User | None:
    """Seed 000's "user code": the short code staff type on a terminal, unique per tenant."""
    return db.session.scalar(
        select(User).where(
            User.tenant_id == tenant_id,
            User.staff_code_hash == credentials.staff_code_hash(tenant_id, staff_code),
        )
    )


def lookup_tenant(ref: str) -> Tenant | None:
    """A tenant by id or by name, as a person types it."""
    return db.session.scalar(select(Tenant).where(or_(Tenant.id == ref, Tenant.name == ref)))


def tenant_name(tenant_id: str) -> str | None:
    tenant = db.session.get(Tenant, tenant_id)
    return tenant.name if tenant is not None else None
