"""Compact JWS for the server's own tokens, on ``cryptography`` directly.

Every token response signs a JWT and every protected request verifies one, so this path is hot.
joserfc builds a key object, a registry lookup and a header dictionary per call; here the header
of each (key, typ) is encoded once, and signing is the ``cryptography`` call plus two base64url
encodings. Only the three algorithms the server signs with exist here (RFC 7518 §3.3 RS256,
§3.4 ES256 and RFC 9864 Ed25519); ``keys.jwks.KeyRing`` checks the header before this module
is asked to verify anything.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

ALGS = ("ES256", "RS256", "Ed25519")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_ECDSA = ec.ECDSA(hashes.SHA256())
_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """RFC 7515 §2: base64url without padding, nothing else (no '=', no whitespace, no '+/')."""
    if len(text) % 4 == 1 or not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:  # pragma: no cover - the pattern admits only valid input
        raise ValueError("not base64url") from exc


def check_key(alg: str, key: Any, private: bool) -> None:
    """The key is one the algorithm uses (ES256: P-256 only; RS256: 2048 bits or more)."""
    if alg == "ES256":
        kind: Any = ec.EllipticCurvePrivateKey if private else ec.EllipticCurvePublicKey
        if not isinstance(key, kind) or not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("ES256 needs a P-256 key")
    elif alg == "RS256":
        kind = rsa.RSAPrivateKey if private else rsa.RSAPublicKey
        if not isinstance(key, kind) or key.key_size < 2048:
            raise ValueError("RS256 needs an RSA key of 2048 bits or more")
    elif alg == "Ed25519":
        kind = ed25519.Ed25519PrivateKey if private else ed25519.Ed25519PublicKey
        if not isinstance(key, kind):
            raise ValueError("Ed25519 needs an Ed25519 key")
    else:
        raise ValueError(f"unsupported algorithm {alg}")


class Signer:
    """Signs JWTs with one private key; the header per ``typ`` is encoded once."""

    def __init__(self, alg: str, key: Any, kid: str) -> None:
        check_key(alg, key, private=True)
        self.alg, self.kid, self._key = alg, kid, key
        self._headers: dict[str, str] = {}

    @property
    def private_key(self) -> Any:
        return self._key

    def _header(self, typ: str) -> str:
        header = self._headers.get(typ)
        if header is None:
            raw = json.dumps({"alg": self.alg, "typ": typ, "kid": self.kid}, separators=(",", ":"))
            header = self._headers[typ] = b64url(raw.encode())
        return header

    def sign(self, claims: dict[str, Any], typ: str) -> str:
        payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{self._header(typ)}.{payload}"
        return f"{signing_input}.{b64url(self._signature(signing_input.encode('ascii')))}"

    def _signature(self, data: bytes) -> bytes:
        if self.alg == "ES256":
            # RFC 7518 §3.4: R and S as 32-byte big-endian integers, not DER.
            r, s = decode_dss_signature(self._key.sign(data, _ECDSA))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        if self.alg == "RS256":
            return self._key.sign(data, _PKCS1, _SHA256)  # type: ignore[no-any-return]
        return self._key.sign(data)  # type: ignore[no-any-return]


def signature_valid(alg: str, key: Any, data: bytes, signature: bytes) -> bool:
    """Whether ``signature`` over ``data`` verifies with the public ``key`` under ``alg``."""
    try:
        if alg == "ES256":
            if len(signature) != 64:
                return False
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            key.verify(der, data, _ECDSA)
        elif alg == "RS256":
            key.verify(signature, data, _PKCS1, _SHA256)
        elif alg == "Ed25519":
            key.verify(signature, data)
        else:
            return False
    except InvalidSignature:
        return False
    return True
