"""SQLAlchemy 2 models: tenants, users, clients, token records, signing keys, ephemeral state.

Secrets never sit here in clear: client secrets and refresh tokens as keyed hashes (HMAC-SHA-256,
see ``authserver.security``), passwords as argon2 hashes, private keys encrypted with AES-GCM.
Token times are integer unix seconds: the hot path compares numbers, not time zones.
"""

from __future__ import annotations

import select
import time
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
    false,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import Pool

from authserver import credentials
from authserver.checkpointer import BACKSTOP_PAGES


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)

# Flask-SQLAlchemy makes db.Model at run time (a subclass of Base bound to db's metadata); type
# checkers see Base, which has the same mapping behaviour.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model

ID = String(48)
HASH = String(64)


class DeviceStatus(StrEnum):
    """Seed 000's device statuses."""

    READY_TO_LINK = "READY_TO_LINK"  # pre-registered, waiting for its link code
    ACTIVE = "ACTIVE"
    BLOCKED = "BLOCKED"  # its tokens are revoked; an administrator may make it ACTIVE again


class DeviceOrigin(StrEnum):
    API = "api"  # created by API: an audit device (seed 001) or one awaiting a link
    LINK = "link"  # linked with a link code (seed 000)
    DEVICE_FLOW = "device_flow"  # enrolled through the device flow (a kiosk)


class AppCode(StrEnum):
    """Seed 000's appCode, plus KIOSK for devices enrolled through the device flow."""

    CLIENT = "CLIENT"
    ASSISTANT = "ASSISTANT"
    KIOSK = "KIOSK"
    UNKNOWN = "UNKNOWN"


class AuthorizationStatus(StrEnum):
    """A device authorization: pending -> approved | denied; approved -> redeemed, once."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    REDEEMED = "redeemed"


class KeyState(StrEnum):
    """A signing key's life (keys/rotation.py): next -> current -> retired -> removed."""

    NEXT = "next"
    CURRENT = "current"
    RETIRED = "retired"
    REMOVED = "removed"


class Tenant(Model):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # A disabled tenant's clients cannot authenticate and its users cannot sign in; its tokens
    # are revoked when it is disabled.
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    created_at: Mapped[int] = mapped_column(BigInteger)
    # The verification page in the tenant's colours: its primary buttons (white text on this
    # #rrggbb, checked for contrast) and a logo shown beside its name (an https URL).
    accent_colour: Mapped[str | None] = mapped_column(String(7), default=None)
    logo_url: Mapped[str | None] = mapped_column(String(500), default=None)


class User(Model):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("tenant_id", "login", name="uq_users_tenant_login"),
        UniqueConstraint("tenant_id", "staff_code_hash", name="uq_users_tenant_staff_code"),
        # The list filtered by kind or by active, in its order (login): an index range at any
        # size of the tenant, not a walk of every person (a million customers, a few staff).
        Index("ix_users_tenant_kind_login", "tenant_id", "kind", "login", "id"),
        Index("ix_users_tenant_active_login", "tenant_id", "active", "login", "id"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    login: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    # The short per-tenant code staff type on a terminal (seed 000 calls it "user code"); it
    # identifies, the password authenticates. Keyed hash so it can be looked up without being
    # readable (authserver.credentials).
    staff_code_hash: Mapped[str | None] = mapped_column(HASH, nullable=True)
    # "staff" (roles, staff codes, the back office) or "customer" (seed 003's end users: no
    # roles, never a tenant-management scope); a client may admit one kind only.
    kind: Mapped[str] = mapped_column(String(16), default="staff", server_default="staff")
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    # The profile (seed 002): what a back office or the person keeps about them.
    first_name: Mapped[str | None] = mapped_column(String(100), nullable=True, default=None)
    last_name: Mapped[str | None] = mapped_column(String(100), nullable=True, default=None)
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True, default=None)
    push_id: Mapped[str | None] = mapped_column(String(256), nullable=True, default=None)
    consents: Mapped[list[str] | None] = mapped_column(JSON, nullable=True, default=list)
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True, default=dict)
    trusted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    updated_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True, default=None)
    # The second factor (RFC 6238): the secret encrypted under the key-encryption key, bound to
    # this user's id (authserver.totp); None without one.
    totp_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, default=None)
    totp_enabled_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True, default=None)

    def get_user_id(self) -> str:
        return self.id


class AuthStrategy(Model):
    """An external identity linked to a user (seed 002 "auth strategy"): the strategy (``FB``,
    ``GOOGLE``, a loyalty card system, ...) and the user's id there, unique per tenant."""

    __tablename__ = "user_auth_strategies"

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    strategy: Mapped[str] = mapped_column(String(32), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # A secret that strategy uses (seed 002's "password", 10-64 characters): argon2, never shown.
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class OAuthClient:
    """A client as code that serves requests sees it: the ``Client`` row or the cached
    ``authserver.clients.ClientView`` of it. Authlib's ``ClientMixin``, written once for both."""

    client_id: str
    tenant_id: str
    name: str
    scope: str
    secret_hash: str | None
    auth_method: str
    grant_types: Any
    dpop_bound: bool
    dpop_binding: str
    device_subject: str
    active: bool
    redirect_uris: Any
    post_logout_redirect_uris: Any
    first_party: bool
    require_par: bool
    id_token_alg: str | None
    user_kind: str | None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None  # redirect-free: no authorization endpoint

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_response_type(self, response_type: str) -> bool:
        return False

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = self.scope.split()
        if not scope:
            return " ".join(allowed)
        return " ".join(s for s in scope.split() if s in allowed)

    def check_client_secret(self, client_secret: str) -> bool:
        if not self.secret_hash:
            return False
        return credentials.client_secret_matches(client_secret, self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        # A client authenticates with the one method it is registered for, at every endpoint.
        return self.active and method == self.auth_method

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    @property
    def is_public(self) -> bool:
        return self.auth_method == "none"


class Client(OAuthClient, Model):
    """An OAuth client, implementing Authlib's ``ClientMixin`` interface (``OAuthClient``)."""

    __tablename__ = "clients"

    client_id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str | None] = mapped_column(HASH, nullable=True)
    auth_method: Mapped[str] = mapped_column(String(40))
    grant_types: Mapped[list[str]] = mapped_column(JSON)
    scope: Mapped[str] = mapped_column(Text, default="")
    # RFC 9449 §5.2 dpop_bound_access_tokens: every token request must carry a proof.
    dpop_bound: Mapped[bool] = mapped_column(Boolean, default=False)
    # "all": a proof binds access and (public clients') refresh tokens; "refresh_only": access
    # tokens stay Bearer for resource servers that do not take DPoP yet.
    dpop_binding: Mapped[str] = mapped_column(String(16), default="all")
    # Whose token a device-flow approval yields: "device" (kiosk enrolment: sub is the registry
    # device) or "user" (sign-in on a shared screen: sub is the approving user).
    device_subject: Mapped[str] = mapped_column(String(8), default="device")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    # The authorization code flow (RFC 6749 §4.1): redirect URIs compared exactly (RFC 9700
    # §2.1; a native app's loopback URI on any port, RFC 8252 §7.3), where RP-initiated logout
    # may send the browser back to, whether the client is the tenant's own (no consent asked),
    # and whether its authorization requests must be pushed first (RFC 9126 §5).
    redirect_uris: Mapped[list[str]] = mapped_column(
        JSON, default=list, server_default=text("'[]'")
    )
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(
        JSON, default=list, server_default=text("'[]'")
    )
    first_party: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    require_par: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # OIDC Registration §2 id_token_signed_response_alg; unset: RS256, the default there.
    id_token_alg: Mapped[str | None] = mapped_column(String(16), nullable=True, default=None)
    # Who may sign in to it: "staff", "customer", or None for both (authserver.authorization).
    user_kind: Mapped[str | None] = mapped_column(String(16), nullable=True, default=None)

    @property
    def id(self) -> str:
        """The client id: what a page of clients continues after."""
        return self.client_id


class Revocation(Model):
    """The durable copy of a revocation entry when the state store is Redis
    (``authserver.revocation``): reloaded into Redis if Redis loses its data."""

    __tablename__ = "revocations"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(String(64))
    expires_at_ms: Mapped[int] = mapped_column(BigInteger, index=True)


class Location(Model):
    __tablename__ = "locations"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default="store")
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class Device(Model):
    """A registry entry: a terminal, kiosk or audit device of one tenant (seeds 000, 001)."""

    __tablename__ = "devices"
    __table_args__ = (
        Index("ix_devices_tenant_created", "tenant_id", "created_at", "id"),
        # One per sortBy (issue 16): a page in any order, at any depth, is an index seek.
        Index("ix_devices_tenant_name", "tenant_id", "name", "id"),
        Index("ix_devices_tenant_updated", "tenant_id", "updated_at", "id"),
        Index(
            "ix_devices_tenant_activity",
            "tenant_id",
            text("coalesce(last_activity_at, 0)"),  # devices.ACTIVITY_KEY, as the sort says it
            "id",
        ),
        # The identifier finds a device (exact search): unique among the tenant's live devices.
        Index(
            "uq_devices_tenant_identifier",
            "tenant_id",
            "identifier",
            unique=True,
            sqlite_where=text("deleted_at IS NULL AND identifier IS NOT NULL"),
            postgresql_where=text("deleted_at IS NULL AND identifier IS NOT NULL"),
        ),
        # externalId is unique in the tenant among devices that are not deleted.
        Index(
            "uq_devices_tenant_external_id",
            "tenant_id",
            "external_id",
            unique=True,
            sqlite_where=text("deleted_at IS NULL AND external_id IS NOT NULL"),
            postgresql_where=text("deleted_at IS NULL AND external_id IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))  # READY_TO_LINK | ACTIVE | BLOCKED
    origin: Mapped[str] = mapped_column(String(16))  # api | link | device_flow
    app_code: Mapped[str] = mapped_column(String(16), default="UNKNOWN")
    external_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    till_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    identifier: Mapped[str | None] = mapped_column(String(64), nullable=True)
    system_information: Mapped[str | None] = mapped_column(Text, nullable=True)
    dpop_jkt: Mapped[str | None] = mapped_column(String(64), nullable=True)
    link_code_hash: Mapped[str | None] = mapped_column(HASH, nullable=True, unique=True)
    link_code_expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # A device's own times are Unix milliseconds (seed 001 shows them to the millisecond).
    last_activity_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_tenant_user_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    printer_uids: Mapped[Any] = mapped_column(JSON, nullable=True)  # seed 000: its printers
    last_order_uid: Mapped[str | None] = mapped_column(String(64), nullable=True)  # set by itself
    # While BLOCKED: the revocation mark the block wrote, and the one before it (to restore
    # sessions on an unblock that asks for it).
    block_mark: Mapped[str | None] = mapped_column(String(32), nullable=True)
    mark_before_block: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str | None] = mapped_column(ID, nullable=True)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    updated_by: Mapped[str | None] = mapped_column(ID, nullable=True)
    deleted_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class DeviceLocation(Model):
    """Which locations a device serves (a table, so filters and location deletes are one query)."""

    __tablename__ = "device_locations"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    location_id: Mapped[str] = mapped_column(
        ForeignKey("locations.id"), primary_key=True, index=True
    )


class DeviceAuthorization(Model):
    """One RFC 8628 transaction: codes stored as keyed hashes, decision, single redemption."""

    __tablename__ = "device_authorizations"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    device_code_hash: Mapped[str] = mapped_column(HASH, unique=True)
    user_code_hash: Mapped[str] = mapped_column(HASH, unique=True)
    client_id: Mapped[str] = mapped_column(ID)  # never read by client: no index (0014)
    tenant_id: Mapped[str] = mapped_column(ID)
    scope: Mapped[str] = mapped_column(Text, default="")
    device_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    system_information: Mapped[str | None] = mapped_column(Text, nullable=True)
    dpop_jkt: Mapped[str | None] = mapped_column(String(64), nullable=True)
    interval: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
    # pending -> approved | denied; approved -> redeemed (exactly once)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    claimed_by: Mapped[str | None] = mapped_column(ID, nullable=True)
    user_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    decided_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    auth_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    amr: Mapped[str | None] = mapped_column(String(32), nullable=True)  # "pwd" or "pwd otp"
    location_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    till_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    device_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    module_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # enrols as it
    device_identifier: Mapped[str | None] = mapped_column(String(64), nullable=True)  # its own
    redeemed_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    family_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    access_jti_hash: Mapped[str | None] = mapped_column(HASH, nullable=True)


class AuthorizationCode(Model):
    """One authorization code (RFC 6749 §4.1.2): stored as a keyed hash, bound to its client,
    redirect URI, PKCE challenge and DPoP key, redeemed once (a conditional UPDATE)."""

    __tablename__ = "authorization_codes"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    code_hash: Mapped[str] = mapped_column(HASH, unique=True)
    client_id: Mapped[str] = mapped_column(ID)
    tenant_id: Mapped[str] = mapped_column(ID)
    user_id: Mapped[str] = mapped_column(ID)
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text, default="")
    code_challenge: Mapped[str] = mapped_column(String(128))
    nonce: Mapped[str | None] = mapped_column(Text, nullable=True)
    dpop_jkt: Mapped[str | None] = mapped_column(String(64), nullable=True)
    auth_time: Mapped[int] = mapped_column(BigInteger)
    amr: Mapped[str] = mapped_column(String(32))  # "pwd" or "pwd otp"
    session_id: Mapped[str | None] = mapped_column(HASH, nullable=True)  # the browser session
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
    redeemed_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    family_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    access_jti_hash: Mapped[str | None] = mapped_column(HASH, nullable=True)


class Consent(Model):
    """The scopes a user let a third-party client have, remembered until they take them back."""

    __tablename__ = "consents"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    client_id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ID, index=True)
    scope: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class RefreshFamily(Model):
    """One grant's chain of rotated refresh tokens; revoking it revokes everything issued from it."""

    __tablename__ = "refresh_families"
    __table_args__ = (
        # Revoking a module's enrolment, a person's tokens (on one key, or all) reads by these.
        Index("ix_refresh_families_tenant_module", "tenant_id", "module_id"),
        Index("ix_refresh_families_user_id", "user_id"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    client_id: Mapped[str] = mapped_column(ID, index=True)
    tenant_id: Mapped[str] = mapped_column(ID)
    subject: Mapped[str] = mapped_column(String(200))
    user_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    device_id: Mapped[str | None] = mapped_column(ID, nullable=True, index=True)
    scope: Mapped[str] = mapped_column(Text, default="")
    jkt: Mapped[str | None] = mapped_column(String(64), nullable=True)
    auth_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    amr: Mapped[str | None] = mapped_column(String(32), nullable=True)
    module_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)  # absolute lifetime of the grant
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)


class RefreshToken(Model):
    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(HASH, primary_key=True)
    family_id: Mapped[str] = mapped_column(ForeignKey("refresh_families.id"), index=True)
    issued_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    used_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class SigningKey(Model):
    """A signing key in its lifecycle: next -> current -> retired -> removed (``keys/``)."""

    __tablename__ = "signing_keys"
    __table_args__ = (
        # At most one current and one next key per algorithm, enforced by the database so that
        # two processes starting (or rotating) at once cannot both create one.
        Index(
            "uq_signing_keys_current",
            "alg",
            "state",
            unique=True,
            sqlite_where=text("state = 'current'"),
            postgresql_where=text("state = 'current'"),
        ),
        Index(
            "uq_signing_keys_next",
            "alg",
            "state",
            unique=True,
            sqlite_where=text("state = 'next'"),
            postgresql_where=text("state = 'next'"),
        ),
    )

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    private_key_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    activated_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    retired_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    remove_after: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class AuditEvent(Model):
    """A security-relevant action, kept in the database with the change it records."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_tenant_created", "tenant_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str | None] = mapped_column(ID, nullable=True)  # None: server-wide
    type: Mapped[str] = mapped_column(String(40))
    device_id: Mapped[str | None] = mapped_column(ID, nullable=True, index=True)
    actor: Mapped[str | None] = mapped_column(String(64), nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[int] = mapped_column(BigInteger)


class EphemeralEntry(Model):
    """Backing table of the SQL ephemeral store (claims, counters, short-lived values)."""

    __tablename__ = "ephemeral_entries"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str | None] = mapped_column(Text, nullable=True)
    counter: Mapped[int] = mapped_column(Integer, default=0)
    expires_at_ms: Mapped[int] = mapped_column(BigInteger, index=True)


def database_reachable() -> bool:
    """One round trip to the database (readiness checks)."""
    try:
        db.session.execute(text("SELECT 1"))
        return True
    except SQLAlchemyError:
        db.session.rollback()
        return False


IDLE_PING_SECONDS = 10.0


def closed_by_server(dbapi_connection: Any) -> bool:
    """True when the server has ended this idle connection: something is waiting on a socket
    that should be silent (PostgreSQL's termination notice, or end of file after a restart).
    One poll, no round trip. SQLite (a file, no socket) is never closed by a server. A stray
    asynchronous message on a live connection only costs a reconnect."""
    fileno = getattr(dbapi_connection, "fileno", None)
    if fileno is None:  # sqlite3: no socket
        return False
    try:
        fd = fileno()
    except Exception:  # noqa: BLE001 - the driver's own "closed" error (psycopg: OperationalError)
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


@event.listens_for(Pool, "checkin")
def _note_idle(dbapi_connection: Any, connection_record: Any) -> None:
    if connection_record is not None:
        connection_record.info["checked_in"] = time.monotonic()


@event.listens_for(Pool, "checkout")
def ping_if_idle(dbapi_connection: Any, connection_record: Any, proxy: Any) -> None:
    """Drop a connection the server has closed (seen without a round trip), and ping one that
    sat idle in the pool for a while (a network path can die silently); a busy one is trusted,
    and one that fails in use is dropped by SQLAlchemy then. Either way the pool connects afresh
    (DisconnectionError)."""
    if "sqlite" in type(dbapi_connection).__module__:
        return  # a file, not a server: nothing can close it
    if closed_by_server(dbapi_connection):  # a restart: the pool connects afresh
        raise DisconnectionError("connection closed by the server while idle")
    since = connection_record.info.get("checked_in")
    if since is None or time.monotonic() - since < IDLE_PING_SECONDS:
        return
    try:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT 1")
        cursor.close()
        dbapi_connection.rollback()
    except Exception as exc:
        raise DisconnectionError("connection closed while idle") from exc


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    """WAL and a busy timeout let several processes share the embedded database safely. A
    commit copies the log back into the file only past a backstop: a serving process's
    background thread does it (``authserver.checkpointer``), outside the writers' gate."""
    module = type(dbapi_connection).__module__
    if "sqlite" not in module:
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
    cursor.close()


class TenantProperty(Model):
    """A tenant's configuration value (seed 002 "tenant properties"): public ones are read by
    front apps, private ones only by administrators and services; an obfuscated one is a secret,
    stored encrypted (bound to the tenant and name) and never shown again."""

    __tablename__ = "tenant_properties"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str | None] = mapped_column(Text, nullable=True)  # None when obfuscated
    value_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    is_private: Mapped[bool] = mapped_column(Boolean, default=False)
    is_obfuscated: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)

    @property
    def id(self) -> str:
        """The name: what a page of properties continues after."""
        return self.name


class ModuleType(StrEnum):
    """What a module is (seed 002)."""

    KIOSK = "KIOSK"
    POS_INTEGRATOR = "POS_INTEGRATOR"
    AGGREGATOR = "AGGREGATOR"
    BI_CONNECTOR = "BI_CONNECTOR"
    KDS = "KDS"
    STATUS_SCREEN = "STATUS_SCREEN"
    LOYALTY = "LOYALTY"
    LOYALTY_INTEGRATOR = "LOYALTY_INTEGRATOR"
    MOBILE_APP_LOYALTY = "MOBILE_APP_LOYALTY"
    ORDERING_WEB = "ORDERING_WEB"
    DELIVERY_PANEL = "DELIVERY_PANEL"
    UNKNOWN = "UNKNOWN"


class Module(Model):
    """A configured piece of software at a tenant (seed 002 "module"): a kiosk, a kitchen display,
    an integration. Its id is chosen by the tenant (``kiosk-1``), unique in the tenant; a device
    enrolled as the module gets tokens carrying it and reads its configuration with them."""

    __tablename__ = "modules"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(32), index=True)
    production: Mapped[bool] = mapped_column(Boolean, default=False)
    user_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    location_id: Mapped[str | None] = mapped_column(ID, nullable=True, index=True)
    config: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str | None] = mapped_column(ID, nullable=True)
    updated_by: Mapped[str | None] = mapped_column(ID, nullable=True)


class ModuleTypeConfig(Model):
    """The configuration every module of a type shares at a tenant (seed 002 "common config");
    a module's own config is laid over it."""

    __tablename__ = "module_type_configs"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    type: Mapped[str] = mapped_column(String(32), primary_key=True)
    config: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    updated_by: Mapped[str | None] = mapped_column(ID, nullable=True)


class OwnedDevice(Model):
    """A customer's own phone, watch or tablet (seed 003 "owned-devices"), registered for
    security checks and push notifications. Its identifier (an IMEI) is unique per customer among
    registered ones; unregistering keeps the row (who had what, when) and frees the identifier."""

    __tablename__ = "owned_devices"
    __table_args__ = (
        Index(
            "uq_owned_devices_user_identifier",
            "user_id",
            "external_id",
            unique=True,
            sqlite_where=text("unregistered_at IS NULL"),
            postgresql_where=text("unregistered_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(64))
    operating_system: Mapped[str | None] = mapped_column(String(100), nullable=True)
    nickname: Mapped[str | None] = mapped_column(String(100), nullable=True)
    brand: Mapped[str | None] = mapped_column(String(100), nullable=True)
    model: Mapped[str | None] = mapped_column(String(100), nullable=True)
    installation_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    push_id: Mapped[str | None] = mapped_column(String(512), nullable=True)
    push_expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    dpop_jkt: Mapped[str | None] = mapped_column(String(64), nullable=True)  # its app's key
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    unregistered_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class IssuedDevice(Model):
    """A device the tenant issues to a customer (seed 003 "issued-devices"): a payment card, a
    hardware token. Only a masked identifier is kept; its status moves along a lifecycle, each
    change recorded with who made it and when (``IssuedDeviceStatus``)."""

    __tablename__ = "issued_devices"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    masked_identifier: Mapped[str] = mapped_column(String(32))
    label: Mapped[str | None] = mapped_column(String(100), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str | None] = mapped_column(ID, nullable=True)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class IssuedDeviceStatus(Model):
    """One status of an issued device: what it became, who decided, when, why."""

    __tablename__ = "issued_device_statuses"
    __table_args__ = (
        # One device's history in order; two changes can never claim the same place in it.
        Index("uq_issued_device_statuses_device_seq", "issued_device_id", "seq", unique=True),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    issued_device_id: Mapped[str] = mapped_column(ForeignKey("issued_devices.id"))
    seq: Mapped[int] = mapped_column(Integer)  # 1, 2, ...: the order of the changes
    status: Mapped[str] = mapped_column(String(16))
    changed_by: Mapped[str] = mapped_column(ID)
    changed_at: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
