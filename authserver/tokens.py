"""Access-token issuance, lookup and revocation: the one place tokens are made and recorded.

Access tokens are RFC 9068 JWTs signed by the current key. Each is also recorded, by a keyed hash
of its ``jti``, so that introspection, revocation and device blocking take effect on the next
request. The clear ``jti`` is never stored: RFC 9068 lets resource servers log it, and nothing a
database reader can see is an input the server would accept (DESIGN invariant 6). Issuing costs
one INSERT; nothing is read back.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from authserver.models import (
    AccessToken,
    Client,
    Device,
    RefreshFamily,
    RefreshToken,
    User,
    db,
)
from authserver.security import keyed_hash, now
from authserver.state import get_state
from keys.jwks import InvalidSignedToken

MAX_TOKEN_CHARS = 4096
_INSERT_ACCESS_TOKEN = insert(AccessToken.__table__)
REFRESH_HASH_PURPOSE = "refresh-token"
JTI_HASH_PURPOSE = "access-token-jti"


def jti_hash(jti: str) -> str:
    return keyed_hash(JTI_HASH_PURPOSE, jti)


@dataclass(frozen=True)
class IssuedAccessToken:
    token: str
    jti: str
    token_type: str
    expires_in: int
    scope: str


def issue_access_token(
    client: Client,
    *,
    subject: str,
    scope: str,
    user_id: str | None = None,
    device_id: str | None = None,
    family_id: str | None = None,
    jkt: str | None = None,
    extra_claims: dict[str, Any] | None = None,
) -> IssuedAccessToken:
    """Sign an RFC 9068 access token and add its record to the session (the caller commits)."""
    state = get_state()
    settings = state.settings
    iat = now()
    ttl = settings.access_token_ttl
    jti = secrets.token_urlsafe(18)
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
    token_type = "Bearer"
    if jkt:
        claims["cnf"] = {"jkt": jkt}  # RFC 9449 §6.1
        token_type = "DPoP"
    if extra_claims:
        claims.update(extra_claims)
    # RFC 9068 §2.1: typ "at+jwt" so the token cannot be confused with an ID token.
    token = state.keyring.sign(claims, "at+jwt")
    # A prebuilt Core INSERT with bound parameters: compiled once, no ORM unit of work.
    db.session.connection().execute(
        _INSERT_ACCESS_TOKEN,
        {
            "jti_hash": jti_hash(jti),
            "client_id": client.client_id,
            "tenant_id": client.tenant_id,
            "subject": subject,
            "user_id": user_id,
            "device_id": device_id,
            "family_id": family_id,
            "scope": scope,
            "jkt": jkt,
            "token_type": token_type,
            "issued_at": iat,
            "expires_at": iat + ttl,
            "revoked_at": None,
        },
    )
    return IssuedAccessToken(token, jti, token_type, ttl, scope)


def find_access_token_claims(token: str) -> tuple[AccessToken, dict[str, Any]] | None:
    """The record and verified claims of a genuine access token, whatever its state."""
    if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        return None
    state = get_state()
    try:
        _, claims = state.keyring.verify(token, "at+jwt")
    except InvalidSignedToken:
        return None
    jti = claims.get("jti")
    if claims.get("iss") != state.settings.issuer or not isinstance(jti, str) or len(jti) > 64:
        return None
    record = db.session.get(AccessToken, jti_hash(jti))
    return (record, claims) if record is not None else None


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
        if device is None or device.deleted_at is not None or device.status != "ACTIVE":
            return False
    if user_id is not None:
        user = db.session.get(User, user_id)
        if user is None or not user.active:
            return False
    return True


def access_token_is_live(record: AccessToken) -> bool:
    if record.is_revoked() or record.is_expired():
        return False
    return grant_is_live(
        family_id=record.family_id, device_id=record.device_id, user_id=record.user_id
    )


@dataclass
class RefreshTokenRecord:
    """A refresh token looked up for introspection or revocation (Authlib's TokenMixin)."""

    token: RefreshToken
    family: RefreshFamily
    kind = "refresh_token"

    def check_client(self, client: Client) -> bool:
        return self.family.client_id == client.client_id

    def get_scope(self) -> str:
        return self.family.scope

    def is_expired(self) -> bool:
        t = now()
        return t >= self.token.expires_at or t >= self.family.expires_at

    def is_revoked(self) -> bool:
        return self.family.revoked_at is not None or self.token.used_at is not None


def find_refresh_token(token: str) -> RefreshTokenRecord | None:
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    row = db.session.execute(
        select(RefreshToken, RefreshFamily)
        .join(RefreshFamily, RefreshFamily.id == RefreshToken.family_id)
        .where(RefreshToken.token_hash == keyed_hash(REFRESH_HASH_PURPOSE, token))
    ).first()
    return RefreshTokenRecord(row[0], row[1]) if row else None


def issue_refresh_token(family: RefreshFamily) -> str:
    """A new opaque refresh token in ``family``, stored as a keyed hash (the caller commits).

    It expires after the idle lifetime, and never after the family's absolute lifetime.
    """
    settings = get_state().settings
    token = secrets.token_urlsafe(32)
    t = now()
    db.session.add(
        RefreshToken(
            token_hash=keyed_hash(REFRESH_HASH_PURPOSE, token),
            family_id=family.id,
            issued_at=t,
            expires_at=min(t + settings.refresh_token_idle_ttl, family.expires_at),
        )
    )
    return token


def revoke_access_token(record: AccessToken) -> None:
    revoke_access_token_by_hash(record.jti_hash)


def revoke_access_token_by_hash(hashed_jti: str) -> None:
    db.session.execute(
        update(AccessToken)
        .where(AccessToken.jti_hash == hashed_jti, AccessToken.revoked_at.is_(None))
        .values(revoked_at=now())
    )


def revoke_family(family_id: str, reason: str) -> None:
    """Revoke a refresh family and every access token issued from it (RFC 7009 §2.1, RFC 9700)."""
    t = now()
    # Lock the family first: a rotation in flight commits before this, or sees it revoked.
    db.session.execute(
        select(RefreshFamily.id).where(RefreshFamily.id == family_id).with_for_update()
    )
    db.session.execute(
        update(RefreshFamily)
        .where(RefreshFamily.id == family_id, RefreshFamily.revoked_at.is_(None))
        .values(revoked_at=t, revoked_reason=reason)
    )
    db.session.execute(
        update(AccessToken)
        .where(AccessToken.family_id == family_id, AccessToken.revoked_at.is_(None))
        .values(revoked_at=t)
    )
