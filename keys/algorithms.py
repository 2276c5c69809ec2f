"""Key generation for the signing algorithms the server offers (ES256 default, RS256, Ed25519)."""

from __future__ import annotations

from typing import Any

from joserfc.jwk import ECKey, KeyParameters, OKPKey, RSAKey

AsymmetricKey = ECKey | RSAKey | OKPKey


def generate(alg: str) -> AsymmetricKey:
    if alg == "ES256":
        return ECKey.generate_key("P-256", private=True)
    if alg == "RS256":
        return RSAKey.generate_key(2048, private=True)
    if alg == "Ed25519":
        return OKPKey.generate_key("Ed25519", private=True)
    raise ValueError(f"unsupported signing algorithm {alg}")


def import_private(alg: str, pem: bytes, kid: str) -> AsymmetricKey:
    params: KeyParameters = {"kid": kid, "alg": alg, "use": "sig"}
    if alg == "ES256":
        return ECKey.import_key(pem, parameters=params)
    if alg == "RS256":
        return RSAKey.import_key(pem, parameters=params)
    return OKPKey.import_key(pem, parameters=params)


def public_jwk(key: AsymmetricKey, kid: str, alg: str) -> dict[str, Any]:
    """Public members only, plus kid, alg and use (RFC 7517 §4)."""
    data = dict(key.as_dict(private=False))
    for member in ("d", "p", "q", "dp", "dq", "qi", "oth", "k"):
        data.pop(member, None)
    data.update({"kid": kid, "alg": alg, "use": "sig"})
    return data


def import_public(alg: str, jwk_dict: dict[str, Any]) -> AsymmetricKey:
    key: AsymmetricKey
    if alg == "ES256":
        key = ECKey.import_key(dict(jwk_dict))
    elif alg == "RS256":
        key = RSAKey.import_key(dict(jwk_dict))
    else:
        key = OKPKey.import_key(dict(jwk_dict))
    if key.is_private:
        raise ValueError("a published key must be public")
    return key
