"""RFC 9449 DPoP: proof verification (§4.3), server nonces (§8, §9), and the errors both ends use.

One function, ``verify_proof``, performs every check of RFC 9449 §4.3 in order and raises
``InvalidDPoPProof`` naming the check that failed, or ``UseDPoPNonce`` when a fresh server nonce is
needed. It is used by the token endpoint (every grant) and by the resource protector. The replay
check runs last, through the shared ephemeral store, so that a proof rejected for any other reason
does not burn its ``jti`` and a replay is caught across every process.

joserfc supplies key import, thumbprints (RFC 7638) and the signature algorithms; the JOSE header is
checked here, because joserfc on its own accepts HS256 with a symmetric ``jwk``, private keys in the
header and any past ``iat`` (shared/research/authlib-1.9-notes.md §1.8).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import orjson
from authlib.oauth2.rfc6749.errors import OAuth2Error
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

# RFC 9449 §4.3 step 5 / §11.6: asymmetric algorithms only, never "none" or MAC-based ones.
SUPPORTED_ALGS = ("ES256", "ES384", "PS256", "RS256", "Ed25519", "EdDSA")
_ALG_IMPL = {name: JWSRegistry.algorithms[name] for name in SUPPORTED_ALGS if name != "EdDSA"}
# "EdDSA" (RFC 8037) over an Ed25519 key is the same signature as RFC 9864's "Ed25519".
_ALG_IMPL["EdDSA"] = JWSRegistry.algorithms["Ed25519"]
_KEY_FOR_ALG: dict[str, tuple[str, str | None]] = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "PS256": ("RSA", None),
    "RS256": ("RSA", None),
    "Ed25519": ("OKP", "Ed25519"),
    "EdDSA": ("OKP", "Ed25519"),
}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")

MAX_PROOF_CHARS = 8192  # an RSA-4096 proof is about 1.9 kB; anything far larger is not a proof
MAX_JTI_CHARS = 256
MIN_RSA_BITS = 2048
MAX_IAT = 2**53  # the largest integer a float (and JSON number) holds exactly


class InvalidDPoPProof(OAuth2Error):
    """RFC 9449 §5/§7: the proof failed a check. 400 at the token endpoint, 401 at resources."""

    error = "invalid_dpop_proof"
    status_code = 400

    def __init__(self, check: str) -> None:
        super().__init__(description=f"DPoP proof check failed: {check}.")
        self.check = check


class UseDPoPNonce(OAuth2Error):
    """RFC 9449 §8: the server requires a nonce; the fresh one rides in the DPoP-Nonce header."""

    error = "use_dpop_nonce"
    status_code = 400

    def __init__(self, nonce: str, description: str) -> None:
        super().__init__(description=description)
        self.nonce = nonce

    def get_headers(self) -> list[tuple[str, str]]:
        return [*super().get_headers(), ("DPoP-Nonce", self.nonce)]


@dataclass(frozen=True)
class DPoPProof:
    jkt: str  # RFC 7638 thumbprint of the proof's public key
    jti: str
    iat: int
    nonce: str | None
    claims: dict[str, Any]


def _b64decode(part: str) -> bytes:
    if not _B64URL.match(part):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def b64url_sha256(value: str) -> str:
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# --- RFC 3986 §6.2.2-6.2.3 normalisation of htu -------------------------------------------------

_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _normalise_path(path: str) -> str:
    # §6.2.2.1/§6.2.2.2: percent-encodings upper-cased, unreserved characters decoded.
    out = []
    for segment in path.split("/"):
        decoded = unquote(segment, errors="strict")
        out.append(quote(decoded, safe="!$&'()*+,;=:@" + _UNRESERVED))
    path = "/".join(out)
    # §6.2.2.3: dot segments removed.
    stack: list[str] = []
    for seg in path.split("/"):
        if seg == "..":
            if len(stack) > 1:
                stack.pop()
        elif seg != ".":
            stack.append(seg)
    result = "/".join(stack)
    if path.endswith(("/.", "/..")):
        result += "/"
    # §6.2.3: an empty path is "/" for http(s).
    return result or "/"


def normalise_htu(url: str) -> str:
    """Scheme and host lower-cased, default port dropped, path normalised, query/fragment dropped."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError("not an http(s) URL")
    if "@" in parts.netloc:
        # RFC 9110 §4.2.4: http(s) URIs carry no userinfo; one that does names another target.
        raise ValueError("userinfo in an http(s) URL")
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError("bad port") from exc
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, _normalise_path(parts.path), "", ""))


# --- Nonces (§8, §9) ----------------------------------------------------------------------------


class NonceIssuer:
    """Stateless rolling nonces: base64url(step || HMAC(secret, step)[:16]).

    Valid in every process and across restarts because they derive from the shared secret and
    the clock alone; unpredictable without the secret; they roll every ``lifetime`` seconds and a
    nonce stays valid for the step before and after its own (skew between servers, and a client
    handed the next nonce just before the roll).
    """

    def __init__(self, secret: bytes, lifetime: int) -> None:
        self._key = hashlib.sha256(b"dpop-nonce\x00" + secret).digest()
        self.lifetime = lifetime

    def _for_step(self, step: int) -> str:
        raw = struct.pack(">Q", step)
        mac = hmac.new(self._key, raw, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(raw + mac).rstrip(b"=").decode()

    def current(self, now: float) -> str:
        return self._for_step(int(now // self.lifetime))

    def fresh(self, now: float) -> str:
        """The nonce to hand out: the next step's when the current one is about to roll."""
        step = int(now // self.lifetime)
        if now - step * self.lifetime > self.lifetime * 0.75:
            step += 1
        return self._for_step(step)

    def step_of(self, nonce: str, now: float) -> int | None:
        """The step of a valid nonce, or None."""
        if not isinstance(nonce, str) or len(nonce) != 32:
            return None
        try:
            raw = _b64decode(nonce)
        except (ValueError, binascii.Error):
            return None
        if len(raw) != 24:
            return None
        step = struct.unpack(">Q", raw[:8])[0]
        expected = hmac.new(self._key, raw[:8], hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(expected, raw[8:]):
            return None
        cur = int(now // self.lifetime)
        return step if cur - 1 <= step <= cur + 1 else None

    def needs_refresh(self, nonce: str | None, now: float) -> bool:
        """Whether a successful response should carry a fresh nonce (§8.2)."""
        if nonce is None:
            return True
        step = self.step_of(nonce, now)
        return step is None or self._for_step(step) != self.fresh(now)


# --- Proof verification (§4.3) ------------------------------------------------------------------


# Imported keys and their thumbprints by (alg, jwk members): a terminal sends the same key on
# every request, and importing it (point validation) and hashing it cost more than the rest of
# the checks. Only keys that passed every check are kept; bounded, cleared when full.
_KEY_CACHE: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[Any, str]] = {}
_KEY_CACHE_MAX = 4096


def _public_key(jwk: Any, alg: str) -> tuple[ECKey | RSAKey | OKPKey, str]:
    """The proof's public key (step 7 checks) and its RFC 7638 thumbprint."""
    cache_key = None
    if isinstance(jwk, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in jwk.items()
    ):
        cache_key = (alg, tuple(sorted(jwk.items())))
        hit = _KEY_CACHE.get(cache_key)
        if hit is not None:
            return hit  # type: ignore[return-value]
    key = _import_public_jwk(jwk, alg)
    found = (key, key.thumbprint())
    if cache_key is not None:
        if len(_KEY_CACHE) >= _KEY_CACHE_MAX:
            _KEY_CACHE.clear()
        _KEY_CACHE[cache_key] = found
    return found


def _import_public_jwk(jwk: Any, alg: str) -> ECKey | RSAKey | OKPKey:
    if not isinstance(jwk, dict):
        raise InvalidDPoPProof("jwk header is not a JSON object")
    # Step 7: the jwk is a public key: no private members, not a symmetric key.
    if _PRIVATE_MEMBERS & set(jwk):
        raise InvalidDPoPProof("jwk contains private key material")
    kty = jwk.get("kty")
    want_kty, want_crv = _KEY_FOR_ALG[alg]
    if kty != want_kty:
        raise InvalidDPoPProof("jwk key type does not match alg")
    if want_crv is not None and jwk.get("crv") != want_crv:
        raise InvalidDPoPProof("jwk curve does not match alg")
    # RFC 7517 §4.2: a key declared for encryption ("use": "enc") is not a signing key, so a
    # proof signed with it is refused (joserfc checks ``key_ops`` on its own, not ``use``).
    if "use" in jwk and jwk["use"] != "sig":
        raise InvalidDPoPProof("jwk use is not sig")
    try:
        key: ECKey | RSAKey | OKPKey
        if kty == "EC":
            key = ECKey.import_key(jwk)
        elif kty == "RSA":
            # Measured before import: joserfc would only warn about a short key.
            n = _b64decode(jwk.get("n") or "").lstrip(b"\x00")
            if len(n) * 8 < MIN_RSA_BITS:
                raise InvalidDPoPProof("RSA key shorter than 2048 bits")
            key = RSAKey.import_key(jwk)
        else:
            key = OKPKey.import_key(jwk)
    except (JoseError, ValueError, TypeError, KeyError, binascii.Error) as exc:
        raise InvalidDPoPProof("jwk is not a valid public key") from exc
    if key.is_private:
        raise InvalidDPoPProof("jwk contains private key material")
    return key


class ReplayStore(Protocol):
    """What the replay check needs of the shared store (``authserver.ephemeral``)."""

    def claim_once(self, key: str, ttl: float) -> bool: ...


def verify_proof(
    header_values: list[str],
    *,
    method: str,
    url: str,
    now: float,
    max_age: int,
    max_future: int,
    store: ReplayStore,
    access_token: str | None = None,
    nonces: NonceIssuer | None = None,
) -> DPoPProof:
    """Check one DPoP proof against RFC 9449 §4.3; returns the verified proof.

    ``nonces`` set means the server requires a nonce here. ``access_token`` set means this is a
    resource request, where ``ath`` is required and checked.
    """
    # Step 1: exactly one DPoP header (a proxy may have joined two with a comma).
    if len(header_values) != 1 or "," in header_values[0]:
        raise InvalidDPoPProof("exactly one DPoP header is required")
    proof = header_values[0].strip()
    if len(proof) > MAX_PROOF_CHARS:
        raise InvalidDPoPProof("proof too large")

    # Step 2: a well-formed compact JWS with a JSON header and JSON claims.
    parts = proof.split(".")
    if len(parts) != 3 or not all(parts):
        raise InvalidDPoPProof("not a compact JWS")
    try:
        # orjson: strict JSON (NaN, Infinity and 1e999, which would slip past the iat window, are
        # refused), and no decoder built per call.
        header = orjson.loads(_b64decode(parts[0]))
        claims = orjson.loads(_b64decode(parts[1]))
        signature = _b64decode(parts[2])
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidDPoPProof("not a compact JWS") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidDPoPProof("not a compact JWS")

    # Step 4: typ is dpop+jwt (media types compare case-insensitively, RFC 7515 §4.1.9).
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in ("dpop+jwt", "application/dpop+jwt"):
        raise InvalidDPoPProof("typ must be dpop+jwt")
    # Step 5: an asymmetric algorithm from the allow-list.
    alg = header.get("alg")
    if alg not in _ALG_IMPL:
        raise InvalidDPoPProof("alg is not an allowed asymmetric algorithm")
    if "crit" in header:
        raise InvalidDPoPProof("crit header parameters are not supported")
    # Step 7 (before use): the jwk is a public key of the algorithm's type.
    key, jkt = _public_key(header.get("jwk"), alg)

    # Step 6: the signature verifies with the jwk from the header.
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    try:
        valid = _ALG_IMPL[alg].verify(signing_input, signature, key)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError) as exc:
        raise InvalidDPoPProof("signature does not verify") from exc
    if not valid:
        raise InvalidDPoPProof("signature does not verify")

    # Step 3: required claims present and well-typed.
    jti, htm, htu, iat = (claims.get(c) for c in ("jti", "htm", "htu", "iat"))
    if not isinstance(jti, str) or not jti:
        raise InvalidDPoPProof("jti claim missing")
    if len(jti) > MAX_JTI_CHARS:
        raise InvalidDPoPProof("jti claim too long")
    if not isinstance(htm, str):
        raise InvalidDPoPProof("htm claim missing")
    if not isinstance(htu, str):
        raise InvalidDPoPProof("htu claim missing")
    if isinstance(iat, bool) or not isinstance(iat, int | float):
        raise InvalidDPoPProof("iat claim missing")
    # An integer beyond a float's range (10**400) would overflow every comparison below.
    if not (isinstance(iat, float) and math.isfinite(iat)) and not (
        isinstance(iat, int) and abs(iat) <= MAX_IAT
    ):
        raise InvalidDPoPProof("iat claim is out of range")

    # Step 8: htm matches the request method (methods are case-sensitive, RFC 9110 §9.1).
    if htm != method:
        raise InvalidDPoPProof("htm does not match the request method")
    # Step 9: htu matches the request URL without query and fragment, after normalisation.
    try:
        if htu != url and normalise_htu(htu) != normalise_htu(url):
            raise InvalidDPoPProof("htu does not match the request URL")
    except ValueError as exc:
        raise InvalidDPoPProof("htu is not a valid URL") from exc

    # Step 12 (resources): ath is the hash of the access token presented with the proof.
    if access_token is not None:
        ath = claims.get("ath")
        if not isinstance(ath, str):
            raise InvalidDPoPProof("ath claim missing")
        if not hmac.compare_digest(ath.encode(), b64url_sha256(access_token).encode()):
            raise InvalidDPoPProof("ath does not match the access token")

    # Step 10: the nonce, when the server requires one (§8, §9; §11.3 no proof without it).
    nonce = claims.get("nonce")
    if nonces is not None:
        if nonce is None:
            raise UseDPoPNonce(
                nonces.fresh(now), "Authorization server requires nonce in DPoP proof"
            )
        if nonces.step_of(nonce, now) is None:
            raise UseDPoPNonce(nonces.fresh(now), "DPoP nonce is invalid or expired")

    # Step 11: iat within the window (up to max_age old, up to max_future ahead).
    if iat < now - max_age:
        raise InvalidDPoPProof("iat is too old")
    if iat > now + max_future:
        raise InvalidDPoPProof("iat is in the future")

    # Step 12 (replay): the jti was not seen before inside the window, in any process. Keyed by a
    # hash (bounded length, no client-chosen text in the store), per key.
    replay_key = "dpop:" + hashlib.sha256(f"{jkt}\x00{jti}".encode()).hexdigest()
    if not store.claim_once(replay_key, ttl=max_age + max_future + 1):
        raise InvalidDPoPProof("jti has been used before (replay)")
    return DPoPProof(jkt=jkt, jti=jti, iat=int(iat), nonce=nonce, claims=claims)


@dataclass(frozen=True)
class DPoPVerifier:
    """``verify_proof`` with this deployment's settings, built once per app.

    ``issuer`` is the public base URL every ``htu`` is compared against; ``nonce_required_at``
    holds ``"token"`` and/or ``"resource"`` (RFC 9449 §8, §9); ``on_reject`` counts refusals by
    check (metrics). The token endpoint, the link endpoint and the resource protector all call
    ``verify``.
    """

    issuer: str
    max_age: int
    max_future: int
    store: ReplayStore
    nonces: NonceIssuer
    nonce_required_at: frozenset[str] = frozenset()
    on_reject: Callable[[str], None] | None = None

    def verify(
        self,
        header_values: list[str],
        method: str,
        path: str,
        *,
        now: float,
        access_token: str | None = None,
    ) -> DPoPProof:
        """Check the proof of a request to ``path``; at a resource (``access_token`` given) the
        proof must also carry ``ath``."""
        where = "token" if access_token is None else "resource"
        try:
            return verify_proof(
                header_values,
                method=method,
                url=self.issuer + path,
                now=now,
                max_age=self.max_age,
                max_future=self.max_future,
                store=self.store,
                access_token=access_token,
                nonces=self.nonces if where in self.nonce_required_at else None,
            )
        except InvalidDPoPProof as exc:
            if self.on_reject is not None:
                self.on_reject(exc.check)
            raise

    def nonce_for_response(self, proof: DPoPProof | None, at: str, now: float) -> str | None:
        """A fresh nonce for a successful answer when this client's is about to roll (§8.2)."""
        if proof is None or at not in self.nonce_required_at:
            return None
        if not self.nonces.needs_refresh(proof.nonce, now):
            return None
        return self.nonces.fresh(now)
