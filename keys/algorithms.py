"""Key generation for the signing algorithms the server offers (ES256 default, RS256, Ed25519)."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
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
    """One of our own private keys, as ``keys.encryption`` decrypted it: AES-GCM authenticated
    it under the key-encryption key, so it is a key this server generated, unaltered."""
    params: KeyParameters = {"kid": kid, "alg": alg, "use": "sig"}
    if alg == "ES256":
        return ECKey.import_key(pem, parameters=params)
    if alg == "RS256":
        # OpenSSL's RSA consistency checks cost ~15 ms a key (every keyring reload of every
        # process); they guard against a malformed key from elsewhere, which this cannot be.
        raw = load_pem_private_key(pem, None, unsafe_skip_rsa_key_validation=True)
        if not isinstance(raw, RSAPrivateKey):
            raise ValueError("an RS256 key must be an RSA private key")
        return RSAKey.import_key(raw, parameters=params)
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
