"""The calling device: /api/v1/devices/me, its system information, its users, its activity."""

from __future__ import annotations

from authserver.models import Device, db


def test_me_for_a_dpop_bound_device_token(reg):
    t = reg.tenant()
    device, tokens, key = reg.linked_device(t)
    resp = reg.call("GET", "/api/v1/devices/me", tokens["access_token"], key=key)
    assert resp.status_code == 200
    assert resp.get_json()["data"]["id"] == device["id"]


def test_me_refuses_service_tokens_and_bearer(reg):
    t = reg.tenant()
    service = reg.service_token(t)
    # Seed 001: a service token is refused with 403 (it is valid, just not a device's).
    refused = reg.call("GET", "/api/v1/devices/me", service)
    assert refused.status_code == 403 and refused.get_json()["status"] == 403
    from tests.dpop_client import DPoPKey

    key = DPoPKey()
    bound_service = reg.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={
            **t.service.auth_header(),
            "DPoP": key.proof("POST", reg.settings.issuer + "/oauth/token"),
        },
    ).get_json()["access_token"]
    resp = reg.call("GET", "/api/v1/devices/me", bound_service, key=key)
    assert resp.status_code == 403
    _, tokens, dkey = reg.linked_device(t)
    assert reg.call("GET", "/api/v1/devices/me", tokens["access_token"]).status_code == 401


def test_put_system_information(reg):
    t = reg.tenant()
    device, tokens, key = reg.linked_device(t)
    resp = reg.call(
        "PUT",
        "/api/v1/devices/me/system-information",
        tokens["access_token"],
        key=key,
        json={"systemInformation": "Linux pos 6.6 #1 SMP"},
    )
    assert resp.status_code == 204
    data = reg.call("GET", f"/api/v1/devices/{device['id']}", reg.service_token(t)).get_json()[
        "data"
    ]
    assert data["systemInformation"] == "Linux pos 6.6 #1 SMP"
    bad = reg.call(
        "PUT",
        "/api/v1/devices/me/system-information",
        tokens["access_token"],
        key=key,
        json={"systemInformation": 5},
    )
    assert bad.status_code == 400


def test_writing_system_information_needs_devices_write(reg, world):
    """A write is not allowed with devices:read alone (review, "also found")."""
    t = reg.tenant()
    read_only = world.client(
        t.id,
        grant_types=("urn:authserver:params:oauth:grant-type:link-code",),
        auth_method="none",
        scope="devices:read",
    )
    t.pos = read_only
    device, tokens, key = reg.linked_device(t)
    token = tokens["access_token"]
    assert reg.call("GET", "/api/v1/devices/me", token, key=key).status_code == 200
    resp = reg.call(
        "PUT",
        "/api/v1/devices/me/system-information",
        token,
        key=key,
        json={"systemInformation": "tampered"},
    )
    assert resp.status_code == 403 and resp.get_json()["error"] == "insufficient_scope"
    data = reg.call("GET", f"/api/v1/devices/{device['id']}", reg.service_token(t)).get_json()
    assert data["data"]["systemInformation"] != "tampered"


def test_users_who_may_sign_in_on_the_device(reg, world):
    t = reg.tenant()
    token = reg.service_token(t)
    north = reg.call("POST", "/api/v1/locations", token, json={"name": "North"}).get_json()
    south = reg.call("POST", "/api/v1/locations", token, json={"name": "South"}).get_json()
    north_id, south_id = north["data"]["id"], south["data"]["id"]
    world.user(t.id, login="nina", password="correct horse", roles=(f"CASHIER@{north_id}",))
    world.user(t.id, login="sam", password="correct horse", roles=(f"CASHIER@{south_id}",))
    world.user(t.id, login="nobody", password="correct horse", roles=())
    device, tokens, key = reg.linked_device(t)
    reg.call("PATCH", f"/api/v1/devices/{device['id']}", token, json={"locationIds": [north_id]})
    resp = reg.call("GET", "/api/v1/devices/me/users?limit=1", tokens["access_token"], key=key)
    body = resp.get_json()
    assert [u["login"] for u in body["data"]] == ["admin"] and body["hasMore"]
    logins = ["admin"]
    cursor = body["nextCursor"]
    while cursor:
        page = reg.call(
            "GET",
            f"/api/v1/devices/me/users?limit=1&cursor={cursor}",
            tokens["access_token"],
            key=key,
        ).get_json()
        logins += [u["login"] for u in page["data"]]
        cursor = page["nextCursor"]
    assert logins == ["admin", "nina"]  # tenant-wide admin, and the cashier of its location


def test_last_activity_is_written_at_most_once_a_minute(reg, app, clock):
    t = reg.tenant()
    device, tokens, key = reg.linked_device(t)

    def last_activity():
        with app.app_context():
            return db.session.get(Device, device["id"]).last_activity_at

    reg.call("GET", "/api/v1/devices/me", tokens["access_token"], key=key)
    first = last_activity()
    assert first is not None
    clock.advance(30)
    reg.call("GET", "/api/v1/devices/me", tokens["access_token"], key=key)
    assert last_activity() == first
    clock.advance(31)
    reg.call("GET", "/api/v1/devices/me", tokens["access_token"], key=key)
    assert last_activity() > first


def test_whether_a_device_token_must_be_dpop_bound_is_its_clients(reg, world):
    from authserver.models import Client
    from tests.device_helpers import approve, kiosk_world, poll, start

    # A device-flow client not registered as DPoP-bound: its kiosk may use a Bearer token.
    tenant, kiosk = kiosk_world(world)
    body = start(reg.http, kiosk.client_id).get_json()
    approve(reg.app, body["user_code"], "admin")
    token = poll(reg.http, kiosk.client_id, body["device_code"]).get_json()
    assert token["token_type"] == "Bearer"
    me = reg.call("GET", "/api/v1/devices/me", token["access_token"])
    assert me.status_code == 200 and me.get_json()["data"]["origin"] == "device_flow"
    # The operator registers the client as DPoP-bound: its Bearer tokens stop at the device's
    # own endpoints at once (and it gets no new ones without a proof).
    with reg.app.app_context():
        db.session.get(Client, kiosk.client_id).dpop_bound = True
        db.session.commit()
    refused = reg.call("GET", "/api/v1/devices/me", token["access_token"])
    assert refused.status_code == 401
    assert "DPoP" in refused.headers["WWW-Authenticate"]


def test_a_link_code_terminal_always_needs_dpop(reg):
    t = reg.tenant()
    device = reg.create_device(t, status="READY_TO_LINK", appCode="CLIENT")
    linked = reg.link(t, device["linkCode"])  # no proof: the grant gives a Bearer token
    assert linked.status_code == 200 and linked.get_json()["token_type"] == "Bearer"
    refused = reg.call("GET", "/api/v1/devices/me", linked.get_json()["access_token"])
    assert refused.status_code == 401 and refused.get_json()["error"] == "invalid_token"
    assert "A DPoP-bound token is required." in refused.get_json()["detail"]
