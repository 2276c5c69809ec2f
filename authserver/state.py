"""The per-app runtime objects, kept in ``app.extensions["authserver"]``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import current_app
from flask.globals import _cv_app

if TYPE_CHECKING:
    from authlib.integrations.flask_oauth2 import AuthorizationServer

    from authserver.config import Settings
    from authserver.direct import Direct
    from authserver.ephemeral import EphemeralStore
    from authserver.security import Hasher
    from grants.dpop import DPoPVerifier
    from keys.jwks import KeyRing


@dataclass
class AppState:
    settings: Settings
    hasher: Hasher
    store: EphemeralStore
    keyring: KeyRing
    dpop: DPoPVerifier
    server: AuthorizationServer | None = None
    direct: Direct | None = None
    # authserver.clients: client id -> (configuration version, monotonic time read, view).
    client_cache: dict[str, Any] = field(default_factory=dict)
    # authserver.tokens: access tokens verified by this process -> (view, kid).
    verified_tokens: dict[str, Any] = field(default_factory=dict)
    # Tests replace this to control time; None means the wall clock.
    clock: Callable[[], float] | None = None


def get_state() -> AppState:
    # The app context's app directly: this runs several times per request, and the
    # ``current_app`` proxy costs more than the lookup itself.
    ctx = _cv_app.get(None)
    if ctx is None:
        return current_app.extensions["authserver"]  # type: ignore[no-any-return]  # raises
    return ctx.app.extensions["authserver"]  # type: ignore[no-any-return]
