"""DESIGN invariant 7 and security review F1: every JWT the server reads is checked against an
explicit allow-list of asymmetric algorithms, its kid and its typ before anything else.

Each forged token here passes every check but the one under test: it carries the ``jti`` (and
every other claim) of a live token, so only that check stands between it and a 200.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jws
from joserfc.jwk import ECKey

from authserver.security import now
from tests.conftest import cc_token

DEVICES = "/api/v1/devices"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parts(token: str) -> tuple[dict, dict]:
    head, body, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(head))),
        json.loads(base64.urlsafe_b64decode(pad(body))),
    )


def unsigned(header: dict, claims: dict) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}."


def signed_with(key, header: dict, claims: dict, alg: str) -> str:
    return jws.serialize_compact(header, json.dumps(claims).encode(), key, algorithms=[alg])


def ecdsa_by_hand(key, header: dict, claims: dict, digest=hashes.SHA256) -> str:
    """A P-256 ECDSA JWS with any header, signed without joserfc (which refuses odd headers)."""
    head = b64(json.dumps(header).encode())
    body = b64(json.dumps(claims).encode())
    der = key.private_key.sign(f"{head}.{body}".encode(), ec.ECDSA(digest()))
    r, s = decode_dss_signature(der)
    return f"{head}.{body}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


@pytest.fixture
def live(http, world):
    """A service client and one of its live tokens: (creds, token, header, claims)."""
    creds = world.client()
    token = cc_token(http, creds).get_json()["access_token"]
    header, claims = parts(token)
    return creds, token, header, claims


def refused_everywhere(http, creds, forged: str) -> None:
    """The forged token gets nothing: 401 at the registry, inactive at introspection."""
    resp = http.post(
        DEVICES, json={"name": "forged"}, headers={"Authorization": f"Bearer {forged}"}
    )
    assert resp.status_code == 401, resp.get_json()
    assert resp.get_json()["error"] == "invalid_token"
    intro = http.post("/oauth/introspect", data={"token": forged}, headers=creds.auth_header())
    assert intro.get_json() == {"active": False}


def test_the_genuine_token_is_accepted(http, live):
    # The control for every forgery below: the same claims, properly signed, work.
    creds, token, _, _ = live
    resp = http.post(DEVICES, json={"name": "real"}, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 201
    intro = http.post("/oauth/introspect", data={"token": token}, headers=creds.auth_header())
    assert intro.get_json()["active"] is True


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_invariant_7_an_unsigned_alg_none_token_with_a_live_jti_is_refused(http, live, alg):
    creds, _, header, claims = live
    refused_everywhere(http, creds, unsigned({**header, "alg": alg}, claims))


def test_unsigned_token_without_kid_is_refused(http, live):
    creds, _, _, claims = live
    refused_everywhere(http, creds, unsigned({"alg": "none", "typ": "at+jwt"}, claims))


def test_hs256_keyed_with_the_published_public_key_is_refused(http, live):
    # The classic confusion: the verifier's public key used as an HMAC secret.
    creds, _, header, claims = live
    published = next(
        k for k in http.get("/oauth/jwks").get_json()["keys"] if k["kid"] == header["kid"]
    )
    head = b64(json.dumps({**header, "alg": "HS256"}).encode())
    body = b64(json.dumps(claims).encode())
    for secret in (json.dumps(published).encode(), json.dumps(published, sort_keys=True).encode()):
        sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        refused_everywhere(http, creds, f"{head}.{body}.{b64(sig)}")


def test_alg_that_differs_from_the_keys_alg_is_refused(http, app, live):
    # A valid ES384 signature made with the ring's own P-256 key (joserfc allows it). ES384 is
    # not an algorithm we sign with, so the allow-list refuses it (see the next test for an
    # allowed alg that is not the key's).
    creds, _, header, claims = live
    with app.app_context():
        snap = app.extensions["authserver"].keyring.snapshot()
    assert snap.signing_alg == "ES256"
    # ECDSA over P-256 with SHA-384, signed by hand (joserfc would refuse to make it).
    forged = ecdsa_by_hand(snap.signer, {**header, "alg": "ES384"}, claims, hashes.SHA384)
    refused_everywhere(http, creds, forged)


@pytest.mark.parametrize("alg", ["RS256", "Ed25519"])
def test_an_allowed_alg_that_is_not_the_keys_alg_is_refused(http, app, live, alg):
    # Both algorithms pass the allow-list, the kid is the ring's ES256 key and the signature is
    # that key's own: only the check that the header's alg is the key's alg refuses the token
    # (without it the ES256 key would be handed to another algorithm's verifier).
    from keys.jwks import VERIFY_ALGS

    creds, _, header, claims = live
    with app.app_context():
        snap = app.extensions["authserver"].keyring.snapshot()
    assert snap.signing_alg == "ES256" and alg in VERIFY_ALGS
    refused_everywhere(http, creds, ecdsa_by_hand(snap.signer, {**header, "alg": alg}, claims))


def test_a_key_outside_the_ring_is_refused(http, live):
    # Right alg, right typ, a kid the ring does not know: a stranger's key.
    creds, _, header, claims = live
    stranger = ECKey.generate_key("P-256", private=True)
    for kid in (header["kid"] + "x", "", None):
        forged_header = (
            {**header, "kid": kid}
            if kid is not None
            else {k: v for k, v in header.items() if k != "kid"}
        )
        refused_everywhere(http, creds, signed_with(stranger, forged_header, claims, "ES256"))


def test_a_stranger_key_under_the_rings_kid_is_refused(http, live):
    creds, _, header, claims = live
    stranger = ECKey.generate_key("P-256", private=True)
    refused_everywhere(http, creds, signed_with(stranger, header, claims, "ES256"))


def test_a_genuine_jwt_of_another_type_is_not_an_access_token(http, app, live):
    # RFC 9068 §4: typ at+jwt. A JWT the ring signed for another purpose (an ID token's typ)
    # with a live access token's claims is still refused.
    creds, _, _, claims = live
    with app.app_context():
        forged = app.extensions["authserver"].keyring.sign(claims, "JWT")
    refused_everywhere(http, creds, forged)


@pytest.mark.parametrize("extra", [{"crit": ["exp"]}, {"jku": "https://evil.example/jwks"}])
def test_header_parameters_that_redirect_verification_are_refused(http, app, live, extra):
    creds, _, header, claims = live
    with app.app_context():
        snap = app.extensions["authserver"].keyring.snapshot()
    forged = ecdsa_by_hand(snap.signer, {**header, **extra}, claims)
    refused_everywhere(http, creds, forged)


def test_invariant_6_no_clear_jti_at_rest(http, app, live):
    """Invariant 6: a database reader learns no jti, so cannot even attempt an F1-style forgery."""
    from tests.test_secrets_at_rest import dump_database

    _, _, _, claims = live
    assert claims["jti"] not in dump_database(app)


def test_revoking_one_token_leaves_others_alone(http, world):
    creds = world.client()
    other = world.client()
    a = cc_token(http, creds).get_json()["access_token"]
    b = cc_token(http, creds).get_json()["access_token"]
    c = cc_token(http, other).get_json()["access_token"]
    assert (
        http.post("/oauth/revoke", data={"token": a}, headers=creds.auth_header()).status_code
        == 200
    )
    intro = lambda cr, t: http.post(  # noqa: E731
        "/oauth/introspect", data={"token": t}, headers=cr.auth_header()
    ).get_json()["active"]
    assert (intro(creds, a), intro(creds, b), intro(other, c)) == (False, True, True)


def test_token_lookup_survives_the_clock(http, live, clock, settings):
    # The record is found by the keyed hash of the jti, at any time in the token's life.
    creds, token, _, claims = live
    clock.advance(settings.access_token_ttl - 1)
    intro = http.post("/oauth/introspect", data={"token": token}, headers=creds.auth_header())
    assert intro.get_json()["active"] is True
    assert intro.get_json()["jti"] == claims["jti"]
    assert claims["exp"] > now() - settings.access_token_ttl
