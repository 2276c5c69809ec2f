"""Builds refresh-token families directly in the store (the refresh grant issues them for real)."""

from __future__ import annotations

from authserver.models import RefreshFamily, RefreshToken, db
from authserver.security import keyed_hash, new_id, new_secret, now
from authserver.tokens import REFRESH_HASH_PURPOSE, issue_access_token


def make_refresh_token(app, creds, jkt=None, with_access=False):
    """Returns the refresh token, or (refresh token, access token) with ``with_access``."""
    with app.app_context():
        from authserver.models import Client

        client = db.session.get(Client, creds.client_id)
        t = now()
        fam = RefreshFamily(
            id=new_id("rtf"),
            client_id=client.client_id,
            tenant_id=client.tenant_id,
            subject="usr_x",
            scope=client.scope,
            jkt=jkt,
            created_at=t,
            expires_at=t + 86400,
        )
        db.session.add(fam)
        token = new_secret()
        db.session.add(
            RefreshToken(
                token_hash=keyed_hash(REFRESH_HASH_PURPOSE, token),
                family_id=fam.id,
                issued_at=t,
                expires_at=t + 86400,
            )
        )
        db.session.flush()
        access = issue_access_token(
            client, subject="usr_x", scope=client.scope, family_id=fam.id
        ).token
        db.session.commit()
    return (token, access) if with_access else token
