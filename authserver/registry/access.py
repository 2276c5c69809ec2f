"""Who may call the registry: service tokens by scope, user tokens by role, device tokens for /me.

The tenant always comes from the token, never from the request.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import g

from authserver import users
from authserver.authorization import manages_registry
from authserver.models import User
from authserver.problems import ForbiddenProblem
from authserver.resource import ResourceAuthError, authenticate_request, current_token
from authserver.tokens import AccessTokenView

F = TypeVar("F", bound=Callable[..., Any])


def token_kind(token: AccessTokenView) -> str:
    if token.device_id is not None:
        return "device"
    if token.user_id is not None and token.subject == token.user_id:
        return "user"
    return "service"


def token_actor() -> tuple[AccessTokenView, User | None]:
    """The request's token and, for a user token, its user."""
    return current_token(), g.get("registry_user")


def require_registry_token(write: bool = False) -> Callable[[F], F]:
    """Tenant management: ``devices:read`` (``devices:write`` to change) for service tokens; the
    same scope plus role TENANT.ADMIN or DEVICE.MANAGER for user tokens; never device tokens."""
    scope = "devices:write" if write else "devices:read"

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            try:
                token = authenticate_request((scope,), dpop=False)
            except ResourceAuthError as exc:
                return exc.response()
            kind = token_kind(token)
            if kind == "device":
                raise ForbiddenProblem("Device tokens cannot manage the registry.")
            g.registry_user = None
            if kind == "user":
                user = users.get_active(token.user_id) if token.user_id else None
                if user is None or user.tenant_id != token.tenant_id:
                    raise ForbiddenProblem("The user is not active.")
                if not manages_registry(user):
                    raise ForbiddenProblem("The role TENANT.ADMIN or DEVICE.MANAGER is required.")
                g.registry_user = user
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator
