"""Administrative operations shared by the CLI and the demo: tenants, users, clients, schema."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from authserver import audit, credentials, migrate, users
from authserver.models import Client, Tenant, User, db
from authserver.security import hash_password, new_id, now
from authserver.state import get_state
from grants import CLIENT_CREDENTIALS, KNOWN_GRANT_TYPES
from keys.encryption import KeyEncryptor
from keys.rotation import ensure_keys

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")


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
        roles=sorted(set(roles or [])),
        active=True,
        created_at=now(),
    )
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
    if device_subject not in ("device", "user"):
        raise AdminError("device subject must be device or user")
    if dpop_binding not in ("all", "refresh_only"):
        raise AdminError("DPoP binding must be all or refresh_only")
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
