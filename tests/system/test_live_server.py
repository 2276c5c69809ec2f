"""The behaviour holds against the real server started by ``authserver serve`` (granian)."""

from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

pytestmark = pytest.mark.processes


def kid_of(token: str) -> str:
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["kid"]


@pytest.fixture
def service(live_server):
    client = live_server.service_client("Live", "devices:read devices:write")
    return client["client_id"], client["client_secret"]


def get_token(url, auth, **form):
    resp = requests.post(
        f"{url}/oauth/token",
        data={"grant_type": "client_credentials", **form},
        auth=auth,
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]


def test_token_introspection_revocation_against_the_server(live_server, service):
    url = live_server.url
    meta = requests.get(f"{url}/.well-known/oauth-authorization-server", timeout=5).json()
    assert meta["issuer"] == url
    assert meta["token_endpoint"] == f"{url}/oauth/token"

    token = get_token(url, service, scope="devices:read")
    keyset = KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=5).json())
    claims = jwt.decode(token, keyset).claims
    assert claims["iss"] == url and claims["sub"] == service[0]

    intro = requests.post(
        meta["introspection_endpoint"], data={"token": token}, auth=service, timeout=5
    ).json()
    assert intro["active"] is True and intro["scope"] == "devices:read"
    assert (
        requests.post(
            meta["revocation_endpoint"], data={"token": token}, auth=service, timeout=5
        ).status_code
        == 200
    )
    intro = requests.post(
        meta["introspection_endpoint"], data={"token": token}, auth=service, timeout=5
    ).json()
    assert intro == {"active": False}


def test_concurrent_requests_are_served(live_server, service):
    url = live_server.url
    with ThreadPoolExecutor(max_workers=16) as pool:
        tokens = list(pool.map(lambda _: get_token(url, service), range(64)))
    assert len(set(tokens)) == 64


def test_rotation_by_cli_reaches_the_running_server(tmp_path):
    from tests.conftest import make_env, start_server, stop_server

    server = start_server(make_env(tmp_path / "rot", AUTHSERVER_KEY_CACHE_SECONDS="1"))
    try:
        c = server.service_client("Rot", "devices:read")
        auth = (c["client_id"], c["client_secret"])
        old = get_token(server.url, auth)
        rotated = server.cli("keys", "rotate", "--force")
        assert rotated["retired"] == kid_of(old)
        deadline = time.monotonic() + 10
        while kid_of(new := get_token(server.url, auth)) != rotated["current"]:
            assert time.monotonic() < deadline, "the server never picked up the rotation"
            time.sleep(0.2)
        keyset = KeySet.import_key_set(requests.get(f"{server.url}/oauth/jwks", timeout=5).json())
        for token in (old, new):
            jwt.decode(token, keyset)
            intro = requests.post(
                f"{server.url}/oauth/introspect", data={"token": token}, auth=auth, timeout=5
            ).json()
            assert intro["active"] is True
    finally:
        stop_server(server)


def test_dpop_bound_client_against_the_server(live_server):
    from tests.dpop_client import DPoPKey

    url = live_server.url
    tenant = live_server.cli("tenants", "create", "Pos fleet")
    c = live_server.cli(
        "clients",
        "create",
        "--tenant",
        tenant["id"],
        "--name",
        "pos-backend",
        "--grant-type",
        "client_credentials",
        "--scope",
        "devices:read",
        "--dpop-bound",
    )
    assert c["dpop_bound_access_tokens"] is True
    auth = (c["client_id"], c["client_secret"])
    refused = requests.post(
        f"{url}/oauth/token", data={"grant_type": "client_credentials"}, auth=auth, timeout=5
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_dpop_proof"
    key = DPoPKey()
    proof = key.proof("POST", f"{url}/oauth/token")
    resp = requests.post(
        f"{url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=auth,
        headers={"DPoP": proof},
        timeout=5,
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "DPoP"
    intro = requests.post(
        f"{url}/oauth/introspect", data={"token": body["access_token"]}, auth=auth, timeout=5
    ).json()
    assert intro["cnf"] == {"jkt": key.jkt}
    replay = requests.post(
        f"{url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=auth,
        headers={"DPoP": proof},
        timeout=5,
    )
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_dpop_proof"
