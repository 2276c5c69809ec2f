"""``/api/v1/devices``: the tenant's devices (list, create, get, patch, delete), the link
endpoint, and the calling device's own endpoints (``/me``)."""

from __future__ import annotations

from authlib.oauth2.rfc6749.errors import OAuth2Error
from flask import Blueprint, Response, jsonify, request

from authserver.devices import (
    APP_CODES,
    ORIGINS,
    SORT_KEYS,
    STATUSES,
    DeviceQuery,
    count_devices,
    create_device,
    delete_device,
    filter_params,
    get_device,
    locations_of,
    read_device,
    search_devices,
    set_system_information,
    update_device,
    update_self,
    users_for_device,
)
from authserver.http_errors import oauth_error_as_problem
from authserver.models import Device
from authserver.oauth2.server import query_client
from authserver.problems import ForbiddenProblem, Problem, ValidationProblem
from authserver.registry import pagination, schema
from authserver.registry.access import require_device_token, require_registry_token, token_actor
from authserver.registry.bodies import (
    json_body,
)
from authserver.registry.serialize import (
    DEVICE_JSON_SQL,
    deleted_response,
    device_json,
    device_user_json,
)
from authserver.resource import current_token
from authserver.security import now
from grants import LINK_CODE
from grants.common import check_dpop
from grants.link_code import link_device

bp = Blueprint("devices", __name__)


def _actor() -> tuple[str, str]:
    token, user = token_actor()
    return token.tenant_id, (user.id if user is not None else token.client_id)


def _one(device: Device, link_code: str | None = None, status: int = 200) -> Response:
    resp = jsonify(data=device_json(device, locations_of([device.id])[device.id], link_code))
    resp.status_code = status
    if link_code is not None:
        resp.headers["Cache-Control"] = "no-store"
    return resp


# The sort and filters of the list (and of the export), and the list's own parameters.
QUERY_PARAMS = ("sortBy", "sortOrder", "sortDirection", "locationId", "name", "origin", "status",
                "appCode", "externalId", "deviceIdentifier", "q")  # fmt: skip
LIST_PARAMS = (*QUERY_PARAMS, "limit", "pageSize", "cursor", "pageNumber", "count")


def _one_of_aliases(name: str, alias: str, values: dict[str, str] | None = None) -> str | None:
    """A parameter that seed 000 spells ``alias``: either spelling, not both."""
    mine, theirs = pagination.query_arg(name), pagination.query_arg(alias)
    if mine is not None and theirs is not None:
        raise ValidationProblem(f"Send {name} or {alias}, not both.", parameter=alias)
    value = mine if mine is not None else theirs
    if values is None or value is None:
        return value
    if value not in values:
        raise ValidationProblem(f"{name} must be asc or desc.", parameter=name)
    return values[value]


def query_from_args(allowed: tuple[str, ...]) -> DeviceQuery:
    """The list's sort and filters from the query string (also the export's); a parameter not
    ``allowed`` is a 400 naming it."""
    pagination.only_params(*allowed)
    if "pageNumber" in request.args:
        # Seed 000's numbered pages: pages here continue from a cursor, so that walking them
        # while devices come and go neither repeats nor skips one.
        raise ValidationProblem(
            "pageNumber is not supported: follow nextCursor (cursor=...) to the next page.",
            parameter="pageNumber",
        )
    sort_by = pagination.query_arg("sortBy", tuple(SORT_KEYS)) or "createdAt"
    order = _one_of_aliases(
        "sortOrder", "sortDirection", {"asc": "asc", "desc": "desc", "ASC": "asc", "DESC": "desc"}
    )
    filters = {field: pagination.query_arg(name, values) for name, field, values in FILTERS}
    return DeviceQuery(sort_by=sort_by, descending=order == "desc", **filters)


# The list's filters: (query parameter / bulk filter member, DeviceQuery field, allowed values).
FILTERS: tuple[tuple[str, str, tuple[str, ...] | None], ...] = (
    ("locationId", "location_id", None),
    ("name", "name", None),
    ("origin", "origin", ORIGINS),
    ("status", "status", STATUSES),
    ("appCode", "app_code", APP_CODES),
    ("externalId", "external_id", None),
    ("deviceIdentifier", "identifier", None),
    ("q", "q", None),
)


@bp.get("/api/v1/devices")
@require_registry_token()
def list_devices() -> Response:
    tenant_id, _ = _actor()
    query = query_from_args(LIST_PARAMS)
    limit = pagination.limit_or_400(_one_of_aliases("limit", "pageSize"))
    count = pagination.query_arg("count", ("true", "false")) == "true"
    context = f"devices:{query.sort_by}:{'desc' if query.descending else 'asc'}"
    after = pagination.after_or_400(pagination.query_arg("cursor"), context)
    chosen = filter_params(tenant_id, query)  # which index leads: chosen once for both
    page = search_devices(tenant_id, query, after, limit, DEVICE_JSON_SQL, chosen)
    if not count:
        return pagination.rendered_page_response(page, context)
    total, exact = count_devices(tenant_id, query, chosen)
    return pagination.rendered_page_response(page, context, count=total, count_exact=exact)


@bp.post("/api/v1/devices")
@require_registry_token(write=True)
def create() -> Response:
    tenant_id, actor = _actor()
    data = schema.DEVICE_CREATE.parse(json_body())
    device, link_code = create_device(tenant_id, actor, data)
    return _one(device, link_code, 201)


@bp.get("/api/v1/devices/<device_id>")
@require_registry_token()
def get(device_id: str) -> Response:
    tenant_id, _ = _actor()
    device, locations = read_device(tenant_id, device_id)
    return jsonify(data=device_json(device, locations))


@bp.patch("/api/v1/devices/<device_id>")
@require_registry_token(write=True)
def patch(device_id: str) -> Response:
    tenant_id, actor = _actor()
    data = schema.DEVICE_UPDATE.parse(json_body())
    device = get_device(tenant_id, device_id)
    link_code = update_device(device, actor, data)
    return _one(device, link_code)


@bp.delete("/api/v1/devices/<device_id>")
@require_registry_token(write=True)
def remove(device_id: str) -> Response:
    tenant_id, actor = _actor()
    device = get_device(tenant_id, device_id)
    delete_device(device, actor)
    return deleted_response(id=device_id)


# -- linking (seed 000: POST /device/{deviceCode}/link) -------------------------------------------


@bp.post("/api/v1/devices/<link_code>/link")
def link(link_code: str) -> Response:
    """Seed 000's link request. ``userCode`` is seed 000's name for the staff code
    (``staffCode`` is accepted too)."""
    body = schema.LINK.parse(json_body())
    if body.get("staffCode") is not None and body.get("userCode") is not None:
        raise ValidationProblem("Send staffCode or userCode, not both.")  # as the token endpoint
    app_id = body.get("appId")
    staff_code = body.get("staffCode") or body.get("userCode")
    password = body.get("password")
    info = body.get("systemInformation")
    if not app_id or not staff_code or not password:
        raise ValidationProblem("appId, userCode (the staff code) and password are required.")
    client = query_client(app_id)
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
            staff_code=staff_code,
            username=None,
            system_information=info,
            proof=proof,
            ip=request.remote_addr or "-",
            totp_code=body.get("totp"),
        )
    except OAuth2Error as exc:
        return oauth_error_as_problem(exc)
    resp = jsonify(
        token=tokens["access_token"],
        refreshToken=tokens.get("refresh_token"),
        expires=now() + int(tokens["expires_in"]),
        tokenType=tokens["token_type"],
    )
    resp.headers["Cache-Control"] = "no-store"
    return resp


# -- the calling device (seed 000 GET/PUT /device, /device/users; seed 001 /devices/me) -----------


def _my_device_id() -> str:
    token = current_token()
    if token.device_id is None:
        raise ForbiddenProblem("Only a device's own token may call this endpoint.")
    return token.device_id


def _me() -> Device:
    return get_device(current_token().tenant_id, _my_device_id())


@bp.get("/api/v1/devices/me")
@require_device_token("devices:read")
def me() -> Response:
    device, locations = read_device(current_token().tenant_id, _my_device_id())
    return jsonify(data=device_json(device, locations))


@bp.put("/api/v1/devices/me/system-information")
@require_device_token("devices:write")  # a write: devices:read is not enough
def me_system_information() -> Response:
    device = _me()
    body = json_body()
    if set(body) != {"systemInformation"}:
        raise ValidationProblem('The body is {"systemInformation": "..."}.')
    set_system_information(device, schema.SYSTEM_INFORMATION.parse(body)["systemInformation"])
    return Response(status=204)


@bp.patch("/api/v1/devices/me")
@require_device_token("devices:write")
def patch_me() -> Response:
    """The terminal changes what it reports about itself (seed 000 PUT /device, lastOrderUid)."""
    device = _me()
    update_self(device, schema.DEVICE_SELF_UPDATE.parse(json_body()))
    return _one(device)


@bp.get("/api/v1/devices/me/users")
@require_device_token("devices:read")
def me_users() -> Response:
    """Active users who may sign in on this device (seed 000 GET /device/users)."""
    device = _me()
    pagination.only_params("limit", "cursor")
    limit = pagination.limit_or_400(pagination.query_arg("limit"))
    context = f"device-users:{device.id}"
    after = pagination.after_or_400(pagination.query_arg("cursor"), context)
    page = users_for_device(device, after, limit)
    return pagination.page_response(page, context, lambda us: [device_user_json(u) for u in us])
