"""A DPoP client for tests: keys of every allowed type, proofs built with joserfc, tamper knobs."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any

from joserfc import jws
from joserfc.jwk import ECKey, OKPKey, RSAKey

_KEYS = {
    "ES256": lambda: ECKey.generate_key("P-256", private=True),
    "ES384": lambda: ECKey.generate_key("P-384", private=True),
    "RS256": lambda: RSAKey.generate_key(2048, private=True),
    "PS256": lambda: RSAKey.generate_key(2048, private=True),
    "Ed25519": lambda: OKPKey.generate_key("Ed25519", private=True),
}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def ath(token: str) -> str:
    return b64(hashlib.sha256(token.encode()).digest())


class DPoPKey:
    def __init__(self, alg: str = "ES256", key: Any = None) -> None:
        self.alg = alg
        self.key = key or _KEYS[alg]()

    @property
    def jkt(self) -> str:
        return self.key.thumbprint()

    def public_jwk(self) -> dict[str, Any]:
        return dict(self.key.as_dict(private=False))

    def proof(
        self,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        nonce: str | None = None,
        iat: float | None = None,
        jti: str | None = None,
        header: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
        omit: tuple[str, ...] = (),
    ) -> str:
        h: dict[str, Any] = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.public_jwk()}
        h.update(header or {})
        c: dict[str, Any] = {
            "jti": jti or secrets.token_urlsafe(16),
            "htm": method,
            "htu": url,
            "iat": int(time.time() if iat is None else iat),
        }
        if access_token is not None:
            c["ath"] = ath(access_token)
        if nonce is not None:
            c["nonce"] = nonce
        c.update(claims or {})
        for name in omit:
            h.pop(name, None)
            c.pop(name, None)
        sign_alg = "Ed25519" if h.get("alg") == "EdDSA" else self.alg
        if h.get("alg") == "EdDSA":
            # joserfc refuses to sign "EdDSA"; sign the bytes ourselves, same Ed25519 signature.
            signing_input = f"{b64(json.dumps(h).encode())}.{b64(json.dumps(c).encode())}"
            sig = self.key.private_key.sign(signing_input.encode())
            return f"{signing_input}.{b64(sig)}"
        return jws.serialize_compact(h, json.dumps(c).encode(), self.key, algorithms=[sign_alg])


def forge(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"x") -> str:
    """A proof with arbitrary header and claims and a made-up signature."""
    return ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), b64(signature)]
    )
