"""The KeyRing a process signs and verifies with: its cache, forced reloads, the retired keys it
still trusts, the order it publishes keys in."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, update

from authserver.models import SigningKey, db
from keys.encryption import KeyEncryptor
from keys.jwks import InvalidSignedToken, KeyRing, NoSigningKey
from keys.rotation import rotate
from tests.conftest import Clock

CACHE = 30


@pytest.fixture
def ring(app, settings):
    """A second key ring on the app's database, with its own clock and a 30 s cache."""
    clock = Clock()
    with app.app_context():
        r = KeyRing(db.engine, KeyEncryptor(settings.key_encryption_key), CACHE, clock)
    r.clock = clock  # type: ignore[attr-defined]
    return r


def loads(ring, monkeypatch) -> list[float]:
    calls: list[float] = []
    real = ring._load

    def counting():
        calls.append(ring.clock())
        return real()

    monkeypatch.setattr(ring, "_load", counting)
    return calls


def rotate_now(app, settings, clock_value: int) -> dict:
    with app.app_context():
        result = rotate(
            db.session,
            settings,
            KeyEncryptor(settings.key_encryption_key),
            clock_value,
            force=True,
        )
        db.session.commit()
        return result[0]  # the access tokens' algorithm rotates first


def test_the_snapshot_is_cached_for_its_lifetime_and_reloaded_after(ring, monkeypatch):
    calls = loads(ring, monkeypatch)
    ring.snapshot()
    ring.clock.advance(CACHE - 1)
    ring.snapshot()
    assert len(calls) == 1
    ring.clock.advance(1)  # exactly the lifetime: stale
    ring.snapshot()
    assert len(calls) == 2


def test_force_and_invalidate_reload_at_once(ring, monkeypatch):
    calls = loads(ring, monkeypatch)
    ring.snapshot()
    ring.snapshot(force=True)
    assert len(calls) == 2
    ring.invalidate()
    ring.snapshot()
    assert len(calls) == 3


def test_a_key_rotated_in_by_another_process_is_found_at_once(app, ring, settings):
    ring.snapshot()  # cached before the rotation
    other = KeyRing(ring._engine, ring._encryptor, CACHE, ring.clock)
    result = rotate_now(app, settings, int(ring.clock()))
    token = other.sign({"sub": "x"}, "at+jwt")
    assert other.snapshot().signing_kid == result["current"]
    # The first ring's cache predates the key: an unknown kid forces one reload.
    header, claims = ring.verify(token, "at+jwt")
    assert header["kid"] == result["current"] and claims == {"sub": "x"}


def test_unknown_kids_force_at_most_one_reload_a_second(app, ring, monkeypatch):
    calls = loads(ring, monkeypatch)
    good = ring.sign({"sub": "x"}, "at+jwt")
    head, body, sig = good.split(".")
    import base64
    import json

    header = json.loads(base64.urlsafe_b64decode(head + "=="))
    sprayed = []
    for i in range(20):
        h = base64.urlsafe_b64encode(json.dumps({**header, "kid": f"k{i}"}).encode()).decode()
        sprayed.append(f"{h.rstrip('=')}.{body}.{sig}")
    for token in sprayed:
        with pytest.raises(InvalidSignedToken, match="unknown kid"):
            ring.verify(token, "at+jwt")
    assert len(calls) == 2  # the first load, and one forced reload for the first unknown kid
    ring.clock.advance(1)
    with pytest.raises(InvalidSignedToken):
        ring.verify(sprayed[0], "at+jwt")
    assert len(calls) == 3  # a second later, one more


def test_a_retired_key_is_trusted_until_its_removal_time_and_not_at_it(app, ring, settings):
    token = ring.sign({"sub": "x"}, "at+jwt")
    kid = ring.snapshot().signing_kid
    now = int(ring.clock())
    rotate_now(app, settings, now)
    with app.app_context():
        db.session.execute(
            update(SigningKey).where(SigningKey.kid == kid).values(remove_after=now + 100)
        )
        db.session.commit()
    ring.clock.t = now + 99
    ring.invalidate()
    assert ring.verify(token, "at+jwt")[1] == {"sub": "x"}
    ring.clock.t = now + 100
    ring.invalidate()
    with pytest.raises(InvalidSignedToken, match="unknown kid"):
        ring.verify(token, "at+jwt")
    assert kid not in {k["kid"] for k in ring.jwks()["keys"]}


def test_the_jwks_lists_current_then_next_then_retired(app, ring, settings):
    first = ring.snapshot().signing_kid
    result = rotate_now(app, settings, int(ring.clock()) + 10)
    ring.invalidate()
    published = ring.jwks()["keys"]
    with app.app_context():
        rows = {k.kid: k for k in db.session.query(SigningKey)}
    nxt = next(k for k, r in rows.items() if r.state == "next" and r.alg == settings.signing_alg)
    assert [k["kid"] for k in published if k["alg"] == settings.signing_alg] == [
        result["current"], nxt, first,
    ]  # fmt: skip
    # Every algorithm's keys in that order, the access tokens' algorithm first in each state.
    states = [(rows[k["kid"]].state, k["alg"]) for k in published]
    assert states == [(s, a) for s in ("current", "next", "retired")
                      for a in settings.signing_algs]  # fmt: skip


def test_no_current_key_is_an_error_of_its_own(app, ring):
    with app.app_context():
        db.session.execute(delete(SigningKey))
        db.session.commit()
    with pytest.raises(NoSigningKey):
        ring.snapshot(force=True)


# -- verify(): the header checks on their own ------------------------------------------------------
# joserfc would also refuse most of these tokens; stubbing its decode shows that each of our
# checks refuses them by itself (the two layers must not hide each other's absence).


def b64(obj) -> str:
    import base64
    import json

    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture
def permissive_decode(monkeypatch):
    """The signature check replaced by one that accepts anything and records how it was
    called: what reaches it passed every check before the cryptography."""
    import keys.jwks as jwks_module

    calls: list[dict] = []

    def signature_valid(alg, key, data, signature):
        calls.append({"key": key, "alg": alg})
        return True

    monkeypatch.setattr(jwks_module.jws, "signature_valid", signature_valid)
    return calls


def header_of(ring) -> dict:
    snap = ring.snapshot()
    return {"alg": snap.signing_alg, "typ": "at+jwt", "kid": snap.signing_kid}


def test_with_a_permissive_decoder_a_well_formed_token_passes(ring, permissive_decode):
    h = header_of(ring)
    header, claims = ring.verify(f"{b64(h)}.{b64({'sub': 'x'})}.c2ln", "at+jwt")
    assert claims == {"sub": "x"}
    # Verified with the kid's own key and that one algorithm only.
    (call,) = permissive_decode
    assert call["alg"] == h["alg"]
    assert call["key"] is ring.snapshot().verify_keys[h["kid"]][1]


@pytest.mark.parametrize(
    "change,reason",
    [
        ({"alg": "none"}, "alg is not allowed"),
        ({"alg": "HS256"}, "alg is not allowed"),
        ({"alg": "RS256"}, "alg does not match the key"),
        ({"alg": "Ed25519"}, "alg does not match the key"),
        ({"kid": "nope"}, "unknown kid"),
        ({"kid": None}, "unknown kid"),
        ({"kid": ""}, "unknown kid"),
        ({"kid": 7}, "unknown kid"),
        ({"typ": "JWT"}, "typ"),
        ({"typ": None}, "typ"),
        ({"jku": "https://evil.example"}, "unexpected header parameter"),
        ({"crit": ["b64"]}, "unexpected header parameter"),
    ],
)
def test_each_header_check_refuses_on_its_own(ring, permissive_decode, change, reason):
    h = {k: v for k, v in {**header_of(ring), **change}.items() if v is not None}
    with pytest.raises(InvalidSignedToken) as info:
        ring.verify(f"{b64(h)}.{b64({'sub': 'x'})}.c2ln", "at+jwt")
    assert str(info.value) == reason
    assert permissive_decode == []  # refused before any cryptography


def test_application_at_jwt_is_the_same_typ(ring, permissive_decode):
    h = {**header_of(ring), "typ": "application/AT+JWT"}
    assert ring.verify(f"{b64(h)}.{b64({'sub': 'x'})}.c2ln", "at+jwt")[1] == {"sub": "x"}


@pytest.mark.parametrize(
    "shape",
    ["{h}.{c}", "{h}.{c}.{s}.{s}", ".{c}.{s}", "{h}..{s}", "{h}.{c}."],
    ids=["2 parts", "4 parts", "empty header", "empty claims", "empty signature"],
)
def test_structurally_broken_tokens_are_refused_before_decoding(ring, permissive_decode, shape):
    token = shape.format(h=b64(header_of(ring)), c=b64({"sub": "x"}), s="c2ln")
    with pytest.raises(InvalidSignedToken, match="not a compact JWS"):
        ring.verify(token, "at+jwt")
    assert permissive_decode == []


@pytest.mark.parametrize(
    "header",
    [b64(b"not json"), b64([1, 2]), b64(b"\xff\xfe"), "%%%%"],
    ids=["not json", "not an object", "not utf-8", "not base64"],
)
def test_unreadable_headers_are_refused_before_decoding(ring, permissive_decode, header):
    with pytest.raises(InvalidSignedToken):
        ring.verify(f"{header}.{b64({'sub': 'x'})}.c2ln", "at+jwt")
    assert permissive_decode == []


def padded_header(ring, size: int) -> str:
    """The ring's header as JSON of exactly ``size`` bytes (spaces after the brace)."""
    import json

    raw = json.dumps(header_of(ring))
    return b64(("{" + " " * (size - len(raw)) + raw[1:]).encode())


def test_a_header_of_exactly_the_limit_is_read_and_one_byte_more_is_not(ring, permissive_decode):
    from keys.jwks import MAX_HEADER_CHARS

    at_limit = padded_header(ring, MAX_HEADER_CHARS * 3 // 4)  # 384 bytes: 512 characters
    assert len(at_limit) == MAX_HEADER_CHARS
    assert ring.verify(f"{at_limit}.{b64({'sub': 'x'})}.c2ln", "at+jwt")[1] == {"sub": "x"}
    over = padded_header(ring, MAX_HEADER_CHARS * 3 // 4 + 1)
    with pytest.raises(InvalidSignedToken, match="not a compact JWS"):
        ring.verify(f"{over}.{b64({'sub': 'x'})}.c2ln", "at+jwt")


def test_signing_alg_is_the_current_keys(ring, settings):
    assert ring.signing_alg == settings.signing_alg == ring.snapshot().signing_alg


def p384_jwk() -> dict:
    from joserfc.jwk import ECKey

    return ECKey.generate_key("P-384").as_dict(private=False)


def x25519_jwk() -> dict:
    from joserfc.jwk import OKPKey

    return OKPKey.generate_key("X25519").as_dict(private=False)


def rsa1024_jwk() -> dict:
    # Made with cryptography: joserfc itself refuses to generate so short a key.
    from cryptography.hazmat.primitives.asymmetric import rsa

    numbers = rsa.generate_private_key(65537, 1024).public_key().public_numbers()
    as_b64 = lambda n: b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))  # noqa: E731
    return {"kty": "RSA", "n": as_b64(numbers.n), "e": as_b64(numbers.e)}


@pytest.mark.parametrize(
    "alg,public,reason",
    [
        pytest.param("ES256", p384_jwk, "P-256", id="ES256 over P-384"),
        pytest.param("Ed25519", x25519_jwk, "Ed25519", id="Ed25519 over X25519"),
        # joserfc only warns when it imports a short RSA key (an error under our pytest config):
        # the check that refuses it is ours.
        pytest.param(
            "RS256",
            rsa1024_jwk,
            "2048",
            id="RS256 of 1024 bits",
            marks=pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning"),
        ),
    ],
)
def test_a_published_key_that_does_not_fit_its_alg_is_never_trusted(app, ring, alg, public, reason):
    # A row written by hand (or by a broken tool): its public key must still be one its
    # algorithm may use, or the ring refuses to load rather than verify with it.
    with app.app_context():
        db.session.add(
            SigningKey(
                kid="odd",
                alg=alg,
                state="retired",
                public_jwk={**public(), "kid": "odd"},
                created_at=0,
                remove_after=int(ring.clock()) + 3600,
            )  # fmt: skip
        )
        db.session.commit()
    with pytest.raises(ValueError, match=reason):
        ring.snapshot(force=True)


def test_has_key_names_the_keys_of_the_ring_only(app, ring, settings):
    first = ring.snapshot().signing_kid
    assert ring.has_key(first) is True
    assert ring.has_key("nope") is False
    now = int(ring.clock())
    rotate_now(app, settings, now)
    with app.app_context():  # the retired key leaves the ring at its removal time
        db.session.execute(
            update(SigningKey).where(SigningKey.kid == first).values(remove_after=now + 1)
        )
        db.session.commit()
    ring.clock.advance(1)
    ring.invalidate()
    assert ring.has_key(first) is False
    assert ring.has_key(ring.snapshot().signing_kid) is True


def signed_raw(ring, payload: bytes) -> str:
    """A token the ring's current key really signed, whatever its payload bytes."""
    head = b64(header_of(ring))
    body = b64(payload)
    signature = ring.snapshot().signer._signature(f"{head}.{body}".encode())
    return f"{head}.{body}.{b64(signature)}"


def test_a_signed_token_is_read_only_when_its_claims_are_a_json_object(ring):
    assert ring.verify(signed_raw(ring, b'{"sub":"x"}'), "at+jwt")[1] == {"sub": "x"}
    for payload, reason in [
        (b"not json", "malformed claims"),
        (b"\xff\xfe", "malformed claims"),
        (b"[1, 2]", "claims are not a JSON object"),
        (b'"sub"', "claims are not a JSON object"),
    ]:
        with pytest.raises(InvalidSignedToken) as info:
            ring.verify(signed_raw(ring, payload), "at+jwt")
        assert str(info.value) == reason


@pytest.mark.parametrize(
    "signature",
    ["%%%%", "c2ln=", "a", "c2ln\u00e9"],
    ids=["not base64", "padded", "1 char", "non-ascii"],
)
def test_an_unreadable_signature_is_malformed_not_an_error(ring, signature):
    head, body, _ = signed_raw(ring, b'{"sub":"x"}').split(".")
    with pytest.raises(InvalidSignedToken, match="malformed signature"):
        ring.verify(f"{head}.{body}.{signature}", "at+jwt")


def test_a_non_ascii_payload_is_malformed_not_an_error(ring):
    head, body, signature = signed_raw(ring, b'{"sub":"x"}').split(".")
    with pytest.raises(InvalidSignedToken, match="malformed signature"):
        ring.verify(f"{head}.{body}\u00e9.{signature}", "at+jwt")
