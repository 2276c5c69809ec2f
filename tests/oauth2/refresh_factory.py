"""Builds refresh-token families directly in the store (the refresh grant issues them for real)."""

from __future__ import annotations

from authserver.credentials import new_refresh_token
from authserver.models import RefreshFamily, RefreshToken, db
from authserver.security import new_id, now
from authserver.tokens import issue_access_token


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
        token, token_hash = new_refresh_token()
        db.session.add(
            RefreshToken(
                token_hash=token_hash,
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
