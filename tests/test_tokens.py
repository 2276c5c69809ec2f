"""authserver.tokens, layer by layer: each revocation touches its target and nothing else, and
each check that makes a token dead works on its own (the resource and introspection also have
other layers that would hide a broken one)."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from authserver.models import AccessToken, Device, RefreshFamily, RefreshToken, User, db
from authserver.security import new_id, now
from authserver.tokens import (
    MAX_TOKEN_CHARS,
    access_token_is_live,
    find_access_token_claims,
    find_refresh_token,
    grant_is_live,
    issue_access_token,
    jti_hash,
    revoke_access_token_by_hash,
    revoke_family,
)
from tests.conftest import cc_token
from tests.oauth2.refresh_factory import make_refresh_token


def record_of(app, token):
    with app.app_context():
        found = find_access_token_claims(token)
        assert found is not None
        db.session.expunge(found[0])
        return found[0]


def revoked(app, token) -> bool:
    with app.app_context():
        found = find_access_token_claims(token)
        return found is None or found[0].revoked_at is not None


def test_revoking_by_hash_touches_that_token_only(app, http, world):
    a, b = world.client(), world.client()
    ta1 = cc_token(http, a).get_json()["access_token"]
    ta2 = cc_token(http, a).get_json()["access_token"]
    tb = cc_token(http, b).get_json()["access_token"]
    with app.app_context():
        revoke_access_token_by_hash(record_of(app, ta1).jti_hash)
        db.session.commit()
    assert (revoked(app, ta1), revoked(app, ta2), revoked(app, tb)) == (True, False, False)


def test_revoke_family_revokes_its_row_and_its_access_tokens_only(app, world):
    creds = world.client(grant_types=("client_credentials", "refresh_token"))
    _, access = make_refresh_token(app, creds, with_access=True)
    _, other_access = make_refresh_token(app, creds, with_access=True)
    target = record_of(app, access).family_id
    bystander = record_of(app, other_access).family_id
    with app.app_context():
        revoke_family(target, "test")
        db.session.commit()
        fams = {f.id: f for f in db.session.scalars(select(RefreshFamily))}
        assert fams[target].revoked_at is not None and fams[target].revoked_reason == "test"
        assert fams[bystander].revoked_at is None
    # The access-token rows themselves are revoked (not only dead through their family).
    assert revoked(app, access) and not revoked(app, other_access)


def test_a_family_revoked_by_its_row_alone_kills_its_access_tokens(app, world):
    """grant_is_live's family check on its own (without revoke_family's access-token UPDATE)."""
    creds = world.client(grant_types=("client_credentials", "refresh_token"))
    _, access = make_refresh_token(app, creds, with_access=True)
    _, other_access = make_refresh_token(app, creds, with_access=True)
    record = record_of(app, access)
    with app.app_context():
        db.session.execute(
            update(RefreshFamily)
            .where(RefreshFamily.id == record.family_id)
            .values(revoked_at=now())
        )
        db.session.commit()
        assert not access_token_is_live(db.session.get(AccessToken, record.jti_hash))
        other = record_of(app, other_access)
        assert access_token_is_live(db.session.get(AccessToken, other.jti_hash))
        assert record.revoked_at is None  # the row itself was not touched: only the family


def test_a_missing_family_is_not_live(app):
    with app.app_context():
        assert grant_is_live(family_id="rtf_gone", device_id=None, user_id=None) is False
        assert grant_is_live(family_id=None, device_id=None, user_id=None) is True


@pytest.mark.parametrize(
    "change,live",
    [
        ({}, True),
        ({"status": "BLOCKED"}, False),
        ({"status": "READY_TO_LINK"}, False),
        ({"deleted_at": 1}, False),
    ],
)
def test_grant_is_live_follows_the_device(app, world, change, live):
    tenant = world.tenant()
    with app.app_context():
        device = Device(
            id=new_id("dev"),
            tenant_id=tenant,
            name="d",
            status="ACTIVE",
            origin="api",
            created_at=now(),
            updated_at=now(),
        )
        db.session.add(device)
        db.session.commit()
        if change:
            db.session.execute(update(Device).where(Device.id == device.id).values(**change))
            db.session.commit()
        assert grant_is_live(family_id=None, device_id=device.id, user_id=None) is live
        assert grant_is_live(family_id=None, device_id="dev_gone", user_id=None) is False


def test_grant_is_live_follows_the_user(app, world):
    tenant = world.tenant()
    uid = world.user(tenant, login="u")
    other = world.user(tenant, login="v")
    with app.app_context():
        assert grant_is_live(family_id=None, device_id=None, user_id=uid) is True
        db.session.execute(update(User).where(User.id == uid).values(active=False))
        db.session.commit()
        assert grant_is_live(family_id=None, device_id=None, user_id=uid) is False
        assert grant_is_live(family_id=None, device_id=None, user_id=other) is True
        assert grant_is_live(family_id=None, device_id=None, user_id="usr_gone") is False


def test_expiry_and_revocation_of_the_record_each_kill_it(app, http, world, clock, settings):
    creds = world.client()
    token = cc_token(http, creds).get_json()["access_token"]
    with app.app_context():
        rec = find_access_token_claims(token)[0]
        assert access_token_is_live(rec)
        clock.advance(settings.access_token_ttl - 1)
        assert access_token_is_live(rec)
        clock.advance(1)  # exactly exp: expired
        assert not access_token_is_live(rec)
        assert rec.is_expired() and not rec.is_revoked()


def test_a_rotated_out_refresh_token_reads_as_revoked(app, world):
    creds = world.client(grant_types=("client_credentials", "refresh_token"))
    token = make_refresh_token(app, creds)
    with app.app_context():
        rec = find_refresh_token(token)
        assert not rec.is_revoked()
        db.session.execute(update(RefreshToken).values(used_at=now()))
        db.session.commit()
        assert find_refresh_token(token).is_revoked()


def test_refresh_token_expiry_counts_the_token_and_the_family(app, world, clock):
    creds = world.client(grant_types=("client_credentials", "refresh_token"))
    token = make_refresh_token(app, creds)
    with app.app_context():
        rec = find_refresh_token(token)
        t = now()
        db.session.execute(update(RefreshToken).values(expires_at=t + 100))
        db.session.execute(update(RefreshFamily).values(expires_at=t + 50))
        db.session.commit()
        clock.advance(49)
        assert not find_refresh_token(token).is_expired()
        clock.advance(1)
        assert find_refresh_token(token).is_expired()  # the family's end, before the token's
        assert rec is not None


@pytest.mark.parametrize(
    "token",
    ["", "a" * (MAX_TOKEN_CHARS + 1), "a.b", "a.b.c.d", "not a jwt at all"],
    ids=["empty", "too long", "two parts", "four parts", "text"],
)
def test_malformed_access_tokens_are_not_looked_up(app, token):
    with app.app_context():
        assert find_access_token_claims(token) is None
        assert find_refresh_token(token) is None


def test_a_genuine_token_of_another_issuer_is_not_ours(app, http, world, settings):
    creds = world.client()
    token = cc_token(http, creds).get_json()["access_token"]
    with app.app_context():
        state = app.extensions["authserver"]
        _, claims = state.keyring.verify(token, "at+jwt")
        for changed in (
            {**claims, "iss": settings.issuer + "/other"},
            {**claims, "jti": "j" * 65},
            {**claims, "jti": 12345},
        ):
            assert find_access_token_claims(state.keyring.sign(changed, "at+jwt")) is None
        # The same claims re-signed are found: only the changed claim made the difference.
        assert find_access_token_claims(state.keyring.sign(claims, "at+jwt")) is not None


def test_records_hold_the_hash_of_the_jti_and_what_the_token_is_about(app, world):
    creds = world.client()
    with app.app_context():
        from authserver.models import Client

        client = db.session.get(Client, creds.client_id)
        issued = issue_access_token(
            client, subject="sub_1", scope="devices:read", user_id="usr_1", device_id="dev_1",
            family_id="rtf_1", jkt="thumb",
        )  # fmt: skip
        db.session.commit()
        rec = db.session.get(AccessToken, jti_hash(issued.jti))
        assert (rec.subject, rec.user_id, rec.device_id, rec.family_id, rec.jkt) == (
            "sub_1",
            "usr_1",
            "dev_1",
            "rtf_1",
            "thumb",
        )
        assert (rec.client_id, rec.tenant_id, rec.scope) == (
            creds.client_id,
            creds.tenant_id,
            "devices:read",
        )
        assert rec.token_type == issued.token_type == "DPoP"
        assert rec.expires_at - rec.issued_at == issued.expires_in
