"""Tokens: issuance, lookup, refresh rotation and revocation; the one place tokens are made and
recorded (grants decide *whether*, this module does the *how*).

Access tokens are self-contained RFC 9068 JWTs signed by the current key: issuing one writes
nothing. What revokes them (a deny entry for one token, not-before marks for its client, tenant,
refresh family, device or user) is kept by ``authserver.revocation`` and read on every check, so
introspection, revocation and device blocking take effect on the next request (DESIGN invariant
3). Nothing stored names a ``jti`` in clear: deny entries use its keyed hash (invariant 6).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from flask import g
from sqlalchemy import bindparam, exists, or_, select, update

from authserver import audit, revocation
from authserver.config import ID_TOKEN_DEFAULT_ALG
from authserver.credentials import (
    jti_hash,
    jti_issued_ms,
    new_jti,
    new_refresh_token,
    refresh_token_hash,
)
from authserver.direct import direct
from authserver.models import (
    Device,
    DeviceStatus,
    OAuthClient,
    RefreshFamily,
    RefreshToken,
    User,
    db,
)
from authserver.security import new_id, now, now_float
from authserver.state import get_state
from keys.jwks import InvalidSignedToken

MAX_TOKEN_CHARS = 4096
MAX_ID_CHARS = 64


@dataclass(frozen=True)
class TokenSubject:
    """Whom a token is about: ``sub``, and the user or registry device behind it."""

    subject: str
    user_id: str | None = None
    device_id: str | None = None
    auth_time: int | None = None
    amr: str | None = None  # how the user signed in: "pwd", "pwd otp" (RFC 8176 values)
    module: str | None = None  # the tenant's module a device enrolled as (seed 002)

    def user_amr(self) -> list[str] | None:
        """OIDC Core §2 ``amr``, for a token about the user who signed in."""
        if self.amr and self.user_id is not None and self.subject == self.user_id:
            return self.amr.split()
        return None


@dataclass(frozen=True)
class IssuedAccessToken:
    token: str
    jti: str
    token_type: str
    expires_in: int
    scope: str


def note_request_time() -> None:
    """Before every request: the time its tokens are issued as of (``issue_access_token``)."""
    g.token_time = now_float()


def issue_access_token(
    client: OAuthClient,
    *,
    subject: str,
    scope: str,
    user_id: str | None = None,
    device_id: str | None = None,
    family_id: str | None = None,
    jkt: str | None = None,
    amr: list[str] | None = None,
    act: dict[str, str] | None = None,
    ttl: int | None = None,
    module: str | None = None,
) -> IssuedAccessToken:
    """Sign an RFC 9068 access token. Nothing is written: the token names what its life depends
    on (``sid``, ``did``, ``uid``, its client and tenant), and revocation marks those."""
    state = get_state()
    settings = state.settings
    # Issued as of the moment the request began, before anything about its grant was checked
    # or changed (a rotation, a redemption, a subject's liveness): a revocation mark made after
    # any of that is then never earlier than the token, so a revocation that lands between the
    # grant's checks and this signature still covers the token (``note_request_time``).
    issued = g.get("token_time") or now_float()
    iat = int(issued)
    ttl = min(ttl, settings.access_token_ttl) if ttl else settings.access_token_ttl
    jti = new_jti(int(issued * 1000))
    # RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat, jti are REQUIRED; scope when granted.
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "sub": subject,
        "aud": settings.audience,
        "client_id": client.client_id,
        "scope": scope,
        "jti": jti,
        "iat": iat,
        "exp": iat + ttl,
        "tenant": client.tenant_id,
    }
    for claim, value in (("sid", family_id), ("did", device_id), ("uid", user_id)):
        if value is not None:
            claims[claim] = value
    if amr:
        claims["amr"] = amr  # how the person authenticated (OIDC Core §2, RFC 8176)
    if act:
        claims["act"] = act  # RFC 8693 §4.1: who acts for the subject
    if module:
        claims["module"] = module  # the module the device enrolled as (seed 002)
    token_type = "Bearer"
    if jkt:
        claims["cnf"] = {"jkt": jkt}  # RFC 9449 §6.1
        token_type = "DPoP"
    # RFC 9068 §2.1: typ "at+jwt" so the token cannot be confused with an ID token.
    token = state.keyring.sign(claims, "at+jwt")
    return IssuedAccessToken(token, jti, token_type, ttl, scope)


def id_token_alg(client: OAuthClient) -> str:
    """The client's id_token_signed_response_alg when the server has keys for it, else RS256
    (OIDC Registration §2's default, which the server always signs with)."""
    wanted = client.id_token_alg or ID_TOKEN_DEFAULT_ALG
    return wanted if wanted in get_state().settings.signing_algs else ID_TOKEN_DEFAULT_ALG


# OIDC Core §2 acr: the authentication context class the sign-in satisfied. The values are this
# server's (published as acr_values_supported): a password alone, or a password and a TOTP code.
ACR_PASSWORD = "urn:authserver:acr:pwd"
ACR_TWO_FACTORS = "urn:authserver:acr:mfa"
ACR_VALUES = (ACR_PASSWORD, ACR_TWO_FACTORS)


def acr_of(amr: list[str]) -> str:
    return ACR_TWO_FACTORS if "otp" in amr else ACR_PASSWORD


def issue_id_token(
    client: OAuthClient, who: TokenSubject, access_token: str, scope: str, nonce: str | None = None
) -> str | None:
    """OIDC Core §2 / §3.1.3.6: an ID token when ``openid`` was granted and the subject is a user."""
    if "openid" not in scope.split() or who.user_id is None or who.subject != who.user_id:
        return None
    state = get_state()
    alg = id_token_alg(client)
    # OIDC Core §3.1.3.6 at_hash: the left half of the hash of the access token, with the hash
    # function of the ID token's alg (SHA-256 for RS256 and ES256, SHA-512 for Ed25519).
    digest = (hashlib.sha512 if alg == "Ed25519" else hashlib.sha256)(
        access_token.encode()
    ).digest()
    at_hash = base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()
    iat = now()
    claims = {
        "iss": state.settings.issuer,
        "sub": who.subject,
        "aud": client.client_id,
        "iat": iat,
        "exp": iat + state.settings.id_token_ttl,
        "auth_time": who.auth_time or iat,
        "at_hash": at_hash,
    }
    if nonce is not None:
        claims["nonce"] = nonce  # OIDC Core §3.1.3.6: the authorization request's, unchanged
    amr = who.user_amr()
    if amr:
        claims["amr"] = amr
        claims["acr"] = acr_of(amr)
    return state.keyring.sign(claims, "JWT", alg)


def start_family(
    client: OAuthClient, who: TokenSubject, scope: str, bound_jkt: str | None
) -> RefreshFamily:
    """A refresh-token family for a fresh grant (added to the session; the caller commits).

    ``bound_jkt``: the DPoP key the family's refresh tokens are bound to, or None.
    """
    t = now()
    family = RefreshFamily(
        id=new_id("rtf"),
        client_id=client.client_id,
        tenant_id=client.tenant_id,
        subject=who.subject,
        user_id=who.user_id,
        device_id=who.device_id,
        scope=scope,
        jkt=bound_jkt,
        auth_time=who.auth_time,
        amr=who.amr,
        module_id=who.module,
        created_at=t,
        expires_at=t + get_state().settings.refresh_token_ttl,
    )
    db.session.add(family)
    return family


def issue_token_set(
    client: OAuthClient,
    who: TokenSubject,
    scope: str,
    access_jkt: str | None,
    *,
    family: RefreshFamily | FamilyView | None = None,
    on_issue: Callable[[IssuedAccessToken], None] | None = None,
    refresh_token: str | None = None,
    nonce: str | None = None,
    with_refresh: bool = True,
) -> dict[str, Any]:
    """Issue an access token (bound to ``access_jkt``), a refresh token of ``family`` if given
    (or hand out ``refresh_token``, a rotation's successor already stored) and an ID token
    when one is due; record them and commit, in one transaction with whatever the grant
    changed before. Returns the RFC 6749 §5.1 response body."""
    issued = issue_access_token(
        client,
        subject=who.subject,
        scope=scope,
        user_id=who.user_id,
        device_id=who.device_id,
        family_id=family.id if family is not None else None,
        jkt=access_jkt,
        amr=who.user_amr(),
        module=who.module,
    )
    body: dict[str, Any] = {
        "access_token": issued.token,
        "token_type": issued.token_type,
        "expires_in": issued.expires_in,
    }
    if scope:
        body["scope"] = scope
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    elif family is not None and with_refresh:
        body["refresh_token"] = issue_refresh_token(family)
    id_token = issue_id_token(client, who, issued.token, scope, nonce)
    if id_token:
        body["id_token"] = id_token
    if on_issue is not None:
        on_issue(issued)
    # A client-credentials token has nothing to commit: no session, no round trip.
    if db.session.registry.has():
        session = db.session()
        if session.in_transaction() or session.new or session.dirty or session.deleted:
            session.commit()
    return body


@dataclass(frozen=True)
class AccessTokenView:
    """A verified access token of ours, read from its claims (nothing is stored per token)."""

    jti: str
    jti_hash: str
    issued_ms: int
    client_id: str
    tenant_id: str
    subject: str
    scope: str
    issued_at: int
    expires_at: int
    user_id: str | None = None
    device_id: str | None = None
    family_id: str | None = None
    jkt: str | None = None
    audience: Any = None
    module_id: str | None = None
    kind = "access_token"

    @property
    def token_type(self) -> str:
        return "DPoP" if self.jkt else "Bearer"

    def check_client(self, client: OAuthClient) -> bool:
        return self.client_id == client.client_id

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return now() >= self.expires_at

    def is_revoked(self) -> bool:
        """Authlib asks; the answer needs the store, so ``access_token_is_live`` gives it."""
        return False

    def subjects(self) -> list[tuple[str, str]]:
        """What marks can revoke this token: its client and tenant, and its family, device and
        user when it has them."""
        found = [("all", "*"), ("client", self.client_id), ("tenant", self.tenant_id)]
        for kind, ident in (
            ("family", self.family_id),
            ("device", self.device_id),
            ("user", self.user_id),
        ):
            if ident is not None:
                found.append((kind, ident))
        if self.module_id is not None:
            found.append(("module", module_key(self.tenant_id, self.module_id)))
        if self.jkt is not None and self.user_id is not None:
            # The person's key: the device it lives on can be unregistered.
            found.append(("jkt", key_subject(self.tenant_id, self.user_id, self.jkt)))
        return found


def module_key(tenant_id: str, module_id: str) -> str:
    """What revocation marks a module by: its id is the tenant's own, so with the tenant."""
    return f"{tenant_id}/{module_id}"


def _str(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS else None


# Tokens this process has verified, by their exact text: a terminal presents the same token on
# every call for its lifetime, and verifying its signature again each time would cost as much as
# the rest of the request. Only tokens that passed every check are kept, each until it expires,
# and only while the key that signed it is still in the ring; revocation is checked per request
# all the same (``access_token_is_live``). Bounded, cleared when full.
MAX_VERIFIED = 20_000


def find_access_token(token: str) -> AccessTokenView | None:
    """A genuine access token of ours (signature, issuer, claims), whatever its state."""
    if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        return None
    state = get_state()
    verified = state.verified_tokens
    hit = verified.get(token)
    if hit is not None:
        view, kid = hit
        if now() < view.expires_at and state.keyring.has_key(kid):
            return view  # type: ignore[no-any-return]
        verified.pop(token, None)
    try:
        header, claims = state.keyring.verify(token, "at+jwt")
    except InvalidSignedToken:
        return None
    view = _access_token_view(state, claims)
    if view is not None:
        if len(verified) >= MAX_VERIFIED:
            verified.clear()
        verified[token] = (view, header["kid"])
    return view


def _access_token_view(state: Any, claims: dict[str, Any]) -> AccessTokenView | None:
    """The view of verified claims, or None when they are not those of our access tokens."""
    if claims.get("iss") != state.settings.issuer:
        return None
    jti, client_id, tenant_id, subject = (
        _str(claims, c) for c in ("jti", "client_id", "tenant", "sub")
    )
    iat, exp, scope = claims.get("iat"), claims.get("exp"), claims.get("scope", "")
    if (
        jti is None
        or client_id is None
        or tenant_id is None
        or subject is None
        or not isinstance(iat, int)
        or not isinstance(exp, int)
        or not isinstance(scope, str)
    ):
        return None
    # The issue time to the millisecond, from the jti; a jti that does not carry one within the
    # second of iat (a token from before self-contained tokens) counts from the second before,
    # so every mark made in the second of its iat, or later, revokes it.
    issued_ms = jti_issued_ms(jti)
    if issued_ms is None or not iat * 1000 <= issued_ms < iat * 1000 + 1000:
        issued_ms = iat * 1000 - 1000
    cnf = claims.get("cnf")
    jkt = cnf.get("jkt") if isinstance(cnf, dict) and isinstance(cnf.get("jkt"), str) else None
    return AccessTokenView(
        jti=jti,
        jti_hash=jti_hash(jti),
        issued_ms=issued_ms,
        client_id=client_id,
        tenant_id=tenant_id,
        subject=subject,
        scope=scope,
        issued_at=iat,
        expires_at=exp,
        user_id=_str(claims, "uid"),
        device_id=_str(claims, "did"),
        family_id=_str(claims, "sid"),
        jkt=jkt,
        audience=claims.get("aud"),
        module_id=_str(claims, "module"),
    )


def grant_is_live(*, family_id: str | None, device_id: str | None, user_id: str | None) -> bool:
    """Whether what a token stands on still holds: its refresh family unrevoked, its device
    ACTIVE and not deleted, its user active. One definition for resources, introspection,
    refresh and redemption (DESIGN invariant 3)."""
    if family_id is not None:
        fam = db.session.get(RefreshFamily, family_id)
        if fam is None or fam.revoked_at is not None:
            return False
    if device_id is not None:
        device = db.session.get(Device, device_id)
        if device is None or device.deleted_at is not None or device.status != DeviceStatus.ACTIVE:
            return False
    if user_id is not None:
        user = db.session.get(User, user_id)
        if user is None or not user.active:
            return False
    return True


def access_token_is_live(token: AccessTokenView) -> bool:
    """Unexpired, and not revoked: one read of the store for all its revocation entries."""
    if token.is_expired():
        return False
    return not revocation.is_revoked(token.jti_hash, token.issued_ms, token.subjects())


@dataclass(frozen=True)
class FamilyView:
    """A refresh family as read with its token (``find_refresh_token``)."""

    id: str
    client_id: str
    tenant_id: str
    subject: str
    user_id: str | None
    device_id: str | None
    scope: str
    jkt: str | None
    auth_time: int | None
    amr: str | None
    module_id: str | None
    expires_at: int
    revoked_at: int | None


@dataclass(frozen=True)
class RefreshTokenRecord:
    """A refresh token with its family, and the state of the device and user the grant stands
    on, read in one statement (Authlib's TokenMixin for introspection and revocation)."""

    token_hash: str
    issued_at: int
    expires_at: int
    used_at: int | None
    family: FamilyView
    device_status: str | None = None
    device_deleted_at: int | None = None
    device_origin: str | None = None
    device_jkt: str | None = None
    user_active: bool | None = None
    kind = "refresh_token"

    def check_client(self, client: OAuthClient) -> bool:
        return self.family.client_id == client.client_id

    def get_scope(self) -> str:
        return self.family.scope

    def is_expired(self) -> bool:
        t = now()
        return t >= self.expires_at or t >= self.family.expires_at

    def is_revoked(self) -> bool:
        return self.family.revoked_at is not None or self.used_at is not None

    def grant_is_live(self) -> bool:
        """``grant_is_live`` for this token's device and user, from what was read with it."""
        fam = self.family
        if fam.device_id is not None and (
            self.device_status != DeviceStatus.ACTIVE or self.device_deleted_at is not None
        ):
            return False
        # A missing user (outer join) gives None; a present one, the flag as a bool.
        return fam.user_id is None or bool(self.user_active)


_FAMILY_FIELDS = [f for f in FamilyView.__dataclass_fields__]
_REFRESH_LOOKUP = (
    select(
        RefreshToken.token_hash,
        RefreshToken.issued_at,
        RefreshToken.expires_at,
        RefreshToken.used_at,
        *(getattr(RefreshFamily, f).label(f"f_{f}") for f in _FAMILY_FIELDS),
        Device.status.label("device_status"),
        Device.deleted_at.label("device_deleted_at"),
        Device.origin.label("device_origin"),
        Device.dpop_jkt.label("device_jkt"),
        User.active.label("user_active"),
    )
    .join(RefreshFamily, RefreshFamily.id == RefreshToken.family_id)
    .outerjoin(Device, Device.id == RefreshFamily.device_id)
    .outerjoin(User, User.id == RefreshFamily.user_id)
    .where(RefreshToken.token_hash == bindparam("token_hash"))
)


def find_refresh_token(token: str) -> RefreshTokenRecord | None:
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    row = direct().first(_REFRESH_LOOKUP, {"token_hash": refresh_token_hash(token)})
    if row is None:
        return None
    data = row._asdict()
    family = FamilyView(**{f: data.pop(f"f_{f}") for f in _FAMILY_FIELDS})
    return RefreshTokenRecord(family=family, **data)


def issue_refresh_token(family: RefreshFamily | FamilyView) -> str:
    """A new opaque refresh token in ``family``, stored as a keyed hash (the caller commits).

    It expires after the idle lifetime, and never after the family's absolute lifetime.
    """
    settings = get_state().settings
    token, token_hash = new_refresh_token()
    t = now()
    db.session.flush()  # a family just started is written first (the token refers to it)
    db.session.connection().execute(
        _INSERT_REFRESH_TOKEN,
        {
            "token_hash": token_hash,
            "family_id": family.id,
            "issued_at": t,
            "expires_at": min(t + settings.refresh_token_idle_ttl, family.expires_at),
        },
    )
    return token


_RT: Any = RefreshToken.__table__
_RF: Any = RefreshFamily.__table__
_INSERT_REFRESH_TOKEN = _RT.insert()
_INSERT_SUCCESSOR = _RT.insert().values(
    token_hash=bindparam("v_token_hash"),
    family_id=bindparam("v_family_id"),
    issued_at=bindparam("v_issued_at"),
    expires_at=bindparam("v_expires_at"),
)


def revoke_access_token(token: AccessTokenView) -> None:
    revocation.deny(token.jti_hash)


def revoke_family(family_id: str, reason: str) -> None:
    """Revoke a refresh family and every access token issued from it (RFC 7009 §2.1, RFC 9700)."""
    t = now()
    # Lock the family first: a rotation in flight commits before this, or sees it revoked.
    db.session.execute(
        select(RefreshFamily.id).where(RefreshFamily.id == family_id).with_for_update()
    )
    db.session.execute(
        update(RefreshFamily)
        .where(RefreshFamily.id == family_id, REVOCABLE)
        .values(revoked_at=t, revoked_reason=reason)
    )
    revocation.mark("family", family_id)


# A family is revocable when live, and also when only a device block revoked it: its reason then
# becomes the new one, so unblocking with restored sessions never revives it.
BLOCKED = "device_blocked"
REVOCABLE = or_(RefreshFamily.revoked_at.is_(None), RefreshFamily.revoked_reason == BLOCKED)


def _revoke_families(condition: Any, reason: str) -> None:
    db.session.execute(
        update(RefreshFamily)
        .where(condition, REVOCABLE)
        .values(revoked_at=now(), revoked_reason=reason)
    )


def revoke_subject(
    *, user_id: str | None = None, client_id: str | None = None, tenant_id: str | None = None
) -> None:
    """Every token issued to a client, to or for a user (their sign-ins, what they approved on a
    shared screen), or in a tenant: disabling or deleting any of them ends those at once."""
    if user_id is not None:
        _revoke_families(RefreshFamily.user_id == user_id, "subject_disabled")
        revocation.mark("user", user_id)
    elif client_id is not None:
        _revoke_families(RefreshFamily.client_id == client_id, "subject_disabled")
        revocation.mark("client", client_id)
    elif tenant_id is not None:
        _revoke_families(RefreshFamily.tenant_id == tenant_id, "tenant_disabled")
        revocation.mark("tenant", tenant_id)
    else:  # pragma: no cover - a programming error
        raise ValueError("revoke_subject needs a user, a client or a tenant")


def revoke_users(user_ids: list[str]) -> None:
    """``revoke_subject(user_id=...)`` for each of ``user_ids`` (a bulk disable or delete): one
    statement for their refresh families and one write of their marks, in the caller's
    transaction."""
    if user_ids:
        _revoke_families(RefreshFamily.user_id.in_(user_ids), "subject_disabled")
        revocation.mark_many("user", user_ids)


def revoke_user_client(user_id: str, client_id: str, reason: str) -> None:
    """Every token one client got for one user (the user withdrew their consent): each of its
    refresh families, and with them their access tokens. In the caller's transaction."""
    family_ids = db.session.scalars(
        select(RefreshFamily.id).where(
            RefreshFamily.user_id == user_id, RefreshFamily.client_id == client_id, REVOCABLE
        )
    ).all()
    for family_id in family_ids:
        revoke_family(family_id, reason)


def revoke_module(tenant_id: str, module_id: str, reason: str) -> None:
    """Every access token and refresh family of a module's enrolment (its logout, its deletion,
    a new enrolment), in the caller's transaction."""
    _revoke_families(
        (RefreshFamily.tenant_id == tenant_id) & (RefreshFamily.module_id == module_id), reason
    )
    revocation.mark("module", module_key(tenant_id, module_id))


def key_subject(tenant_id: str, user_id: str, jkt: str) -> str:
    """What revocation marks a person's key by: the key with its tenant and user, so revoking it
    reaches that person's tokens bound to it and nobody else's (another tenant's, a kiosk's own
    on whose key a person signed in)."""
    return f"{tenant_id}/{user_id}/{jkt}"


def revoke_key(tenant_id: str, user_id: str, jkt: str, reason: str) -> None:
    """Every token of a person bound to a DPoP key (RFC 9449): the device the key lives on is
    gone (a customer unregistered their phone). In the caller's transaction."""
    _revoke_families(
        (RefreshFamily.tenant_id == tenant_id)
        & (RefreshFamily.user_id == user_id)
        & (RefreshFamily.jkt == jkt),
        reason,
    )
    revocation.mark("jkt", key_subject(tenant_id, user_id, jkt))


def revoke_device(device_id: str, reason: str = "device_status") -> str:
    """Every access token and refresh family of a device, at once (DESIGN invariant 3); in the
    caller's transaction, with the status change that causes it. The device's new mark."""
    return revoke_devices([device_id], reason)


def revoke_devices(device_ids: list[str], reason: str = "device_status") -> str:
    """``revoke_device`` for many devices at once (a bulk block or delete): two statements and
    one store round trip. The devices' new mark."""
    if device_ids:
        _revoke_families(RefreshFamily.device_id.in_(device_ids), reason)
    return revocation.mark_many("device", device_ids)


def keep_blocked_sessions_dead(device_ids: list[str]) -> None:
    """An unblock without restored sessions: what the blocks revoked stays revoked for good."""
    db.session.execute(
        update(RefreshFamily)
        .where(RefreshFamily.device_id.in_(device_ids), RefreshFamily.revoked_reason == BLOCKED)
        .values(revoked_reason="device_status")
    )


def restore_device(device_id: str, mark_before: str | None) -> None:
    """Undo the block of a device (in the caller's transaction, with the unblock): the families
    only the block revoked are live again and the device's mark is what it was before the block.
    Tokens revoked before the block, or for any other reason since, stay revoked (their family's
    reason is another, or another mark covers them). The caller then calls
    ``revocation.restore_in_store`` after its commit."""
    db.session.execute(
        update(RefreshFamily)
        .where(RefreshFamily.device_id == device_id, RefreshFamily.revoked_reason == BLOCKED)
        .values(revoked_at=None, revoked_reason=None)
    )
    revocation.restore_mark("device", device_id, mark_before)


# -- refresh rotation (RFC 6749 §6, RFC 9700 §4.14.2) ------------------------------------------------


class Rotation(StrEnum):
    ROTATED = "rotated"  # the token is now used; issue its successor in this transaction
    REUSED = "reused"  # it had been used already: the family is revoked
    REVOKED = "revoked"  # the family was revoked meanwhile


def reuse_detected(fam: RefreshFamily | FamilyView) -> None:
    """A rotated-out refresh token came back: someone holds a copy. Revoke the family (the
    current refresh token and every access token issued from it), record it, commit."""
    revoke_family(fam.id, "reuse_detected")
    audit.record(
        "refresh_token.reuse_detected",
        fam.tenant_id,
        fam.client_id,
        fam.device_id,
        family_id=fam.id,
    )
    db.session.commit()


def rotate_refresh_token(record: RefreshTokenRecord) -> tuple[Rotation, str | None]:
    """Mark ``record`` used and store its successor, atomically: of two requests with one
    token at most one gets ``ROTATED`` (with the new refresh token); the other finds it used
    (``REUSED``, the family is then revoked) or the family revoked (``REVOKED``).

    One short transaction on this thread's own connection (``authserver.direct``): the
    conditional UPDATE and the INSERT of the successor commit together."""
    fam = record.family
    settings = get_state().settings
    token, token_hash = new_refresh_token()
    t = now()
    rotate = {"b_token_hash": record.token_hash, "b_family_id": fam.id, "b_used_at": t}
    successor = {
        "v_token_hash": token_hash,
        "v_family_id": fam.id,
        "v_issued_at": t,
        "v_expires_at": min(t + settings.refresh_token_idle_ttl, fam.expires_at),
    }
    if db.engine.dialect.name == "postgresql":
        # One statement, so one round trip and its own transaction. The family row is locked
        # first (FOR UPDATE), so a revocation of the family either happens before (and finds
        # nothing to rotate: the row is read again after the wait) or waits for this commit
        # (and then also revokes the access token issued with it). The successor is inserted
        # only from the row the UPDATE changed: of two requests with one token, the second
        # waits for the first's row lock, then finds the token used.
        won = direct().write(_ROTATE_IN_ONE, {**rotate, **successor})
    else:
        # SQLite serialises writers: the transaction took the database's write lock when it
        # began, so nothing can revoke the family between the UPDATE and the INSERT.
        with direct().transaction() as tx:
            won = tx.write(_ROTATE, rotate)
            if won == 1:
                tx.write(_INSERT_SUCCESSOR, successor)
    if won == 1:
        return Rotation.ROTATED, token
    revoked_at = db.session.scalar(
        select(RefreshFamily.revoked_at).where(RefreshFamily.id == fam.id)
    )
    if revoked_at is not None:
        return Rotation.REVOKED, None
    reuse_detected(fam)
    return Rotation.REUSED, None


_ROTATE = (
    _RT.update()
    .where(
        _RT.c.token_hash == bindparam("b_token_hash"),
        _RT.c.used_at.is_(None),
        exists().where(_RF.c.id == bindparam("b_family_id"), _RF.c.revoked_at.is_(None)),
    )
    .values(used_at=bindparam("b_used_at"))
)
_LIVE_FAMILY = (
    select(_RF.c.id)
    .where(_RF.c.id == bindparam("b_family_id"), _RF.c.revoked_at.is_(None))
    .with_for_update()
    .cte("live_family")
)
_ROTATED = (
    _RT.update()
    .where(
        _RT.c.token_hash == bindparam("b_token_hash"),
        _RT.c.used_at.is_(None),
        exists(select(_LIVE_FAMILY.c.id)),
    )
    .values(used_at=bindparam("b_used_at"))
    .returning(_RT.c.family_id)
    .cte("rotated")
)
# PostgreSQL: the rotation in one statement (its row count is 1 for the request that won).
_ROTATE_IN_ONE = _RT.insert().from_select(
    ["token_hash", "family_id", "issued_at", "expires_at"],
    select(
        bindparam("v_token_hash", type_=_RT.c.token_hash.type),
        _ROTATED.c.family_id,
        bindparam("v_issued_at", type_=_RT.c.issued_at.type),
        bindparam("v_expires_at", type_=_RT.c.expires_at.type),
    ),
)
