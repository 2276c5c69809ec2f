"""Customers' devices (seed 003): ``/api/v1/users/me/owned-devices`` and ``.../issued-devices``
for the customer with their own token; ``/api/v1/users/{userId}/...`` for the back office."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from authserver import customer_devices as cd
from authserver import users
from authserver.models import IssuedDevice, OwnedDevice, User
from authserver.registry import pagination, schema
from authserver.registry.access import (
    actor_id,
    require_customer_devices_token,
    require_self_token,
    signed_in_user,
    token_actor,
)
from authserver.registry.bodies import json_body
from authserver.registry.serialize import iso

bp = Blueprint("customer_devices", __name__)


def owned_json(d: OwnedDevice) -> dict[str, Any]:
    return {
        "id": d.id,
        "customerId": d.user_id,
        "externalDeviceIdentifier": d.external_id,
        "status": "ACTIVE" if d.unregistered_at is None else "UNREGISTERED",
        "nickname": d.nickname,
        "operatingSystem": d.operating_system,
        "brandName": d.brand,
        "modelName": d.model,
        "installationId": d.installation_id,
        "pushId": d.push_id,
        "pushExpiresAt": iso(d.push_expires_at),
        "dpopBound": d.dpop_jkt is not None,
        "createdAt": iso(d.created_at),
        "updatedAt": iso(d.updated_at),
        "unregisteredAt": iso(d.unregistered_at),
    }


def issued_json(d: IssuedDevice, history: bool = False) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": d.id,
        "customerId": d.user_id,
        "kind": d.kind,
        "maskedIdentifier": d.masked_identifier,
        "label": d.label,
        "status": d.status,
        "createdAt": iso(d.created_at),
        "createdBy": d.created_by,
        "updatedAt": iso(d.updated_at),
    }
    if history:
        found["statuses"] = [
            {"status": s.status, "changedBy": s.changed_by, "changedAt": iso(s.changed_at),
             "reason": s.reason}
            for s in cd.statuses_of(d)
        ]  # fmt: skip
    return found


def _one(data: dict[str, Any], status: int = 200) -> Response:
    resp = jsonify(data=data)
    resp.status_code = status
    return resp


def _customer(user_id: str) -> User:
    token, _ = token_actor()
    return users.get_in_tenant(token.tenant_id, user_id)


def _owned_page(user_id: str) -> Response:
    pagination.only_params("limit", "cursor", "status")
    limit = pagination.limit_or_400(pagination.query_arg("limit"))
    status = pagination.query_arg("status", ("ACTIVE", "UNREGISTERED"))
    context = f"owned-devices:{user_id}"
    after = pagination.after_or_400(pagination.query_arg("cursor"), context)
    page = cd.list_owned(user_id, status, after, limit)
    return pagination.page_response(page, context, lambda ds: [owned_json(d) for d in ds])


def _issued_page(user_id: str) -> Response:
    pagination.only_params("limit", "cursor", "status")
    limit = pagination.limit_or_400(pagination.query_arg("limit"))
    status = pagination.query_arg("status", cd.ISSUED_STATUSES)
    context = f"issued-devices:{user_id}"
    after = pagination.after_or_400(pagination.query_arg("cursor"), context)
    page = cd.list_issued(user_id, status, after, limit)
    return pagination.page_response(page, context, lambda ds: [issued_json(d) for d in ds])


# -- the customer, with their own token -------------------------------------------------------------


@bp.post("/api/v1/users/me/owned-devices")
@require_self_token()
def register() -> Response:
    token, user = token_actor()
    assert user is not None
    data = schema.OWNED_REGISTER.parse(json_body())
    # A DPoP-bound token's key lives on the device that registers: bound to it from now on.
    return _one(owned_json(cd.register(user, data, token.jkt)), 201)


@bp.get("/api/v1/users/me/owned-devices")
@require_self_token()
def my_owned() -> Response:
    return _owned_page(signed_in_user().id)


@bp.get("/api/v1/users/me/owned-devices/<device_id>")
@require_self_token()
def my_owned_one(device_id: str) -> Response:
    return _one(owned_json(cd.get_owned(signed_in_user(), device_id)))


@bp.patch("/api/v1/users/me/owned-devices/<device_id>")
@require_self_token()
def my_owned_patch(device_id: str) -> Response:
    device = cd.get_owned(signed_in_user(), device_id)
    return _one(owned_json(cd.update_owned(device, schema.OWNED_UPDATE.parse(json_body()))))


@bp.post("/api/v1/users/me/owned-devices/<device_id>/unregister")
@require_self_token()
def my_owned_unregister(device_id: str) -> Response:
    user = signed_in_user()
    return _one(owned_json(cd.unregister(cd.get_owned(user, device_id), user.id)), 202)


@bp.get("/api/v1/users/me/issued-devices")
@require_self_token()
def my_issued() -> Response:
    return _issued_page(signed_in_user().id)


@bp.get("/api/v1/users/me/issued-devices/<device_id>")
@require_self_token()
def my_issued_one(device_id: str) -> Response:
    return _one(issued_json(cd.get_issued(signed_in_user(), device_id), history=True))


# -- the back office ---------------------------------------------------------------------------------


@bp.get("/api/v1/users/<user_id>/owned-devices")
@require_customer_devices_token()
def owned_of(user_id: str) -> Response:
    return _owned_page(_customer(user_id).id)


@bp.get("/api/v1/users/<user_id>/push-targets")
@require_customer_devices_token()
def push_targets(user_id: str) -> Response:
    """Where to send the customer a notification: registered devices, push id not expired."""
    pagination.only_params()
    targets = cd.push_targets(_customer(user_id).id)
    return jsonify(data=[
        {"ownedDeviceId": d.id, "pushId": d.push_id, "pushExpiresAt": iso(d.push_expires_at),
         "operatingSystem": d.operating_system, "installationId": d.installation_id}
        for d in targets
    ])  # fmt: skip


@bp.post("/api/v1/users/<user_id>/owned-devices/<device_id>/unregister")
@require_customer_devices_token(write=True)
def owned_unregister(user_id: str, device_id: str) -> Response:
    device = cd.get_owned(_customer(user_id), device_id)
    return _one(owned_json(cd.unregister(device, actor_id())), 202)


@bp.post("/api/v1/users/<user_id>/issued-devices")
@require_customer_devices_token(write=True)
def issue(user_id: str) -> Response:
    customer = _customer(user_id)
    device = cd.issue(customer, schema.ISSUED_CREATE.parse(json_body()), actor_id())
    return _one(issued_json(device, history=True), 201)


@bp.get("/api/v1/users/<user_id>/issued-devices")
@require_customer_devices_token()
def issued_of(user_id: str) -> Response:
    return _issued_page(_customer(user_id).id)


@bp.get("/api/v1/users/<user_id>/issued-devices/<device_id>")
@require_customer_devices_token()
def issued_one(user_id: str, device_id: str) -> Response:
    return _one(issued_json(cd.get_issued(_customer(user_id), device_id), history=True))


@bp.post("/api/v1/users/<user_id>/issued-devices/<device_id>/status")
@require_customer_devices_token(write=True)
def issued_status(user_id: str, device_id: str) -> Response:
    device = cd.get_issued(_customer(user_id), device_id)
    data = schema.ISSUED_STATUS.parse(json_body())
    changed = cd.change_status(device, data["status"], actor_id(), data.get("reason"))
    return _one(issued_json(changed, history=True))
