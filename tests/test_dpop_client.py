"""The DPoP client helper (``authserver.dpop_client``) as a client application uses it: httpx
against the app (WSGI transport), proofs our server accepts, tokens bound to the helper's key, one
retry when the server asks for a nonce. ``requests`` against a live server is in
``tests/system/test_client_libraries.py``."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from joserfc.jwk import JWKRegistry

from authserver.dpop_client import DPoPKey, HttpxDPoPAuth, htu_of, needs_nonce


def client(app) -> tuple[httpx.Client, list[tuple[str, str]]]:
    """An httpx client on the app, and the path and proof of each request it sends (retries
    included)."""
    sent: list[tuple[str, str]] = []
    issuer = app.extensions["authserver"].settings.issuer
    return httpx.Client(
        transport=httpx.WSGITransport(app=app),
        base_url=issuer,
        event_hooks={"request": [lambda r: sent.append((r.url.path, r.headers.get("DPoP")))]},
    ), sent


def part(jwt: str, index: int) -> dict:
    seg = jwt.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))


def token(http: httpx.Client, creds, key: DPoPKey, scope="devices:read devices:write") -> dict:
    resp = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": scope},
        headers=creds.auth_header(),  # client_secret_basic, left alone by the auth
        auth=HttpxDPoPAuth(key),
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.mark.parametrize("alg", ["ES256", "Ed25519"])
def test_a_token_is_bound_to_the_helpers_key_and_opens_resources(app, world, alg):
    creds, key = world.client(), DPoPKey(alg)
    http, _ = client(app)
    body = token(http, creds, key)
    assert body["token_type"] == "DPoP"
    assert part(body["access_token"], 1)["cnf"] == {"jkt": key.jkt}
    auth = HttpxDPoPAuth(key, access_token=body["access_token"])
    assert http.get("/api/v1/devices", params={"limit": "5"}, auth=auth).status_code == 200
    # The same token with another key's proofs is refused: the binding is real.
    other = HttpxDPoPAuth(DPoPKey(alg), access_token=body["access_token"])
    assert http.get("/api/v1/devices", auth=other).status_code == 401


def test_proofs_carry_what_rfc_9449_asks(app, world):
    key = DPoPKey()
    proof = key.proof("get", "https://as.example/api/v1/devices?limit=5#frag", access_token="t")
    header, claims = part(proof, 0), part(proof, 1)
    assert header == {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk}
    assert claims["htm"] == "GET" and claims["htu"] == "https://as.example/api/v1/devices"
    assert claims["ath"] == "47mKTaMaEn1L3m5DAz9muidMqw636xxw7EFAK_YnPdg"  # SHA-256("t")
    assert "nonce" not in claims
    assert part(key.proof("POST", "https://as.example/t", nonce="n1"), 1)["nonce"] == "n1"
    assert part(proof, 1)["jti"] != part(key.proof("GET", "https://as.example/x"), 1)["jti"]
    assert "d" not in key.public_jwk


@pytest.mark.parametrize("alg", ["ES256", "Ed25519"])
def test_the_thumbprint_is_rfc_7638s(alg):
    key = DPoPKey(alg)
    imported = JWKRegistry.import_key(key.public_jwk)
    assert key.jkt == imported.thumbprint()


def test_a_key_survives_its_pem(alg="ES256"):
    key = DPoPKey(alg)
    again = DPoPKey(alg, key.private_pem())
    assert again.jkt == key.jkt
    with pytest.raises(ValueError):
        DPoPKey("Ed25519", key.private_pem())  # an EC key is not an Ed25519 key
    with pytest.raises(ValueError):
        DPoPKey("RS256")


@pytest.mark.parametrize("overrides", [{"dpop_nonce": frozenset({"token", "resource"})}])
def test_a_nonce_asked_for_is_sent_on_one_retry_and_kept(app, world, overrides):
    creds, key = world.client(), DPoPKey()
    http, sent = client(app)
    body = token(http, creds, key)  # first 400 use_dpop_nonce, then 200
    assert [path for path, _ in sent] == ["/oauth/token", "/oauth/token"]
    assert "nonce" not in part(sent[0][1], 1)
    assert part(sent[1][1], 1)["nonce"]

    auth = HttpxDPoPAuth(key, access_token=body["access_token"])
    sent.clear()
    assert http.get("/api/v1/devices", auth=auth).status_code == 200  # 401 use_dpop_nonce, 200
    assert len(sent) == 2
    sent.clear()
    assert http.get("/api/v1/devices", auth=auth).status_code == 200  # the nonce is kept
    assert len(sent) == 1


@pytest.mark.parametrize("status", [400, 401])
def test_a_server_that_keeps_asking_gets_one_retry_only(status):
    seen: list[str | None] = []

    def always_ask(request: httpx.Request) -> httpx.Response:
        seen.append(part(request.headers["DPoP"], 1).get("nonce"))
        if status == 400:
            return httpx.Response(400, headers={"DPoP-Nonce": f"n{len(seen)}"},
                                  json={"error": "use_dpop_nonce"})  # fmt: skip
        www = 'DPoP error="use_dpop_nonce"'
        return httpx.Response(401, headers={"DPoP-Nonce": f"n{len(seen)}", "WWW-Authenticate": www})

    http = httpx.Client(transport=httpx.MockTransport(always_ask))
    resp = http.post("https://as.example/oauth/token", auth=HttpxDPoPAuth(DPoPKey()))
    assert resp.status_code == status
    assert seen == [None, "n1"]


def test_needs_nonce_reads_both_kinds_of_answer():
    h = httpx.Headers
    assert needs_nonce(400, h({"DPoP-Nonce": "n"}), b'{"error":"use_dpop_nonce"}') == "n"
    assert needs_nonce(400, h({"DPoP-Nonce": "n"}), b'{"error":"invalid_dpop_proof"}') is None
    assert needs_nonce(400, h({}), b'{"error":"use_dpop_nonce"}') is None
    assert needs_nonce(400, h({"DPoP-Nonce": "n"}), b"<html>") is None
    www = 'DPoP error="use_dpop_nonce", error_description="x"'
    assert needs_nonce(401, h({"DPoP-Nonce": "n", "WWW-Authenticate": www}), b"") == "n"
    assert needs_nonce(401, h({"DPoP-Nonce": "n", "WWW-Authenticate": "DPoP"}), b"") is None
    assert needs_nonce(200, h({"DPoP-Nonce": "n"}), b"{}") is None


def test_htu_drops_query_and_fragment():
    assert htu_of("https://a.example:8443/p/q?x=1#f") == "https://a.example:8443/p/q"
