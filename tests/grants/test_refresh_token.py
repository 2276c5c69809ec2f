"""Refresh tokens: rotation on every use, reuse revokes the family, DPoP binding, lifetimes."""

from __future__ import annotations

import pytest

from authserver import create_app
from authserver.models import Client, Device, User, db
from tests.device_helpers import approve, kiosk_world, poll, start
from tests.dpop_client import DPoPKey


def enrol(http, world, app, clock, key=None, **kw):
    """A kiosk enrolled through the device flow; returns (client, tokens, tenant, device id)."""
    tenant, client = kiosk_world(world, **kw)
    settings = app.extensions["authserver"].settings
    proof = (
        key.proof("POST", settings.issuer + "/oauth/device_authorization", iat=clock())
        if key
        else None
    )
    body = start(http, client.client_id, proof=proof).get_json()
    done = approve(app, body["user_code"], "admin")
    proof = key.proof("POST", settings.issuer + "/oauth/token", iat=clock()) if key else None
    tokens = poll(http, client.client_id, body["device_code"], proof=proof).get_json()
    assert "refresh_token" in tokens, tokens
    return client, tokens, tenant, done["device_id"]


def refresh(http, client_id, token, proof=None, **form):
    headers = {"DPoP": proof} if proof else {}
    return http.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token,
            "client_id": client_id,
            **form,
        },
        headers=headers,
    )


def active(http, world, tenant, token) -> bool:
    rs = world.client(tenant)
    return http.post(
        "/oauth/introspect", data={"token": token}, headers=rs.auth_header()
    ).get_json()["active"]


def test_rotation_on_every_use(http, world, app, clock):
    client, tokens, _, _ = enrol(http, world, app, clock)
    seen = {tokens["refresh_token"]}
    current = tokens["refresh_token"]
    for _ in range(3):
        resp = refresh(http, client.client_id, current)
        assert resp.status_code == 200, resp.get_json()
        body = resp.get_json()
        assert body["refresh_token"] not in seen
        seen.add(body["refresh_token"])
        current = body["refresh_token"]


def test_reuse_revokes_the_whole_family(http, world, app, clock):
    client, tokens, tenant, _ = enrol(http, world, app, clock)
    old = tokens["refresh_token"]
    new = refresh(http, client.client_id, old).get_json()
    assert active(http, world, tenant, new["access_token"])
    reused = refresh(http, client.client_id, old)
    assert reused.status_code == 400
    assert reused.get_json()["error"] == "invalid_grant"
    for token in (new["refresh_token"], new["access_token"], tokens["access_token"]):
        assert not active(http, world, tenant, token)
    assert (
        refresh(http, client.client_id, new["refresh_token"]).get_json()["error"] == "invalid_grant"
    )


def test_reuse_is_detected_after_a_restart(http, world, app, clock, settings):
    client, tokens, tenant, _ = enrol(http, world, app, clock)
    old = tokens["refresh_token"]
    new = refresh(http, client.client_id, old).get_json()
    restarted = create_app(settings, clock=clock)  # a new process: nothing kept in memory
    http2 = restarted.test_client()
    assert refresh(http2, client.client_id, old).get_json()["error"] == "invalid_grant"
    assert (
        refresh(http2, client.client_id, new["refresh_token"]).get_json()["error"]
        == "invalid_grant"
    )


def test_refresh_token_of_another_client_is_invalid_grant(http, world, app, clock):
    client, tokens, tenant, _ = enrol(http, world, app, clock)
    other = world.client(tenant, grant_types=("refresh_token",), auth_method="none")
    assert (
        refresh(http, other.client_id, tokens["refresh_token"]).get_json()["error"]
        == "invalid_grant"
    )
    # ... and it did not burn the token for its owner.
    assert refresh(http, client.client_id, tokens["refresh_token"]).status_code == 200


def test_public_clients_refresh_token_is_bound_to_the_dpop_key(http, world, app, clock, settings):
    key = DPoPKey()
    client, tokens, _, _ = enrol(http, world, app, clock, key=key)
    url = settings.issuer + "/oauth/token"
    none = refresh(http, client.client_id, tokens["refresh_token"])
    assert none.get_json()["error"] == "invalid_dpop_proof"
    other = refresh(
        http, client.client_id, tokens["refresh_token"], DPoPKey().proof("POST", url, iat=clock())
    )
    assert other.get_json()["error"] == "invalid_dpop_proof"
    ok = refresh(
        http, client.client_id, tokens["refresh_token"], key.proof("POST", url, iat=clock())
    )
    assert ok.status_code == 200
    assert ok.get_json()["token_type"] == "DPoP"


def test_confidential_clients_refresh_token_is_not_bound(http, world, app, clock, settings):
    from tests.device_helpers import DEVICE_GRANT

    tenant = world.tenant()
    world.user(tenant, login="admin", password="correct horse", roles=("TENANT.ADMIN",))
    creds = world.client(tenant, grant_types=(DEVICE_GRANT, "refresh_token"), scope="devices:read")
    key = DPoPKey()
    body = http.post(
        "/oauth/device_authorization",
        data={},
        headers={
            **creds.auth_header(),
            "DPoP": key.proof("POST", settings.issuer + "/oauth/device_authorization"),
        },
    ).get_json()
    approve(app, body["user_code"], "admin")
    tokens = http.post(
        "/oauth/token",
        data={"grant_type": DEVICE_GRANT, "device_code": body["device_code"]},
        headers={
            **creds.auth_header(),
            "DPoP": key.proof("POST", settings.issuer + "/oauth/token"),
        },
    ).get_json()
    assert tokens["token_type"] == "DPoP"  # the access token is bound
    resp = http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=creds.auth_header(),
    )
    assert resp.status_code == 200  # the refresh token is not: the client authenticates
    assert resp.get_json()["token_type"] == "Bearer"


def test_refresh_only_binding(http, world, app, clock, settings):
    key = DPoPKey()
    tenant, client = kiosk_world(world)
    with app.app_context():
        db.session.get(Client, client.client_id).dpop_binding = "refresh_only"
        db.session.commit()
    body = start(
        http,
        client.client_id,
        proof=key.proof("POST", settings.issuer + "/oauth/device_authorization", iat=clock()),
    ).get_json()
    approve(app, body["user_code"], "admin")
    tokens = poll(
        http,
        client.client_id,
        body["device_code"],
        proof=key.proof("POST", settings.issuer + "/oauth/token", iat=clock()),
    ).get_json()
    assert tokens["token_type"] == "Bearer"
    assert (
        refresh(http, client.client_id, tokens["refresh_token"]).get_json()["error"]
        == "invalid_dpop_proof"
    )


@pytest.mark.parametrize("change", ["blocked", "deleted"])
def test_refresh_fails_when_the_device_is_blocked_or_deleted(http, world, app, clock, change):
    client, tokens, _, device_id = enrol(http, world, app, clock)
    with app.app_context():
        device = db.session.get(Device, device_id)
        if change == "blocked":
            device.status = "BLOCKED"
        else:
            device.deleted_at = 1
        db.session.commit()
    assert (
        refresh(http, client.client_id, tokens["refresh_token"]).get_json()["error"]
        == "invalid_grant"
    )


def test_refresh_fails_when_the_user_is_deactivated(http, world, app, clock):
    tenant, client = kiosk_world(world, device_subject="user")
    body = start(http, client.client_id).get_json()
    done = approve(app, body["user_code"], "admin")
    tokens = poll(http, client.client_id, body["device_code"]).get_json()
    with app.app_context():
        db.session.get(User, done["user_id"]).active = False
        db.session.commit()
    assert (
        refresh(http, client.client_id, tokens["refresh_token"]).get_json()["error"]
        == "invalid_grant"
    )


def test_idle_and_absolute_lifetimes(http, world, app, clock, settings):
    client, tokens, _, _ = enrol(http, world, app, clock)
    clock.advance(settings.refresh_token_idle_ttl + 1)
    assert (
        refresh(http, client.client_id, tokens["refresh_token"]).get_json()["error"]
        == "invalid_grant"
    )

    client, tokens, _, _ = enrol(http, world, app, clock)
    current = tokens["refresh_token"]
    elapsed = 0
    while elapsed + settings.refresh_token_idle_ttl // 2 < settings.refresh_token_ttl:
        clock.advance(settings.refresh_token_idle_ttl // 2)
        elapsed += settings.refresh_token_idle_ttl // 2
        current = refresh(http, client.client_id, current).get_json()["refresh_token"]
    clock.advance(settings.refresh_token_ttl - elapsed + 1)
    assert refresh(http, client.client_id, current).get_json()["error"] == "invalid_grant"


def test_scope_may_narrow_not_widen(http, world, app, clock):
    client, tokens, _, _ = enrol(http, world, app, clock, scope="devices:read devices:write")
    narrow = refresh(http, client.client_id, tokens["refresh_token"], scope="devices:read")
    assert narrow.get_json()["scope"] == "devices:read"
    wide = refresh(http, client.client_id, narrow.get_json()["refresh_token"], scope="openid")
    assert wide.get_json()["error"] == "invalid_scope"


def test_refresh_tokens_are_only_issued_to_clients_registered_for_refresh(http, world, app):
    _, client = kiosk_world(world, refresh=False)
    body = start(http, client.client_id).get_json()
    approve(app, body["user_code"], "admin")
    tokens = poll(http, client.client_id, body["device_code"]).get_json()
    assert "access_token" in tokens and "refresh_token" not in tokens
