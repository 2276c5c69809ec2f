"""RFC 9449 §4.3: every proof check in grants/dpop.py, each with its own test."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from grants.dpop import (
    InvalidDPoPProof,
    NonceIssuer,
    UseDPoPNonce,
    normalise_htu,
    verify_proof,
)
from tests.dpop_client import DPoPKey, b64, forge

URL = "https://as.example.com/oauth/token"


class MemoryStore:
    def __init__(self) -> None:
        self.claimed: dict[str, float] = {}

    def claim_once(self, key: str, ttl: float) -> bool:
        assert len(key) <= 200
        if key in self.claimed:
            return False
        self.claimed[key] = ttl
        return True


@pytest.fixture
def key() -> DPoPKey:
    return DPoPKey("ES256")


def check(proofs, method="POST", url=URL, now=None, store=None, **kw):
    if isinstance(proofs, str):
        proofs = [proofs]
    return verify_proof(
        proofs,
        method=method,
        url=url,
        now=time.time() if now is None else now,
        max_age=60,
        max_future=10,
        store=store or MemoryStore(),
        **kw,
    )


def fails(expected: str, *args, **kw) -> None:
    with pytest.raises(InvalidDPoPProof) as info:
        check(*args, **kw)
    assert expected in info.value.description


def test_a_good_proof_passes_and_yields_the_rfc7638_thumbprint(key):
    proof = check(key.proof("POST", URL))
    assert proof.jkt == key.jkt
    assert len(proof.jkt) == 43


# 1. exactly one DPoP header
def test_1_two_dpop_headers_are_refused(key):
    fails("exactly one DPoP header", [key.proof("POST", URL), key.proof("POST", URL)])
    fails("exactly one DPoP header", [])
    fails("exactly one DPoP header", key.proof("POST", URL) + ", " + key.proof("POST", URL))


# 2. well-formed compact JWS
@pytest.mark.parametrize(
    "bad",
    [
        "abc",
        "a.b",
        "a.b.c.d",
        "..",
        "!!.!!.!!",
        b64(b"[1]") + "." + b64(b"{}") + ".c2ln",
        b64(b"{}") + "." + b64(b"not json") + ".c2ln",
    ],
)
def test_2_malformed_jws_is_refused(bad):
    fails("not a compact JWS", bad)


def test_2_oversized_proof_is_refused(key):
    fails("too large", key.proof("POST", URL, claims={"pad": "x" * 9000}))


# 3. required claims
@pytest.mark.parametrize("claim", ["jti", "htm", "htu", "iat"])
def test_3_missing_claim_is_refused(key, claim):
    fails(f"{claim} claim missing", key.proof("POST", URL, omit=(claim,)))


def test_3_ath_required_at_resources(key):
    fails("ath claim missing", key.proof("GET", URL), method="GET", access_token="tok")


def test_3_nonce_required_when_the_server_requires_one(key):
    nonces = NonceIssuer(b"k" * 32, 60)
    with pytest.raises(UseDPoPNonce) as info:
        check(key.proof("POST", URL), nonces=nonces)
    assert info.value.nonce and nonces.step_of(info.value.nonce, time.time()) is not None


def test_3_string_iat_is_refused(key):
    fails("iat claim missing", key.proof("POST", URL, claims={"iat": str(int(time.time()))}))


@pytest.mark.parametrize("iat", [10**400, -(10**400)])
def test_3_iat_beyond_a_float_is_refused_not_an_overflow(key, iat):
    fails("not a compact JWS", key.proof("POST", URL, claims={"iat": iat}))  # not JSON we read


@pytest.mark.parametrize("iat", [2**53 + 1, -(2**53 + 1), 2**64 - 1])
def test_3_an_integer_iat_beyond_2_53_is_out_of_range(key, iat):
    fails("iat claim is out of range", key.proof("POST", URL, claims={"iat": iat}))


@pytest.mark.parametrize("iat", [True, None, [1], {"t": 1}])
def test_3_non_numeric_iat_is_refused(key, iat):
    fails("iat claim missing", key.proof("POST", URL, claims={"iat": iat}))


def test_3_overlong_jti_is_refused(key):
    fails("jti claim too long", key.proof("POST", URL, jti="j" * 257))


# 4. typ
@pytest.mark.parametrize("typ", ["JWT", "at+jwt", None])
def test_4_typ_must_be_dpop_jwt(key, typ):
    header = {"typ": typ} if typ else {}
    omit = ("typ",) if typ is None else ()
    fails("typ must be dpop+jwt", key.proof("POST", URL, header=header, omit=omit))


# 5. alg allow-list
def test_5_alg_none_is_refused(key):
    fails(
        "alg is not an allowed",
        forge(
            {"typ": "dpop+jwt", "alg": "none", "jwk": key.public_jwk()},
            {"jti": "a", "htm": "POST", "htu": URL, "iat": 1},
        ),
    )


def test_5_hmac_with_symmetric_jwk_is_refused():
    secret = b"s" * 32
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": b64(secret)}}
    claims = {"jti": "a", "htm": "POST", "htu": URL, "iat": int(time.time())}
    unsigned = forge(header, claims).rsplit(".", 1)[0]
    sig = hmac.new(secret, unsigned.encode(), hashlib.sha256).digest()
    fails("alg is not an allowed", f"{unsigned}.{b64(sig)}")


@pytest.mark.parametrize("alg", ["RS512", "ES512", "ES256K", "Ed448", "foo"])
def test_5_algorithms_outside_the_list_are_refused(key, alg):
    claims = {"jti": "a", "htm": "POST", "htu": URL, "iat": int(time.time())}
    fails(
        "alg is not an allowed",
        forge({"typ": "dpop+jwt", "alg": alg, "jwk": key.public_jwk()}, claims),
    )


# 6. signature
def test_6_signature_by_another_key_is_refused(key):
    other = DPoPKey("ES256")
    proof = other.proof("POST", URL, header={"jwk": key.public_jwk()})
    fails("signature does not verify", proof)


def test_6_tampered_claims_are_refused(key):
    head, _, sig = key.proof("POST", URL).split(".")
    body = b64(b'{"jti":"x","htm":"POST","htu":"' + URL.encode() + b'","iat":1}')
    fails("signature does not verify", f"{head}.{body}.{sig}")


# 7. jwk is a public asymmetric key
def test_7_private_key_in_jwk_is_refused(key):
    private = dict(key.key.as_dict(private=True))
    fails("private key material", key.proof("POST", URL, header={"jwk": private}))


def test_7_missing_jwk_is_refused(key):
    fails("jwk header is not a JSON object", key.proof("POST", URL, omit=("jwk",)))


def test_7_key_type_must_match_alg(key):
    rsa = DPoPKey("RS256")
    fails(
        "jwk key type does not match alg", key.proof("POST", URL, header={"jwk": rsa.public_jwk()})
    )


def test_7_short_rsa_keys_are_refused(key):
    from cryptography.hazmat.primitives.asymmetric import rsa

    n = rsa.generate_private_key(65537, 1024).public_key().public_numbers().n
    jwk = {"kty": "RSA", "e": "AQAB", "n": b64(n.to_bytes(128, "big"))}
    claims = {"jti": "a", "htm": "POST", "htu": URL, "iat": int(time.time())}
    fails("shorter than 2048", forge({"typ": "dpop+jwt", "alg": "RS256", "jwk": jwk}, claims))


# 8. htm
def test_8_htm_must_match_the_method(key):
    fails("htm does not match", key.proof("GET", URL))
    fails("htm does not match", key.proof("post", URL))


# 9. htu
def test_9_htu_must_match_the_url(key):
    fails("htu does not match", key.proof("POST", "https://as.example.com/oauth/revoke"))
    fails("htu does not match", key.proof("POST", "https://evil.example.com/oauth/token"))
    fails("htu does not match", key.proof("POST", "http://as.example.com/oauth/token"))


@pytest.mark.parametrize(
    "htu",
    [
        "https://evil@as.example.com/oauth/token",
        "https://as.example.com:443@evil.example.com/oauth/token",
        "https://:@as.example.com/oauth/token",
        "ftp://as.example.com/oauth/token",
        "https://as.example.com:99999/oauth/token",
        "https://as.example.com/oauth/%ff",
    ],
)
def test_9_htu_that_is_not_a_plain_http_url_is_refused(key, htu):
    fails("htu is not a valid URL", key.proof("POST", htu))


@pytest.mark.parametrize(
    "htu",
    [
        "https://as.example.com/oauth/token?x=1#frag",  # query and fragment are ignored
        "HTTPS://AS.Example.COM/oauth/token",  # scheme and host case
        "https://as.example.com:443/oauth/token",  # default port
        "https://as.example.com/oauth/%74oken",  # unreserved percent-encoding
        "https://as.example.com/oauth/./token",  # dot segments
    ],
)
def test_9_htu_is_compared_after_rfc3986_normalisation(key, htu):
    assert check(key.proof("POST", htu)).jkt == key.jkt


def test_9_normalisation_details():
    assert normalise_htu("http://h:80") == "http://h/"
    assert normalise_htu("http://h:8080/a%2fb") == "http://h:8080/a%2Fb"
    assert normalise_htu("https://h/a/b/../c") == "https://h/a/c"


# 10. nonce
def test_10_nonce_must_be_one_the_server_issued(key):
    nonces = NonceIssuer(b"k" * 32, 60)
    now = time.time()
    good = check(key.proof("POST", URL, nonce=nonces.fresh(now)), nonces=nonces, now=now)
    assert good.nonce
    forged = NonceIssuer(b"z" * 32, 60).fresh(now)
    with pytest.raises(UseDPoPNonce):
        check(key.proof("POST", URL, nonce=forged), nonces=nonces, now=now)
    old = nonces.current(now - 300)
    with pytest.raises(UseDPoPNonce):
        check(key.proof("POST", URL, nonce=old), nonces=nonces, now=now)


def test_10_nonces_roll_and_are_valid_one_step_either_side():
    nonces = NonceIssuer(b"k" * 32, 60)
    t = 6000.0  # the start of a step
    n = nonces.current(t)
    assert nonces.step_of(n, t + 59) is not None
    assert nonces.step_of(n, t + 119) is not None
    assert nonces.step_of(n, t + 120) is None
    assert nonces.fresh(t + 50) == nonces.current(t + 60)  # about to roll: the next one
    assert nonces.needs_refresh(n, t + 50) is True
    assert nonces.needs_refresh(n, t + 10) is False


# 11. iat window
@pytest.mark.parametrize("offset", [-59, -10, 0, 10])
def test_11_iat_inside_the_window_passes(key, offset):
    now = time.time()
    assert check(key.proof("POST", URL, iat=now + offset), now=now)


@pytest.mark.parametrize(
    "offset,message",
    [(-61, "too old"), (-3600, "too old"), (11, "in the future"), (3600, "in the future")],
)
def test_11_iat_outside_the_window_is_refused(key, offset, message):
    now = time.time()
    fails(message, key.proof("POST", URL, iat=now + offset), now=now)


# 12. jti replay; ath
def test_12_replayed_jti_is_refused(key):
    store = MemoryStore()
    proof = key.proof("POST", URL)
    check(proof, store=store)
    fails("replay", proof, store=store)
    # A new proof reusing the jti (new signature, new iat) is a replay too.
    fails("replay", key.proof("POST", URL, jti=_jti(proof)), store=store)


def _jti(proof: str) -> str:
    import json

    body = proof.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))["jti"]


def test_12_rejected_proofs_do_not_burn_their_jti(key):
    store = MemoryStore()
    fails("htm does not match", key.proof("GET", URL, jti="same"), store=store)
    assert check(key.proof("POST", URL, jti="same"), store=store)


def test_12_replay_key_is_a_bounded_hash(key):
    store = MemoryStore()
    check(key.proof("POST", URL, jti="j" * 256), store=store)
    (stored,) = store.claimed
    assert "j" * 10 not in stored and len(stored) <= 80


def test_12_ath_must_hash_the_presented_token(key):
    proof = key.proof("GET", URL, access_token="token-a")
    fails("ath does not match", proof, method="GET", access_token="token-b")
    assert check(
        key.proof("GET", URL, access_token="token-a"), method="GET", access_token="token-a"
    )


@pytest.mark.parametrize("alg", ["ES256", "ES384", "RS256", "PS256", "Ed25519"])
def test_every_allowed_algorithm_passes(alg):
    k = DPoPKey(alg)
    assert check(k.proof("POST", URL)).jkt == k.jkt


def test_eddsa_name_passes():
    k = DPoPKey("Ed25519")
    assert check(k.proof("POST", URL, header={"alg": "EdDSA"})).jkt == k.jkt


def test_rsa_4096_proof_passes():
    from joserfc.jwk import RSAKey

    k = DPoPKey("PS256", key=RSAKey.generate_key(4096, private=True))
    assert check(k.proof("POST", URL)).jkt == k.jkt


# Checks that used to be reached only through another one (mutation review, §4.2): each input
# passes every check but the one under test, and the failure names that check.


def test_2_a_fourth_segment_is_refused_though_the_signature_covers_two(key):
    fails("not a compact JWS", key.proof("POST", URL) + ".x")


def test_2_an_empty_signature_segment_is_not_a_compact_jws(key):
    head, body, _ = key.proof("POST", URL).split(".")
    fails("not a compact JWS", f"{head}.{body}.")


def test_3_an_empty_jti_is_refused(key):
    fails("jti claim missing", key.proof("POST", URL, claims={"jti": ""}))


def test_3_a_jti_of_exactly_the_limit_passes(key):
    assert check(key.proof("POST", URL, jti="j" * 256)).jti == "j" * 256


def test_2_a_proof_of_exactly_the_size_limit_is_read_and_one_more_is_not():
    from grants.dpop import MAX_PROOF_CHARS

    key = DPoPKey("ES256")
    base = len(key.proof("POST", URL, jti="j", claims={"pad": ""}))
    at_limit = None
    for extra in range(
        (MAX_PROOF_CHARS - base) * 3 // 4 - 4, (MAX_PROOF_CHARS - base) * 3 // 4 + 4
    ):
        for jti in ("j", "jj"):
            proof = key.proof("POST", URL, jti=jti, claims={"pad": "p" * extra})
            if len(proof) == MAX_PROOF_CHARS:
                at_limit = proof
    assert at_limit is not None
    assert check(at_limit)  # an unknown claim is ignored; the size alone is at the limit
    fails("proof too large", at_limit + "A")


@pytest.mark.parametrize(
    "alg,key_alg",
    [("ES256", "ES384"), ("ES384", "ES256")],
)
def test_7_the_curve_must_match_the_alg(alg, key_alg):
    """An ES256 proof with a P-384 key (or the reverse): signed by hand, since joserfc refuses
    to make one; only the curve check stands in the way."""
    import json

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    signer = DPoPKey(key_alg)
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": signer.public_jwk()}
    claims = {"jti": "j1", "htm": "POST", "htu": URL, "iat": int(time.time())}
    head, body = b64(json.dumps(header).encode()), b64(json.dumps(claims).encode())
    digest = hashes.SHA256() if alg == "ES256" else hashes.SHA384()
    r, s = decode_dss_signature(
        signer.key.private_key.sign(f"{head}.{body}".encode(), ec.ECDSA(digest))
    )
    size = 32 if key_alg == "ES256" else 48
    proof = f"{head}.{body}.{b64(r.to_bytes(size, 'big') + s.to_bytes(size, 'big'))}"
    fails("jwk curve does not match alg", proof)


def test_7_an_okp_key_of_another_curve_is_refused(key):
    x448 = {"kty": "OKP", "crv": "Ed448", "x": b64(b"\x01" * 57)}
    fails(
        "jwk curve does not match alg", DPoPKey("Ed25519").proof("POST", URL, header={"jwk": x448})
    )


@pytest.mark.parametrize("htu", ["https://as.example.com:99999/oauth/token", "https://[::1/x"])
def test_9_an_unparsable_htu_is_an_invalid_proof_not_an_error(key, htu):
    fails("htu is not a valid URL", key.proof("POST", htu))


def test_10_a_nonce_of_the_next_step_is_accepted():
    nonces = NonceIssuer(b"k" * 32, 60)
    t = 6050.0  # three quarters into a step: fresh() already hands out the next step's nonce
    assert nonces.step_of(nonces.fresh(t), t) == int(t // 60) + 1
    assert nonces.step_of(nonces.current(t + 60), t) is not None
    assert nonces.step_of(nonces.current(t + 120), t) is None


@pytest.mark.parametrize("edge,ok", [(-60, True), (-61, False), (10, True), (11, False)])
def test_11_the_window_edges_are_inclusive(key, edge, ok):
    now = 1_800_000_000.0
    proof = key.proof("POST", URL, iat=now + edge)
    if ok:
        assert check(proof, now=now)
    else:
        fails("iat", proof, now=now)


def test_12_the_replay_entry_lives_as_long_as_the_proof_could_be_accepted(key):
    """A proof is acceptable from iat - max_future to iat + max_age: its jti must be remembered
    at least that long (71 s with these settings), or it could be replayed at the end."""
    store = MemoryStore()
    check(key.proof("POST", URL), store=store)
    (ttl,) = store.claimed.values()
    assert ttl >= 60 + 10


def test_rejections_are_counted_by_check(key):
    from grants.dpop import DPoPVerifier

    seen: list[str] = []
    verifier = DPoPVerifier(
        issuer="https://as.example.com",
        max_age=60,
        max_future=10,
        store=MemoryStore(),
        nonces=NonceIssuer(b"k" * 32, 60),
        on_reject=seen.append,
    )
    with pytest.raises(InvalidDPoPProof):
        verifier.verify([key.proof("GET", URL)], "POST", "/oauth/token", now=time.time())
    assert seen == ["htm does not match the request method"]
    assert verifier.verify([key.proof("POST", URL)], "POST", "/oauth/token", now=time.time())
    assert seen == ["htm does not match the request method"]  # a good proof is not counted


# -- mutation review: each of these inputs reaches exactly one check ------------------------------


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "oth", "k"])
def test_7_any_private_or_symmetric_member_in_the_jwk_is_refused(key, member):
    # On an EC key most of these are not even EC members: only the member check sees them.
    jwk = {**key.public_jwk(), member: b64(b"\x01" * 32)}
    fails("private key material", key.proof("POST", URL, header={"jwk": jwk}))


def test_2_a_non_canonical_base64_signature_is_refused(key):
    """'+' and '/' are not base64url: a lenient decoder would map them to the same bytes and
    accept a second spelling of one proof."""
    for _ in range(50):
        proof = key.proof("POST", URL)
        head, body, sig = proof.split(".")
        if "-" in sig or "_" in sig:
            break
    respelled = sig.replace("-", "+").replace("_", "/")
    fails("not a compact JWS", f"{head}.{body}.{respelled}")


@pytest.mark.parametrize("raw", ['{"iat": NaN}', '{"iat": Infinity}', '{"iat": -Infinity}'])
def test_2_json_constants_are_not_json(key, raw):
    head = b64(json.dumps({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk()}).encode())
    fails("not a compact JWS", f"{head}.{b64(raw.encode())}.{b64(b'x')}")


def test_2_claims_must_be_an_object(key):
    head = b64(json.dumps({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk()}).encode())
    fails("not a compact JWS", f"{head}.{b64(b'[1, 2]')}.{b64(b'x')}")


def test_4_the_media_type_form_of_typ_is_accepted(key):
    assert check(key.proof("POST", URL, header={"typ": "application/dpop+jwt"}))


def test_5_crit_is_refused(key):
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk(), "crit": ["exp"], "exp": 1}
    claims = {"jti": "j", "htm": "POST", "htu": URL, "iat": int(time.time())}
    fails("crit header parameters", forge(header, claims))


def test_6_a_signature_of_the_wrong_length_does_not_verify(key):
    head, body, _ = key.proof("POST", URL).split(".")
    fails("signature does not verify", f"{head}.{body}.{b64(b'short')}")


def test_7_an_rsa_key_without_a_modulus_is_refused_not_an_error():
    rsa = DPoPKey("RS256")
    jwk = {k: v for k, v in rsa.public_jwk().items() if k != "n"}
    fails("RSA key shorter than 2048 bits", rsa.proof("POST", URL, header={"jwk": jwk}))


def test_7_an_rsa_key_of_2040_bits_is_refused():
    from cryptography.hazmat.primitives.asymmetric import rsa as crypto_rsa

    short = DPoPKey("RS256")
    n = crypto_rsa.generate_private_key(65537, 2040).public_key().public_numbers().n
    jwk = {**short.public_jwk(), "n": b64(n.to_bytes(255, "big"))}
    fails("shorter than 2048 bits", short.proof("POST", URL, header={"jwk": jwk}))


def test_7_an_ec_point_that_is_not_on_the_curve_is_refused(key):
    jwk = {**key.public_jwk(), "y": b64(b"\x00" * 31 + b"\x01")}
    fails("jwk is not a valid public key", key.proof("POST", URL, header={"jwk": jwk}))


def test_7_unknown_members_of_an_rsa_key_are_ignored():
    rsa = DPoPKey("RS256")
    jwk = {**rsa.public_jwk(), "crv": "P-256"}  # meaningless for RSA: ignored (RFC 7517 §4)
    assert check(rsa.proof("POST", URL, header={"jwk": jwk})).jkt == rsa.jkt


@pytest.mark.parametrize("jti", [5, 1.5, True, ["a"], {"a": 1}])
def test_3_a_non_string_jti_is_refused(key, jti):
    fails("jti claim missing", key.proof("POST", URL, claims={"jti": jti}))


def signed_claims_text(key: DPoPKey, claims_text: str) -> str:
    """A properly signed proof whose claims are exactly ``claims_text`` (any JSON spelling)."""
    from joserfc import jws

    header = {"typ": "dpop+jwt", "alg": key.alg, "jwk": key.public_jwk()}
    return jws.serialize_compact(header, claims_text.encode(), key.key, algorithms=[key.alg])


@pytest.mark.parametrize("iat", ["1e309", "-1e309"])
def test_3_a_number_beyond_a_double_is_not_json_we_read(key, iat):
    # JSON has no Infinity, but 1e309 would parse to one in a lenient parser: refused outright,
    # never compared with the iat window.
    text = f'{{"jti": "j", "htm": "POST", "htu": "{URL}", "iat": {iat}}}'
    fails("not a compact JWS", signed_claims_text(key, text))


def test_3_an_iat_of_exactly_2_53_is_in_range(key):
    fails("iat is in the future", key.proof("POST", URL, claims={"iat": 2**53}))


def test_10_a_missing_nonce_is_asked_for_as_missing():
    nonces = NonceIssuer(b"k" * 32, 60)
    with pytest.raises(UseDPoPNonce) as info:
        check(DPoPKey().proof("POST", URL), nonces=nonces)
    assert "requires nonce" in info.value.description


@pytest.mark.parametrize("bad", [12345, None, "x" * 31, "x" * 33, "%" * 32])
def test_10_only_a_32_character_string_can_be_a_nonce(bad):
    assert NonceIssuer(b"k" * 32, 60).step_of(bad, 6000.0) is None  # type: ignore[arg-type]


def test_10_the_nonce_rolls_at_exactly_three_quarters_of_its_step():
    nonces = NonceIssuer(b"k" * 32, 60)
    assert nonces.fresh(6045.0) == nonces.current(6045.0)  # 45 of 60 s: not yet
    assert nonces.fresh(6045.5) == nonces.current(6060.0)  # past it: the next one


def test_10_a_client_without_a_valid_nonce_is_handed_one():
    nonces = NonceIssuer(b"k" * 32, 60)
    assert nonces.needs_refresh(None, 6000.0) is True
    assert nonces.needs_refresh("x" * 32, 6000.0) is True
    assert nonces.needs_refresh(nonces.current(6000.0), 6000.0) is False


def test_12_the_replay_entry_outlives_the_window_by_at_least_a_second(key):
    store = MemoryStore()
    check(key.proof("POST", URL), store=store)
    ((replay_key, ttl),) = store.claimed.items()
    # Accepted until iat + max_age, claimed as early as iat - max_future: 70 s, and the store
    # expires an entry at its deadline, so one more second is needed.
    assert ttl >= 60 + 10 + 1
    assert replay_key.startswith("dpop:")


# -- htu normalisation (RFC 3986 §6.2.2) ------------------------------------------------------------


@pytest.mark.parametrize(
    "given,normalised",
    [
        ("https://h/a/../../b", "https://h/b"),  # no climbing above the root
        ("https://h/a/.", "https://h/a/"),
        ("https://h/a/..", "https://h/"),
        ("https://h/a/b/..", "https://h/a/"),  # RFC 3986 §5.2.4: "/a/b/.." is "/a/"
        ("https://h/a/b/.", "https://h/a/b/"),
        ("https://h/%7Euser/%41", "https://h/~user/A"),  # unreserved characters decoded
        ("https://h/a!$&'()*+,;=:@b", "https://h/a!$&'()*+,;=:@b"),  # sub-delims kept
        ("https://[::1]:8443/x", "https://[::1]:8443/x"),
        ("https://[::1]:443/x", "https://[::1]/x"),
    ],
)
def test_9_normalisation_of_paths_and_hosts(given, normalised):
    assert normalise_htu(given) == normalised


def test_9_an_htu_without_a_host_is_refused_not_an_error(key):
    fails("htu", key.proof("POST", "https:///oauth/token"))


def test_12_the_replay_entry_is_kept_no_longer_than_the_window_needs(key):
    """The store holds one entry per accepted proof: kept for the window and the one second
    the store's deadline needs, not longer, so its size stays bounded by the request rate."""
    store = MemoryStore()
    check(key.proof("POST", URL), store=store)
    (ttl,) = store.claimed.values()
    assert ttl == 60 + 10 + 1


def test_10_a_fresh_nonce_rides_only_on_answers_where_nonces_are_required(key):
    """§8.2: a successful answer carries DPoP-Nonce only where the server requires nonces, and
    only to a client that sent a proof."""
    from grants.dpop import DPoPVerifier

    nonces = NonceIssuer(b"k" * 32, 60)
    verifier = DPoPVerifier(
        issuer="https://as.example.com",
        max_age=60,
        max_future=10,
        store=MemoryStore(),
        nonces=nonces,
        nonce_required_at=frozenset({"token"}),
    )
    t = 6000.0
    without_nonce = check(key.proof("POST", URL, iat=t), now=t)  # a proof that carried none
    assert verifier.nonce_for_response(without_nonce, "token", t) == nonces.fresh(t)
    assert verifier.nonce_for_response(without_nonce, "resource", t) is None
    assert verifier.nonce_for_response(None, "token", t) is None
    current = check(key.proof("POST", URL, iat=t, nonce=nonces.fresh(t)), now=t, nonces=nonces)
    assert verifier.nonce_for_response(current, "token", t) is None  # it has the one to use


def test_6_a_jwk_whose_key_ops_exclude_verify_does_not_verify(key):
    """RFC 7517 §4.3: a key restricted to other operations is not used to verify; the library's
    refusal is an invalid proof, not an error."""
    jwk = {**key.public_jwk(), "key_ops": ["encrypt"]}
    fails("signature does not verify", key.proof("POST", URL, header={"jwk": jwk}))


@pytest.mark.parametrize("use", ["enc", "", "SIG", 1, None])
def test_7_a_jwk_not_declared_for_signatures_is_refused(key, use):
    """RFC 7517 §4.2: "use": "enc" marks an encryption key; anything but "sig" is refused."""
    jwk = {**key.public_jwk(), "use": use}
    fails("jwk use is not sig", key.proof("POST", URL, header={"jwk": jwk}))


def test_7_a_jwk_declared_for_signatures_is_accepted(key):
    jwk = {**key.public_jwk(), "use": "sig"}
    assert check(key.proof("POST", URL, header={"jwk": jwk})).jkt == key.jkt


def test_7_a_jwk_with_non_string_members_is_verified_not_a_crash(key):
    """Members that are not strings (``key_ops`` is a list) are valid JWK; such a key is not
    cached (its members are not hashable), but it verifies like any other."""
    jwk = {**key.public_jwk(), "key_ops": ["verify"]}
    assert check(key.proof("POST", URL, header={"jwk": jwk})).jkt == key.jkt


def test_7_a_key_is_imported_once_and_the_key_cache_stays_bounded(monkeypatch):
    """A terminal sends the same key on every request: it is imported (point validation,
    thumbprint) once. Keys from everyone else cannot grow the cache past its bound."""
    import grants.dpop as dpop

    imports: list[str] = []
    real = dpop._import_public_jwk

    def counting(jwk, alg):
        imports.append(jwk["x"])
        return real(jwk, alg)

    monkeypatch.setattr(dpop, "_import_public_jwk", counting)
    monkeypatch.setattr(dpop, "_KEY_CACHE", {})
    monkeypatch.setattr(dpop, "_KEY_CACHE_MAX", 2)
    a, b, c = DPoPKey("ES256"), DPoPKey("ES256"), DPoPKey("ES256")
    for k in (a, a, b, a):
        assert check(k.proof("POST", URL)).jkt == k.jkt
    assert len(imports) == 2  # a once, b once
    for k in (c, b, a, c):
        assert check(k.proof("POST", URL)).jkt == k.jkt
        assert len(dpop._KEY_CACHE) <= 2


def test_3_a_fractional_iat_is_accepted(key):
    """RFC 7519 §2: a NumericDate may have a fraction; a finite float iat is in range."""
    now = 1_800_000_000.0
    proof = check(key.proof("POST", URL, claims={"iat": now - 0.5}), now=now)
    assert proof.iat == int(now - 0.5)
