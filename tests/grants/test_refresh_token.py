"""Refresh tokens: rotation on every use, reuse revokes the family, DPoP binding, lifetimes."""

from __future__ import annotations

import dataclasses

import pytest

from authserver import create_app
from authserver.models import Client, Device, RefreshFamily, User, db
from tests.device_helpers import approve, kiosk_world, poll, start
from tests.dpop_client import DPoPKey


def enrol(http, world, app, clock, key=None, **kw):
    """A kiosk enrolled through the device flow; returns (client, tokens, tenant, device id)."""
    tenant, client = kiosk_world(world, **kw)
    settings = app.extensions["authserver"].settings
    proof = (
        key.proof("POST", settings.issuer + "/oauth/device_authorization", iat=clock())
        if key
        else None
    )
    body = start(http, client.client_id, proof=proof).get_json()
    done = approve(app, body["user_code"], "admin")
    proof = key.proof("POST", settings.issuer + "/oauth/token", iat=clock()) if key else None
    tokens = poll(http, client.client_id, body["device_code"], proof=proof).get_json()
    assert "refresh_token" in tokens, tokens
    return client, tokens, tenant, done["device_id"]


def refresh(http, client_id, token, proof=None, **form):
    headers = {"DPoP": proof} if proof else {}
    return http.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token,
            "client_id": client_id,
            **form,
        },
        headers=headers,
    )


def active(http, world, tenant, token) -> bool:
    rs = world.client(tenant)
    return http.post(
        "/oauth/introspect", data={"token": token}, headers=rs.auth_header()
    ).get_json()["active"]


def test_rotation_on_every_use(http, world, app, clock):
    client, tokens, _, _ = enrol(http, world, app, clock)
    seen = {tokens["refresh_token"]}
    current = tokens["refresh_token"]
    for _ in range(3):
        resp = refresh(http, client.client_id, current)
        assert resp.status_code == 200, resp.get_json()
        body = resp.get_json()
        assert body["refresh_token"] not in seen
        seen.add(body["refresh_token"])
        current = body["refresh_token"]


def test_reuse_revokes_the_whole_family(http, world, app, clock):
    client, tokens, tenant, _ = enrol(http, world, app, clock)
    # A bystander: another kiosk of the same client, with its own family.
    body = start(http, client.client_id).get_json()
    approve(app, body["user_code"], "admin")
    other = poll(http, client.client_id, body["device_code"]).get_json()
    old = tokens["refresh_token"]
    new = refresh(http, client.client_id, old).get_json()
    assert active(http, world, tenant, new["access_token"])
    reused = refresh(http, client.client_id, old)
    assert reused.status_code == 400
    assert reused.get_json()["error"] == "invalid_grant"
    # Named as reuse, not as an ordinary invalid token: the client learns its grant is gone.
    assert "already used" in reused.get_json()["error_description"]
    for token in (new["refresh_token"], new["access_token"], tokens["access_token"]):
        assert not active(http, world, tenant, token)
    assert (
        refresh(http, client.client_id, new["refresh_token"]).get_json()["error"] == "invalid_grant"
    )
    assert active(http, world, tenant, other["access_token"])
    assert refresh(http, client.client_id, other["refresh_token"]).status_code == 200


def test_reuse_is_detected_after_a_restart(http, world, app, clock, settings):
    client, tokens, tenant, _ = enrol(http, world, app, clock)
    old = tokens["refresh_token"]
    new = refresh(http, client.client_id, old).get_json()
    restarted = create_app(settings, clock=clock)  # a new process: nothing kept in memory
    http2 = restarted.test_client()
    assert refresh(http2, client.client_id, old).get_json()["error"] == "invalid_grant"
    assert (
        refresh(http2, client.client_id, new["refresh_token"]).get_json()["error"]
        == "invalid_grant"
    )


def test_refresh_token_of_another_client_is_invalid_grant(http, world, app, clock):
    client, tokens, tenant, _ = enrol(http, world, app, clock)
    other = world.client(tenant, grant_types=("refresh_token",), auth_method="none")
    assert (
        refresh(http, other.client_id, tokens["refresh_token"]).get_json()["error"]
        == "invalid_grant"
    )
    # ... and it did not burn the token for its owner.
    assert refresh(http, client.client_id, tokens["refresh_token"]).status_code == 200


def test_public_clients_refresh_token_is_bound_to_the_dpop_key(http, world, app, clock, settings):
    key = DPoPKey()
    client, tokens, _, _ = enrol(http, world, app, clock, key=key)
    url = settings.issuer + "/oauth/token"
    none = refresh(http, client.client_id, tokens["refresh_token"])
    assert none.get_json()["error"] == "invalid_dpop_proof"
    other = refresh(
        http, client.client_id, tokens["refresh_token"], DPoPKey().proof("POST", url, iat=clock())
    )
    assert other.get_json()["error"] == "invalid_dpop_proof"
    ok = refresh(
        http, client.client_id, tokens["refresh_token"], key.proof("POST", url, iat=clock())
    )
    assert ok.status_code == 200
    assert ok.get_json()["token_type"] == "DPoP"


def test_confidential_clients_refresh_token_is_not_bound(http, world, app, clock, settings):
    from tests.device_helpers import DEVICE_GRANT

    tenant = world.tenant()
    world.user(tenant, login="admin", password="correct horse", roles=("TENANT.ADMIN",))
    creds = world.client(tenant, grant_types=(DEVICE_GRANT, "refresh_token"), scope="devices:read")
    key = DPoPKey()
    body = http.post(
        "/oauth/device_authorization",
        data={},
        headers={
            **creds.auth_header(),
            "DPoP": key.proof("POST", settings.issuer + "/oauth/device_authorization"),
        },
    ).get_json()
    approve(app, body["user_code"], "admin")
    tokens = http.post(
        "/oauth/token",
        data={"grant_type": DEVICE_GRANT, "device_code": body["device_code"]},
        headers={
            **creds.auth_header(),
            "DPoP": key.proof("POST", settings.issuer + "/oauth/token"),
        },
    ).get_json()
    assert tokens["token_type"] == "DPoP"  # the access token is bound
    resp = http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=creds.auth_header(),
    )
    assert resp.status_code == 200  # the refresh token is not: the client authenticates
    assert resp.get_json()["token_type"] == "Bearer"


def test_refresh_only_binding(http, world, app, clock, settings):
    key = DPoPKey()
    tenant, client = kiosk_world(world)
    with app.app_context():
        db.session.get(Client, client.client_id).dpop_binding = "refresh_only"
        db.session.commit()
    body = start(
        http,
        client.client_id,
        proof=key.proof("POST", settings.issuer + "/oauth/device_authorization", iat=clock()),
    ).get_json()
    approve(app, body["user_code"], "admin")
    tokens = poll(
        http,
        client.client_id,
        body["device_code"],
        proof=key.proof("POST", settings.issuer + "/oauth/token", iat=clock()),
    ).get_json()
    assert tokens["token_type"] == "Bearer"
    assert (
        refresh(http, client.client_id, tokens["refresh_token"]).get_json()["error"]
        == "invalid_dpop_proof"
    )


@pytest.mark.parametrize("change", ["blocked", "deleted"])
def test_refresh_fails_when_the_device_is_blocked_or_deleted(http, world, app, clock, change):
    client, tokens, _, device_id = enrol(http, world, app, clock)
    with app.app_context():
        device = db.session.get(Device, device_id)
        if change == "blocked":
            device.status = "BLOCKED"
        else:
            device.deleted_at = 1
        db.session.commit()
    assert (
        refresh(http, client.client_id, tokens["refresh_token"]).get_json()["error"]
        == "invalid_grant"
    )


def test_refresh_fails_when_the_user_is_deactivated(http, world, app, clock):
    tenant, client = kiosk_world(world, device_subject="user")
    body = start(http, client.client_id).get_json()
    done = approve(app, body["user_code"], "admin")
    tokens = poll(http, client.client_id, body["device_code"]).get_json()
    # While the person is active their grant refreshes (on every backend: SQLite reads the
    # flag as 1, PostgreSQL as true).
    renewed = refresh(http, client.client_id, tokens["refresh_token"])
    assert renewed.status_code == 200, renewed.get_json()
    with app.app_context():
        db.session.get(User, done["user_id"]).active = False
        db.session.commit()
    assert (
        refresh(http, client.client_id, renewed.get_json()["refresh_token"]).get_json()["error"]
        == "invalid_grant"
    )


def test_idle_and_absolute_lifetimes(http, world, app, clock, settings):
    client, tokens, _, _ = enrol(http, world, app, clock)
    clock.advance(settings.refresh_token_idle_ttl + 1)
    assert (
        refresh(http, client.client_id, tokens["refresh_token"]).get_json()["error"]
        == "invalid_grant"
    )

    client, tokens, _, _ = enrol(http, world, app, clock)
    current = tokens["refresh_token"]
    elapsed = 0
    while elapsed + settings.refresh_token_idle_ttl // 2 < settings.refresh_token_ttl:
        clock.advance(settings.refresh_token_idle_ttl // 2)
        elapsed += settings.refresh_token_idle_ttl // 2
        current = refresh(http, client.client_id, current).get_json()["refresh_token"]
    clock.advance(settings.refresh_token_ttl - elapsed + 1)
    assert refresh(http, client.client_id, current).get_json()["error"] == "invalid_grant"


def test_scope_may_narrow_not_widen(http, world, app, clock):
    client, tokens, _, _ = enrol(http, world, app, clock, scope="devices:read devices:write")
    narrow = refresh(http, client.client_id, tokens["refresh_token"], scope="devices:read")
    assert narrow.get_json()["scope"] == "devices:read"
    wide = refresh(http, client.client_id, narrow.get_json()["refresh_token"], scope="openid")
    assert wide.get_json()["error"] == "invalid_scope"


def test_refresh_tokens_are_only_issued_to_clients_registered_for_refresh(http, world, app):
    _, client = kiosk_world(world, refresh=False)
    body = start(http, client.client_id).get_json()
    approve(app, body["user_code"], "admin")
    tokens = poll(http, client.client_id, body["device_code"]).get_json()
    assert "access_token" in tokens and "refresh_token" not in tokens


def test_a_refresh_that_loses_the_race_revokes_the_family(http, world, app, clock, monkeypatch):
    """RFC 9700 §4.14.2 when two requests present one token at once: the one whose rotation
    UPDATE finds the token already used treats it as reuse. Simulated by letting the second
    request read the token as it was before the first one rotated it."""
    import grants.refresh_token as grant_module
    from authserver.tokens import find_refresh_token

    client, tokens, tenant, _ = enrol(http, world, app, clock)
    body = start(http, client.client_id).get_json()
    approve(app, body["user_code"], "admin")
    bystander = poll(http, client.client_id, body["device_code"]).get_json()

    def stale(value):
        record = find_refresh_token(value)
        # What a concurrent request read a moment ago, before the winner rotated it.
        return dataclasses.replace(record, used_at=None) if record is not None else record

    winner = refresh(http, client.client_id, tokens["refresh_token"]).get_json()
    monkeypatch.setattr(grant_module, "find_refresh_token", stale)
    loser = refresh(http, client.client_id, tokens["refresh_token"])
    monkeypatch.undo()
    assert loser.get_json()["error"] == "invalid_grant"
    assert "already used" in loser.get_json()["error_description"]
    assert not active(http, world, tenant, winner["access_token"])
    assert refresh(http, client.client_id, winner["refresh_token"]).status_code == 400
    assert active(http, world, tenant, bystander["access_token"])


def test_a_refresh_racing_a_revocation_is_refused_without_a_second_revocation(
    http, world, app, clock, monkeypatch
):
    """The lost race against a family revocation: invalid_grant, no reuse event."""
    import grants.refresh_token as grant_module
    from authserver.models import AuditEvent, RefreshFamily
    from authserver.tokens import find_refresh_token

    client, tokens, tenant, _ = enrol(http, world, app, clock)
    with app.app_context():
        fam_id = find_refresh_token(tokens["refresh_token"]).family.id

    def revoked_meanwhile(value):
        record = find_refresh_token(value)  # read while the family is live ...
        with db.engine.begin() as conn:  # ... then another request revokes it
            conn.execute(
                RefreshFamily.__table__.update()
                .where(RefreshFamily.id == fam_id)
                .values(revoked_at=1, revoked_reason="revoked")
            )
        return record

    monkeypatch.setattr(grant_module, "find_refresh_token", revoked_meanwhile)
    resp = refresh(http, client.client_id, tokens["refresh_token"])
    monkeypatch.undo()
    assert resp.get_json()["error"] == "invalid_grant"
    assert "no longer valid" in resp.get_json()["error_description"]
    with app.app_context():
        events = [e.type for e in db.session.query(AuditEvent).all()]
        assert "refresh_token.reuse_detected" not in events
        assert db.session.get(RefreshFamily, fam_id).revoked_reason == "revoked"


def test_narrowing_scope_keeps_only_granted_scopes_and_refuses_a_mix(http, world, app, clock):
    client, tokens, _, _ = enrol(http, world, app, clock, scope="devices:read devices:write")
    mixed = refresh(http, client.client_id, tokens["refresh_token"], scope="devices:read openid")
    assert mixed.get_json()["error"] == "invalid_scope"
    narrowed = refresh(http, client.client_id, tokens["refresh_token"], scope="devices:read")
    assert narrowed.status_code == 200 and narrowed.get_json()["scope"] == "devices:read"


def test_a_missing_refresh_token_is_invalid_request(http, world, app, clock):
    client, _, _, _ = enrol(http, world, app, clock)
    resp = http.post(
        "/oauth/token", data={"grant_type": "refresh_token", "client_id": client.client_id}
    )
    assert resp.get_json()["error"] == "invalid_request"


# -- moved from the security review's regression file ------------------------------------


def test_refresh_racing_a_family_revocation_issues_nothing_live(http, world, app, monkeypatch):
    tenant, client = kiosk_world(world)
    body = start(http, client.client_id).get_json()
    approve(app, body["user_code"], "admin")
    tokens = poll(http, client.client_id, body["device_code"]).get_json()

    from authserver.tokens import RefreshTokenRecord

    real = RefreshTokenRecord.grant_is_live

    def revoke_meanwhile(self):
        # The revocation lands right after the refresh request was validated.
        ok = real(self)
        from authserver.tokens import revoke_family

        fam_id = db.session.scalar(db.select(RefreshFamily.id))
        revoke_family(fam_id, "revoked")
        db.session.commit()
        return ok

    monkeypatch.setattr(RefreshTokenRecord, "grant_is_live", revoke_meanwhile)
    resp = http.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": client.client_id,
        },
    )
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"


# -- mutation testing: checks that no other test reached on their own -----------------------


def test_an_unknown_refresh_token_is_invalid_grant_and_burns_nothing(http, world, app, clock):
    client, tokens, tenant, _ = enrol(http, world, app, clock)
    resp = refresh(http, client.client_id, "not-a-token-we-issued")
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_grant"
    assert resp.get_json()["error_description"] == "Unknown refresh token."
    # The client's own grant is untouched.
    assert active(http, world, tenant, tokens["access_token"])
    assert refresh(http, client.client_id, tokens["refresh_token"]).status_code == 200


def test_a_client_not_registered_for_refresh_is_unauthorized_client(http, world, app, clock):
    """RFC 6749 §5.2: the grant type is checked before the token is even looked up; the token
    of the client that owns it stays valid."""
    client, tokens, tenant, _ = enrol(http, world, app, clock)
    no_refresh = world.client(tenant, grant_types=("client_credentials",))
    resp = http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=no_refresh.auth_header(),
    )
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "unauthorized_client"
    assert refresh(http, client.client_id, tokens["refresh_token"]).status_code == 200


def test_an_old_token_of_a_family_already_revoked_is_not_a_second_reuse(http, world, app, clock):
    """Reuse detection is for live families: once the client revoked its grant (RFC 7009), an
    old token coming back is just invalid. It is not recorded as a theft and does not rewrite
    why the grant ended."""
    from authserver.models import AuditEvent

    client, tokens, tenant, _ = enrol(http, world, app, clock)
    other_client, other_tokens, other_tenant, _ = enrol(http, world, app, clock)
    old = tokens["refresh_token"]
    new = refresh(http, client.client_id, old).get_json()
    revoked = http.post(
        "/oauth/revoke", data={"token": new["refresh_token"], "client_id": client.client_id}
    )
    assert revoked.status_code == 200
    resp = refresh(http, client.client_id, old)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_grant"
    assert "no longer valid" in resp.get_json()["error_description"]
    with app.app_context():
        events = [e.type for e in db.session.query(AuditEvent).all()]
        assert "refresh_token.reuse_detected" not in events
        reasons = {f.client_id: f.revoked_reason for f in db.session.query(RefreshFamily).all()}
    assert reasons == {client.client_id: "revoked", other_client.client_id: None}
    # The bystander, another kiosk client's grant, is untouched.
    assert active(http, world, other_tenant, other_tokens["access_token"])
    assert refresh(http, other_client.client_id, other_tokens["refresh_token"]).status_code == 200


def test_a_terminal_linked_without_a_key_refreshes_without_one(http, world, app):
    """The device-key binding applies only to terminals linked with a DPoP key: one a
    confidential client linked without a key refreshes with client authentication alone."""
    from tests.registry.conftest import LINK_GRANT, Registry

    reg = Registry(http, world, app)
    t = reg.tenant()
    confidential = world.client(
        t.id, grant_types=(LINK_GRANT, "refresh_token"), scope="devices:read devices:write"
    )
    device = reg.create_device(t, status="READY_TO_LINK")
    linked = http.post(
        "/oauth/token",
        data={
            "grant_type": LINK_GRANT,
            "link_code": device["linkCode"],
            "staff_code": "1234",
            "password": "correct horse",
        },
        headers=confidential.auth_header(),
    )
    assert linked.status_code == 200, linked.get_json()
    assert linked.get_json()["token_type"] == "Bearer"
    resp = http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": linked.get_json()["refresh_token"]},
        headers=confidential.auth_header(),
    )
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["token_type"] == "Bearer"


def test_a_revoked_token_is_refused_as_revoked_before_its_key_is_checked(
    http, world, app, clock, settings
):
    """A token of a revoked grant is dead whatever proof comes with it: invalid_grant, not a
    DPoP error that would invite the holder to try again with another key."""
    key = DPoPKey()
    client, tokens, tenant, _ = enrol(http, world, app, clock, key=key)
    bystander_client, bystander, _, _ = enrol(http, world, app, clock)
    revoked = http.post(
        "/oauth/revoke", data={"token": tokens["refresh_token"], "client_id": client.client_id}
    )
    assert revoked.status_code == 200
    url = settings.issuer + "/oauth/token"
    for proof in (None, DPoPKey().proof("POST", url, iat=clock())):
        resp = refresh(http, client.client_id, tokens["refresh_token"], proof)
        assert resp.status_code == 400
        assert resp.get_json()["error"] == "invalid_grant", resp.get_json()
        assert "no longer valid" in resp.get_json()["error_description"]
    assert refresh(http, bystander_client.client_id, bystander["refresh_token"]).status_code == 200


def test_requesting_several_granted_scopes_keeps_them_all(http, world, app, clock):
    client, tokens, _, _ = enrol(http, world, app, clock, scope="devices:read devices:write")
    both = refresh(
        http, client.client_id, tokens["refresh_token"], scope="devices:write devices:read"
    )
    assert both.status_code == 200, both.get_json()
    assert both.get_json()["scope"] == "devices:read devices:write"


def test_a_revocation_between_the_rotation_and_the_signature_covers_the_new_token(
    http, world, app, clock, monkeypatch
):
    """RFC 9700 §4.14.2: reuse detection that revokes the family a moment after another
    request's rotation committed, and before that request signed its access token, must still
    end that token. The token is issued as of its request's start, before the rotation, so the
    family's revocation mark (made later) is not earlier than it."""
    import grants.refresh_token as grant_module
    from authserver.tokens import find_refresh_token, revoke_family, rotate_refresh_token

    client, tokens, tenant, _ = enrol(http, world, app, clock)
    with app.app_context():
        fam_id = find_refresh_token(tokens["refresh_token"]).family.id

    def rotated_then_revoked(record):
        outcome = rotate_refresh_token(record)  # committed ...
        clock.advance(1)  # ... then, a moment later, the family is revoked (reuse detected)
        revoke_family(fam_id, "reuse_detected")
        db.session.commit()
        clock.advance(1)  # ... and only then is the access token signed
        return outcome

    monkeypatch.setattr(grant_module, "rotate_refresh_token", rotated_then_revoked)
    resp = refresh(http, client.client_id, tokens["refresh_token"])
    monkeypatch.undo()
    assert resp.status_code == 200, resp.get_json()  # the rotation had won
    token = resp.get_json()["access_token"]
    assert not active(http, world, tenant, token)
    api = http.get("/api/v1/devices", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 401
