"""The resource protector (``require_token``): Bearer, DPoP (RFC 9449 §7), scopes, revocation."""

from __future__ import annotations

import pytest
from flask import Blueprint, jsonify

from authserver.resource import current_proof, current_token, require_token
from tests.dpop_client import DPoPKey

READ, DPOP_ONLY, WRITE = "/test/read", "/test/dpop-only", "/test/write"


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

    @bp.get(WRITE)
    @require_token("devices:read", "devices:write")
    def write():
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
    sibling = get_token(http, creds, settings)  # the same client's other token
    bystander = get_token(http, world.client(), settings)  # another client's
    assert http.get(READ, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    http.post("/oauth/revoke", data={"token": token}, headers=creds.auth_header())
    resp = http.get(READ, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401
    assert 'error="invalid_token"' in challenges(resp)[0]
    for other in (sibling, bystander):
        assert http.get(READ, headers={"Authorization": f"Bearer {other}"}).status_code == 200


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


# -- The refusals as a client reads them: status, problem body and challenges, exactly ------------

BEARER_CHALLENGE = 'Bearer realm="authserver"'
DPOP_CHALLENGE = 'DPoP algs="ES256 ES384 PS256 RS256 Ed25519 EdDSA"'


def with_error(challenge: str, error: str, description: str) -> str:
    return f'{challenge}, error="{error}", error_description="{description}"'


def test_no_token_is_a_bare_problem_with_both_plain_challenges(http):
    # RFC 6750 §3.1: a request without credentials gets no error code.
    resp = http.get(READ)
    assert resp.status_code == 401
    assert resp.get_json() == {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": "An access token is required.",
    }
    assert challenges(resp) == [BEARER_CHALLENGE, DPOP_CHALLENGE]
    assert resp.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "header,error,description",
    [
        ("Bearer", "invalid_token", "Malformed Authorization header."),
        ("Bearer ", "invalid_token", "Malformed Authorization header."),
        ("Bearer a b", "invalid_token", "Malformed Authorization header."),
        ("DPoP a b", "invalid_token", "Malformed Authorization header."),
        ("Basic abc", "invalid_request", "Unsupported authorization scheme."),
        ("Token x", "invalid_request", "Unsupported authorization scheme."),
        ("Bearerx abc", "invalid_request", "Unsupported authorization scheme."),
    ],
)
def test_a_malformed_authorization_gets_its_own_error_under_both_schemes(
    http, header, error, description
):
    resp = http.get(READ, headers={"Authorization": header})
    assert resp.status_code == 401
    body = resp.get_json()
    assert (body["error"], body["detail"], body["title"]) == (error, description, "Unauthorized")
    # The scheme is not known to be right: both challenges carry the error.
    assert challenges(resp) == [
        with_error(BEARER_CHALLENGE, error, description),
        with_error(DPOP_CHALLENGE, error, description),
    ]


def test_an_authorization_header_over_the_limit_is_a_bad_request(http, world, settings):
    limit = 8192  # authserver.resource.MAX_AUTHORIZATION_CHARS, stated here on its own
    token = get_token(http, world.client(), settings)
    at_limit = "Bearer " + token + " " * (limit - len(token) - 7)
    assert len(at_limit) == limit
    # Trailing spaces are not part of the token: exactly the limit is still read, and valid.
    assert http.get(READ, headers={"Authorization": at_limit}).status_code == 200
    resp = http.get(READ, headers={"Authorization": at_limit + " "})
    assert resp.status_code == 400
    body = resp.get_json()
    assert body == {
        "type": "about:blank",
        "title": "Error",
        "status": 400,
        "detail": "Malformed Authorization header.",
        "error": "invalid_request",
    }
    assert challenges(resp) == [
        with_error(BEARER_CHALLENGE, "invalid_request", "Malformed Authorization header."),
        with_error(DPOP_CHALLENGE, "invalid_request", "Malformed Authorization header."),
    ]


def test_the_scheme_name_is_case_insensitive(http, world, settings):
    # RFC 9110 §11.1: auth-scheme names are case-insensitive.
    token = get_token(http, world.client(), settings)
    assert http.get(READ, headers={"Authorization": f"bEARER {token}"}).status_code == 200
    key = DPoPKey()
    bound = get_token(http, world.client(), settings, key)
    proof = key.proof("GET", settings.issuer + READ, access_token=bound)
    resp = http.get(READ, headers={"Authorization": f"dpop {bound}", "DPoP": proof})
    assert resp.status_code == 200
    assert resp.get_json()["jkt"] == key.jkt


def test_an_inactive_token_is_challenged_only_under_the_scheme_it_came_with(http, world, settings):
    creds = world.client()
    token = get_token(http, creds, settings)
    http.post("/oauth/revoke", data={"token": token}, headers=creds.auth_header())
    resp = http.get(READ, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401
    assert resp.get_json()["detail"] == "The access token is not active."
    assert challenges(resp) == [
        with_error(BEARER_CHALLENGE, "invalid_token", "The access token is not active.")
    ]
    key = DPoPKey()
    bound = get_token(http, creds, settings, key)
    http.post("/oauth/revoke", data={"token": bound}, headers=creds.auth_header())
    resp = dpop_get(http, settings, bound, key)
    assert resp.status_code == 401
    assert challenges(resp) == [
        with_error(DPOP_CHALLENGE, "invalid_token", "The access token is not active.")
    ]
    # The bystander: another client's token is untouched by these revocations.
    other = get_token(http, world.client(), settings)
    assert http.get(READ, headers={"Authorization": f"Bearer {other}"}).status_code == 200


def test_a_bound_token_as_bearer_is_told_to_use_dpop(http, world, settings):
    token = get_token(http, world.client(), settings, DPoPKey())
    resp = http.get(READ, headers={"Authorization": f"Bearer {token}"})
    description = "This token is DPoP-bound; present it with the DPoP scheme."
    assert resp.get_json()["detail"] == description
    assert challenges(resp) == [with_error(DPOP_CHALLENGE, "invalid_token", description)]


def test_an_unbound_token_under_the_dpop_scheme_is_told_to_use_bearer(http, world, settings):
    key = DPoPKey()
    token = get_token(http, world.client(), settings)
    resp = dpop_get(http, settings, token, key)
    description = "This token is not DPoP-bound; present it as Bearer."
    assert resp.status_code == 401
    assert resp.get_json()["detail"] == description
    assert challenges(resp) == [with_error(DPOP_CHALLENGE, "invalid_token", description)]
    # The same token as Bearer is fine: only the scheme was wrong.
    assert http.get(READ, headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_a_dpop_only_view_asks_a_bearer_token_for_dpop(http, world, settings):
    token = get_token(http, world.client(), settings)
    resp = http.post(DPOP_ONLY, headers={"Authorization": f"Bearer {token}"})
    description = "A DPoP-bound token is required."
    assert resp.status_code == 401
    assert resp.get_json()["detail"] == description
    assert challenges(resp) == [with_error(DPOP_CHALLENGE, "invalid_token", description)]


def test_a_refused_proof_is_a_dpop_challenge_only(http, world, settings):
    key = DPoPKey()
    token = get_token(http, world.client(), settings, key)
    resp = http.get(READ, headers={"Authorization": f"DPoP {token}"})
    assert resp.status_code == 401
    body = resp.get_json()
    assert body["error"] == "invalid_dpop_proof"
    assert challenges(resp) == [with_error(DPOP_CHALLENGE, "invalid_dpop_proof", body["detail"])]


@pytest.mark.parametrize("bound", [False, True], ids=["bearer", "dpop"])
def test_insufficient_scope_is_403_forbidden_under_the_scheme_used(http, world, settings, bound):
    key = DPoPKey() if bound else None
    creds = world.client(scope="devices:read")
    token = get_token(http, creds, settings, key, scope="devices:read")
    if key:
        resp = dpop_get(http, settings, token, key, WRITE)
    else:
        resp = http.get(WRITE, headers={"Authorization": f"Bearer {token}"})
    description = "The token lacks the scope devices:write."
    assert resp.status_code == 403
    assert resp.get_json() == {
        "type": "about:blank",
        "title": "Forbidden",
        "status": 403,
        "detail": description,
        "error": "insufficient_scope",
    }
    plain = DPOP_CHALLENGE if bound else BEARER_CHALLENGE
    assert challenges(resp) == [with_error(plain, "insufficient_scope", description)]


def signed_access_token(app, http, world, settings, **changes) -> str:
    """A genuine token's claims with ``changes``, signed by the ring as an access token."""
    import base64
    import json

    token = get_token(http, world.client(), settings)
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    with app.app_context():
        return app.extensions["authserver"].keyring.sign(claims, "at+jwt")


@pytest.mark.parametrize(
    "aud,accepted",
    [
        ("{aud}", True),
        (["https://other.example/api", "{aud}"], True),
        (["https://other.example/api"], False),
        ("https://other.example/api", False),
        ("https://other.example{aud}/x", False),  # contains ours, is not ours
        ([], False),
    ],
)
def test_the_audience_must_be_this_resource_server(http, app, world, settings, aud, accepted):
    fill = lambda v: v.format(aud=settings.audience)  # noqa: E731
    aud = [fill(a) for a in aud] if isinstance(aud, list) else fill(aud)
    token = signed_access_token(app, http, world, settings, aud=aud)
    resp = http.get(READ, headers={"Authorization": f"Bearer {token}"})
    if accepted:
        assert resp.status_code == 200
    else:
        description = "The access token is not for this audience."
        assert resp.status_code == 401
        assert resp.get_json()["detail"] == description
        assert challenges(resp) == [with_error(BEARER_CHALLENGE, "invalid_token", description)]


@pytest.mark.parametrize("overrides", [{"dpop_nonce": frozenset({"resource"})}])
def test_a_nonce_about_to_roll_is_replaced_on_a_successful_answer(http, world, app, clock):
    # RFC 9449 §8.2: the server may hand out a fresh nonce with a successful response.
    settings = app.extensions["authserver"].settings
    key = DPoPKey()
    token = get_token(http, world.client(), settings, key)
    nonce = dpop_get(http, settings, token, key, iat=clock()).headers["DPoP-Nonce"]
    current = dpop_get(http, settings, token, key, nonce=nonce, iat=clock())
    assert current.status_code == 200
    assert "DPoP-Nonce" not in current.headers and "Cache-Control" not in current.headers
    clock.advance(settings.dpop_nonce_lifetime)  # the nonce is of the previous step now
    rolled = dpop_get(http, settings, token, key, nonce=nonce, iat=clock())
    assert rolled.status_code == 200
    fresh = rolled.headers["DPoP-Nonce"]
    assert fresh != nonce
    assert rolled.headers["Cache-Control"] == "no-store"
    again = dpop_get(http, settings, token, key, nonce=fresh, iat=clock())
    assert again.status_code == 200 and "DPoP-Nonce" not in again.headers


@pytest.mark.parametrize("overrides", [{"dpop_nonce": frozenset({"resource"})}])
def test_a_missing_nonce_is_asked_for_with_a_dpop_challenge(http, world, app, clock):
    settings = app.extensions["authserver"].settings
    key = DPoPKey()
    token = get_token(http, world.client(), settings, key)
    resp = dpop_get(http, settings, token, key, iat=clock())
    assert resp.status_code == 401
    body = resp.get_json()
    assert body["error"] == "use_dpop_nonce"
    assert challenges(resp) == [with_error(DPOP_CHALLENGE, "use_dpop_nonce", body["detail"])]
    assert resp.headers["DPoP-Nonce"]
    assert resp.headers["Cache-Control"] == "no-store"


def test_a_403_without_a_known_scheme_is_challenged_as_bearer(app):
    # RFC 6750 §3.1: insufficient_scope names the one scheme it is about, Bearer by default.
    from authserver.resource import ResourceAuthError

    refusal = ResourceAuthError(403, "insufficient_scope", "The token lacks the scope x.")
    assert refusal.challenges() == [
        with_error(BEARER_CHALLENGE, "insufficient_scope", "The token lacks the scope x.")
    ]
    with app.app_context():
        assert refusal.response().get_json()["title"] == "Forbidden"
