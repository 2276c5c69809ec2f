"""RFC 9449 at the token endpoint: proofs bind tokens; errors; nonces; registration settings."""

from __future__ import annotations

import base64

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from authserver.models import Client, db
from tests.conftest import table_counts
from tests.dpop_client import DPoPKey, b64, forge

TOKEN_PATH = "/oauth/token"


def token_url(settings) -> str:
    return settings.issuer + TOKEN_PATH


def cc(http, creds, proof=None, **form):
    headers = creds.auth_header()
    if proof is not None:
        headers["DPoP"] = proof
    return http.post(TOKEN_PATH, data={"grant_type": "client_credentials", **form}, headers=headers)


def test_proof_binds_the_access_token(http, world, settings):
    creds = world.client()
    key = DPoPKey()
    resp = cc(http, creds, key.proof("POST", token_url(settings)))
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["token_type"] == "DPoP"
    jwks = KeySet.import_key_set(http.get("/oauth/jwks").get_json())
    assert jwt.decode(body["access_token"], jwks).claims["cnf"] == {"jkt": key.jkt}
    intro = http.post(
        "/oauth/introspect", data={"token": body["access_token"]}, headers=creds.auth_header()
    ).get_json()
    assert intro["token_type"] == "DPoP"
    assert intro["cnf"] == {"jkt": key.jkt}


def test_the_binding_travels_in_the_token_and_shows_at_introspection(http, world, settings):
    creds = world.client()
    key = DPoPKey("RS256")
    token = cc(http, creds, key.proof("POST", token_url(settings))).get_json()["access_token"]
    intro = http.post("/oauth/introspect", data={"token": token}, headers=creds.auth_header())
    assert intro.get_json()["cnf"] == {"jkt": key.jkt}


@pytest.mark.parametrize("alg", ["ES256", "ES384", "PS256", "RS256", "Ed25519"])
def test_every_allowed_algorithm_is_accepted_at_the_token_endpoint(http, world, settings, alg):
    creds = world.client()
    resp = cc(http, creds, DPoPKey(alg).proof("POST", token_url(settings)))
    assert resp.status_code == 200


def test_without_proof_a_plain_bearer_token(http, world):
    body = cc(http, world.client()).get_json()
    assert body["token_type"] == "Bearer"


def test_dpop_bound_client_is_refused_tokens_without_a_proof(http, world, app, settings):
    creds = world.client()
    with app.app_context():
        db.session.get(Client, creds.client_id).dpop_bound = True
        db.session.commit()
    resp = cc(http, creds)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_dpop_proof"
    assert cc(http, creds, DPoPKey().proof("POST", token_url(settings))).status_code == 200


def test_refresh_only_binding_leaves_access_tokens_bearer(http, world, app, settings):
    creds = world.client()
    with app.app_context():
        db.session.get(Client, creds.client_id).dpop_binding = "refresh_only"
        db.session.commit()
    body = cc(http, creds, DPoPKey().proof("POST", token_url(settings))).get_json()
    assert body["token_type"] == "Bearer"
    jwks = KeySet.import_key_set(http.get("/oauth/jwks").get_json())
    assert "cnf" not in jwt.decode(body["access_token"], jwks).claims


def test_invalid_proof_is_400_invalid_dpop_proof_and_issues_nothing(http, world, app, settings):
    creds = world.client()
    before = table_counts(app)
    resp = cc(http, creds, DPoPKey().proof("GET", token_url(settings)))
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["error"] == "invalid_dpop_proof"
    assert "htm" in body["error_description"]
    assert creds.client_secret not in resp.get_data(as_text=True)
    assert "access_token" not in body
    assert table_counts(app) == before


def test_replay_at_the_token_endpoint_is_invalid_dpop_proof(http, world, settings):
    creds = world.client()
    proof = DPoPKey().proof("POST", token_url(settings))
    assert cc(http, creds, proof).status_code == 200
    resp = cc(http, creds, proof)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_dpop_proof"  # not invalid_grant
    assert "replay" in resp.get_json()["error_description"]


def test_two_dpop_headers_are_refused(http, world, settings):
    creds = world.client()
    key = DPoPKey()
    headers = [
        ("Authorization", creds.auth_header()["Authorization"]),
        ("DPoP", key.proof("POST", token_url(settings))),
        ("DPoP", key.proof("POST", token_url(settings))),
    ]
    resp = http.post(TOKEN_PATH, data={"grant_type": "client_credentials"}, headers=headers)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_dpop_proof"


def test_htu_comes_from_the_configured_public_url_not_the_host_header(http, world, settings):
    """Behind a TLS-terminating proxy the request arrives as http://internal; the proof names the
    public URL. The check must use the public one (Keycloak #39332, oidc-provider #572)."""
    creds = world.client()
    key = DPoPKey()
    internal = http.post(
        TOKEN_PATH,
        data={"grant_type": "client_credentials"},
        headers={
            **creds.auth_header(),
            "DPoP": key.proof("POST", "http://internal-host:8080/oauth/token"),
        },
        base_url="http://internal-host:8080",
    )
    assert internal.status_code == 400
    public = http.post(
        TOKEN_PATH,
        data={"grant_type": "client_credentials"},
        headers={**creds.auth_header(), "DPoP": key.proof("POST", token_url(settings))},
        base_url="http://internal-host:8080",
    )
    assert public.status_code == 200


@pytest.mark.parametrize("overrides", [{"dpop_nonce": frozenset({"token"})}])
def test_nonce_required_at_the_token_endpoint(http, world, app, clock):
    settings = app.extensions["authserver"].settings
    creds = world.client()
    key = DPoPKey()
    first = cc(http, creds, key.proof("POST", token_url(settings), iat=clock()))
    assert first.status_code == 400
    assert first.get_json()["error"] == "use_dpop_nonce"
    nonce = first.headers["DPoP-Nonce"]
    ok = cc(http, creds, key.proof("POST", token_url(settings), nonce=nonce, iat=clock()))
    assert ok.status_code == 200, ok.get_json()
    # §11.3: having asked for a nonce, proofs without it are refused.
    again = cc(http, creds, key.proof("POST", token_url(settings), iat=clock()))
    assert again.get_json()["error"] == "use_dpop_nonce"
    # A nonce about to roll: the 200 carries the next one.
    clock.advance(settings.dpop_nonce_lifetime)
    rolled = cc(http, creds, key.proof("POST", token_url(settings), nonce=nonce, iat=clock()))
    assert rolled.status_code == 200
    assert rolled.headers["DPoP-Nonce"] != nonce
    # Long past, the nonce is refused with a fresh one.
    clock.advance(settings.dpop_nonce_lifetime * 3)
    stale = cc(http, creds, key.proof("POST", token_url(settings), nonce=nonce, iat=clock()))
    assert stale.get_json()["error"] == "use_dpop_nonce"
    assert stale.headers["DPoP-Nonce"] not in (nonce, rolled.headers["DPoP-Nonce"])


def test_discovery_lists_dpop_algorithms(http):
    doc = http.get("/.well-known/oauth-authorization-server").get_json()
    assert doc["dpop_signing_alg_values_supported"] == [
        "ES256",
        "ES384",
        "PS256",
        "RS256",
        "Ed25519",
        "EdDSA",
    ]


# -- security review F7 and F14: odd proofs from an unauthenticated caller ------------------------


@pytest.mark.parametrize(
    "iat", [10**400, -(10**400), 10**30, 2**53 + 1], ids=["1e400", "-1e400", "1e30", "2^53+1"]
)
def test_a_huge_iat_is_an_invalid_proof_not_a_500_anywhere(http, world, settings, app, iat):
    """F7: a proof whose iat overflows a float is refused with invalid_dpop_proof at the token
    endpoint, the device authorization endpoint and a resource, never a 500."""
    from tests.device_helpers import DEVICE_GRANT

    key = DPoPKey()
    creds = world.client()
    kiosk = world.client(creds.tenant_id, grant_types=(DEVICE_GRANT,), auth_method="none")
    claims = {"iat": iat}
    token_proof = key.proof("POST", settings.issuer + "/oauth/token", claims=claims)
    resp = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={**creds.auth_header(), "DPoP": token_proof},
    )
    assert (resp.status_code, resp.get_json()["error"]) == (400, "invalid_dpop_proof")
    device_proof = key.proof("POST", settings.issuer + "/oauth/device_authorization", claims=claims)
    resp = http.post(
        "/oauth/device_authorization",
        data={"client_id": kiosk.client_id},
        headers={"DPoP": device_proof},
    )
    assert (resp.status_code, resp.get_json()["error"]) == (400, "invalid_dpop_proof")
    good = key.proof("POST", settings.issuer + "/oauth/token")
    token = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={**creds.auth_header(), "DPoP": good},
    ).get_json()["access_token"]
    res_proof = key.proof(
        "GET", settings.issuer + "/api/v1/devices", access_token=token, claims=claims
    )
    resp = http.get(
        "/api/v1/devices", headers={"Authorization": f"DPoP {token}", "DPoP": res_proof}
    )
    assert (resp.status_code, resp.get_json()["error"]) == (401, "invalid_dpop_proof")


@pytest.mark.parametrize(
    "htu",
    [
        "http://evil@127.0.0.1:8000/oauth/token",
        "http://user:pass@127.0.0.1:8000/oauth/token",
        "http://@127.0.0.1:8000/oauth/token",
    ],
)
def test_an_htu_with_userinfo_is_refused(http, world, settings, htu):
    """F14: RFC 9110 §4.2.4 forbids userinfo in http(s) URIs; a proof naming one is not for us."""
    assert settings.issuer == "http://127.0.0.1:8000"
    key = DPoPKey()
    resp = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={**world.client().auth_header(), "DPoP": key.proof("POST", htu)},
    )
    assert (resp.status_code, resp.get_json()["error"]) == (400, "invalid_dpop_proof")
    assert "htu" in resp.get_json()["error_description"]


def test_a_proof_cannot_be_replayed_at_the_end_of_its_window(http, world, settings, clock):
    """The replay entry outlives the acceptance window, on the real store, in every process:
    a proof dated max_future ahead is still acceptable max_age + max_future later, and must
    still be a replay then."""
    key = DPoPKey()
    creds = world.client()
    url = settings.issuer + "/oauth/token"
    proof = key.proof("POST", url, iat=clock() + settings.dpop_max_future)

    def send():
        return http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            headers={**creds.auth_header(), "DPoP": proof},
        )

    assert send().status_code == 200
    clock.advance(settings.dpop_max_age + settings.dpop_max_future - 1)
    replay = send()
    assert replay.status_code == 400 and "replay" in replay.get_json()["error_description"]


# -- moved from the security review's regression file ------------------------------------


def b64json(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def dpop_at_token(http, creds, proof):
    return http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={**creds.auth_header(), "DPoP": proof},
    )


def test_deeply_nested_dpop_header_is_a_400(http, world):
    creds = world.client()
    proof = b64json("[" * 1500) + "." + b64json("{}") + ".c2ln"
    resp = dpop_at_token(http, creds, proof)
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_dpop_proof"


def test_nan_iat_is_refused(http, world, settings):
    creds = world.client()
    key = DPoPKey()
    proof = key.proof("POST", settings.issuer + "/oauth/token", claims={"iat": float("nan")})
    resp = dpop_at_token(http, creds, proof)
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_dpop_proof"


def test_non_ascii_ath_is_refused_not_a_crash(app, http, world, settings):
    from grants.dpop import InvalidDPoPProof, verify_proof

    key = DPoPKey()
    proof = key.proof("GET", "https://x/api", claims={"ath": "é"})

    class Store:
        def claim_once(self, k, ttl):
            return True

    import time

    with pytest.raises(InvalidDPoPProof):
        verify_proof(
            [proof],
            method="GET",
            url="https://x/api",
            now=time.time(),
            max_age=60,
            max_future=10,
            store=Store(),
            access_token="tok",
        )


def test_forged_proof_helper_is_still_refused(http, world):
    creds = world.client()
    resp = dpop_at_token(http, creds, forge({"typ": "dpop+jwt", "alg": "ES256"}, {}, b"x"))
    assert resp.status_code == 400
    assert b64(b"x")
