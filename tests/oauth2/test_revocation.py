"""RFC 7009 revocation: immediate, owner-only, unknown tokens accepted, families revoked whole."""

from __future__ import annotations

from tests.conftest import cc_token
from tests.oauth2.refresh_factory import make_refresh_token


def revoke(http, creds, token, **extra):
    return http.post("/oauth/revoke", data={"token": token, **extra}, headers=creds.auth_header())


def active(http, creds, token):
    return http.post(
        "/oauth/introspect", data={"token": token}, headers=creds.auth_header()
    ).get_json()["active"]


def test_revoked_access_token_is_refused_on_the_next_request(http, world):
    creds = world.client()
    token = cc_token(http, creds).get_json()["access_token"]
    sibling = cc_token(http, creds).get_json()["access_token"]
    stranger = world.client()
    theirs = cc_token(http, stranger).get_json()["access_token"]
    assert active(http, creds, token)
    resp = revoke(http, creds, token, token_type_hint="access_token")
    assert resp.status_code == 200
    assert resp.get_json() == {}
    assert not active(http, creds, token)
    # Bystanders: the client's other token, another tenant's token.
    assert active(http, creds, sibling) and active(http, stranger, theirs)


def test_unknown_token_is_200(http, world):
    creds = world.client()
    assert revoke(http, creds, "never-issued").status_code == 200
    assert revoke(http, creds, "a.b.c").status_code == 200


def test_only_the_owning_client_can_revoke(http, world):
    owner = world.client()
    other = world.client(owner.tenant_id)
    token = cc_token(http, owner).get_json()["access_token"]
    resp = revoke(http, other, token)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_grant"
    assert active(http, owner, token)


def test_revocation_requires_client_authentication(http, world):
    creds = world.client()
    token = cc_token(http, creds).get_json()["access_token"]
    resp = http.post("/oauth/revoke", data={"token": token})
    assert resp.get_json()["error"] == "invalid_client"
    assert active(http, creds, token)


def test_revoking_a_refresh_token_revokes_its_family_and_access_tokens(http, world, app):
    creds = world.client(grant_types=("client_credentials", "refresh_token"))
    refresh, access = make_refresh_token(app, creds, with_access=True)
    other_refresh, other_access = make_refresh_token(app, creds, with_access=True)
    plain = cc_token(http, creds).get_json()["access_token"]
    assert active(http, creds, access)
    assert revoke(http, creds, refresh, token_type_hint="refresh_token").status_code == 200
    assert not active(http, creds, refresh)
    assert not active(http, creds, access)
    # Bystanders: the same client's other family and its token outside any family.
    assert active(http, creds, other_refresh) and active(http, creds, other_access)
    assert active(http, creds, plain)


def test_public_client_revokes_with_client_id(http, world, app):
    pub = world.client(grant_types=("refresh_token",), auth_method="none", scope="devices:read")
    refresh = make_refresh_token(app, pub)
    other = make_refresh_token(app, pub)
    resp = http.post("/oauth/revoke", data={"token": refresh, "client_id": pub.client_id})
    assert resp.status_code == 200
    resource = world.client(pub.tenant_id)
    assert not active(http, resource, refresh)
    assert active(http, resource, other)  # bystander: the client's other family
