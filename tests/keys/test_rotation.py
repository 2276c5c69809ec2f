"""Signing keys: encrypted at rest, published before they sign, retired keys kept until expiry."""

from __future__ import annotations

import base64
import json

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from authserver.models import SigningKey, db
from authserver.security import now
from keys.encryption import KeyDecryptionError, KeyEncryptor
from keys.rotation import RotationTooEarly, ensure_keys, list_keys, retention_seconds, rotate
from tests.conftest import cc_token

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def jwks(http):
    return http.get("/oauth/jwks").get_json()["keys"]


def states(app):
    with app.app_context():
        return {k.kid: k.state for k in list_keys(db.session, now())}


def do_rotate(app, force=False):
    with app.app_context():
        state = app.extensions["authserver"]
        result = rotate(
            db.session,
            state.settings,
            KeyEncryptor(state.settings.key_encryption_key),
            now(),
            force,
        )
        state.keyring.invalidate()
        return result[0]  # the access tokens' algorithm rotates first


def kid_of(token):
    header = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]


def algs_by_state(app):
    with app.app_context():
        found: dict[str, list[str]] = {}
        for k in list_keys(db.session, now()):
            found.setdefault(k.state, []).append(k.alg)
        return {state: sorted(algs) for state, algs in found.items()}


def test_first_start_creates_current_and_next_both_published(http, app):
    """One current and one next key per algorithm: the access tokens' (ES256 by default) and
    RS256, which OIDC Core §15.1 requires for ID tokens."""
    st = states(app)
    assert algs_by_state(app) == {"current": ["ES256", "RS256"], "next": ["ES256", "RS256"]}
    published = {k["kid"] for k in jwks(http)}
    assert published == set(st)


def test_jwks_has_public_members_only_and_kid_on_every_key(http):
    resp = http.get("/oauth/jwks")
    assert resp.headers["Content-Type"].startswith("application/jwk-set+json")
    for key in resp.get_json()["keys"]:
        assert key["kid"]
        assert key["use"] == "sig"
        assert not PRIVATE_MEMBERS & set(key)


def test_jwks_cache_lifetime_is_shorter_than_prepublication(http, settings):
    cc = http.get("/oauth/jwks").headers["Cache-Control"]
    max_age = int(cc.split("max-age=")[1])
    assert max_age == settings.jwks_max_age
    assert max_age < settings.key_prepublish_seconds


def test_the_next_key_never_signs(http, world, app):
    st = states(app)
    nxt = next(k for k, s in st.items() if s == "next")
    creds = world.client()
    kids = {kid_of(cc_token(http, creds).get_json()["access_token"]) for _ in range(10)}
    assert kids == {next(k for k, s in st.items() if s == "current")}
    assert nxt not in kids


def test_rotation_refused_before_the_next_key_was_published_long_enough(app, clock, settings):
    with pytest.raises(RotationTooEarly):
        do_rotate(app)
    clock.advance(settings.key_prepublish_seconds)
    result = do_rotate(app)
    assert result["current"] != result["retired"]


def test_rotation_publishes_the_next_key_before_it_signs(http, world, app, clock, settings):
    creds = world.client()
    before = states(app)
    nxt = next(k for k, s in before.items() if s == "next")
    published_before = {k["kid"] for k in jwks(http)}
    assert nxt in published_before
    clock.advance(settings.key_prepublish_seconds)
    do_rotate(app)
    token = cc_token(http, creds).get_json()["access_token"]
    assert kid_of(token) == nxt  # the key that now signs was in the JWKS a client cached before


def test_token_signed_by_retired_key_verifies_until_it_expires(http, world, app, clock, settings):
    creds = world.client()
    clock.advance(settings.key_prepublish_seconds)
    old = cc_token(http, creds).get_json()["access_token"]
    old_kid = kid_of(old)
    do_rotate(app)
    clock.advance(settings.access_token_ttl - 5)  # the old token is near the end of its life
    assert states(app)[old_kid] == "retired"

    # Still published, still verifiable by a relying party, still active at introspection.
    keyset = KeySet.import_key_set({"keys": jwks(http)})
    assert jwt.decode(old, keyset).claims["sub"] == creds.client_id
    intro = http.post("/oauth/introspect", data={"token": old}, headers=creds.auth_header())
    assert intro.get_json()["active"] is True

    # Once every token it signed has expired, it is removed from the JWKS.
    clock.advance(retention_seconds(settings) - settings.access_token_ttl + 10)
    assert old_kid not in {k["kid"] for k in jwks(http)}
    assert states(app)[old_kid] == "removed"


def test_removed_keys_lose_their_private_part(app, clock, settings):
    step = max(settings.key_prepublish_seconds, retention_seconds(settings)) + 1
    clock.advance(step)
    retired = do_rotate(app)["retired"]
    clock.advance(step)
    do_rotate(app)  # rotation purges keys whose retention has passed
    with app.app_context():
        row = db.session.get(SigningKey, retired)
        assert row.state == "removed"
        assert row.private_key_enc is None


def test_private_keys_are_encrypted_at_rest(app, settings):
    with app.app_context():
        rows = db.session.scalars(select(SigningKey)).all()
        assert rows
        for row in rows:
            assert b"PRIVATE KEY" not in row.private_key_enc
            pem = KeyEncryptor(settings.key_encryption_key).decrypt(row.kid, row.private_key_enc)
            assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
            with pytest.raises(KeyDecryptionError):
                KeyEncryptor(b"\x00" * 32).decrypt(row.kid, row.private_key_enc)
            # Bound to its kid: moved to another row it does not decrypt.
            with pytest.raises(KeyDecryptionError):
                KeyEncryptor(settings.key_encryption_key).decrypt("other", row.private_key_enc)


def test_ensure_keys_is_idempotent(app, settings):
    with app.app_context():
        enc = KeyEncryptor(settings.key_encryption_key)
        assert ensure_keys(db.session, settings, enc, now()) is False
    assert algs_by_state(app) == {"current": ["ES256", "RS256"], "next": ["ES256", "RS256"]}


@pytest.mark.parametrize("overrides", [{"signing_alg": "RS256"}, {"signing_alg": "Ed25519"}])
def test_other_signing_algorithms(http, world, overrides):
    creds = world.client()
    token = cc_token(http, creds).get_json()["access_token"]
    keys = jwks(http)
    assert {k["alg"] for k in keys} == {overrides["signing_alg"], "RS256"}
    tok = jwt.decode(
        token, KeySet.import_key_set({"keys": keys}), algorithms=[overrides["signing_alg"]]
    )
    assert tok.header["alg"] == overrides["signing_alg"]
    # ... and the server itself accepts its own tokens of that algorithm.
    intro = http.post("/oauth/introspect", data={"token": token}, headers=creds.auth_header())
    assert intro.get_json()["active"] is True
