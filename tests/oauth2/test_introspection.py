"""RFC 7662 introspection of our JWT access tokens and opaque refresh tokens."""

from __future__ import annotations

from authserver.models import Device, RefreshFamily, db
from tests.conftest import cc_token
from tests.device_helpers import approve, kiosk_world, poll, start
from tests.oauth2.refresh_factory import make_refresh_token

INACTIVE = {"active": False}


def introspect(http, creds, token, **extra):
    return http.post(
        "/oauth/introspect", data={"token": token, **extra}, headers=creds.auth_header()
    )


def test_active_access_token_shows_rfc7662_members(http, world, settings):
    creds = world.client()
    token = cc_token(http, creds, scope="devices:read").get_json()["access_token"]
    resp = introspect(http, creds, token)
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    body = resp.get_json()
    assert body["active"] is True
    assert body["client_id"] == creds.client_id
    assert body["scope"] == "devices:read"
    assert body["sub"] == creds.client_id
    assert body["aud"] == settings.audience
    assert body["iss"] == settings.issuer
    assert body["token_type"] == "Bearer"
    assert body["tenant"] == creds.tenant_id
    assert body["exp"] - body["iat"] == settings.access_token_ttl
    assert "cnf" not in body


def test_resource_server_of_same_tenant_may_introspect(http, world):
    issuer_client = world.client()
    resource_server = world.client(issuer_client.tenant_id)
    token = cc_token(http, issuer_client).get_json()["access_token"]
    assert introspect(http, resource_server, token).get_json()["active"] is True


def test_other_tenant_sees_inactive(http, world):
    creds = world.client()
    stranger = world.client()  # its own tenant
    token = cc_token(http, creds).get_json()["access_token"]
    assert introspect(http, stranger, token).get_json() == INACTIVE


def test_revoked_expired_unknown_forged_are_inactive_and_nothing_else(http, world, clock, settings):
    creds = world.client()
    revoked = cc_token(http, creds).get_json()["access_token"]
    http.post("/oauth/revoke", data={"token": revoked}, headers=creds.auth_header())
    assert introspect(http, creds, revoked).get_json() == INACTIVE
    assert introspect(http, creds, "not-a-token").get_json() == INACTIVE
    header, payload, sig = cc_token(http, creds).get_json()["access_token"].split(".")
    assert introspect(http, creds, f"{header}.{payload}.{sig[:-4]}AAAA").get_json() == INACTIVE

    live = cc_token(http, creds).get_json()["access_token"]
    clock.advance(settings.access_token_ttl + 1)
    assert introspect(http, creds, live).get_json() == INACTIVE


def test_unknown_hint_is_ignored(http, world):
    creds = world.client()
    token = cc_token(http, creds).get_json()["access_token"]
    assert introspect(http, creds, token, token_type_hint="refresh_token").get_json()["active"]
    assert introspect(http, creds, token, token_type_hint="weird").get_json()["active"]


def test_unauthenticated_introspection_is_refused(http, world):
    creds = world.client()
    token = cc_token(http, creds).get_json()["access_token"]
    resp = http.post("/oauth/introspect", data={"token": token})
    assert resp.status_code in (400, 401)
    assert resp.get_json()["error"] == "invalid_client"
    assert "active" not in resp.get_json()


def test_public_client_cannot_introspect(http, world):
    creds = world.client()
    pub = world.client(creds.tenant_id, grant_types=("refresh_token",), auth_method="none")
    token = cc_token(http, creds).get_json()["access_token"]
    resp = http.post("/oauth/introspect", data={"token": token, "client_id": pub.client_id})
    assert resp.get_json()["error"] == "invalid_client"


def test_missing_token_is_invalid_request(http, world):
    creds = world.client()
    resp = http.post("/oauth/introspect", data={}, headers=creds.auth_header())
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_request"


def test_refresh_token_introspection(http, world, app):
    creds = world.client(grant_types=("client_credentials", "refresh_token"))
    refresh = make_refresh_token(app, creds, jkt="thumb")
    body = introspect(http, creds, refresh).get_json()
    assert body["active"] is True
    assert body["client_id"] == creds.client_id
    assert body["cnf"] == {"jkt": "thumb"}
    assert "token_type" not in body  # RFC 7662 token_type names access-token types


# -- moved from the security review's regression file ------------------------------------


def test_access_token_of_a_revoked_family_is_inactive_everywhere(http, world, app):
    tenant, client = kiosk_world(world)
    body = start(http, client.client_id).get_json()
    approve(app, body["user_code"], "admin")
    tokens = poll(http, client.client_id, body["device_code"]).get_json()
    with app.app_context():  # the family revoked as reuse detection or RFC 7009 revokes it
        from authserver.tokens import revoke_family

        revoke_family(db.session.scalars(db.select(RefreshFamily.id)).one(), "test")
        db.session.commit()
    rs = world.client(tenant)
    intro = http.post(
        "/oauth/introspect", data={"token": tokens["access_token"]}, headers=rs.auth_header()
    ).get_json()
    assert intro == {"active": False}


def test_introspection_of_a_blocked_devices_token_is_inactive(http, world, app):
    tenant, client = kiosk_world(world)
    body = start(http, client.client_id).get_json()
    device_id = approve(app, body["user_code"], "admin")["device_id"]
    tokens = poll(http, client.client_id, body["device_code"]).get_json()
    with app.app_context():  # blocked through the registry service, as every channel does
        from authserver.devices import update_device

        update_device(db.session.get(Device, device_id), "test", {"status": "BLOCKED"})
    rs = world.client(tenant)
    for token in (tokens["access_token"], tokens["refresh_token"]):
        intro = http.post(
            "/oauth/introspect", data={"token": token}, headers=rs.auth_header()
        ).get_json()
        assert intro == {"active": False}
