"""Private keys at rest: AES-256-GCM under the key-encryption key, bound to the key's kid."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = b"\x01"


class KeyDecryptionError(Exception):
    """The stored private key does not decrypt under the configured key-encryption key."""


class KeyEncryptor:
    def __init__(self, key_encryption_key: bytes) -> None:
        if len(key_encryption_key) != 32:
            raise ValueError("the key-encryption key must be 32 bytes")
        self._aead = AESGCM(key_encryption_key)

    def encrypt(self, kid: str, plaintext: bytes) -> bytes:
        nonce = os.urandom(12)
        # The kid is associated data: a ciphertext moved to another key's row fails to decrypt.
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, kid.encode())

    def decrypt(self, kid: str, blob: bytes) -> bytes:
        if blob[:1] != _VERSION or len(blob) < 29:
            raise KeyDecryptionError(f"key {kid}: unknown ciphertext format")
        try:
            return self._aead.decrypt(blob[1:13], blob[13:], kid.encode())
        except InvalidTag as exc:
            raise KeyDecryptionError(
                f"key {kid} does not decrypt: AUTHSERVER_KEY_ENCRYPTION_KEY differs from the one "
                "it was stored under"
            ) from exc
