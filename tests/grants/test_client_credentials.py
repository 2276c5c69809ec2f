"""RFC 6749 §4.4 client credentials with RFC 9068 JWT access tokens, through the token endpoint."""

from __future__ import annotations

import base64
import time

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.conftest import cc_token


def verify_with_jwks(http, token: str):
    jwks = http.get("/oauth/jwks").get_json()
    return jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["ES256", "RS256", "Ed25519"])


def test_basic_auth_issues_rfc9068_jwt_verifiable_with_jwks(http, world, settings):
    creds = world.client()
    resp = cc_token(http, creds, scope="devices:read")
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Pragma"] == "no-cache"
    body = resp.get_json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == settings.access_token_ttl
    assert body["scope"] == "devices:read"
    assert "refresh_token" not in body  # RFC 6749 §4.4.3: SHOULD NOT be included
    tok = verify_with_jwks(http, body["access_token"])
    assert tok.header["typ"] == "at+jwt"
    assert tok.header["alg"] == "ES256"
    assert tok.header["kid"]
    c = tok.claims
    assert c["iss"] == settings.issuer
    assert c["sub"] == creds.client_id
    assert c["client_id"] == creds.client_id
    assert c["aud"] == settings.audience
    assert c["scope"] == "devices:read"
    assert c["tenant"] == creds.tenant_id
    assert c["exp"] - c["iat"] == settings.access_token_ttl
    assert len(c["jti"]) >= 16


def test_each_token_has_its_own_jti(http, world):
    creds = world.client()
    jtis = {
        verify_with_jwks(http, cc_token(http, creds).get_json()["access_token"]).claims["jti"]
        for _ in range(5)
    }
    assert len(jtis) == 5


def test_client_secret_post(http, world):
    creds = world.client(auth_method="client_secret_post")
    resp = http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": creds.client_id,
            "client_secret": creds.client_secret,
        },
    )
    assert resp.status_code == 200, resp.get_json()


def test_client_uses_only_its_registered_method(http, world):
    basic_client = world.client(auth_method="client_secret_basic")
    resp = http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": basic_client.client_id,
            "client_secret": basic_client.client_secret,
        },
    )
    assert resp.status_code in (400, 401)
    assert resp.get_json()["error"] == "invalid_client"

    post_client = world.client(auth_method="client_secret_post")
    resp = cc_token(http, post_client)
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "invalid_client"


def test_wrong_secret_gets_401_with_basic_challenge(http, world):
    creds = world.client()
    creds.client_secret = "wrong-" + creds.client_secret
    resp = cc_token(http, creds)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Basic ")
    body = resp.get_json()
    assert body["error"] == "invalid_client"
    assert creds.client_secret not in resp.get_data(as_text=True)


def test_unknown_client_gets_the_same_answer_as_a_wrong_secret(http, world):
    creds = world.client()
    creds.client_secret = "nope"
    wrong = cc_token(http, creds)
    creds.client_id = "cli_does_not_exist"
    unknown = cc_token(http, creds)
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json() == unknown.get_json()


def test_public_client_cannot_use_client_credentials(http, world):
    tenant = world.tenant()
    # A public client registered for some other grant tries client_credentials.
    pub = world.client(tenant, grant_types=("refresh_token",), auth_method="none")
    resp = http.post(
        "/oauth/token", data={"grant_type": "client_credentials", "client_id": pub.client_id}
    )
    assert resp.status_code in (400, 401)
    assert resp.get_json()["error"] == "invalid_client"


def test_client_not_registered_for_grant_is_unauthorized_client(http, world):
    creds = world.client(grant_types=("refresh_token",))
    resp = cc_token(http, creds)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "unauthorized_client"


def test_scope_beyond_client_is_invalid_scope(http, world):
    creds = world.client(scope="devices:read")
    resp = cc_token(http, creds, scope="devices:read devices:write")
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_scope"
    resp = cc_token(http, creds, scope="admin")
    assert resp.get_json()["error"] == "invalid_scope"


def test_no_scope_requested_grants_the_clients_scopes(http, world):
    creds = world.client(scope="devices:read devices:write")
    body = cc_token(http, creds).get_json()
    assert body["scope"] == "devices:read devices:write"


def test_malformed_scope_is_invalid_scope(http, world):
    creds = world.client()
    # RFC 6749 §3.3: one malformed scope-token among good ones (a quote; an empty token from a
    # double space) is refused as malformed, not merely as a scope the client lacks.
    for scope in ('devices:read "x"', "devices:read  devices:read"):
        resp = cc_token(http, creds, scope=scope)
        assert resp.status_code == 400
        body = resp.get_json()
        assert body["error"] == "invalid_scope"
        assert body["error_description"] == "The scope parameter is malformed.", scope


def test_unknown_grant_type_is_unsupported_grant_type(http, world):
    creds = world.client()
    resp = http.post("/oauth/token", data={"grant_type": "password"}, headers=creds.auth_header())
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "unsupported_grant_type"


def test_inactive_client_cannot_authenticate(http, world, app):
    creds = world.client()
    from authserver.models import Client, db

    with app.app_context():
        db.session.get(Client, creds.client_id).active = False
        db.session.commit()
    resp = cc_token(http, creds)
    assert resp.status_code == 401


def test_failed_authentications_are_throttled(http, world, settings):
    creds = world.client()
    good_secret = creds.client_secret
    creds.client_secret = "wrong"
    statuses = [
        cc_token(http, creds).status_code for _ in range(settings.client_auth_failure_limit)
    ]
    assert set(statuses) == {401}
    over = cc_token(http, creds)
    assert over.status_code == 429
    assert int(over.headers["Retry-After"]) >= 1
    assert over.get_json()["error"] == "invalid_client"
    # While locked, the right secret is refused too from that address (review F10: 429 for
    # wrong and 200 for right would tell the guesser when it hit) ...
    creds.client_secret = good_secret
    locked = cc_token(http, creds)
    assert (locked.status_code, locked.get_json()["error"]) == (429, "invalid_client")
    # ... but only there: the guesser cannot lock the real client out of its own address.
    elsewhere = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=creds.auth_header(),
        environ_overrides={"REMOTE_ADDR": "192.0.2.80"},
    )
    assert elsewhere.status_code == 200


@pytest.mark.parametrize("overrides", [{"client_auth_failure_window": 1}])
def test_throttle_window_expires(http, world, app, clock):
    settings = app.extensions["authserver"].settings
    creds = world.client()
    creds.client_secret = "wrong"
    for _ in range(settings.client_auth_failure_limit):
        cc_token(http, creds)
    assert cc_token(http, creds).status_code == 429
    clock.advance(2)  # the SQL store follows the app clock; Redis expires the key in real time
    deadline = time.monotonic() + 5
    while (status := cc_token(http, creds).status_code) == 429 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status == 401


# -- moved from the security review's regression file ------------------------------------


def test_basic_credentials_with_nul_are_invalid_client(http):
    raw = base64.b64encode(b"%00:x").decode()
    resp = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {raw}"},
    )
    assert resp.status_code == 401
