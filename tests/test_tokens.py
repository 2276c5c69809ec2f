"""authserver.tokens and authserver.revocation, layer by layer: access tokens are self-contained,
each revocation touches its target and nothing else, and each check that makes a token dead
works on its own (resources and introspection have other layers that would hide a broken one)."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from authserver import revocation
from authserver.credentials import jti_issued_ms, new_jti
from authserver.models import Client, Device, RefreshFamily, RefreshToken, User, db
from authserver.security import new_id, now
from authserver.tokens import (
    MAX_TOKEN_CHARS,
    access_token_is_live,
    find_access_token,
    find_refresh_token,
    grant_is_live,
    issue_access_token,
    revoke_access_token,
    revoke_device,
    revoke_family,
    revoke_subject,
)
from tests.conftest import cc_token, table_counts
from tests.oauth2.refresh_factory import make_refresh_token


def view(app, token):
    with app.app_context():
        found = find_access_token(token)
        assert found is not None
        return found


def live(app, token) -> bool:
    with app.app_context():
        found = find_access_token(token)
        return found is not None and access_token_is_live(found)


def issue(app, creds, **kw) -> str:
    with app.app_context():
        client = db.session.get(Client, creds.client_id)
        token = issue_access_token(
            client, subject=kw.pop("subject", "s"), scope="devices:read", **kw
        )
        db.session.commit()
        return token.token


def test_issuing_a_token_writes_nothing(app, http, world):
    """The hot path's property: a client-credentials token costs no database write."""
    creds = world.client()
    before = table_counts(app)
    for _ in range(3):
        assert cc_token(http, creds).status_code == 200
    assert table_counts(app) == before


def test_the_token_names_what_its_life_depends_on(app, world):
    creds = world.client()
    token = issue(app, creds, user_id="usr_1", device_id="dev_1", family_id="rtf_1", jkt="thumb")
    found = view(app, token)
    assert (found.client_id, found.tenant_id) == (creds.client_id, creds.tenant_id)
    assert (found.user_id, found.device_id, found.family_id, found.jkt) == (
        "usr_1",
        "dev_1",
        "rtf_1",
        "thumb",
    )
    assert found.token_type == "DPoP"
    assert found.subjects() == [
        ("all", "*"),
        ("client", creds.client_id),
        ("tenant", creds.tenant_id),
        ("family", "rtf_1"),
        ("device", "dev_1"),
        ("user", "usr_1"),
    ]
    plain = view(app, issue(app, creds))
    assert plain.subjects() == [
        ("all", "*"),
        ("client", creds.client_id),
        ("tenant", creds.tenant_id),
    ]
    assert plain.token_type == "Bearer"


def test_the_jti_carries_its_issue_time_to_the_millisecond():
    jti = new_jti(1_796_000_000_123)
    assert len(jti) == 24 and jti_issued_ms(jti) == 1_796_000_000_123
    assert new_jti(1) != new_jti(1)
    for other in ("", "x" * 23, "x" * 25, "!" * 24):
        assert jti_issued_ms(other) is None


def test_denying_one_token_touches_that_token_only(app, http, world):
    a, b = world.client(), world.client()
    ta1, ta2 = (
        cc_token(http, a).get_json()["access_token"],
        cc_token(http, a).get_json()["access_token"],
    )
    tb = cc_token(http, b).get_json()["access_token"]
    with app.app_context():
        revoke_access_token(find_access_token(ta1))
        db.session.commit()
    assert (live(app, ta1), live(app, ta2), live(app, tb)) == (False, True, True)


@pytest.mark.parametrize("kind", ["client", "tenant", "family", "device", "user"])
def test_each_mark_kills_its_subjects_tokens_only(app, world, clock, kind):
    creds, other = world.client(), world.client()
    ids = {"user_id": "usr_a", "device_id": "dev_a", "family_id": "rtf_a"}
    target = issue(app, creds, **ids)
    bystander = issue(app, other, user_id="usr_b", device_id="dev_b", family_id="rtf_b")
    ident = {
        "client": creds.client_id,
        "tenant": creds.tenant_id,
        "family": "rtf_a",
        "device": "dev_a",
        "user": "usr_a",
    }[kind]
    clock.advance(0.001)
    with app.app_context():
        revocation.mark(kind, ident)
        db.session.commit()
    assert live(app, target) is False
    assert live(app, bystander) is True
    # A token issued after the mark, even within the same second, lives.
    clock.advance(0.001)
    assert live(app, issue(app, creds, **ids)) is True


def test_marks_outlive_every_token_they_can_affect(app, world, clock, settings):
    creds = world.client()
    token = issue(app, creds, device_id="dev_a")
    with app.app_context():
        revocation.mark("device", "dev_a")
        db.session.commit()
    clock.advance(settings.access_token_ttl - 1)  # the token's last second of life
    assert live(app, token) is False


def test_revoke_family_marks_the_family_and_revokes_its_row(app, world):
    creds = world.client(grant_types=("client_credentials", "refresh_token"))
    refresh, access = make_refresh_token(app, creds, with_access=True)
    other_refresh, other_access = make_refresh_token(app, creds, with_access=True)
    target = view(app, access).family_id
    with app.app_context():
        revoke_family(target, "test")
        db.session.commit()
        fams = {f.id: f for f in db.session.scalars(select(RefreshFamily))}
        assert fams[target].revoked_at is not None and fams[target].revoked_reason == "test"
        assert fams[view(app, other_access).family_id].revoked_at is None
        assert find_refresh_token(refresh).is_revoked()
        assert not find_refresh_token(other_refresh).is_revoked()
    assert (live(app, access), live(app, other_access)) == (False, True)


def test_revoking_a_device_revokes_its_families_and_marks_it(app, world):
    creds = world.client(grant_types=("client_credentials", "refresh_token"))
    with app.app_context():
        for fam_id, device in (("rtf_d", "dev_d"), ("rtf_e", "dev_e")):
            db.session.add(
                RefreshFamily(
                    id=fam_id, client_id=creds.client_id, tenant_id=creds.tenant_id,
                    subject=device, device_id=device, scope="", created_at=now(),
                    expires_at=now() + 100,
                )
            )  # fmt: skip
        db.session.commit()
    token = issue(app, creds, device_id="dev_d", family_id="rtf_d")
    other = issue(app, creds, device_id="dev_e", family_id="rtf_e")
    with app.app_context():
        revoke_device("dev_d")
        db.session.commit()
        fams = {f.id: f.revoked_at for f in db.session.scalars(select(RefreshFamily))}
        assert fams["rtf_d"] is not None and fams["rtf_e"] is None
    assert (live(app, token), live(app, other)) == (False, True)


@pytest.mark.parametrize("who", ["user", "client", "tenant"])
def test_revoking_a_subject_revokes_its_families_and_marks_it(app, world, who):
    creds, other = world.client(), world.client()
    with app.app_context():
        for fam_id, c in (("rtf_1", creds), ("rtf_2", other)):
            db.session.add(
                RefreshFamily(
                    id=fam_id, client_id=c.client_id, tenant_id=c.tenant_id, subject="usr_1",
                    user_id="usr_1" if c is creds else "usr_2", scope="", created_at=now(),
                    expires_at=now() + 100,
                )
            )  # fmt: skip
        db.session.commit()
    token = issue(app, creds, user_id="usr_1", family_id="rtf_1")
    bystander = issue(app, other, user_id="usr_2", family_id="rtf_2")
    with app.app_context():
        revoke_subject(
            **{"user": {"user_id": "usr_1"}, "client": {"client_id": creds.client_id},
               "tenant": {"tenant_id": creds.tenant_id}}[who]
        )  # fmt: skip
        db.session.commit()
        fams = {f.id: f.revoked_at for f in db.session.scalars(select(RefreshFamily))}
        assert fams["rtf_1"] is not None and fams["rtf_2"] is None
    assert (live(app, token), live(app, bystander)) == (False, True)


def test_a_rolled_back_change_writes_no_mark(app, world):
    """On the SQL store a mark is part of the change's transaction."""
    from tests.conftest import REDIS_URL

    if REDIS_URL:
        pytest.skip("with Redis the mark is written ahead of the change, by design")
    creds = world.client()
    token = issue(app, creds, device_id="dev_r")
    with app.app_context():
        revocation.mark("device", "dev_r")
        db.session.rollback()
    assert live(app, token) is True


def test_a_missing_family_is_not_live(app):
    with app.app_context():
        assert grant_is_live(family_id="rtf_gone", device_id=None, user_id=None) is False
        assert grant_is_live(family_id=None, device_id=None, user_id=None) is True


@pytest.mark.parametrize(
    "change,alive",
    [({}, True), ({"status": "BLOCKED"}, False), ({"status": "READY_TO_LINK"}, False),
     ({"deleted_at": 1}, False)],
)  # fmt: skip
def test_grant_is_live_follows_the_device(app, world, change, alive):
    tenant = world.tenant()
    with app.app_context():
        device = Device(
            id=new_id("dev"), tenant_id=tenant, name="d", status="ACTIVE", origin="api",
            created_at=now(), updated_at=now(),
        )  # fmt: skip
        db.session.add(device)
        db.session.commit()
        if change:
            db.session.execute(update(Device).where(Device.id == device.id).values(**change))
            db.session.commit()
        assert grant_is_live(family_id=None, device_id=device.id, user_id=None) is alive
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


def test_expiry_kills_at_exp(app, http, world, clock, settings):
    creds = world.client()
    token = cc_token(http, creds).get_json()["access_token"]
    clock.advance(settings.access_token_ttl - 1)
    assert live(app, token)
    clock.advance(1)  # exactly exp: expired
    assert not live(app, token)


def test_a_rotated_out_refresh_token_reads_as_revoked(app, world):
    creds = world.client(grant_types=("client_credentials", "refresh_token"))
    token = make_refresh_token(app, creds)
    with app.app_context():
        assert not find_refresh_token(token).is_revoked()
        db.session.execute(update(RefreshToken).values(used_at=now()))
        db.session.commit()
        assert find_refresh_token(token).is_revoked()


def test_refresh_token_expiry_counts_the_token_and_the_family(app, world, clock):
    creds = world.client(grant_types=("client_credentials", "refresh_token"))
    token = make_refresh_token(app, creds)
    with app.app_context():
        t = now()
        db.session.execute(update(RefreshToken).values(expires_at=t + 100))
        db.session.execute(update(RefreshFamily).values(expires_at=t + 50))
        db.session.commit()
        clock.advance(49)
        assert not find_refresh_token(token).is_expired()
        clock.advance(1)
        assert find_refresh_token(token).is_expired()  # the family's end, before the token's


@pytest.mark.parametrize(
    "token",
    ["", "a" * (MAX_TOKEN_CHARS + 1), "a.b", "a.b.c.d", "not a jwt at all"],
    ids=["empty", "too long", "two parts", "four parts", "text"],
)
def test_malformed_tokens_are_not_ours(app, token):
    with app.app_context():
        assert find_access_token(token) is None
        assert find_refresh_token(token) is None


def test_a_signed_token_with_a_claim_out_of_shape_is_not_ours(app, http, world, settings):
    creds = world.client()
    token = cc_token(http, creds).get_json()["access_token"]
    with app.app_context():
        state = app.extensions["authserver"]
        _, claims = state.keyring.verify(token, "at+jwt")
        for changed in (
            {**claims, "iss": settings.issuer + "/other"},
            {**claims, "jti": "j" * 65},
            {**claims, "jti": 12345},
            {**claims, "client_id": None},
            {**claims, "tenant": ""},
            {**claims, "sub": 7},
            {**claims, "iat": "now"},
            {**claims, "exp": 1.5},
            {**claims, "scope": ["devices:read"]},
            {k: v for k, v in claims.items() if k != "tenant"},
        ):
            assert find_access_token(state.keyring.sign(changed, "at+jwt")) is None, changed
        # The same claims re-signed are found: only the changed claim made the difference.
        assert find_access_token(state.keyring.sign(claims, "at+jwt")) is not None


def test_a_mark_for_all_revokes_every_token_issued_until_then(app, world, clock):
    a, b = world.client(), world.client()
    ta, tb = issue(app, a), issue(app, b)
    clock.advance(0.001)
    with app.app_context():
        revocation.mark("all", "*")
        db.session.commit()
    assert (live(app, ta), live(app, tb)) == (False, False)
    clock.advance(0.001)
    assert live(app, issue(app, a))


def test_a_jti_without_a_plausible_issue_time_counts_from_the_start_of_its_second(app, world):
    """Tokens from before self-contained tokens (random 24-character jtis) count from the second
    before their iat: a mark made in the second of their iat, or later, revokes them."""
    creds = world.client()
    with app.app_context():
        state = app.extensions["authserver"]
        t = now()
        claims = {
            "iss": state.settings.issuer, "sub": "s", "aud": state.settings.audience,
            "client_id": creds.client_id, "scope": "", "jti": "old-random-jti-012345678",
            "iat": t, "exp": t + 600, "tenant": creds.tenant_id,
        }  # fmt: skip
        token = state.keyring.sign(claims, "at+jwt")
        assert find_access_token(token).issued_ms == t * 1000 - 1000


# -- with Redis: write-ahead, refill after a loss, the database when Redis is down ---------------


def _redis_only(app):
    from authserver.ephemeral import RedisStore

    if not isinstance(app.extensions["authserver"].store, RedisStore):
        pytest.skip("needs REDIS_URL (CI's second run uses Redis)")


def _devices(http, token):
    return http.get("/api/v1/devices", headers={"Authorization": f"Bearer {token}"}).status_code


def test_a_redis_that_lost_its_data_is_refilled_before_it_answers(app, http, world):
    _redis_only(app)
    creds = world.client()
    revoked = cc_token(http, creds).get_json()["access_token"]
    kept = cc_token(http, creds).get_json()["access_token"]
    http.post("/oauth/revoke", data={"token": revoked}, headers=creds.auth_header())
    assert (_devices(http, revoked), _devices(http, kept)) == (401, 200)
    store = app.extensions["authserver"].store
    for key in store._redis.scan_iter(store._prefix + "*"):  # a restart without persistence
        store._redis.delete(key)
    assert (_devices(http, revoked), _devices(http, kept)) == (401, 200)


def test_with_redis_down_revocations_are_read_from_the_database(app, http, world):
    _redis_only(app)
    from authserver.ephemeral import RedisStore

    creds = world.client()
    revoked = cc_token(http, creds).get_json()["access_token"]
    kept = cc_token(http, creds).get_json()["access_token"]
    http.post("/oauth/revoke", data={"token": revoked}, headers=creds.auth_header())
    state = app.extensions["authserver"]
    original, state.store = state.store, RedisStore("redis://127.0.0.1:1/0")
    try:
        assert (_devices(http, revoked), _devices(http, kept)) == (401, 200)
    finally:
        state.store = original


def test_with_redis_down_a_revocation_is_refused_not_half_done(app, http, world):
    _redis_only(app)
    from authserver.ephemeral import RedisStore

    creds = world.client()
    token = cc_token(http, creds).get_json()["access_token"]
    state = app.extensions["authserver"]
    original, state.store = state.store, RedisStore("redis://127.0.0.1:1/0")
    try:
        with app.app_context():
            from authserver.ephemeral import StoreUnavailable

            with pytest.raises(StoreUnavailable):
                revoke_access_token(find_access_token(token))
            db.session.rollback()
    finally:
        state.store = original
    assert _devices(http, token) == 200
