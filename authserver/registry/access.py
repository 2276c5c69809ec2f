"""Who may call the registry: service tokens by scope, user tokens by role, device tokens for /me.

The tenant always comes from the token, never from the request.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import g

from authserver import clients, users
from authserver.authorization import (
    manages_people,
    manages_registry,
    manages_tenant,
    reaches_own_account,
)
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


def require_clients_token(write: bool = False) -> Callable[[F], F]:
    """The tenant's OAuth clients: ``clients:read`` (``clients:write`` to change) for service
    tokens; the same scope plus role TENANT.ADMIN (or SU) for user tokens; never device tokens.
    What a write may touch is limited further by the token's own scopes
    (``authorization.beyond``)."""
    return _tenant_token(
        "clients:write" if write else "clients:read",
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


def _guarded(
    scopes: tuple[str, ...], admit: Callable[[AccessTokenView], User | None]
) -> Callable[[F], F]:
    """A view behind a valid token with ``scopes`` (Bearer, or DPoP with its proof) that
    ``admit`` lets in: it raises the refusal, or returns the request's user (``g.registry_user``)
    or None."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            try:
                token = authenticate_request(scopes, dpop=False)
                g.registry_user = admit(token)
            except ResourceAuthError as exc:
                return exc.response()
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def _active_user(token: AccessTokenView) -> User:
    """The person a user token is about, active, of the token's tenant; else a 403."""
    user = users.get_active(token.user_id) if token.user_id else None
    if user is None or user.tenant_id != token.tenant_id:
        raise ForbiddenProblem("The user is not active.")
    return user


def _query_client(client_id: str) -> Any:
    from authserver.oauth2.server import query_client

    return query_client(client_id)


def _own_device(token: AccessTokenView, refusal: str) -> None:
    """A device's own token, DPoP-bound when its client says so: always for a client registered
    as DPoP-bound (``dpop_bound_access_tokens``) and for link-code terminals; a device-flow
    client not registered so may use Bearer tokens (RFC 9449 §7.1 lets a resource take both).
    Any other token is a 403 (seed 001: a service token gets 403), not a 401."""
    if token_kind(token) != "device":
        raise ForbiddenProblem(refusal)
    if token.jkt is None:
        client = _query_client(token.client_id)
        if client is None or client.dpop_bound or client.check_grant_type(LINK_CODE):
            raise ResourceAuthError(401, "invalid_token", "A DPoP-bound token is required.", "DPoP")


def require_module_token() -> Callable[[F], F]:
    """A device enrolled as a module: its own token (any scope), carrying the ``module`` claim
    (seed 002: "it must be fetched in device code flow"); DPoP as for any device endpoint."""

    def admit(token: AccessTokenView) -> None:
        refusal = "Only a device enrolled as a module (its token carries module) reads this."
        _own_device(token, refusal)
        if token.module_id is None:
            raise ForbiddenProblem(refusal)

    return _guarded((), admit)


def require_device_token(scope: str) -> Callable[[F], F]:
    """The calling device's own endpoints (``/devices/me...``): a device's own token with
    ``scope`` (``_own_device``)."""

    def admit(token: AccessTokenView) -> None:
        _own_device(token, "Only a device's own token may call this endpoint.")

    return _guarded((scope,), admit)


def require_self_token() -> Callable[[F], F]:
    """Self-service: a user token (any scope) of an active user; ``g.registry_user`` is them."""

    def admit(token: AccessTokenView) -> User:
        if token_kind(token) != "user":
            raise ForbiddenProblem("Only a user's own token reaches their account.")
        if not reaches_own_account(clients.find(token.client_id)):
            raise ForbiddenProblem("A third-party app's token does not reach the account.")
        return _active_user(token)

    return _guarded((), admit)


def signed_in_user() -> User:
    """The person a ``require_self_token`` view acts for."""
    user = g.get("registry_user")
    assert user is not None  # require_self_token set it
    return user  # type: ignore[no-any-return]


def actor_id() -> str:
    """Who the request acts as, for audit events: the user, else the client."""
    token, user = token_actor()
    return user.id if user is not None else token.client_id


def _tenant_token(scope: str, role_check: Callable[[User], bool], refusal: str) -> Callable[[F], F]:
    """The tenant's back office: a service token with ``scope``, or a user token with it of an
    active user ``role_check`` admits; never a device's."""

    def admit(token: AccessTokenView) -> User | None:
        kind = token_kind(token)
        if kind == "device":
            raise ForbiddenProblem("Device tokens cannot manage the registry.")
        if kind != "user":
            return None
        user = _active_user(token)
        if not role_check(user):
            raise ForbiddenProblem(refusal)
        return user

    return _guarded((scope,), admit)
