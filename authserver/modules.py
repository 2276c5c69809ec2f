"""Modules (seed 002): the configured pieces of software a tenant runs (kiosks, kitchen displays,
integrations), each with its own config, and a common config per module type.

A module's *effective* config is the common config of its type with the module's own laid over it
(objects merged member by member, at every depth; any other value of the module's replaces the
common one). A device enrols *as* a module through the device flow; its tokens carry the
``module`` claim, and with them it reads its module and configs and nothing else. Logging a
module out, deleting it, or enrolling another device as it revokes the tokens of its enrolment.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import select

from authserver import audit, tokens
from authserver.models import Location, Module, ModuleType, ModuleTypeConfig, User, db
from authserver.paging import After, Page, containing, keyset_page
from authserver.problems import ConflictProblem, NotFoundProblem, ValidationProblem
from authserver.security import now

MODULE_ID = re.compile(r"[A-Za-z0-9_-]{2,64}")
# Paths under /api/v1/modules that are not a module.
RESERVED = frozenset({"me", "bulk", "export"})
MAX_CONFIG_CHARS = 12_288  # under the default request limit (16 KiB), with room for the rest
TYPES = tuple(str(t) for t in ModuleType)


def _is_id(module_id: str) -> bool:
    return MODULE_ID.fullmatch(module_id) is not None and module_id not in RESERVED


def check_id(module_id: str) -> str:
    if not _is_id(module_id):
        raise ValidationProblem(
            "A module id is 2-64 of A-Z a-z 0-9 _ - (and not 'me', 'bulk' or 'export').",
            field="id",
        )
    return module_id


def check_config(value: Any, field: str) -> dict[str, Any]:
    """A JSON object of at most 12 KiB (as compact JSON); null is the empty object. The request
    schemas call it (``JsonObject``): the functions below get configs it returned."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationProblem(f"{field} must be a JSON object.", field=field)
    if len(json.dumps(value, separators=(",", ":"))) > MAX_CONFIG_CHARS:
        raise ValidationProblem(f"{field} is larger than 12 KiB.", field=field)
    return value


def find(tenant_id: str, module_id: str) -> Module | None:
    return db.session.get(Module, (tenant_id, module_id))


def get(tenant_id: str, module_id: str) -> Module:
    """The tenant's module ``module_id``; 404 otherwise (another tenant's is as unknown)."""
    module = find(tenant_id, module_id) if MODULE_ID.fullmatch(module_id) else None
    if module is None:
        raise NotFoundProblem("No such module.")
    return module


def _check_refs(tenant_id: str, data: dict[str, Any]) -> None:
    user_id = data.get("userId")
    if user_id is not None:
        user = db.session.get(User, user_id)
        if user is None or user.tenant_id != tenant_id:
            raise ValidationProblem("No such user in this tenant.", field="userId")
    location_id = data.get("locationId")
    if location_id is not None:
        loc = db.session.get(Location, location_id)
        if loc is None or loc.tenant_id != tenant_id:
            raise ValidationProblem("No such location in this tenant.", field="locationId")


def _apply(module: Module, data: dict[str, Any]) -> list[str]:
    changed = []
    for name, attr in (("type", "type"), ("production", "production"), ("userId", "user_id"),
                       ("locationId", "location_id"), ("config", "config")):  # fmt: skip
        if name in data and getattr(module, attr) != data[name]:
            setattr(module, attr, data[name])
            changed.append(name)
    return changed


def create(tenant_id: str, data: dict[str, Any], actor_id: str) -> Module:
    """A new module (seed 002 createModule: only if absent; 409 when the id is taken)."""
    module_id = check_id(data["id"])
    _check_refs(tenant_id, data)
    if find(tenant_id, module_id) is not None:
        raise ConflictProblem("A module with this id exists.", field="id")
    module = stage_new(tenant_id, data, actor_id)
    db.session.commit()
    return module


def stage_new(tenant_id: str, data: dict[str, Any], actor_id: str) -> Module:
    """A new module and its audit event in the session (its id and references checked by the
    caller); the caller commits."""
    module_id = check_id(data["id"])
    t = now()
    module = Module(
        tenant_id=tenant_id,
        id=module_id,
        type=data["type"],
        production=data.get("production", False),
        user_id=data.get("userId"),
        location_id=data.get("locationId"),
        config=data.get("config") or {},
        created_at=t,
        updated_at=t,
        created_by=actor_id,
        updated_by=actor_id,
    )
    db.session.add(module)
    audit.record("module.created", tenant_id, actor_id, module_id=module_id, type=module.type)
    return module


def update(module: Module, data: dict[str, Any], actor_id: str, replace: bool = False) -> Module:
    """Change the fields given (``replace``: every field, absent ones back to their defaults)."""
    if "id" in data and data["id"] != module.id:
        raise ValidationProblem("A module's id cannot change.", field="id")
    if replace:
        data = {"production": False, "userId": None, "locationId": None, "config": {}, **data}
    _check_refs(module.tenant_id, data)
    changed = _apply(module, data)
    if changed:
        module.updated_at = now()
        module.updated_by = actor_id
        audit.record("module.updated", module.tenant_id, actor_id, module_id=module.id,
                     changed=changed)  # fmt: skip
        db.session.commit()
    return module


def logout(module: Module, actor_id: str, reason: str = "module_logout") -> None:
    """Revoke every token of the module's enrolment (seed 002 logoutModule)."""
    stage_logout(module, actor_id, reason)
    db.session.commit()


def stage_logout(module: Module, actor_id: str, reason: str = "module_logout") -> None:
    """``logout`` in the caller's transaction."""
    tokens.revoke_module(module.tenant_id, module.id, reason)
    audit.record("module.logged_out", module.tenant_id, actor_id, module_id=module.id)


def delete(module: Module, actor_id: str) -> None:
    """Delete the module; its tokens are revoked in the same transaction."""
    stage_delete(module, actor_id)
    db.session.commit()


def stage_delete(module: Module, actor_id: str) -> None:
    """``delete`` in the caller's transaction."""
    tokens.revoke_module(module.tenant_id, module.id, "module_deleted")
    db.session.delete(module)
    audit.record("module.deleted", module.tenant_id, actor_id, module_id=module.id)


# Filters of the list: exact ones by column, and a config member's value (seed 002 findModuleConfig).
CONFIG_FILTER = re.compile(r"config\.([A-Za-z0-9_]{1,64})")


def list_modules(tenant_id: str, filters: dict[str, Any], after: After, limit: int) -> Page[Module]:
    query = filtered_modules(select(Module), tenant_id, filters)
    return keyset_page(query, Module.id, Module.id, after, limit, lambda m: m.id)


def filtered_modules(query: Any, tenant_id: str, filters: dict[str, Any]) -> Any:
    """``query`` limited to the tenant's modules ``filters`` select (the list's filters)."""
    query = query.where(Module.tenant_id == tenant_id)
    if filters.get("type"):
        query = query.where(Module.type == filters["type"])
    if filters.get("locationId"):
        query = query.where(Module.location_id == filters["locationId"])
    if filters.get("userId"):
        query = query.where(Module.user_id == filters["userId"])
    if filters.get("production") is not None:
        query = query.where(Module.production.is_(filters["production"]))
    if filters.get("id"):
        query = query.where(Module.id.like(containing(filters["id"]), "\\"))
    if filters.get("configName"):
        member = CONFIG_FILTER.fullmatch(filters["configName"])
        assert member is not None  # checked by the view
        query = query.where(Module.config[member.group(1)].as_string() == filters["configValue"])
    return query


def common_config(tenant_id: str, module_type: str) -> dict[str, Any]:
    """The common config of a module type (empty when none was set)."""
    found = db.session.get(ModuleTypeConfig, (tenant_id, module_type))
    return dict(found.config) if found is not None else {}


def set_common_config(
    tenant_id: str, module_type: str, config: Any, actor_id: str
) -> dict[str, Any]:
    """Replace the common config of a module type (seed 002 setModuleCommonConfig)."""
    found = db.session.get(ModuleTypeConfig, (tenant_id, module_type))
    if found is None:
        found = ModuleTypeConfig(tenant_id=tenant_id, type=module_type)
        db.session.add(found)
    found.config = config
    found.updated_at = now()
    found.updated_by = actor_id
    audit.record("module_type.config_set", tenant_id, actor_id, type=module_type)
    db.session.commit()
    return config


def overlay(base: Any, over: Any) -> Any:
    """``over`` laid over ``base``: objects merged member by member (recursively); anything
    else of ``over`` replaces ``base``."""
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = overlay(base.get(key), value) if key in base else value
        return merged
    return over


def effective_config(module: Module) -> dict[str, Any]:
    """The config the module runs with: its type's common config, its own laid over it."""
    merged = overlay(common_config(module.tenant_id, module.type), module.config or {})
    assert isinstance(merged, dict)
    return merged


def enrolment_check(tenant_id: str, module_id: str) -> Module:
    """The module a device asks to enrol as, or a ValidationProblem naming the reason."""
    if not _is_id(module_id):
        raise ValidationProblem("module must be a module id: 2-64 of A-Z a-z 0-9 _ -.")
    module = find(tenant_id, module_id)
    if module is None:
        raise ValidationProblem("No such module in this tenant.")
    return module


def modules_for_picker(
    tenant_id: str, places: frozenset[str] | None, asked: str | None, limit: int = 500
) -> list[Module]:
    """The modules an approver may enrol a device as, by id: the tenant's, or those at
    ``places`` for an approver at some locations only; the one the device ``asked`` for first
    among them when it is one of those."""
    query = select(Module).where(Module.tenant_id == tenant_id)
    if places is not None:
        query = query.where(Module.location_id.in_(sorted(places)))
    found = list(db.session.scalars(query.order_by(Module.id).limit(limit)))
    if asked is not None and all(m.id != asked for m in found):
        extra = db.session.scalar(query.where(Module.id == asked))
        if extra is not None:
            found.insert(0, extra)
    return found
