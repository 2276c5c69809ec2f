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


@pytest.mark.parametrize(
    ("field", "column", "code"),
    [("tillId", "till_id", "invalid_till"), ("name", "name", "invalid_name")],
)
def test_till_ids_and_names_are_1_to_100_plain_characters(http, world, app, field, column, code):
    """decide() itself holds the rule (F9, F12), so every channel gets it: here the API, which
    checks only the type. A refused label leaves the code pending; 1 and 100 characters pass."""
    from authserver.models import Device, db

    tenant, kiosk = kiosk_world(world)
    token = service_token(http, world, tenant)
    for bad in ("", "x" * 101, "Till\n1"):  # a line break passes the body check only
        code_ = start(http, kiosk.client_id).get_json()
        resp = api(http, token, code_["user_code"], {"decision": "approve", field: bad})
        assert resp.status_code == 400, (bad, resp.get_json())
        assert resp.get_json()["code"] == code
        assert resp.get_json()["detail"].startswith(
            ("A till id ", "A device name ")[column == "name"]
        )
        assert (
            poll(http, kiosk.client_id, code_["device_code"]).get_json()["error"]
            == "authorization_pending"
        )
    for good in ("T", "T" * 100):
        code_ = start(http, kiosk.client_id).get_json()
        resp = api(http, token, code_["user_code"], {"decision": "approve", field: good})
        assert resp.status_code == 200, resp.get_json()
        with app.app_context():
            device = db.session.get(Device, resp.get_json()["data"]["deviceId"])
            assert getattr(device, column) == good


def test_the_location_must_be_one_of_the_codes_tenant(http, world, app):
    """decide() checks the location itself: unknown or another tenant's is invalid_location
    (and the code stays pending); the tenant's own is recorded on the enrolled device."""
    from authserver.devices import locations_of
    from authserver.models import Location, db
    from authserver.security import new_id, now

    tenant, kiosk = kiosk_world(world)
    other = world.tenant()
    ids = {}
    with app.app_context():
        for owner in (tenant, other):
            ids[owner] = new_id("loc")
            db.session.add(
                Location(
                    id=ids[owner],
                    tenant_id=owner,
                    name="Store",
                    kind="store",
                    created_at=now(),
                    updated_at=now(),
                )
            )
        db.session.commit()
    token = service_token(http, world, tenant)
    for location in ("loc_unknown", ids[other]):
        code = start(http, kiosk.client_id).get_json()
        resp = api(http, token, code["user_code"], {"decision": "approve", "locationId": location})
        assert resp.status_code == 400 and resp.get_json()["code"] == "invalid_location"
        assert (
            poll(http, kiosk.client_id, code["device_code"]).get_json()["error"]
            == "authorization_pending"
        )
    code = start(http, kiosk.client_id).get_json()
    resp = api(http, token, code["user_code"], {"decision": "approve", "locationId": ids[tenant]})
    assert resp.status_code == 200, resp.get_json()
    with app.app_context():
        device_id = resp.get_json()["data"]["deviceId"]
        assert locations_of([device_id]) == {device_id: [ids[tenant]]}
