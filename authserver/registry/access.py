"""Who may call the registry: service tokens by scope, user tokens by role, device tokens for /me.

The tenant always comes from the token, never from the request.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import g

from authserver import users
from authserver.authorization import manages_people, manages_registry, manages_tenant
from authserver.models import User
from authserver.problems import ForbiddenProblem
from authserver.resource import ResourceAuthError, authenticate_request, current_token
from authserver.tokens import AccessTokenView
from grants import LINK_CODE

F = TypeVar("F", bound=Callable[..., Any])


def token_kind(token: AccessTokenView) -> str:
    """``user`` for a token about a person (a staff sign-in on a device too: its ``act`` is the
    device), ``device`` for a device's own token, else ``service``."""
    if token.user_id is not None and token.subject == token.user_id:
        return "user"
    if token.device_id is not None:
        return "device"
    return "service"


def token_actor() -> tuple[AccessTokenView, User | None]:
    """The request's token and, for a user token, its user."""
    return current_token(), g.get("registry_user")


def require_registry_token(write: bool = False) -> Callable[[F], F]:
    """Tenant management: ``devices:read`` (``devices:write`` to change) for service tokens; the
    same scope plus role TENANT.ADMIN or DEVICE.MANAGER for user tokens; never device tokens."""
    return _tenant_token(
        "devices:write" if write else "devices:read",
        manages_registry,
        "The role TENANT.ADMIN or DEVICE.MANAGER is required.",
    )


def require_people_token(write: bool = False) -> Callable[[F], F]:
    """People management: ``users:read`` (``users:write`` to change) for service tokens; the
    same scope plus role TENANT.ADMIN or USER.MANAGER for user tokens; never device tokens."""
    return _tenant_token(
        "users:write" if write else "users:read",
        manages_people,
        "The role TENANT.ADMIN or USER.MANAGER is required.",
    )


def require_tenant_admin_token(write: bool = False) -> Callable[[F], F]:
    """The tenant's settings: ``tenant:read`` (``tenant:write`` to change) for service tokens;
    the same scope plus role TENANT.ADMIN (or SU) for user tokens; never device tokens."""
    return _tenant_token(
        "tenant:write" if write else "tenant:read",
        manages_tenant,
        "The role TENANT.ADMIN is required.",
    )


def require_modules_token(write: bool = False) -> Callable[[F], F]:
    """Modules: ``modules:read`` (``modules:write`` to change) for service tokens; the same scope
    plus role TENANT.ADMIN or DEVICE.MANAGER for user tokens; never device tokens."""
    return _tenant_token(
        "modules:write" if write else "modules:read",
        manages_registry,
        "The role TENANT.ADMIN or DEVICE.MANAGER is required.",
    )


def require_customer_devices_token(write: bool = False) -> Callable[[F], F]:
    """Customers' devices in the back office: ``customer-devices:read`` (``:write`` to change)
    for service tokens; the same scope plus role TENANT.ADMIN or USER.MANAGER for user tokens;
    never device tokens."""
    return _tenant_token(
        "customer-devices:write" if write else "customer-devices:read",
        manages_people,
        "The role TENANT.ADMIN or USER.MANAGER is required.",
    )


def require_module_token() -> Callable[[F], F]:
    """A device enrolled as a module: its own token (any scope), carrying the ``module`` claim
    (seed 002: "it must be fetched in device code flow"). DPoP-bound tokens with their proof."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            try:
                token = authenticate_request((), dpop=False)
            except ResourceAuthError as exc:
                return exc.response()
            if token_kind(token) != "device" or token.module_id is None:
                raise ForbiddenProblem(
                    "Only a device enrolled as a module (its token carries module) reads this."
                )
            g.registry_user = None
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def _query_client(client_id: str) -> Any:
    from authserver.oauth2.server import query_client

    return query_client(client_id)


def require_device_token(scope: str) -> Callable[[F], F]:
    """The calling device's own endpoints (``/devices/me...``): a device's own token with
    ``scope``; any other token is a 403 (seed 001: a service token gets 403), not a 401.

    Whether the token must be DPoP-bound is the client's: always for a client registered as
    DPoP-bound (``dpop_bound_access_tokens``) and for link-code terminals; a device-flow
    client not registered so may use Bearer tokens (RFC 9449 §7.1 lets a resource take both)."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            try:
                token = authenticate_request((scope,), dpop=False)
            except ResourceAuthError as exc:
                return exc.response()
            if token_kind(token) != "device":
                raise ForbiddenProblem("Only a device's own token may call this endpoint.")
            if token.jkt is None:
                client = _query_client(token.client_id)
                if client is None or client.dpop_bound or client.check_grant_type(LINK_CODE):
                    return ResourceAuthError(
                        401, "invalid_token", "A DPoP-bound token is required.", "DPoP"
                    ).response()
            g.registry_user = None
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def require_self_token() -> Callable[[F], F]:
    """Self-service: a user token (any scope) of an active user; ``g.registry_user`` is them."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            try:
                token = authenticate_request((), dpop=False)
            except ResourceAuthError as exc:
                return exc.response()
            if token_kind(token) != "user":
                raise ForbiddenProblem("Only a user's own token reaches their account.")
            user = users.get_active(token.user_id) if token.user_id else None
            if user is None or user.tenant_id != token.tenant_id:
                raise ForbiddenProblem("The user is not active.")
            g.registry_user = user
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def actor_id() -> str:
    """Who the request acts as, for audit events: the user, else the client."""
    token, user = token_actor()
    return user.id if user is not None else token.client_id


def _tenant_token(scope: str, role_check: Callable[[User], bool], refusal: str) -> Callable[[F], F]:

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
                if not role_check(user):
                    raise ForbiddenProblem(refusal)
                g.registry_user = user
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator
