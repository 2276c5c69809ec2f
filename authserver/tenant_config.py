"""A tenant's properties (seed 002 "tenant"): configuration values by name.

Public properties make the tenant's public configuration, which front apps read (any token of the
tenant, or none with the tenant's id); private ones are for administrators and services only. An
obfuscated property holds a secret (an API key of an integration): its value is encrypted at rest,
bound to the tenant and name, and every answer shows it masked, never in clear again.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select

from authserver import audit
from authserver.models import TenantProperty, db
from authserver.paging import After, Page, containing, keyset_page
from authserver.problems import NotFoundProblem, ValidationProblem
from authserver.security import now
from authserver.state import get_state
from keys.encryption import KeyEncryptor

NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_VALUE = 4000
MAX_PROPERTIES = 500
MASK = "********"


def _aad(tenant_id: str, name: str) -> str:
    return f"property:{tenant_id}:{name}"


def _encryptor() -> KeyEncryptor:
    return KeyEncryptor(get_state().settings.key_encryption_key)


def shown_value(prop: TenantProperty) -> str | None:
    """The value as every answer shows it: an obfuscated one masked."""
    return MASK if prop.is_obfuscated else prop.value


def secret_value(prop: TenantProperty) -> str | None:
    """The clear value, for the server's own use (never for an answer)."""
    if prop.is_obfuscated and prop.value_enc is not None:
        return _encryptor().decrypt(_aad(prop.tenant_id, prop.name), prop.value_enc).decode()
    return prop.value


RESERVED = frozenset({"schema"})  # GET /tenant/properties/schema is the schema, not a property


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise ValidationProblem("A property name is 1-64 of A-Z a-z 0-9 _ . -", field="property")
    if name in RESERVED:
        raise ValidationProblem(f"{name!r} is a reserved name.", field="property")
    return name


def upsert(
    tenant_id: str, name: str, data: dict[str, Any], actor_id: str, commit: bool = True
) -> tuple[Any, bool]:
    """Set property ``name`` (``value``, ``isPrivate``, ``isObfuscate``); True when created.
    An obfuscated property stays obfuscated: a secret once set is never shown in clear."""
    check_name(name)
    prop = db.session.get(TenantProperty, (tenant_id, name))
    created = prop is None
    t = now()
    if prop is None:
        count = db.session.scalar(select(func.count()).where(TenantProperty.tenant_id == tenant_id))
        if (count or 0) >= MAX_PROPERTIES:
            raise ValidationProblem(f"A tenant has at most {MAX_PROPERTIES} properties.")
        prop = TenantProperty(tenant_id=tenant_id, name=name, is_private=False,
                              is_obfuscated=False, created_at=t)  # fmt: skip
        db.session.add(prop)
    if "isPrivate" in data:
        prop.is_private = data["isPrivate"]
    obfuscate = prop.is_obfuscated or data.get("isObfuscate", False)
    value = data["value"]
    if obfuscate:
        prop.is_obfuscated = True
        prop.value = None
        prop.value_enc = _encryptor().encrypt(_aad(tenant_id, name), value.encode())
    else:
        prop.value, prop.value_enc = value, None
    prop.updated_at = t
    audit.record("tenant.updated", tenant_id, actor_id, changed=[f"property:{name}"])
    if commit:
        db.session.commit()
    else:
        db.session.flush()  # the next one's count sees it
    return prop, created


def delete(tenant_id: str, name: str, actor_id: str) -> None:
    prop = db.session.get(TenantProperty, (tenant_id, check_name(name)))
    if prop is None:
        raise NotFoundProblem("No such property.")
    db.session.delete(prop)
    audit.record("tenant.updated", tenant_id, actor_id, changed=[f"property:{name}"])
    db.session.commit()


def list_properties(
    tenant_id: str, private: bool | None, name_part: str | None, after: After, limit: int
) -> Page[TenantProperty]:
    query = select(TenantProperty).where(TenantProperty.tenant_id == tenant_id)
    if private is not None:
        query = query.where(TenantProperty.is_private.is_(private))
    if name_part:
        query = query.where(TenantProperty.name.like(containing(name_part), "\\"))
    page = keyset_page(query, TenantProperty.name, TenantProperty.name, after, limit,
                       lambda p: p.name)  # fmt: skip
    return page


def public_config(tenant_id: str, prefix: str | None) -> dict[str, str | None]:
    """The public properties by name (those starting with ``prefix`` when given)."""
    query = select(TenantProperty).where(
        TenantProperty.tenant_id == tenant_id, TenantProperty.is_private.is_(False)
    )
    found = db.session.scalars(query.order_by(TenantProperty.name))
    return {p.name: shown_value(p) for p in found if not prefix or p.name.startswith(prefix)}
