"""Administrative operations shared by the CLI and the demo: tenants, users, clients, schema."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete as sql_delete
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from authserver import audit, authorization, credentials, migrate, tokens, users
from authserver.authorization_code import redirect_uri_problem
from authserver.config import ID_TOKEN_DEFAULT_ALG
from authserver.models import Client, Device, Location, Tenant, TenantProperty, User, db
from authserver.security import hash_password, new_id, now
from authserver.state import get_state
from authserver.text import is_clean
from grants import AUTHORIZATION_CODE, CLIENT_CREDENTIALS, KNOWN_GRANT_TYPES
from keys.encryption import KeyEncryptor
from keys.rotation import ensure_keys

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")
DPOP_BINDINGS = ("all", "refresh_only")
DEVICE_SUBJECTS = ("device", "user")


class AdminError(ValueError):
    """A request to create or change something that cannot be done; the message says why."""


def prepare_database() -> None:
    """Migrate the schema and create the signing keys when missing (idempotent, concurrent-safe)."""
    migrate.upgrade()
    state = get_state()
    ensure_keys(db.session, state.settings, KeyEncryptor(state.settings.key_encryption_key), now())
    # Decrypt the current key now: a wrong key-encryption key fails here, with its own message,
    # not at the first token request.
    state.keyring.snapshot(force=True)


def find_tenant(ref: str) -> Tenant:
    tenant = users.lookup_tenant(ref)
    if tenant is None:
        raise AdminError(f"no tenant with id or name {ref!r}")
    return tenant


def create_tenant(name: str, tenant_id: str | None = None) -> Tenant:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise AdminError("tenant name must be 1-200 characters")
    tenant = Tenant(id=tenant_id or new_id("ten"), name=name, created_at=now())
    db.session.add(tenant)
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise AdminError(f"a tenant named {name!r} already exists") from exc
    return tenant


def create_user(
    tenant: Tenant,
    login: str,
    password: str,
    staff_code: str | None = None,
    roles: list[str] | None = None,
    user_id: str | None = None,
    kind: str = authorization.STAFF_KIND,
) -> User:
    if not 1 <= len(login) <= 200:
        raise AdminError("login must be 1-200 characters")
    if len(password) < 8:
        raise AdminError("password must be at least 8 characters")
    if staff_code is not None and not credentials.staff_code_ok(staff_code):
        raise AdminError("staff code must be 4-32 letters or digits")
    user = User(
        id=user_id or new_id("usr"),
        tenant_id=tenant.id,
        login=login,
        password_hash=hash_password(password),
        staff_code_hash=credentials.staff_code_hash(tenant.id, staff_code) if staff_code else None,
        roles=check_roles(roles or []),
        active=True,
        created_at=now(),
        kind=kind,
    )
    _check_kind(user)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise AdminError("login or staff code already taken in this tenant") from exc
    return user


@dataclass(frozen=True)
class CreatedClient:
    client: Client
    client_secret: str | None

    def as_dict(self) -> dict[str, Any]:
        c = self.client
        data: dict[str, Any] = {
            "client_id": c.client_id,
            "tenant_id": c.tenant_id,
            "name": c.name,
            "token_endpoint_auth_method": c.auth_method,
            "grant_types": c.grant_types,
            "scope": c.scope,
            "dpop_bound_access_tokens": c.dpop_bound,
            "dpop_binding": c.dpop_binding,
            "device_subject": c.device_subject,
            "redirect_uris": list(c.redirect_uris or []),
            "post_logout_redirect_uris": list(c.post_logout_redirect_uris or []),
            "first_party": bool(c.first_party),
            "require_pushed_authorization_requests": bool(c.require_par),
            # OIDC Registration §2; RS256 when the client named none.
            "id_token_signed_response_alg": c.id_token_alg or ID_TOKEN_DEFAULT_ALG,
            # Who may sign in to it (authserver.authorization): staff, customer, or any.
            "user_kind": c.user_kind or "any",
        }
        if self.client_secret is not None:
            data["client_secret"] = self.client_secret
        return data


def create_client(
    tenant: Tenant,
    name: str,
    grant_types: list[str],
    auth_method: str = "client_secret_basic",
    scope: str | None = None,
    client_id: str | None = None,
    dpop_bound: bool = False,
    dpop_binding: str = "all",
    device_subject: str = "device",
    actor: str = "cli",
    redirect_uris: list[str] | None = None,
    post_logout_redirect_uris: list[str] | None = None,
    first_party: bool = False,
    require_par: bool = False,
    id_token_alg: str | None = None,
    user_kind: str = "any",
) -> CreatedClient:
    settings = get_state().settings
    if not 1 <= len(name) <= 200:
        raise AdminError("client name must be 1-200 characters")
    if auth_method not in AUTH_METHODS:
        raise AdminError(f"auth method must be one of {', '.join(AUTH_METHODS)}")
    unknown = [g for g in grant_types if g not in KNOWN_GRANT_TYPES]
    if unknown or not grant_types:
        raise AdminError(f"grant types must be among {', '.join(KNOWN_GRANT_TYPES)}")
    if CLIENT_CREDENTIALS in grant_types and auth_method == "none":
        # RFC 6749 §4.4: client credentials are for confidential clients only.
        raise AdminError("a public client cannot use the client_credentials grant")
    scopes = (scope or "").split()
    bad = [s for s in scopes if s not in settings.scopes]
    if bad:
        raise AdminError(
            f"unknown scope(s) {' '.join(bad)}; supported: {' '.join(settings.scopes)}"
        )
    if device_subject not in DEVICE_SUBJECTS:
        raise AdminError("device subject must be device or user")
    if dpop_binding not in DPOP_BINDINGS:
        raise AdminError("DPoP binding must be all or refresh_only")
    redirects = _redirect_uris(grant_types, redirect_uris or [], post_logout_redirect_uris or [])
    _check_id_token_alg(id_token_alg)
    _check_user_kind(user_kind)
    secret, secret_hash = (None, None) if auth_method == "none" else credentials.new_client_secret()
    client = Client(
        client_id=client_id or new_id("cli"),
        tenant_id=tenant.id,
        name=name,
        secret_hash=secret_hash,
        auth_method=auth_method,
        grant_types=list(dict.fromkeys(grant_types)),
        scope=" ".join(dict.fromkeys(scopes)),
        dpop_bound=dpop_bound,
        dpop_binding=dpop_binding,
        device_subject=device_subject,
        active=True,
        created_at=now(),
        redirect_uris=redirects[0],
        post_logout_redirect_uris=redirects[1],
        first_party=first_party,
        require_par=require_par,
        id_token_alg=id_token_alg,
        user_kind=None if user_kind == "any" else user_kind,
    )
    db.session.add(client)
    audit.record(
        "client.created",
        tenant.id,
        actor,
        client_id=client.client_id,
        grant_types=client.grant_types,
        auth_method=auth_method,
    )
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise AdminError(f"client id {client.client_id!r} already exists") from exc
    return CreatedClient(client, secret)


def reset_client_secret(client: Client) -> str:
    secret, client.secret_hash = credentials.new_client_secret()
    db.session.commit()
    return secret


# -- reading, changing, disabling and deleting (the CLI's operator commands) -----------------------


def tenant_json(t: Tenant) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "active": t.active,
        "accent_colour": t.accent_colour,
        "logo_url": t.logo_url,
        "created_at": t.created_at,
    }


MIN_CONTRAST = 4.5  # WCAG 2.1 AA for normal text: white on the accent colour
_HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


def contrast_with_white(colour: str) -> float:
    """WCAG 2.1 contrast ratio of white text on ``colour`` (#rrggbb)."""

    def channel(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    luminance = 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
    return 1.05 / (luminance + 0.05)


def check_accent_colour(value: str) -> str | None:
    """A #rrggbb colour white text can be read on, or "" to clear it (None)."""
    if value == "":
        return None
    if not _HEX_COLOUR.fullmatch(value):
        raise AdminError(f"accent colour must be #rrggbb, not {value!r}")
    ratio = contrast_with_white(value)
    if ratio < MIN_CONTRAST:
        raise AdminError(
            f"accent colour {value} is too light for the white text of the page's buttons "
            f"(contrast {ratio:.1f}:1; at least {MIN_CONTRAST}:1 is needed)"
        )
    return value.lower()


def check_logo_url(value: str) -> str | None:
    """An https URL of an image, or "" to clear it (None)."""
    if value == "":
        return None
    parts = urlsplit(value)
    if (
        len(value) > 500
        or parts.scheme != "https"
        or not parts.hostname
        or "@" in parts.netloc
        or not is_clean(value)
        or any(c in value for c in " \"'<>")
    ):
        raise AdminError("logo URL must be an https URL of at most 500 characters")
    return value


def brand_tenant(
    tenant: Tenant,
    accent_colour: str | None = None,
    logo_url: str | None = None,
    actor: str = "cli",
) -> Tenant:
    """Set (a value) or clear ("") the tenant's accent colour and logo; None leaves one alone."""
    changed: dict[str, Any] = {}
    if accent_colour is not None:
        tenant.accent_colour = changed["accent_colour"] = check_accent_colour(accent_colour)
    if logo_url is not None:
        tenant.logo_url = changed["logo_url"] = check_logo_url(logo_url)
    if changed:
        audit.record("tenant.updated", tenant.id, actor, **changed)
        db.session.commit()
    return tenant


def list_tenants() -> list[Tenant]:
    return list(db.session.scalars(select(Tenant).order_by(Tenant.name)))


def rename_tenant(tenant: Tenant, name: str, actor: str = "cli") -> Tenant:
    name = name.strip()
    if not 1 <= len(name) <= 200 or not is_clean(name):
        raise AdminError("tenant name must be 1-200 characters of plain text")
    tenant.name = name
    audit.record("tenant.updated", tenant.id, actor, name=name)
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise AdminError(f"a tenant named {name!r} already exists") from exc
    return tenant


def set_tenant_active(tenant: Tenant, active: bool, actor: str = "cli") -> Tenant:
    """Disabling stops the tenant's clients authenticating and its users signing in, and
    revokes every token of its clients; enabling lets them back in."""
    tenant.active = active
    if not active:
        tokens.revoke_subject(tenant_id=tenant.id)
    audit.record("tenant.enabled" if active else "tenant.disabled", tenant.id, actor)
    db.session.commit()
    return tenant


def delete_tenant(tenant: Tenant, actor: str = "cli") -> None:
    """Only an empty tenant goes: its users, clients, devices and locations first."""
    for model, what in (
        (User, "users"),
        (Client, "clients"),
        (Device, "devices"),
        (Location, "locations"),
    ):
        count = db.session.scalar(
            select(func.count()).select_from(model).where(model.tenant_id == tenant.id)  # type: ignore[attr-defined]
        )
        if count:
            raise AdminError(f"tenant {tenant.name!r} still has {count} {what}; delete them first")
    audit.record("tenant.deleted", None, actor, deleted_tenant=tenant.id, name=tenant.name)
    db.session.execute(sql_delete(TenantProperty).where(TenantProperty.tenant_id == tenant.id))
    db.session.delete(tenant)
    db.session.commit()


def user_json(u: User) -> dict[str, Any]:
    return {
        "id": u.id,
        "tenant_id": u.tenant_id,
        "login": u.login,
        "kind": u.kind,
        "roles": u.roles,
        "active": u.active,
        "staff_code_set": u.staff_code_hash is not None,
        "created_at": u.created_at,
    }


def find_user(tenant: Tenant, ref: str) -> User:
    """A user of ``tenant`` by id or login."""
    user = db.session.scalar(
        select(User).where(User.tenant_id == tenant.id, or_(User.id == ref, User.login == ref))
    )
    if user is None:
        raise AdminError(f"no user with id or login {ref!r} in tenant {tenant.name!r}")
    return user


def list_users(tenant: Tenant) -> list[User]:
    return list(
        db.session.scalars(select(User).where(User.tenant_id == tenant.id).order_by(User.login))
    )


def check_roles(roles: list[str]) -> list[str]:
    unknown = [r for r in roles if not authorization.is_known_role(r)]
    if unknown:
        allowed = ", ".join(authorization.ROLES)
        raise AdminError(
            f"unknown role(s) {', '.join(unknown)}; roles are {allowed}, each optionally "
            "for one location as ROLE@loc_..."
        )
    return sorted(set(roles))


def update_user(
    user: User,
    *,
    login: str | None = None,
    roles: list[str] | None = None,
    staff_code: str | None = None,
    password: str | None = None,
    kind: str | None = None,
    actor: str = "cli",
) -> User:
    changed = []
    roles_before = set(user.roles or [])
    if login is not None:
        if not 1 <= len(login) <= 200 or not is_clean(login):
            raise AdminError("login must be 1-200 characters of plain text")
        user.login = login
        changed.append("login")
    if roles is not None:
        user.roles = check_roles(roles)
        changed.append("roles")
    if staff_code is not None:
        if not credentials.staff_code_ok(staff_code):
            raise AdminError("staff code must be 4-32 letters or digits")
        user.staff_code_hash = credentials.staff_code_hash(user.tenant_id, staff_code)
        changed.append("staff_code")
    if password is not None:
        if len(password) < 8:
            raise AdminError("password must be at least 8 characters")
        user.password_hash = hash_password(password)
        changed.append("password")
    if kind is not None and kind != user.kind:
        user.kind = kind
        changed.append("kind")
    _check_kind(user)
    if users.ends_tokens(changed, bool(roles_before - set(user.roles or []))):
        tokens.revoke_subject(user_id=user.id)
    audit.record("user.updated", user.tenant_id, actor, user_id=user.id, changed=changed)
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise AdminError("login or staff code already taken in this tenant") from exc
    return user


def _check_kind(user: User) -> None:
    if not authorization.kind_fits(user):
        db.session.rollback()
        raise AdminError("a customer holds no roles and no staff code: make them staff first")


def set_user_active(user: User, active: bool, actor: str = "cli") -> User:
    """A disabled user cannot sign in, and every token issued to or for them stops at once."""
    user.active = active
    if not active:
        tokens.revoke_subject(user_id=user.id)
    audit.record(
        "user.enabled" if active else "user.disabled", user.tenant_id, actor, user_id=user.id
    )
    db.session.commit()
    return user


def delete_user(user: User, actor: str = "cli") -> None:
    users.delete(user, authorization.OPERATOR, actor)


def client_json(c: Client) -> dict[str, Any]:
    data = CreatedClient(c, None).as_dict()
    data["active"] = c.active
    data["created_at"] = c.created_at
    return data


def find_client(client_id: str) -> Client:
    client = db.session.get(Client, client_id)
    if client is None:
        raise AdminError(f"no client {client_id!r}")
    return client


def list_clients(tenant: Tenant) -> list[Client]:
    return list(
        db.session.scalars(
            select(Client).where(Client.tenant_id == tenant.id).order_by(Client.name)
        )
    )


def _redirect_uris(
    grant_types: list[str], redirect_uris: list[str], post_logout: list[str]
) -> tuple[list[str], list[str]]:
    """Registered redirect and post-logout URIs, each checked (``authorization_code``); a client
    of the code flow needs at least one redirect URI (RFC 6749 §3.1.2.2)."""
    for uri in [*redirect_uris, *post_logout]:
        problem = redirect_uri_problem(uri)
        if problem:
            raise AdminError(f"redirect URI {uri!r} {problem}")
    if AUTHORIZATION_CODE in grant_types and not redirect_uris:
        raise AdminError(
            "a client of the authorization_code grant needs a redirect URI (--redirect-uri; "
            "redirectUris over the API)"
        )
    return list(dict.fromkeys(redirect_uris)), list(dict.fromkeys(post_logout))


def _check_id_token_alg(alg: str | None) -> None:
    algs = get_state().settings.signing_algs
    if alg is not None and alg not in algs:
        raise AdminError(
            f"the ID-token algorithm must be one the server signs with: {', '.join(algs)}"
        )


USER_KINDS = ("any", *authorization.USER_KINDS)


def _check_user_kind(kind: str) -> None:
    if kind not in USER_KINDS:
        raise AdminError(f"the user kind must be one of {', '.join(USER_KINDS)}")


def update_client(
    client: Client,
    *,
    name: str | None = None,
    scope: str | None = None,
    grant_types: list[str] | None = None,
    dpop_bound: bool | None = None,
    actor: str = "cli",
    redirect_uris: list[str] | None = None,
    post_logout_redirect_uris: list[str] | None = None,
    first_party: bool | None = None,
    require_par: bool | None = None,
    id_token_alg: str | None = None,
    user_kind: str | None = None,
    active: bool | None = None,
    reset_id_token_alg: bool = False,
) -> Client:
    """Change what is given (None: unchanged), all in one transaction. A narrower scope needs
    nothing more: refreshing never gives a scope the client no longer has (``grants``)."""
    settings = get_state().settings
    if name is not None:
        if not 1 <= len(name) <= 200 or not is_clean(name):
            raise AdminError("client name must be 1-200 characters of plain text")
        client.name = name
    if scope is not None:
        bad = [s for s in scope.split() if s not in settings.scopes]
        if bad:
            raise AdminError(
                f"unknown scope(s) {' '.join(bad)}; supported: {' '.join(settings.scopes)}"
            )
        client.scope = " ".join(dict.fromkeys(scope.split()))
    if grant_types is not None:
        unknown = [g for g in grant_types if g not in KNOWN_GRANT_TYPES]
        if unknown or not grant_types:
            raise AdminError(f"grant types must be among {', '.join(KNOWN_GRANT_TYPES)}")
        if CLIENT_CREDENTIALS in grant_types and client.is_public:
            raise AdminError("a public client cannot use the client_credentials grant")
        client.grant_types = list(dict.fromkeys(grant_types))
    if dpop_bound is not None:
        client.dpop_bound = dpop_bound
    redirects = _redirect_uris(
        list(client.grant_types),
        list(client.redirect_uris or []) if redirect_uris is None else redirect_uris,
        list(client.post_logout_redirect_uris or [])
        if post_logout_redirect_uris is None
        else post_logout_redirect_uris,
    )
    client.redirect_uris, client.post_logout_redirect_uris = redirects
    if first_party is not None:
        client.first_party = first_party
    if require_par is not None:
        client.require_par = require_par
    if id_token_alg is not None:
        _check_id_token_alg(id_token_alg)
        client.id_token_alg = id_token_alg
    elif reset_id_token_alg:
        client.id_token_alg = None  # the default, RS256
    if user_kind is not None:
        _check_user_kind(user_kind)
        wanted = None if user_kind == "any" else user_kind
        if wanted != client.user_kind:
            client.user_kind = wanted
            # Whoever the app no longer admits must not keep its tokens (nor refresh them): all
            # of its tokens end, and its people sign in again.
            tokens.revoke_subject(client_id=client.client_id)
    changed = [name, scope, grant_types, dpop_bound, redirect_uris, post_logout_redirect_uris,
               first_party, require_par, id_token_alg, user_kind]  # fmt: skip
    if reset_id_token_alg or any(value is not None for value in changed):
        audit.record("client.updated", client.tenant_id, actor, client_id=client.client_id)
    if active is not None and active != client.active:
        _set_active(client, active, actor)
    db.session.commit()
    return client


def set_client_active(client: Client, active: bool, actor: str = "cli") -> Client:
    """A disabled client cannot authenticate, and its tokens stop at once."""
    _set_active(client, active, actor)
    db.session.commit()
    return client


def _set_active(client: Client, active: bool, actor: str) -> None:
    client.active = active
    if not active:
        tokens.revoke_subject(client_id=client.client_id)
    event = "client.enabled" if active else "client.disabled"
    audit.record(event, client.tenant_id, actor, client_id=client.client_id)


def delete_client(client: Client, actor: str = "cli") -> None:
    tokens.revoke_subject(client_id=client.client_id)
    audit.record("client.deleted", client.tenant_id, actor, client_id=client.client_id)
    db.session.delete(client)
    db.session.commit()


def rotate_client_secret(client: Client, actor: str = "cli") -> str:
    if client.is_public:
        raise AdminError("a public client has no secret")
    secret = reset_client_secret(client)
    audit.record("client.secret_rotated", client.tenant_id, actor, client_id=client.client_id)
    db.session.commit()
    return secret
