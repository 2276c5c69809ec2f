"""POST /api/v1/device-authorizations/{userCode}: the back office approves or denies a device."""

from __future__ import annotations

import pytest

from tests.conftest import cc_token
from tests.device_helpers import DEVICE_GRANT, approve, kiosk_world, poll, start

PATH = "/api/v1/device-authorizations/"


def api(http, token, code, body):
    return http.post(PATH + code, json=body, headers={"Authorization": f"Bearer {token}"})


def service_token(http, world, tenant, scope="devices:read devices:write"):
    creds = world.client(tenant, scope=scope)
    return cc_token(http, creds, scope=scope).get_json()["access_token"]


def user_token(http, world, app, tenant, login, roles):
    """A user token from a sign-in on a shared screen (device flow, subject = user)."""
    world.user(tenant, login=login, password="correct horse", roles=roles)
    signin = world.client(
        tenant, grant_types=(DEVICE_GRANT,), auth_method="none", scope="devices:read devices:write"
    )
    from authserver.models import Client, db

    with app.app_context():
        db.session.get(Client, signin.client_id).device_subject = "user"
        db.session.commit()
    body = start(http, signin.client_id).get_json()
    approve(app, body["user_code"], login)
    return poll(http, signin.client_id, body["device_code"]).get_json()["access_token"]


def test_service_token_approves_a_kiosk_enrolment(http, world, app):
    tenant, kiosk = kiosk_world(world)
    token = service_token(http, world, tenant)
    code = start(http, kiosk.client_id).get_json()
    resp = api(
        http,
        token,
        code["user_code"],
        {"decision": "approve", "tillId": "T4", "name": "Front kiosk"},
    )
    assert resp.status_code == 200, resp.get_json()
    data = resp.get_json()["data"]
    assert data["decision"] == "approved" and data["deviceId"].startswith("dev_")
    tokens = poll(http, kiosk.client_id, code["device_code"]).get_json()
    assert "access_token" in tokens


def test_deny(http, world):
    tenant, kiosk = kiosk_world(world)
    code = start(http, kiosk.client_id).get_json()
    resp = api(http, service_token(http, world, tenant), code["user_code"], {"decision": "deny"})
    assert resp.get_json()["data"]["decision"] == "denied"
    assert poll(http, kiosk.client_id, code["device_code"]).get_json()["error"] == "access_denied"


def test_another_tenants_token_sees_no_such_code(http, world):
    _, kiosk = kiosk_world(world)
    code = start(http, kiosk.client_id).get_json()
    stranger = service_token(http, world, world.tenant())
    resp = api(http, stranger, code["user_code"], {"decision": "approve"})
    assert resp.status_code == 404
    assert resp.content_type == "application/problem+json"
    assert (
        poll(http, kiosk.client_id, code["device_code"]).get_json()["error"]
        == "authorization_pending"
    )


def test_read_scope_is_not_enough(http, world):
    tenant, kiosk = kiosk_world(world)
    code = start(http, kiosk.client_id).get_json()
    token = service_token(http, world, tenant, scope="devices:read")
    resp = api(http, token, code["user_code"], {"decision": "approve"})
    assert resp.status_code == 403
    assert 'error="insufficient_scope"' in resp.headers["WWW-Authenticate"]


def test_no_token_is_401(http, world):
    resp = http.post(PATH + "BBBBB-BBBBB", json={"decision": "approve"})
    assert resp.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {"decision": "maybe"},
        {"decision": "approve", "extra": 1},
        {"decision": "approve", "tillId": 7},
    ],
)
def test_bad_bodies_are_400_problems(http, world, body):
    tenant, kiosk = kiosk_world(world)
    code = start(http, kiosk.client_id).get_json()
    resp = http.post(
        PATH + code["user_code"],
        json=body,
        headers={"Authorization": f"Bearer {service_token(http, world, tenant)}"},
    )
    assert resp.status_code == 400
    assert resp.content_type == "application/problem+json"
    assert resp.get_json()["status"] == 400


def test_service_token_cannot_approve_a_persons_sign_in(http, world):
    tenant, signin = kiosk_world(world, device_subject="user")
    code = start(http, signin.client_id).get_json()
    resp = api(http, service_token(http, world, tenant), code["user_code"], {"decision": "approve"})
    assert resp.status_code == 409
    assert resp.get_json()["code"] == "user_required"


def test_user_token_needs_a_role(http, world, app):
    tenant, kiosk = kiosk_world(world)
    plain = user_token(http, world, app, tenant, "clerk", ())
    code = start(http, kiosk.client_id).get_json()
    assert api(http, plain, code["user_code"], {"decision": "approve"}).status_code == 403
    manager = user_token(http, world, app, tenant, "manager", ("DEVICE.MANAGER",))
    resp = api(http, manager, code["user_code"], {"decision": "approve"})
    assert resp.status_code == 200
    assert resp.get_json()["data"]["decidedBy"].startswith("usr_")


def test_unknown_codes_are_limited_per_client(http, world):
    tenant, _ = kiosk_world(world)
    token = service_token(http, world, tenant)
    statuses = [
        api(http, token, "BBBBB-BBBBB", {"decision": "approve"}).status_code for _ in range(11)
    ]
    assert statuses[:10] == [404] * 10
    assert statuses[10] == 429
