"""The resource-server side: one decorator that requires a valid token, scopes and optionally DPoP.

    from authserver.resource import require_token, current_token

    @bp.get("/api/v1/things")
    @require_token("devices:read")               # Bearer for unbound tokens, DPoP for bound ones
    def things(): ...

    @bp.get("/api/v1/devices/me")
    @require_token("devices:read", dpop=True)     # DPoP-bound tokens only
    def me(): return {"sub": current_token().subject}

Every request looks the token up by ``jti`` in the token store, so a revoked token, or a token of
a blocked device, is refused on the very next request. RFC 6750 §3 / RFC 9449 §7 challenges in
``WWW-Authenticate``; bodies are RFC 9457 problem details.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Response, g, request

from authserver.devices import touch_activity
from authserver.http_errors import problem_response
from authserver.security import now_float
from authserver.state import get_state
from authserver.tokens import AccessTokenView, access_token_is_live, find_access_token
from grants.dpop import SUPPORTED_ALGS, DPoPProof, InvalidDPoPProof, UseDPoPNonce

F = TypeVar("F", bound=Callable[..., Any])
MAX_AUTHORIZATION_CHARS = 8192
_ALGS = " ".join(SUPPORTED_ALGS)


class ResourceAuthError(Exception):
    """A refused resource request: status, OAuth error code, challenges and headers."""

    def __init__(
        self,
        status: int,
        error: str | None,
        description: str,
        scheme: str | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.scheme = scheme
        self.extra_headers = extra_headers or {}

    def challenges(self) -> list[str]:
        def params(scheme: str) -> str:
            items = ['realm="authserver"'] if scheme == "Bearer" else [f'algs="{_ALGS}"']
            if self.error and (self.scheme is None or self.scheme == scheme):
                items += [f'error="{self.error}"', f'error_description="{self.description}"']
            return f"{scheme} " + ", ".join(items)

        if self.status == 403:
            return [params(self.scheme or "Bearer")]
        # RFC 9449 §7.1: a resource that accepts both schemes may challenge with both.
        if self.scheme is None:
            return [params("Bearer"), params("DPoP")]
        return [params(self.scheme)]

    def response(self) -> Response:
        body: dict[str, Any] = {
            "type": "about:blank",
            "title": {401: "Unauthorized", 403: "Forbidden"}.get(self.status, "Error"),
            "status": self.status,
            "detail": self.description,
        }
        if self.error:
            body["error"] = self.error
        resp = problem_response(self.status, body, self.extra_headers)
        for challenge in self.challenges():
            resp.headers.add("WWW-Authenticate", challenge)
        return resp


def dpop_refusal(exc: InvalidDPoPProof | UseDPoPNonce) -> ResourceAuthError:
    """RFC 9449 §7.1 / §9: a refused proof at a resource is a 401 with a DPoP challenge (and a
    fresh nonce when the server asks for one)."""
    if isinstance(exc, UseDPoPNonce):
        return ResourceAuthError(
            401, "use_dpop_nonce", exc.description, "DPoP", {"DPoP-Nonce": exc.nonce}
        )
    return ResourceAuthError(401, "invalid_dpop_proof", exc.description, "DPoP")


def current_token() -> AccessTokenView:
    """The validated access-token record of this request (inside a ``require_token`` view)."""
    return g.access_token  # type: ignore[no-any-return]


def current_proof() -> DPoPProof | None:
    return g.get("dpop_proof")


def _header(key: str) -> list[str]:
    """A request header's values, read from the WSGI environ directly: a server joins repeated
    fields into one value (so ``DPoP`` proofs sent twice arrive with a comma, which the
    verifier refuses), and ``Headers.getlist`` would walk every header to find it."""
    value = request.environ.get(key)
    return [] if value is None else [value]


def _parse_authorization() -> tuple[str, str]:
    values = _header("HTTP_AUTHORIZATION")
    if not values:
        raise ResourceAuthError(401, None, "An access token is required.")
    if len(values) > 1 or len(values[0]) > MAX_AUTHORIZATION_CHARS:
        raise ResourceAuthError(400, "invalid_request", "Malformed Authorization header.")
    scheme, _, token = values[0].partition(" ")
    token = token.strip()
    if not token or " " in token:
        raise ResourceAuthError(401, "invalid_token", "Malformed Authorization header.")
    return scheme.lower(), token


def authenticate_request(scopes: tuple[str, ...], dpop: bool) -> AccessTokenView:
    """Validate this request's access token (and DPoP proof); raises ``ResourceAuthError``."""
    state = get_state()
    settings = state.settings
    scheme, token = _parse_authorization()
    if scheme not in ("bearer", "dpop"):
        raise ResourceAuthError(401, "invalid_request", "Unsupported authorization scheme.")
    wire_scheme = "DPoP" if scheme == "dpop" else "Bearer"
    record = find_access_token(token)
    if record is None or not access_token_is_live(record):
        # Revoked, expired, or its refresh family, device or user is gone (invariant 3).
        raise ResourceAuthError(
            401, "invalid_token", "The access token is not active.", wire_scheme
        )
    # RFC 9068 §4: the audience must be this resource server.
    aud = record.audience
    if aud != settings.audience and not (isinstance(aud, list) and settings.audience in aud):
        raise ResourceAuthError(
            401, "invalid_token", "The access token is not for this audience.", wire_scheme
        )

    proof: DPoPProof | None = None
    if scheme == "bearer":
        if record.jkt:
            # RFC 9449 §7.2: a DPoP-bound token presented as Bearer is refused.
            raise ResourceAuthError(
                401,
                "invalid_token",
                "This token is DPoP-bound; present it with the DPoP scheme.",
                "DPoP",
            )
        if dpop:
            raise ResourceAuthError(401, "invalid_token", "A DPoP-bound token is required.", "DPoP")
    else:
        if not record.jkt:
            raise ResourceAuthError(
                401, "invalid_token", "This token is not DPoP-bound; present it as Bearer.", "DPoP"
            )
        t = now_float()
        try:
            proof = state.dpop.verify(
                _header("HTTP_DPOP"), request.method, request.path, now=t,
                access_token=token,
            )  # fmt: skip
        except (UseDPoPNonce, InvalidDPoPProof) as exc:
            raise dpop_refusal(exc) from exc
        # RFC 9449 §4.3 step 12 / §7.1: the proof's key is the key the token is bound to.
        if proof.jkt != record.jkt:
            raise ResourceAuthError(
                401,
                "invalid_dpop_proof",
                "DPoP proof check failed: key does not match the token.",
                "DPoP",
            )
        g.dpop_nonce = state.dpop.nonce_for_response(proof, "resource", t)

    granted = set(record.scope.split())
    missing = [s for s in scopes if s not in granted]
    if missing:
        raise ResourceAuthError(
            403,
            "insufficient_scope",
            f"The token lacks the scope {' '.join(missing)}.",
            wire_scheme,
        )
    g.access_token = record
    g.dpop_proof = proof
    if record.device_id is not None:
        touch_activity(record.device_id)
    return record


def require_token(*scopes: str, dpop: bool = False) -> Callable[[F], F]:
    """Decorate a view: a valid, unrevoked token with ``scopes``; DPoP-bound only if ``dpop``."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            try:
                authenticate_request(scopes, dpop)
            except ResourceAuthError as exc:
                return exc.response()
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def add_dpop_nonce(resp: Response) -> Response:
    """after_request: hand out a fresh resource nonce when the client's is about to roll (§9)."""
    nonce = g.get("dpop_nonce")
    if nonce:
        resp.headers["DPoP-Nonce"] = nonce
        resp.headers["Cache-Control"] = "no-store"
    return resp
