"""Real client libraries against a real server, written as a user of each library would write
them: Authlib's ``OAuth2Session`` (requests) and ``AsyncOAuth2Client`` (httpx), requests-oauthlib's
``BackendApplicationClient`` and ``DeviceClient``, and our DPoP helper for ``requests`` and the
kiosk CLI. The server asks for DPoP nonces (RFC 9449 §8, §9) at the token endpoint and at
resources, so every DPoP client here has to follow that dance.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import requests
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from oauthlib.oauth2 import BackendApplicationClient, DeviceClient
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from authserver.dpop_client import DPoPKey, RequestsDPoPAuth
from tests.conftest import make_env, start_server, stop_server
from tests.device_helpers import kiosk_login

pytestmark = pytest.mark.processes
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = make_env(
        tmp_path_factory.mktemp("libs") / "instance",
        AUTHSERVER_DPOP_NONCE="token,resource",
        AUTHSERVER_DEVICE_POLL_INTERVAL="1",
    )
    srv = start_server(env)
    try:
        tenant = srv.cli("tenants", "create", "Libraries")
        srv.cli("users", "create", "--tenant", tenant["id"], "--login", "admin",
                "--password", "correct horse", "--role", "TENANT.ADMIN")  # fmt: skip
        srv.tenant = tenant
        srv.service = srv.cli("clients", "create", "--tenant", tenant["id"], "--name", "svc",
                              "--grant-type", "client_credentials",
                              "--scope", "devices:read devices:write")  # fmt: skip
        srv.kiosk = srv.cli("clients", "create", "--tenant", tenant["id"], "--name", "Kiosk",
                            "--public", "--grant-type", DEVICE_GRANT,
                            "--grant-type", "refresh_token", "--scope", "devices:read")  # fmt: skip
        yield srv
    finally:
        stop_server(srv)


def introspect(server, token: str) -> dict:
    creds = (server.service["client_id"], server.service["client_secret"])
    resp = requests.post(f"{server.url}/oauth/introspect", data={"token": token}, auth=creds)
    assert resp.status_code == 200
    return resp.json()


def test_authlib_oauth2session_client_credentials_introspection_revocation(server):
    svc = server.service
    session = AuthlibSession(svc["client_id"], svc["client_secret"], scope="devices:read")
    token = session.fetch_token(f"{server.url}/oauth/token", grant_type="client_credentials")
    assert token["token_type"] == "Bearer" and token["scope"] == "devices:read"
    assert session.get(f"{server.url}/api/v1/devices?limit=5").status_code == 200

    found = session.introspect_token(f"{server.url}/oauth/introspect", token=token["access_token"])
    assert found.json()["active"] is True and found.json()["client_id"] == svc["client_id"]
    assert session.revoke_token(f"{server.url}/oauth/revoke", token=token["access_token"]).ok
    assert introspect(server, token["access_token"]) == {"active": False}
    assert session.get(f"{server.url}/api/v1/devices?limit=5").status_code == 401


def test_authlib_async_httpx_client_credentials(server):
    svc = server.service

    async def run() -> tuple[dict, int]:
        async with AsyncOAuth2Client(svc["client_id"], svc["client_secret"]) as client:
            token = await client.fetch_token(
                f"{server.url}/oauth/token", grant_type="client_credentials"
            )
            resp = await client.get(f"{server.url}/api/v1/devices?limit=5")
            return token, resp.status_code

    token, status = asyncio.run(run())
    assert token["token_type"] == "Bearer" and status == 200
    assert introspect(server, token["access_token"])["active"] is True


@pytest.fixture
def plain_http(monkeypatch):
    """oauthlib refuses http:// unless told this is a local test (its documented switch)."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def test_requests_oauthlib_backend_application_client(server, plain_http):
    svc = server.service
    session = OAuth2Session(client=BackendApplicationClient(client_id=svc["client_id"]))
    token = session.fetch_token(
        f"{server.url}/oauth/token",
        auth=HTTPBasicAuth(svc["client_id"], svc["client_secret"]),
        scope=["devices:read"],
    )
    assert token["scope"] == ["devices:read"]  # requests-oauthlib splits the scope
    assert session.get(f"{server.url}/api/v1/devices?limit=5").status_code == 200


def approve_when_asked(server, user_code: str) -> None:
    server.cli("device", "approve", user_code, "--user", "admin")


def test_requests_oauthlib_device_client_then_refresh(server, plain_http):
    kiosk = server.kiosk["client_id"]
    start = requests.post(
        f"{server.url}/oauth/device_authorization", data={"client_id": kiosk}
    ).json()
    session = OAuth2Session(client=DeviceClient(client_id=kiosk))
    pending = requests.post(
        f"{server.url}/oauth/token",
        data={"grant_type": DEVICE_GRANT, "device_code": start["device_code"], "client_id": kiosk},
    )
    assert pending.status_code == 400 and pending.json()["error"] == "authorization_pending"
    approve_when_asked(server, start["user_code"])
    time.sleep(1)  # the interval
    token = session.fetch_token(
        f"{server.url}/oauth/token", device_code=start["device_code"], include_client_id=True
    )
    assert token["token_type"] == "Bearer" and token["refresh_token"]
    assert introspect(server, token["access_token"])["client_id"] == kiosk
    renewed = session.refresh_token(f"{server.url}/oauth/token", client_id=kiosk)
    assert renewed["refresh_token"] != token["refresh_token"]  # rotated
    assert introspect(server, renewed["access_token"])["active"] is True
    # The old refresh token is spent: using it again revokes the family (reuse detection).
    reused = requests.post(
        f"{server.url}/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"],
              "client_id": kiosk},
    )  # fmt: skip
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert introspect(server, renewed["access_token"]) == {"active": False}


def test_the_dpop_helper_for_requests_follows_the_nonce_dance(server):
    svc, key = server.service, DPoPKey()
    http = requests.Session()
    resp = http.post(
        f"{server.url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=RequestsDPoPAuth(key),
        headers={
            "Authorization": requests.auth._basic_auth_str(svc["client_id"], svc["client_secret"])
        },  # fmt: skip
    )
    assert resp.status_code == 200, resp.text
    assert [r.status_code for r in resp.history] == [400]  # use_dpop_nonce, then the retry
    token = resp.json()
    assert token["token_type"] == "DPoP"
    assert introspect(server, token["access_token"])["cnf"] == {"jkt": key.jkt}

    auth = RequestsDPoPAuth(key, access_token=token["access_token"])
    first = http.get(f"{server.url}/api/v1/devices?limit=5", auth=auth)
    assert first.status_code == 200, first.text
    assert [r.status_code for r in first.history] == [401]  # the resource's nonce
    again = http.get(f"{server.url}/api/v1/devices?limit=5", auth=auth)
    assert again.status_code == 200 and again.history == []  # the nonce was kept
    # Bearer with a DPoP-bound token is refused (RFC 9449 §7.2).
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert http.get(f"{server.url}/api/v1/devices?limit=5", headers=bearer).status_code == 401


def test_the_kiosk_cli_with_dpop_follows_the_nonce_dance(server):
    status, body, _ = kiosk_login(
        server, "Nonce kiosk", lambda code: approve_when_asked(server, code)
    )
    assert status == 0, body
    assert body["token_type"] == "DPoP"
    assert introspect(server, body["access_token"])["active"] is True


# -- sign-in for apps: the authorization code flow -------------------------------------------------


def _browser_signs_in(server, authorization_url: str) -> str:
    """What a person's browser does: open the URL, sign in on the page; returns where the
    server sent the browser back to (the app's redirect URI with the code)."""
    import re

    browser = requests.Session()
    page = browser.get(authorization_url, allow_redirects=False)
    assert page.status_code == 200, page.text
    field = {n: re.search(rf'name="{n}" value="([^"]+)"', page.text).group(1)
             for n in ("csrf", "interaction")}  # fmt: skip
    back = browser.post(f"{server.url}/oauth/authorize/continue", allow_redirects=False,
                        data={**field, "action": "login", "login": "admin",
                              "password": "correct horse"})  # fmt: skip
    assert back.status_code == 303, back.text
    return back.headers["Location"]


def test_authlib_oauth2session_code_flow_with_pkce_oidc_and_refresh(server):
    """Authlib's OAuth2Session as a web app uses it: PKCE S256, state, the code at the token
    endpoint, the ID token checked with Authlib's CodeIDToken against the published keys,
    userinfo, then a refresh."""
    from authlib.common.security import generate_token
    from authlib.oidc.core import CodeIDToken
    from joserfc import jwt
    from joserfc.jwk import KeySet

    web = server.cli("clients", "create", "--tenant", server.tenant["id"], "--name", "Web",
                     "--grant-type", "authorization_code", "--grant-type", "refresh_token",
                     "--scope", "openid profile", "--first-party",
                     "--redirect-uri", "http://127.0.0.1/callback")  # fmt: skip
    session = AuthlibSession(
        web["client_id"], web["client_secret"], scope="openid profile",
        redirect_uri="http://127.0.0.1:8765/callback", code_challenge_method="S256",
    )  # fmt: skip
    verifier, nonce = generate_token(48), generate_token(20)
    url, _ = session.create_authorization_url(
        f"{server.url}/oauth/authorize", code_verifier=verifier, nonce=nonce
    )
    location = _browser_signs_in(server, url)
    assert location.startswith("http://127.0.0.1:8765/callback?")
    assert f"iss={requests.utils.quote(server.url, safe='')}" in location  # RFC 9207
    token = session.fetch_token(
        f"{server.url}/oauth/token", authorization_response=location, code_verifier=verifier
    )
    keys = KeySet.import_key_set(requests.get(f"{server.url}/oauth/jwks").json())
    decoded = jwt.decode(token["id_token"], keys)
    claims = CodeIDToken(
        decoded.claims, decoded.header,
        options={"iss": {"essential": True, "value": server.url},
                 "aud": {"essential": True, "value": web["client_id"]}},
        params={"nonce": nonce, "client_id": web["client_id"],
                "access_token": token["access_token"]},
    )  # fmt: skip
    claims.validate()  # signature above; iss, aud, exp, iat, nonce, at_hash here
    assert claims["amr"] == ["pwd"]
    info = session.get(f"{server.url}/oauth/userinfo")
    assert info.status_code == 200 and info.json()["sub"] == claims["sub"]
    refreshed = session.refresh_token(f"{server.url}/oauth/token")
    assert refreshed["access_token"] != token["access_token"]
    assert refreshed["refresh_token"] != token["refresh_token"]
    # The code again (a replayed callback): refused, and what it gave is revoked.
    with pytest.raises(Exception, match="invalid_grant"):
        session.fetch_token(f"{server.url}/oauth/token", authorization_response=location,
                            code_verifier=verifier)  # fmt: skip
    assert introspect(server, refreshed["access_token"]) == {"active": False}


def test_a_native_app_signs_in_with_a_loopback_redirect_on_any_port(server):
    """RFC 8252: a public client, PKCE, a loopback redirect on the port the app opened."""
    from authlib.common.security import generate_token

    app = server.cli("clients", "create", "--tenant", server.tenant["id"], "--name", "Phone",
                     "--public", "--grant-type", "authorization_code", "--scope", "openid",
                     "--first-party", "--redirect-uri", "http://127.0.0.1/cb")  # fmt: skip
    session = AuthlibSession(app["client_id"], scope="openid", code_challenge_method="S256",
                             redirect_uri="http://127.0.0.1:49152/cb",
                             token_endpoint_auth_method="none")  # fmt: skip
    verifier = generate_token(64)
    url, _ = session.create_authorization_url(f"{server.url}/oauth/authorize",
                                              code_verifier=verifier)  # fmt: skip
    location = _browser_signs_in(server, url)
    token = session.fetch_token(f"{server.url}/oauth/token", authorization_response=location,
                                code_verifier=verifier)  # fmt: skip
    assert token["token_type"] == "Bearer" and "refresh_token" not in token
    assert session.get(f"{server.url}/oauth/userinfo").status_code == 200
