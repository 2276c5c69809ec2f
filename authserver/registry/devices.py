"""``/api/v1/devices``: the tenant's devices (list, create, get, patch, delete), the link
endpoint, and the calling device's own endpoints (``/me``)."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749.errors import OAuth2Error
from flask import Blueprint, Response, jsonify, request
from sqlalchemy import and_, exists, func, or_, select

from authserver.models import Client, Device, DeviceLocation, User, db
from authserver.registry import pagination
from authserver.registry.access import require_registry_token, token_actor
from authserver.registry.bodies import (
    clean_text,
    json_body,
    optional_str,
    required_name,
    string_list,
)
from authserver.registry.problems import ForbiddenProblem, Problem, ValidationProblem
from authserver.registry.service import (
    APP_CODES,
    ORIGINS,
    STATUSES,
    create_device,
    delete_device,
    device_json,
    get_device,
    locations_of,
    update_device,
)
from authserver.resource import current_proof, current_token, require_token
from authserver.security import now
from grants import LINK_CODE
from grants.common import check_dpop
from grants.dpop import UseDPoPNonce
from grants.link_code import link_device

bp = Blueprint("devices", __name__)

SORTS = {
    "name": Device.name,
    "createdAt": Device.created_at,
    "updatedAt": Device.updated_at,
    "lastActivityAt": func.coalesce(Device.last_activity_at, 0),
}
MAX_FILTER = 200


def _actor() -> tuple[str, str]:
    token, user = token_actor()
    return token.tenant_id, (user.id if user is not None else token.client_id)


def _one(device: Device, link_code: str | None = None, status: int = 200) -> Response:
    resp = jsonify(data=device_json(device, locations_of([device.id])[device.id], link_code))
    resp.status_code = status
    if link_code is not None:
        resp.headers["Cache-Control"] = "no-store"
    return resp


def _like(value: str) -> str:
    escaped = value.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _arg(name: str, allowed: tuple[str, ...] | None = None) -> str | None:
    values = request.args.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise ValidationProblem(f"{name} is given more than once.")
    value = values[0]
    if len(value) > MAX_FILTER:
        raise ValidationProblem(f"{name} is too long.")
    if not clean_text(value):
        raise ValidationProblem(f"{name} contains control characters.")
    if allowed is not None and value not in allowed:
        raise ValidationProblem(f"{name} must be one of {', '.join(allowed)}.")
    return value


@bp.get("/api/v1/devices")
@require_registry_token()
def list_devices() -> Response:
    tenant_id, _ = _actor()
    sort_by = _arg("sortBy", tuple(SORTS)) or "createdAt"
    order = _arg("sortOrder", ("asc", "desc")) or "asc"
    limit = pagination.limit_or_400(_arg("limit"))
    key = SORTS[sort_by]
    query = select(Device).where(Device.tenant_id == tenant_id, Device.deleted_at.is_(None))
    if (loc := _arg("locationId")) is not None:
        query = query.where(
            exists().where(DeviceLocation.device_id == Device.id, DeviceLocation.location_id == loc)
        )
    if (name := _arg("name")) is not None:
        query = query.where(func.lower(Device.name).like(_like(name), escape="\\"))
    if (origin := _arg("origin", ORIGINS)) is not None:
        query = query.where(Device.origin == origin)
    if (status := _arg("status", STATUSES)) is not None:
        query = query.where(Device.status == status)
    if (app_code := _arg("appCode", APP_CODES)) is not None:
        query = query.where(Device.app_code == app_code)
    if (external := _arg("externalId")) is not None:
        query = query.where(Device.external_id == external)
    if (q := _arg("q")) is not None:
        pattern = _like(q)
        query = query.where(
            or_(
                func.lower(Device.name).like(pattern, escape="\\"),
                func.lower(Device.external_id).like(pattern, escape="\\"),
                func.lower(Device.identifier).like(pattern, escape="\\"),
            )
        )
    context = f"devices:{sort_by}:{order}"
    if after := pagination.after_or_400(_arg("cursor"), context):
        value, last_id = after
        if order == "asc":
            query = query.where(or_(key > value, and_(key == value, Device.id > last_id)))
        else:
            query = query.where(or_(key < value, and_(key == value, Device.id < last_id)))
    if order == "asc":
        query = query.order_by(key.asc(), Device.id.asc())
    else:
        query = query.order_by(key.desc(), Device.id.desc())
    rows = list(db.session.scalars(query.limit(limit + 1)))
    has_more = len(rows) > limit
    rows = rows[:limit]
    locs = locations_of([d.id for d in rows])
    next_cursor = None
    if has_more:
        last = rows[-1]
        value = {
            "name": last.name,
            "createdAt": last.created_at,
            "updatedAt": last.updated_at,
            "lastActivityAt": last.last_activity_at or 0,
        }[sort_by]
        next_cursor = pagination.encode(value, last.id, context)
    return jsonify(
        data=[device_json(d, locs[d.id]) for d in rows], nextCursor=next_cursor, hasMore=has_more
    )


def _device_fields(body: dict[str, Any], creating: bool) -> dict[str, Any]:
    allowed = {"name", "externalId", "locationIds", "tillId", "appCode", "status"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ValidationProblem(f"Unknown field(s): {', '.join(unknown)}.")
    data: dict[str, Any] = {}
    if creating or "name" in body:
        data["name"] = required_name(body, "name", 100)
    for field, limit in (("externalId", 200), ("tillId", 100)):
        if field in body:
            data[field] = optional_str(body, field, limit)
    if "locationIds" in body:
        data["locationIds"] = string_list(body, "locationIds", 50)
    if "appCode" in body:
        if body["appCode"] not in APP_CODES:
            raise ValidationProblem(f"appCode must be one of {', '.join(APP_CODES)}.")
        data["appCode"] = body["appCode"]
    if "status" in body:
        allowed_status = ("ACTIVE", "READY_TO_LINK") if creating else STATUSES
        if body["status"] not in allowed_status:
            raise ValidationProblem(f"status must be one of {', '.join(allowed_status)}.")
        data["status"] = body["status"]
    return data


@bp.post("/api/v1/devices")
@require_registry_token(write=True)
def create() -> Response:
    tenant_id, actor = _actor()
    data = _device_fields(json_body(), creating=True)
    device, link_code = create_device(tenant_id, actor, data)
    return _one(device, link_code, 201)


@bp.get("/api/v1/devices/<device_id>")
@require_registry_token()
def get(device_id: str) -> Response:
    tenant_id, _ = _actor()
    return _one(get_device(tenant_id, device_id))


@bp.patch("/api/v1/devices/<device_id>")
@require_registry_token(write=True)
def patch(device_id: str) -> Response:
    tenant_id, actor = _actor()
    data = _device_fields(json_body(), creating=False)
    device = get_device(tenant_id, device_id)
    link_code = update_device(device, actor, data)
    return _one(device, link_code)


@bp.delete("/api/v1/devices/<device_id>")
@require_registry_token(write=True)
def remove(device_id: str) -> Response:
    tenant_id, actor = _actor()
    device = get_device(tenant_id, device_id)
    delete_device(device, actor)
    return jsonify(data={"id": device_id, "deleted": True})


# -- linking (seed 000: POST /device/{deviceCode}/link) -------------------------------------------


@bp.post("/api/v1/devices/<link_code>/link")
def link(link_code: str) -> Response:
    body = json_body()
    unknown = sorted(set(body) - {"appId", "userCode", "password", "systemInformation"})
    if unknown:
        raise ValidationProblem(f"Unknown field(s): {', '.join(unknown)}.")
    app_id = optional_str(body, "appId", 128)
    user_code = optional_str(body, "userCode", 64)
    password = optional_str(body, "password", 1024)
    info = optional_str(body, "systemInformation", 2000, single_line=False)
    if not app_id or not user_code or not password:
        raise ValidationProblem("appId, userCode and password are required.")
    client = db.session.get(Client, app_id)
    if client is None or not client.active or not client.is_public:
        # This endpoint carries no client secret: only public (device) clients may use it.
        raise Problem("Unknown appId.", error="invalid_client")
    if not client.check_grant_type(LINK_CODE):
        raise Problem("The app is not registered for linking.", error="unauthorized_client")
    try:
        # The same proof checks as at the token endpoint, for this URL.
        proof = check_dpop(request, client, request.path)
        tokens = link_device(
            client,
            link_code=link_code[:64],
            password=password,
            user_code=user_code,
            username=None,
            system_information=info,
            proof=proof,
            ip=request.remote_addr or "-",
        )
    except UseDPoPNonce as exc:
        resp = Problem(exc.description, error=exc.error).response()
        resp.headers["DPoP-Nonce"] = exc.nonce
        return resp
    except OAuth2Error as exc:
        problem = Problem(exc.description or exc.error, error=exc.error)
        problem.status = exc.status_code
        resp = problem.response()
        for name, value in exc.get_headers():
            if name == "Retry-After":
                resp.headers[name] = value
        return resp
    resp = jsonify(
        token=tokens["access_token"],
        refreshToken=tokens.get("refresh_token"),
        expires=now() + int(tokens["expires_in"]),
        tokenType=tokens["token_type"],
    )
    resp.headers["Cache-Control"] = "no-store"
    return resp


# -- the calling device (seed 000 GET/PUT /device, /device/users; seed 001 /devices/me) -----------


def _me() -> Device:
    token = current_token()
    if token.device_id is None:
        raise ForbiddenProblem("Only a device's own DPoP-bound token may call this endpoint.")
    return get_device(token.tenant_id, token.device_id)


@bp.get("/api/v1/devices/me")
@require_token("devices:read", dpop=True)
def me() -> Response:
    assert current_proof() is not None
    return _one(_me())


@bp.put("/api/v1/devices/me/system-information")
@require_token("devices:write", dpop=True)  # a write: devices:read is not enough
def me_system_information() -> Response:
    device = _me()
    body = json_body()
    if set(body) != {"systemInformation"}:
        raise ValidationProblem('The body is {"systemInformation": "..."}.')
    info = optional_str(body, "systemInformation", 2000, single_line=False)
    device.system_information = info
    device.updated_at = now()
    device.updated_by = device.id
    db.session.commit()
    return Response(status=204)


@bp.get("/api/v1/devices/me/users")
@require_token("devices:read", dpop=True)
def me_users() -> Response:
    """Active users who may sign in on this device: a role for the whole tenant (``ROLE``) or
    for one of the device's locations (``ROLE@loc_...``)."""
    device = _me()
    limit = pagination.limit_or_400(_arg("limit"))
    locs = set(locations_of([device.id])[device.id])
    query = select(User).where(User.tenant_id == device.tenant_id, User.active.is_(True))
    context = f"device-users:{device.id}"
    if after := pagination.after_or_400(_arg("cursor"), context):
        value, last_id = after
        query = query.where(or_(User.login > value, and_(User.login == value, User.id > last_id)))
    users: list[User] = []
    has_more = False
    # Roles live in a JSON list, so eligibility is decided here, page by page.
    for user in db.session.scalars(query.order_by(User.login, User.id)):
        roles = user.roles or []
        if any("@" not in r or r.split("@", 1)[1] in locs for r in roles):
            if len(users) == limit:
                has_more = True
                break
            users.append(user)
    next_cursor = pagination.encode(users[-1].login, users[-1].id, context) if has_more else None
    data = [{"id": u.id, "login": u.login, "roles": u.roles} for u in users]
    return jsonify(data=data, nextCursor=next_cursor, hasMore=has_more)
