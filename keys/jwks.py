"""The key ring a process signs and verifies with: loaded once, refreshed on a short interval.

Rotation happens in another process (``authserver keys rotate``); each worker picks it up within
``AUTHSERVER_KEY_CACHE_SECONDS``. That is safe because the promoted key was published long before,
and the retired key stays published for that interval on top of the token lifetime.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.engine import Engine

from authserver.models import KeyState, SigningKey
from keys import algorithms, jws
from keys.encryption import KeyEncryptor

# Our own tokens only ever carry these algorithms; nothing else is accepted when verifying them
# (DESIGN invariant 7; RFC 8725 §3.1: no "none", no HMAC keyed with a public key).
VERIFY_ALGS = jws.ALGS
# Header parameters a token of ours carries; anything else (crit, jku, jwk, x5u, ...) would ask the
# verifier to look elsewhere or to understand an extension, and is refused.
_HEADER_PARAMS = frozenset({"alg", "typ", "kid"})
MAX_HEADER_CHARS = 512


class NoSigningKey(Exception):
    """No current key in the database: start the server (or ``authserver keys rotate``) first."""


class InvalidSignedToken(Exception):
    """A JWT that is not ours: malformed, unknown kid, bad signature or algorithm."""


@dataclass(frozen=True)
class _Snapshot:
    loaded_at: float
    # The access tokens' algorithm and its current key.
    signing_kid: str
    signing_alg: str
    signer: jws.Signer
    # alg -> the signer of that algorithm's current key (ID tokens may use another algorithm).
    signers: dict[str, jws.Signer]
    published: tuple[dict[str, Any], ...]
    # kid -> (alg, the public key as a ``cryptography`` object)
    verify_keys: dict[str, tuple[str, Any]]


class KeyRing:
    def __init__(
        self,
        engine: Engine,
        encryptor: KeyEncryptor,
        cache_seconds: int,
        clock: Callable[[], float] = time.time,
        alg: str = "ES256",
    ) -> None:
        """``alg``: the algorithm access tokens are signed with (``sign`` without an ``alg``)."""
        self._alg = alg
        self._engine = engine
        self._encryptor = encryptor
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        self._last_forced = 0.0

    def _load(self) -> _Snapshot:
        now = self._clock()
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(SigningKey).where(
                    or_(
                        SigningKey.state.in_((KeyState.NEXT, KeyState.CURRENT)),
                        (SigningKey.state == KeyState.RETIRED)
                        & (SigningKey.remove_after > int(now)),
                    )
                )
            ).all()
        signers = {}
        for cur in rows:
            if cur.state == KeyState.CURRENT:
                pem = self._encryptor.decrypt(cur.kid, cur.private_key_enc)
                private = algorithms.import_private(cur.alg, pem, cur.kid).private_key
                signers[cur.alg] = jws.Signer(cur.alg, private, cur.kid)
        signer = signers.get(self._alg)
        if signer is None:
            raise NoSigningKey(f"no current {self._alg} signing key")
        verify = {}
        published = []
        order = {KeyState.CURRENT: 0, KeyState.NEXT: 1, KeyState.RETIRED: 2}
        # Current, next, retired; within each, the access tokens' algorithm first.
        for r in sorted(rows, key=lambda r: (order[r.state], r.alg != self._alg, -r.created_at)):
            published.append(dict(r.public_jwk))
            public = algorithms.import_public(r.alg, r.public_jwk).public_key
            jws.check_key(r.alg, public, private=False)
            verify[r.kid] = (r.alg, public)
        return _Snapshot(now, signer.kid, signer.alg, signer, signers, tuple(published), verify)

    def snapshot(self, force: bool = False) -> _Snapshot:
        snap = self._snapshot
        now = self._clock()
        if snap is not None and not force and now - snap.loaded_at < self._cache_seconds:
            return snap
        with self._lock:
            snap = self._snapshot
            if snap is None or force or now - snap.loaded_at >= self._cache_seconds:
                snap = self._snapshot = self._load()
            return snap

    def invalidate(self) -> None:
        self._snapshot = None

    @property
    def signing_alg(self) -> str:
        return self.snapshot().signing_alg

    @property
    def signing_algs(self) -> tuple[str, ...]:
        """Every algorithm with a current key, the access tokens' first."""
        signers = self.snapshot().signers
        return (self._alg, *sorted(a for a in signers if a != self._alg))

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        return {"keys": list(self.snapshot().published)}

    def sign(self, claims: dict[str, Any], typ: str, alg: str | None = None) -> str:
        """A JWT of ``claims`` with header ``{"alg", "typ", "kid"}``, signed by the current key
        of ``alg`` (by default the access tokens' algorithm)."""
        snap = self.snapshot()
        if alg is None:
            return snap.signer.sign(claims, typ)
        signer = snap.signers.get(alg)
        if signer is None:
            raise NoSigningKey(f"no current {alg} signing key")
        return signer.sign(claims, typ)

    def has_key(self, kid: str) -> bool:
        """Whether ``kid`` is still a key of the ring (published, not removed)."""
        return kid in self.snapshot().verify_keys

    def _verify_key(self, kid: str) -> tuple[str, Any] | None:
        key = self.snapshot().verify_keys.get(kid)
        if key is None:
            # A key rotated in by another process: reload, at most once a second.
            now = self._clock()
            if now - self._last_forced >= 1:
                self._last_forced = now
                key = self.snapshot(force=True).verify_keys.get(kid)
        return key

    def verify(self, token: str, typ: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Verify one of our own JWTs; returns (header, claims). Claims are not validated here.

        The header is checked before any cryptography: the alg must be one we sign with and the
        kid one of our keys whose alg is that alg; only then is the signature verified, with
        that one key and that one algorithm.
        """
        header = _header(token)
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in VERIFY_ALGS:
            raise InvalidSignedToken("alg is not allowed")
        if not set(header) <= _HEADER_PARAMS:
            raise InvalidSignedToken("unexpected header parameter")
        found = self._verify_key(kid) if isinstance(kid, str) and kid else None
        if found is None:
            raise InvalidSignedToken("unknown kid")
        key_alg, key = found
        if alg != key_alg:
            raise InvalidSignedToken("alg does not match the key")
        # RFC 9068 §4: the typ distinguishes an access token from our other JWTs (ID tokens).
        if str(header.get("typ", "")).lower() not in (typ, f"application/{typ}"):
            raise InvalidSignedToken("typ")
        head, payload, signature = token.split(".")
        try:
            valid = jws.signature_valid(
                alg, key, f"{head}.{payload}".encode("ascii"), jws.b64url_decode(signature)
            )
        except (ValueError, UnicodeEncodeError) as exc:
            raise InvalidSignedToken("malformed signature") from exc
        if not valid:
            raise InvalidSignedToken("bad signature")
        # Only a verified payload is parsed.
        try:
            claims = json.loads(jws.b64url_decode(payload))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise InvalidSignedToken("malformed claims") from exc
        if not isinstance(claims, dict):
            raise InvalidSignedToken("claims are not a JSON object")
        return header, claims


def _header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWS, decoded strictly (not yet trusted)."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts) or len(parts[0]) > MAX_HEADER_CHARS:
        raise InvalidSignedToken("not a compact JWS")
    try:
        header = json.loads(jws.b64url_decode(parts[0]))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidSignedToken("malformed header") from exc
    if not isinstance(header, dict):
        raise InvalidSignedToken("malformed header")
    return header
