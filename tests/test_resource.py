"""The resource protector (``require_token``): Bearer, DPoP (RFC 9449 §7), scopes, revocation."""

from __future__ import annotations

import pytest
from flask import Blueprint, jsonify

from authserver.resource import current_proof, current_token, require_token
from tests.dpop_client import DPoPKey

READ, DPOP_ONLY = "/test/read", "/test/dpop-only"


@pytest.fixture
def app(app):
    bp = Blueprint("resource_test", __name__)

    @bp.get(READ)
    @require_token("devices:read")
    def read():
        proof = current_proof()
        return jsonify(sub=current_token().subject, jkt=proof.jkt if proof else None)

    @bp.post(DPOP_ONLY)
    @require_token("devices:write", dpop=True)
    def dpop_only():
        return jsonify(ok=True)

    app.register_blueprint(bp)
    return app


def get_token(http, creds, settings, key=None, scope="devices:read devices:write"):
    headers = creds.auth_header()
    if key:
        headers["DPoP"] = key.proof("POST", settings.issuer + "/oauth/token")
    resp = http.post(
        "/oauth/token", data={"grant_type": "client_credentials", "scope": scope}, headers=headers
    )
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["access_token"]


def dpop_get(http, settings, token, key, path=READ, method="GET", **proof_kw):
    proof = key.proof(method, settings.issuer + path, access_token=token, **proof_kw)
    return http.open(path, method=method, headers={"Authorization": f"DPoP {token}", "DPoP": proof})


def challenges(resp) -> list[str]:
    return resp.headers.getlist("WWW-Authenticate")


def test_no_token_is_401_with_both_challenges(http):
    resp = http.get(READ)
    assert resp.status_code == 401
    assert resp.content_type == "application/problem+json"
    schemes = [c.split(" ")[0] for c in challenges(resp)]
    assert schemes == ["Bearer", "DPoP"]
    assert 'algs="ES256 ES384 PS256 RS256 Ed25519 EdDSA"' in challenges(resp)[1]


def test_unbound_bearer_token_is_accepted(http, world, settings):
    creds = world.client()
    token = get_token(http, creds, settings)
    resp = http.get(READ, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200
    assert resp.get_json() == {"sub": creds.client_id, "jkt": None}


def test_dpop_token_with_proof_is_accepted(http, world, settings):
    key = DPoPKey()
    token = get_token(http, world.client(), settings, key)
    resp = dpop_get(http, settings, token, key)
    assert resp.status_code == 200
    assert resp.get_json()["jkt"] == key.jkt


def test_dpop_bound_token_sent_as_bearer_is_refused(http, world, settings):
    token = get_token(http, world.client(), settings, DPoPKey())
    resp = http.get(READ, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401
    assert challenges(resp)[0].startswith("DPoP algs=")
    assert 'error="invalid_token"' in challenges(resp)[0]


def test_missing_proof_is_refused(http, world, settings):
    token = get_token(http, world.client(), settings, DPoPKey())
    resp = http.get(READ, headers={"Authorization": f"DPoP {token}"})
    assert resp.status_code == 401
    assert 'error="invalid_dpop_proof"' in challenges(resp)[0]


def test_missing_ath_is_refused(http, world, settings):
    key = DPoPKey()
    token = get_token(http, world.client(), settings, key)
    proof = key.proof("GET", settings.issuer + READ)
    resp = http.get(READ, headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    assert resp.status_code == 401
    assert "ath claim missing" in resp.get_json()["detail"]


def test_wrong_ath_is_refused(http, world, settings):
    key = DPoPKey()
    creds = world.client()
    token = get_token(http, creds, settings, key)
    other = get_token(http, creds, settings, key)
    proof = key.proof("GET", settings.issuer + READ, access_token=other)
    resp = http.get(READ, headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    assert resp.status_code == 401
    assert "ath does not match" in resp.get_json()["detail"]


def test_proof_by_another_key_is_refused(http, world, settings):
    token = get_token(http, world.client(), settings, DPoPKey())
    resp = dpop_get(http, settings, token, DPoPKey())
    assert resp.status_code == 401
    assert "key does not match" in resp.get_json()["detail"]


def test_replayed_proof_at_a_resource_is_refused(http, world, settings):
    key = DPoPKey()
    token = get_token(http, world.client(), settings, key)
    proof = key.proof("GET", settings.issuer + READ, access_token=token)
    headers = {"Authorization": f"DPoP {token}", "DPoP": proof}
    assert http.get(READ, headers=headers).status_code == 200
    resp = http.get(READ, headers=headers)
    assert resp.status_code == 401
    assert "replay" in resp.get_json()["detail"]


def test_proof_for_another_url_or_method_is_refused(http, world, settings):
    key = DPoPKey()
    token = get_token(http, world.client(), settings, key)
    wrong_url = key.proof("GET", settings.issuer + DPOP_ONLY, access_token=token)
    resp = http.get(READ, headers={"Authorization": f"DPoP {token}", "DPoP": wrong_url})
    assert "htu" in resp.get_json()["detail"]
    wrong_method = key.proof("POST", settings.issuer + READ, access_token=token)
    resp = http.get(READ, headers={"Authorization": f"DPoP {token}", "DPoP": wrong_method})
    assert "htm" in resp.get_json()["detail"]


def test_unbound_token_with_dpop_scheme_is_refused(http, world, settings):
    key = DPoPKey()
    token = get_token(http, world.client(), settings)
    assert dpop_get(http, settings, token, key).status_code == 401


def test_dpop_only_view_refuses_bearer(http, world, settings):
    token = get_token(http, world.client(), settings)
    resp = http.post(DPOP_ONLY, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401
    key = DPoPKey()
    bound = get_token(http, world.client(), settings, key)
    assert dpop_get(http, settings, bound, key, DPOP_ONLY, "POST").status_code == 200


def test_insufficient_scope_is_403(http, world, settings):
    token = get_token(http, world.client(), settings, scope="devices:read")
    key = DPoPKey()
    bound = get_token(http, world.client(scope="devices:read"), settings, key, scope="devices:read")
    resp = dpop_get(http, settings, bound, key, DPOP_ONLY, "POST")
    assert resp.status_code == 403
    assert 'error="insufficient_scope"' in challenges(resp)[0]
    assert token


def test_revoked_token_is_refused_on_the_next_request(http, world, settings):
    creds = world.client()
    token = get_token(http, creds, settings)
    assert http.get(READ, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    http.post("/oauth/revoke", data={"token": token}, headers=creds.auth_header())
    resp = http.get(READ, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401
    assert 'error="invalid_token"' in challenges(resp)[0]


def test_expired_and_forged_tokens_are_refused(http, world, settings, clock):
    token = get_token(http, world.client(), settings)
    forged = token[:-6] + "AAAAAA"
    assert http.get(READ, headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    clock.advance(settings.access_token_ttl + 1)
    assert http.get(READ, headers={"Authorization": f"Bearer {token}"}).status_code == 401


def bearer(http, token):
    return http.get(READ, headers={"Authorization": f"Bearer {token}"})


def test_a_token_served_before_is_checked_again_in_full(http, app, world, settings, clock):
    """Verified tokens are cached per process by their exact text: the cache never serves a
    token once expired, one differing in any byte, or one whose key left the ring."""
    import base64
    import json

    from authserver.models import SigningKey, db
    from authserver.security import now
    from keys.encryption import KeyEncryptor
    from keys.rotation import rotate

    token = get_token(http, world.client(), settings)
    assert bearer(http, token).status_code == 200  # verified, now cached

    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "devices:read devices:write admin"
    altered = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert bearer(http, f"{head}.{altered}.{sig}").status_code == 401
    assert bearer(http, token).status_code == 200

    clock.advance(settings.access_token_ttl - 1)
    assert bearer(http, token).status_code == 200
    clock.advance(1)  # exactly exp
    assert bearer(http, token).status_code == 401

    fresh = get_token(http, world.client(), settings)
    assert bearer(http, fresh).status_code == 200
    with app.app_context():  # the key is rotated out, then deleted by hand (say, it leaked)
        state = app.extensions["authserver"]
        kid = json.loads(base64.urlsafe_b64decode(fresh.split(".")[0] + "=="))["kid"]
        rotate(db.session, state.settings, KeyEncryptor(state.settings.key_encryption_key),
               now(), force=True)  # fmt: skip
        db.session.commit()
        state.keyring.invalidate()
        assert bearer(http, fresh).status_code == 200  # retired, still trusted
        db.session.query(SigningKey).filter(SigningKey.kid == kid).delete()
        db.session.commit()
        state.keyring.invalidate()
    assert bearer(http, fresh).status_code == 401
    assert bearer(http, get_token(http, world.client(), settings)).status_code == 200


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer a b", "Token x"])
def test_malformed_authorization_is_refused(http, header):
    assert http.get(READ, headers={"Authorization": header}).status_code in (400, 401)


@pytest.mark.parametrize("overrides", [{"dpop_nonce": frozenset({"resource"})}])
def test_nonce_required_at_resources(http, world, app, clock):
    settings = app.extensions["authserver"].settings
    key = DPoPKey()
    token = get_token(http, world.client(), settings, key)
    first = dpop_get(http, settings, token, key, iat=clock())
    assert first.status_code == 401
    assert 'error="use_dpop_nonce"' in challenges(first)[0]
    nonce = first.headers["DPoP-Nonce"]
    ok = dpop_get(http, settings, token, key, nonce=nonce, iat=clock())
    assert ok.status_code == 200
    again = dpop_get(http, settings, token, key, iat=clock())
    assert again.status_code == 401
