"""DPoP for client applications (RFC 9449): a key that signs proofs, and auth classes for httpx and
requests that add them, retry once when the server asks for a nonce, and bind resource calls to the
access token (``ath``).

Authlib's and requests-oauthlib's clients send Bearer tokens only; a POS terminal or kiosk written
with them adds DPoP like this::

    from authserver.dpop_client import DPoPKey, HttpxDPoPAuth

    key = DPoPKey()                       # keep it (``key.private_pem()``) for the token's life
    token = httpx.post(f"{issuer}/oauth/token", data=form, auth=HttpxDPoPAuth(key)).json()
    auth = HttpxDPoPAuth(key, access_token=token["access_token"])
    me = httpx.get(f"{issuer}/api/v1/devices/me", auth=auth).json()

An auth without an access token is for the token endpoint (it leaves a client's own
``Authorization: Basic`` alone); one with an access token is for resources.

``RequestsDPoPAuth`` is the same for ``requests``. Neither library is needed by the server; each
auth class imports its library when it is first built.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

if TYPE_CHECKING:
    from httpx import Auth as _HttpxAuth
else:
    try:
        from httpx import Auth as _HttpxAuth
    except ImportError:  # the server does not need httpx; only this auth class does
        _HttpxAuth = object

__all__ = ["DPoPKey", "HttpxDPoPAuth", "RequestsDPoPAuth", "htu_of", "needs_nonce"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def htu_of(url: str) -> str:
    """The ``htu`` of a request: its URL without query and fragment (RFC 9449 §4.2)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class DPoPKey:
    """A DPoP key pair: ES256 (P-256) by default, or Ed25519. Generated, or loaded from the PEM
    that ``private_pem()`` gave (a terminal keeps its key for as long as its tokens live)."""

    def __init__(self, alg: str = "ES256", private_pem: bytes | None = None) -> None:
        if alg not in ("ES256", "Ed25519"):
            raise ValueError("alg must be ES256 or Ed25519")
        self.alg = alg
        key: Any
        if private_pem is not None:
            key = serialization.load_pem_private_key(private_pem, password=None)
            wanted = ec.EllipticCurvePrivateKey if alg == "ES256" else ed25519.Ed25519PrivateKey
            if not isinstance(key, wanted) or (
                alg == "ES256" and not isinstance(key.curve, ec.SECP256R1)  # type: ignore[union-attr]
            ):
                raise ValueError(f"the PEM does not hold an {alg} key")
        elif alg == "ES256":
            key = ec.generate_private_key(ec.SECP256R1())
        else:
            key = ed25519.Ed25519PrivateKey.generate()
        self._key = key
        if alg == "ES256":
            numbers = key.public_key().public_numbers()
            self.public_jwk = {
                "kty": "EC",
                "crv": "P-256",
                "x": _b64(numbers.x.to_bytes(32, "big")),
                "y": _b64(numbers.y.to_bytes(32, "big")),
            }
        else:
            raw = key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            self.public_jwk = {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw)}
        # RFC 7638: the required members only, in lexicographic order, no whitespace.
        canonical = json.dumps(self.public_jwk, sort_keys=True, separators=(",", ":"))
        self.jkt = _b64(hashlib.sha256(canonical.encode()).digest())
        header = {"typ": "dpop+jwt", "alg": alg, "jwk": self.public_jwk}
        self._header = _b64(json.dumps(header, separators=(",", ":")).encode())

    def private_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM: store it as you would a password."""
        return self._key.private_bytes(  # type: ignore[no-any-return]
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def proof(
        self,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        nonce: str | None = None,
    ) -> str:
        """A proof for one request (RFC 9449 §4.2): a fresh ``jti``, ``htm``, ``htu`` without
        query and fragment, ``iat`` now, ``ath`` when it goes with an access token, ``nonce``
        when the server gave one."""
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method.upper(),
            "htu": htu_of(url),
            "iat": int(time.time()),
        }
        if access_token is not None:
            claims["ath"] = _b64(hashlib.sha256(access_token.encode("ascii")).digest())
        if nonce is not None:
            claims["nonce"] = nonce
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{self._header}.{payload}".encode("ascii")
        if self.alg == "ES256":
            der = self._key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
            r, s = decode_dss_signature(der)
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")  # JWS: raw r || s
        else:
            signature = self._key.sign(signing_input)
        return f"{self._header}.{payload}.{_b64(signature)}"


def needs_nonce(status: int, headers: Any, body: bytes) -> str | None:
    """The nonce to retry with, when the answer asks for one (RFC 9449 §8 at the token endpoint:
    400 ``use_dpop_nonce``; §9 at resources: 401 with ``error="use_dpop_nonce"``), else None."""
    nonce = headers.get("DPoP-Nonce")
    if not nonce:
        return None
    if status == 401 and 'error="use_dpop_nonce"' in headers.get("WWW-Authenticate", ""):
        return str(nonce)
    if status == 400:
        try:
            error = json.loads(body).get("error")
        except (ValueError, AttributeError):
            return None
        if error == "use_dpop_nonce":
            return str(nonce)
    return None


class _Nonces:
    """The last nonce each server (scheme, host and port) gave; shared by the threads of a
    client, as a server's nonce is valid for all its requests for a while (§8)."""

    def __init__(self) -> None:
        self._by_origin: dict[str, str] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _origin(url: str) -> str:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}"

    def get(self, url: str) -> str | None:
        return self._by_origin.get(self._origin(url))

    def remember(self, url: str, headers: Any) -> None:
        nonce = headers.get("DPoP-Nonce")
        if nonce:
            with self._lock:
                self._by_origin[self._origin(url)] = str(nonce)


class _DPoPAuth:
    """What the two auth classes share: the key, the access token, the nonces."""

    def __init__(self, key: DPoPKey, access_token: str | None = None) -> None:
        self.key = key
        self.access_token = access_token
        self.nonces = _Nonces()

    def _headers(self, method: str, url: str, nonce: str | None) -> dict[str, str]:
        headers = {"DPoP": self.key.proof(method, url, access_token=self.access_token, nonce=nonce)}
        if self.access_token is not None:
            # §7.1: the token goes with the DPoP scheme. Without one (a token request), any
            # Authorization the caller set (client_secret_basic) is left alone.
            headers["Authorization"] = f"DPoP {self.access_token}"
        return headers


class HttpxDPoPAuth(_DPoPAuth, _HttpxAuth):
    """An ``httpx.Auth`` (sync and async clients): one proof per request, one retry with the
    server's nonce when it asks for one."""

    requires_response_body = True

    def __init__(self, key: DPoPKey, access_token: str | None = None) -> None:
        if _HttpxAuth is object:
            raise ImportError("HttpxDPoPAuth needs httpx (pip install httpx)")
        super().__init__(key, access_token)

    def auth_flow(self, request: Any) -> Generator[Any, Any, None]:
        url = str(request.url)
        request.headers.update(self._headers(request.method, url, self.nonces.get(url)))
        response = yield request
        nonce = needs_nonce(response.status_code, response.headers, response.content)
        self.nonces.remember(url, response.headers)
        if nonce is not None:
            request.headers.update(self._headers(request.method, url, nonce))
            response = yield request
            self.nonces.remember(url, response.headers)


class RequestsDPoPAuth(_DPoPAuth):
    """A ``requests`` auth: one proof per request, one retry with the server's nonce when it asks
    for one (the way ``requests``' own digest auth retries a 401)."""

    def __init__(self, key: DPoPKey, access_token: str | None = None) -> None:
        import requests  # noqa: F401 - fail now, not at the first request, when it is missing

        super().__init__(key, access_token)

    def __call__(self, request: Any) -> Any:
        url = request.url
        request.headers.update(self._headers(request.method, url, self.nonces.get(url)))
        request.register_hook("response", self._on_response)
        request._dpop_retried = False
        return request

    def _on_response(self, response: Any, **kwargs: Any) -> Any:
        request = response.request
        url = request.url
        self.nonces.remember(url, response.headers)
        nonce = needs_nonce(response.status_code, response.headers, response.content)
        if nonce is None or getattr(request, "_dpop_retried", True):
            return response
        response.content  # noqa: B018 - read it, so the connection can be reused
        response.close()
        retry = request.copy()
        retry._dpop_retried = True
        retry.headers.update(self._headers(retry.method, url, nonce))
        second = response.connection.send(retry, **kwargs)
        second.history.append(response)
        second.request = retry
        self.nonces.remember(url, second.headers)
        return second
