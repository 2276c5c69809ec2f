"""keys/jws.py: our own compact JWS, checked against joserfc both ways and on its edges."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

from keys import jws

KEYS = {
    "ES256": lambda: ECKey.generate_key("P-256", private=True),
    "RS256": lambda: RSAKey.generate_key(2048, private=True),
    "Ed25519": lambda: OKPKey.generate_key("Ed25519", private=True),
}
CLAIMS = {"iss": "https://as.example", "sub": "dev_1", "n": 1, "s": "é ✓"}


def parts(token: str) -> tuple[bytes, bytes]:
    head, payload, sig = token.split(".")
    return f"{head}.{payload}".encode(), jws.b64url_decode(sig)


@pytest.mark.parametrize("alg", list(KEYS))
def test_joserfc_verifies_what_we_sign(alg):
    key = KEYS[alg]()
    token = jws.Signer(alg, key.private_key, "k1").sign(CLAIMS, "at+jwt")
    obj = jwt.decode(token, key, algorithms=[alg])
    assert obj.header == {"alg": alg, "typ": "at+jwt", "kid": "k1"}
    assert obj.claims == CLAIMS


@pytest.mark.parametrize("alg", list(KEYS))
def test_we_verify_what_joserfc_signs_and_nothing_altered(alg):
    key = KEYS[alg]()
    token = jwt.encode({"alg": alg, "kid": "k1"}, CLAIMS, key, algorithms=[alg])
    data, sig = parts(token)
    assert jws.signature_valid(alg, key.public_key, data, sig)
    assert not jws.signature_valid(alg, key.public_key, data + b"x", sig)
    assert not jws.signature_valid(alg, key.public_key, data, sig[:-1] + bytes([sig[-1] ^ 1]))
    other = KEYS[alg]()
    assert not jws.signature_valid(alg, other.public_key, data, sig)


def test_a_signature_is_checked_under_its_own_algorithm_only():
    es, rs, ed = (KEYS[a]() for a in ("ES256", "RS256", "Ed25519"))
    data, sig = parts(jws.Signer("ES256", es.private_key, "k").sign(CLAIMS, "JWT"))
    assert not jws.signature_valid("ES384", es.public_key, data, sig)
    assert not jws.signature_valid("none", es.public_key, data, b"")
    assert not jws.signature_valid("HS256", es.public_key, data, sig)
    data, sig = parts(jws.Signer("Ed25519", ed.private_key, "k").sign(CLAIMS, "JWT"))
    assert not jws.signature_valid("EdDSA", ed.public_key, data, sig)


def test_es256_signatures_are_64_raw_bytes_never_der():
    key = ec.generate_private_key(ec.SECP256R1())
    data, sig = parts(jws.Signer("ES256", key, "k").sign(CLAIMS, "JWT"))
    assert len(sig) == 64
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    assert key.public_key().verify(der, data, ec.ECDSA(hashes.SHA256())) is None
    assert not jws.signature_valid("ES256", key.public_key(), data, der)  # DER: refused
    assert not jws.signature_valid("ES256", key.public_key(), data, sig + b"\0")
    assert not jws.signature_valid("ES256", key.public_key(), data, sig[:63])


@pytest.mark.parametrize(
    "alg,key,private",
    [
        ("ES256", lambda: ec.generate_private_key(ec.SECP384R1()), True),
        ("ES256", lambda: ec.generate_private_key(ec.SECP384R1()).public_key(), False),
        ("ES256", lambda: ec.generate_private_key(ec.SECP256R1()).public_key(), True),
        ("ES256", lambda: ec.generate_private_key(ec.SECP256R1()), False),
        ("RS256", lambda: rsa.generate_private_key(65537, 1024), True),
        ("RS256", lambda: rsa.generate_private_key(65537, 1024).public_key(), False),
        ("RS256", lambda: ec.generate_private_key(ec.SECP256R1()), True),
        ("Ed25519", lambda: ec.generate_private_key(ec.SECP256R1()), True),
        ("Ed25519", lambda: ed25519.Ed25519PrivateKey.generate(), False),
        ("HS256", lambda: ec.generate_private_key(ec.SECP256R1()), True),
    ],
)
def test_keys_that_do_not_fit_the_algorithm_are_refused(alg, key, private):
    with pytest.raises(ValueError):
        jws.check_key(alg, key(), private)


@pytest.mark.parametrize(
    "alg,key",
    [
        ("ES256", lambda: ec.generate_private_key(ec.SECP256R1())),
        ("RS256", lambda: rsa.generate_private_key(65537, 2048)),
        ("Ed25519", ed25519.Ed25519PrivateKey.generate),
    ],
)
def test_keys_that_fit_are_accepted(alg, key):
    k = key()
    jws.check_key(alg, k, True)
    jws.check_key(alg, k.public_key(), False)


def test_the_header_is_compact_and_per_typ():
    signer = jws.Signer("ES256", ec.generate_private_key(ec.SECP256R1()), "kid-1")
    a, b = signer.sign({}, "at+jwt"), signer.sign({}, "JWT")
    assert json.loads(jws.b64url_decode(a.split(".")[0])) == {
        "alg": "ES256", "typ": "at+jwt", "kid": "kid-1"}  # fmt: skip
    assert jws.b64url_decode(b.split(".")[0]) == b'{"alg":"ES256","typ":"JWT","kid":"kid-1"}'
    assert jws.b64url_decode(a.split(".")[1]) == b"{}"


@pytest.mark.parametrize(
    "text",
    ["YQ==", "YQ=", "a+b/", "YW J", "YW\nJ", "Y", "YWJjZ", "é"],
    ids=["padding", "one pad", "plus slash", "space", "newline", "1 mod 4", "5 chars", "non-ascii"],
)
def test_base64url_is_strict(text):
    with pytest.raises(ValueError):
        jws.b64url_decode(text)


def test_base64url_round_trips():
    for n in range(0, 40):
        data = bytes(range(n))
        assert jws.b64url_decode(jws.b64url(data)) == data
    assert jws.b64url_decode("") == b""
    assert jws.b64url(b"\xfb\xff") == "-_8"
