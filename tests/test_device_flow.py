"""authserver.device_flow as a service: the decision's own checks (not only those its callers make
first), kiosk enrolment and re-enrolment, the lookup of typed codes."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from authserver import device_flow
from authserver.limits import account_code_entry
from authserver.models import Client, Device, DeviceAuthorization, User, db
from tests.device_helpers import DEVICE_GRANT, approve, kiosk_world, poll, start
from tests.dpop_client import DPoPKey


def pending(app, http, client_id, key=None, clock=None, **form):
    settings = app.extensions["authserver"].settings
    proof = None
    if key is not None:
        proof = key.proof("POST", settings.issuer + "/oauth/device_authorization", iat=clock())
    return start(http, client_id, proof=proof, **form).get_json()


def record_of(user_code: str) -> DeviceAuthorization:
    record = device_flow.find_live(user_code)
    assert record is not None
    return record


def user(tenant: str, login: str) -> User:
    return db.session.scalar(select(User).where(User.tenant_id == tenant, User.login == login))


def test_decide_refuses_a_user_of_another_tenant_by_itself(app, http, world):
    _, client = kiosk_world(world)
    other_tenant = world.tenant()
    world.user(other_tenant, login="mallory", roles=("TENANT.ADMIN",))
    body = pending(app, http, client.client_id)
    with app.app_context():
        with pytest.raises(device_flow.DecisionError) as info:
            device_flow.decide(record_of(body["user_code"]), user(other_tenant, "mallory"), True)
        assert info.value.code == "wrong_tenant"
        assert record_of(body["user_code"]).status == "pending"


def test_decide_refuses_an_inactive_user_by_itself(app, http, world):
    tenant, client = kiosk_world(world)
    body = pending(app, http, client.client_id)
    with app.app_context():
        admin = user(tenant, "admin")
        admin.active = False
        db.session.commit()
        with pytest.raises(device_flow.DecisionError) as info:
            device_flow.decide(record_of(body["user_code"]), admin, True)
        assert info.value.code == "wrong_tenant"


def test_codes_of_a_deactivated_client_cannot_be_decided(app, http, world):
    tenant, client = kiosk_world(world)
    body = pending(app, http, client.client_id)
    with app.app_context():
        db.session.get(Client, client.client_id).active = False
        db.session.commit()
        with pytest.raises(device_flow.DecisionError) as info:
            device_flow.decide(record_of(body["user_code"]), user(tenant, "admin"), True)
        assert info.value.code == "invalid_client"


def test_a_service_can_enrol_a_kiosk_but_not_sign_a_person_in(app, http, world):
    _, kiosk = kiosk_world(world)
    tenant2, signin = kiosk_world(world, device_subject="user")
    a = pending(app, http, kiosk.client_id)
    b = pending(app, http, signin.client_id)
    with app.app_context():
        done = device_flow.decide(record_of(a["user_code"]), None, True, actor_id="cli_backoffice")
        assert done.status == "approved" and done.claimed_by == "cli_backoffice"
        with pytest.raises(device_flow.DecisionError) as info:
            device_flow.decide(record_of(b["user_code"]), None, True, actor_id="cli_backoffice")
        assert info.value.code == "user_required"
        with pytest.raises(ValueError):
            device_flow.decide(record_of(b["user_code"]), None, False)


def test_denying_enrols_nothing(app, http, world):
    tenant, client = kiosk_world(world)
    body = pending(app, http, client.client_id)
    approve(app, body["user_code"], "admin", "--deny")
    with app.app_context():
        assert db.session.scalars(select(Device).where(Device.tenant_id == tenant)).all() == []


def test_a_kiosk_reenrolling_with_its_key_updates_its_own_entry(app, http, world, clock):
    tenant, client = kiosk_world(world)
    key = DPoPKey()
    first = pending(app, http, client.client_id, key, clock, device_name="Lobby")
    device_id = approve(app, first["user_code"], "admin")["device_id"]
    again = pending(app, http, client.client_id, key, clock, device_name="Lobby again")
    assert approve(app, again["user_code"], "admin")["device_id"] == device_id
    with app.app_context():
        assert db.session.get(Device, device_id).name == "Lobby again"


def test_the_same_key_in_another_tenant_is_another_device(app, http, world, clock):
    """Re-enrolment looks the key up in the code's tenant only: tenant B's approval never
    touches (or re-activates) tenant A's device with the same key."""
    tenant_a, client_a = kiosk_world(world)
    tenant_b, client_b = kiosk_world(world)
    key = DPoPKey()
    in_a = approve(
        app,
        pending(app, http, client_a.client_id, key, clock, device_name="A")["user_code"],
        "admin",
    )
    with app.app_context():
        db.session.get(Device, in_a["device_id"]).status = "BLOCKED"
        db.session.commit()
    in_b = approve(
        app,
        pending(app, http, client_b.client_id, key, clock, device_name="B")["user_code"],
        "admin",
    )
    assert in_b["device_id"] != in_a["device_id"]
    with app.app_context():
        a = db.session.get(Device, in_a["device_id"])
        b = db.session.get(Device, in_b["device_id"])
        assert (a.tenant_id, a.name, a.status) == (tenant_a, "A", "BLOCKED")
        assert (b.tenant_id, b.name, b.status) == (tenant_b, "B", "ACTIVE")


def test_kiosks_without_a_key_never_take_over_each_others_entries(app, http, world):
    _, client = kiosk_world(world)
    first = approve(
        app, pending(app, http, client.client_id, device_name="One")["user_code"], "admin"
    )
    second = approve(
        app, pending(app, http, client.client_id, device_name="Two")["user_code"], "admin"
    )
    assert first["device_id"] != second["device_id"]
    with app.app_context():
        assert db.session.get(Device, first["device_id"]).name == "One"


def test_a_kiosk_with_a_key_does_not_take_over_a_keyless_entry(app, http, world, clock):
    _, client = kiosk_world(world)
    keyless = approve(
        app, pending(app, http, client.client_id, device_name="Old")["user_code"], "admin"
    )
    keyed = approve(
        app,
        pending(app, http, client.client_id, DPoPKey(), clock, device_name="New")["user_code"],
        "admin",
    )
    assert keyless["device_id"] != keyed["device_id"]


def test_lookup_gives_a_right_codes_charges_back_and_keeps_a_wrong_ones(app, http, world):
    tenant, client = kiosk_world(world)
    settings = app.extensions["authserver"].settings.with_overrides(
        user_code_failures_per_account=2
    )
    body = pending(app, http, client.client_id)
    with app.app_context():
        charges = account_code_entry(settings, tenant, "usr_x")
        for _ in range(5):  # right codes cost nothing
            assert device_flow.lookup(body["user_code"], charges, tenant) is not None
        assert device_flow.lookup("BBBBB-BBBBB", charges, tenant) is None
        assert device_flow.lookup("BBBBB-BBBBB", charges, tenant) is None
        from authserver.limits import Throttled

        with pytest.raises(Throttled):
            device_flow.lookup(body["user_code"], charges, tenant)


def test_lookup_restricted_to_a_tenant_does_not_see_others(app, http, world):
    tenant, client = kiosk_world(world)
    other = world.tenant()
    body = pending(app, http, client.client_id)
    s = app.extensions["authserver"].settings
    with app.app_context():
        assert (
            device_flow.lookup(body["user_code"], account_code_entry(s, other, "u"), other) is None
        )
        assert device_flow.lookup(body["user_code"], account_code_entry(s, tenant, "u"), tenant)
        assert device_flow.lookup(body["user_code"], account_code_entry(s, tenant, "u"), None)


@pytest.mark.parametrize(
    "typed", ["bcdfg-hjklm", " BCDFG HJKLM ", "BCDFGHJKLM", "b.c.d.f.g.h.j.k.l.m"]
)
def test_typed_codes_are_normalised(typed):
    assert device_flow.normalise_user_code(typed) == "BCDFGHJKLM"
    assert device_flow.format_user_code("BCDFGHJKLM") == "BCDFG-HJKLM"


def test_find_live_ignores_expired_decided_and_short_codes(app, http, world, clock, settings):
    _, client = kiosk_world(world)
    body = pending(app, http, client.client_id)
    with app.app_context():
        assert device_flow.find_live(body["user_code"][:-1]) is None
        assert device_flow.find_live(body["user_code"]) is not None
        clock.advance(settings.device_code_ttl)
        assert device_flow.find_live(body["user_code"]) is None
    fresh = pending(app, http, client.client_id)
    approve(app, fresh["user_code"], "admin", "--deny")
    with app.app_context():
        assert device_flow.find_live(fresh["user_code"]) is None


def test_a_claimed_code_is_refused_to_everyone_else_and_kept_for_its_claimant(app, http, world):
    tenant, client = kiosk_world(world)
    world.user(tenant, login="bob", roles=("TENANT.ADMIN",))
    body = pending(app, http, client.client_id)
    with app.app_context():
        record = record_of(body["user_code"])
        device_flow.claim(record, user(tenant, "admin"))
        device_flow.claim(record, user(tenant, "admin"))  # claiming again is fine
        with pytest.raises(device_flow.DecisionError) as info:
            device_flow.claim(record, user(tenant, "bob"))
        assert info.value.code == "claimed"
        with pytest.raises(device_flow.DecisionError) as info:
            device_flow.decide(record, user(tenant, "bob"), True)
        assert info.value.code == "claimed"
        assert device_flow.decide(record, user(tenant, "admin"), True).status == "approved"
        with pytest.raises(device_flow.DecisionError) as info:
            device_flow.decide(record, user(tenant, "admin"), True)
        assert info.value.code == "decided"


def test_an_expired_code_cannot_be_decided(app, http, world, clock, settings):
    tenant, client = kiosk_world(world)
    body = pending(app, http, client.client_id)
    with app.app_context():
        record = record_of(body["user_code"])
        clock.advance(settings.device_code_ttl)
        with pytest.raises(device_flow.DecisionError) as info:
            device_flow.decide(record, user(tenant, "admin"), True)
        assert info.value.code == "expired"


# -- moved from the security review's regression file ------------------------------------


def test_blocked_kiosk_cannot_reenrol_with_the_same_key(http, world, app, settings, clock):
    tenant, client = kiosk_world(world)
    key = DPoPKey()
    url = settings.issuer + "/oauth/device_authorization"
    body = start(http, client.client_id, proof=key.proof("POST", url, iat=clock())).get_json()
    device_id = approve(app, body["user_code"], "admin")["device_id"]
    with app.app_context():
        db.session.get(Device, device_id).status = "BLOCKED"
        db.session.commit()
    again = start(http, client.client_id, proof=key.proof("POST", url, iat=clock())).get_json()
    result = approve(app, again["user_code"], "admin")
    assert result.get("exit_code") and "blocked" in result["error"]
    with app.app_context():
        assert db.session.get(Device, device_id).status == "BLOCKED"


def drawing(monkeypatch, *codes: str) -> list[str]:
    """Make ``new_user_code`` draw ``codes`` in turn (the last one for ever after); returns the
    list of codes drawn so far, to count the draws."""
    from authserver import credentials

    drawn: list[str] = []

    def draw() -> str:
        code = codes[min(len(drawn), len(codes) - 1)]
        drawn.append(code)
        return code

    monkeypatch.setattr(credentials, "new_user_code", draw)
    return drawn


def authorizations(app) -> int:
    with app.app_context():
        return len(db.session.scalars(select(DeviceAuthorization.id)).all())


def test_a_user_code_held_by_a_live_authorization_is_drawn_again(app, http, world, monkeypatch):
    _, client = kiosk_world(world)
    drawn = drawing(monkeypatch, "BBBBBBBBBB", "CCCCCCCCCC")
    first = pending(app, http, client.client_id)
    drawn.clear()
    second = pending(app, http, client.client_id)
    assert (first["user_code"], second["user_code"]) == ("BBBBB-BBBBB", "CCCCC-CCCCC")
    assert drawn == ["BBBBBBBBBB", "CCCCCCCCCC"]  # the taken code, then a fresh one
    with app.app_context():  # each code still leads to its own authorization
        assert record_of(first["user_code"]).id != record_of(second["user_code"]).id


def test_an_expired_authorization_gives_up_its_user_code(
    app, http, world, clock, settings, monkeypatch
):
    _, client = kiosk_world(world)
    drawn = drawing(monkeypatch, "BBBBBBBBBB")
    old = pending(app, http, client.client_id)
    clock.advance(settings.device_code_ttl)  # expired at exactly expires_at
    drawn.clear()
    new = pending(app, http, client.client_id)
    assert new["user_code"] == old["user_code"] and drawn == ["BBBBBBBBBB"]
    assert authorizations(app) == 1  # the expired one was deleted, not kept beside it
    from tests.device_helpers import poll

    assert poll(http, client.client_id, new["device_code"]).get_json()["error"] == (
        "authorization_pending"
    )
    assert poll(http, client.client_id, old["device_code"]).status_code == 400


def test_a_live_user_code_is_not_freed_a_second_before_its_expiry(
    app, http, world, clock, settings, monkeypatch
):
    _, client = kiosk_world(world)
    drawing(monkeypatch, "BBBBBBBBBB", "CCCCCCCCCC")
    first = pending(app, http, client.client_id)
    clock.advance(settings.device_code_ttl - 1)
    second = pending(app, http, client.client_id)
    assert second["user_code"] == "CCCCC-CCCCC"
    with app.app_context():
        assert record_of(first["user_code"]) is not None


def test_eight_taken_draws_give_a_server_error_and_store_nothing(app, http, world, monkeypatch):
    _, client = kiosk_world(world)
    drawn = drawing(monkeypatch, "BBBBBBBBBB")
    pending(app, http, client.client_id)
    drawn.clear()
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: the error handler answers
    resp = start(http, client.client_id)
    assert resp.status_code == 500 and resp.get_json()["error"] == "server_error"
    assert len(drawn) == 8
    assert authorizations(app) == 1


# -- a device code redeemed twice: the request that loses the race (RFC 9700 §4.14.2) -------


def record_id_of(app, device_code: str) -> str:
    from authserver import credentials

    with app.app_context():
        return db.session.scalar(
            select(DeviceAuthorization.id).where(
                DeviceAuthorization.device_code_hash == credentials.device_code_hash(device_code)
            )
        )


def active(http, world, tenant: str, token: str) -> bool:
    resource = world.client(tenant)
    return http.post(
        "/oauth/introspect", data={"token": token}, headers=resource.auth_header()
    ).get_json()["active"]


@pytest.mark.parametrize("refresh", [True, False])
def test_the_request_that_loses_the_redemption_race_revokes_what_the_winner_got(
    app, http, world, refresh
):
    """Two polls read the same approved code; one wins the conditional UPDATE. The loser,
    which read the record before the winner committed, must see what the winner was issued
    and revoke it (the family, or the lone access token of a client without refresh tokens),
    and nothing else: another kiosk's tokens stay active."""
    from tests.device_helpers import poll

    tenant, client = kiosk_world(world, refresh=refresh)
    raced = start(http, client.client_id).get_json()
    bystander = start(http, client.client_id).get_json()
    for body in (raced, bystander):
        approve(app, body["user_code"], "admin")
    other = poll(http, client.client_id, bystander["device_code"]).get_json()
    raced_id = record_id_of(app, raced["device_code"])
    with app.app_context():
        loser_view = device_flow.get(raced_id)  # read while approved: nothing issued yet
        assert (loser_view.status, loser_view.family_id) == ("approved", None)
        with app.app_context():  # the winning request, in its own session
            won = poll(http, client.client_id, raced["device_code"])
            assert won.status_code == 200, won.get_json()
        assert device_flow.redeem(loser_view) is False
    winner = won.get_json()
    assert ("refresh_token" in winner) is refresh
    issued = [winner["access_token"], *([winner["refresh_token"]] if refresh else [])]
    assert [active(http, world, tenant, t) for t in issued] == [False] * len(issued)
    kept = [other["access_token"], *([other["refresh_token"]] if refresh else [])]
    assert [active(http, world, tenant, t) for t in kept] == [True] * len(kept)
    with app.app_context():
        from authserver.models import AuditEvent

        events = db.session.scalars(
            select(AuditEvent.type).where(AuditEvent.type == "device_code.reuse_detected")
        ).all()
        assert events == ["device_code.reuse_detected"]


def test_a_freed_user_code_deletes_only_its_own_expired_authorization(
    app, http, world, clock, settings, monkeypatch
):
    """Reusing an expired user code deletes that one authorization, not every expired one: a
    redeemed code past its expiry must still be found, so that reusing it revokes its tokens."""
    from tests.device_helpers import poll

    tenant, client = kiosk_world(world)
    drawing(monkeypatch, "CCCCCCCCCC")
    redeemed = pending(app, http, client.client_id)
    approve(app, redeemed["user_code"], "admin")
    tokens = poll(http, client.client_id, redeemed["device_code"]).get_json()
    drawing(monkeypatch, "BBBBBBBBBB")
    pending(app, http, client.client_id)  # abandoned
    clock.advance(settings.device_code_ttl)
    drawn = drawing(monkeypatch, "BBBBBBBBBB")
    pending(app, http, client.client_id)  # takes over the abandoned code's user code
    assert drawn == ["BBBBBBBBBB"] and authorizations(app) == 2
    again = poll(http, client.client_id, redeemed["device_code"])
    assert again.get_json()["error"] == "invalid_grant"
    assert [active(http, world, tenant, tokens[k]) for k in ("access_token", "refresh_token")] == [
        False,
        False,
    ]


def test_start_raises_rather_than_return_nothing_when_every_draw_is_taken(
    app, http, world, monkeypatch
):
    _, client = kiosk_world(world)
    drawing(monkeypatch, "BBBBBBBBBB")
    pending(app, http, client.client_id)
    with app.app_context():
        oauth_client = db.session.get(Client, client.client_id)
        with pytest.raises(RuntimeError, match="unique user code"):
            device_flow.start(oauth_client, "devices:read", None, None, None)


def test_a_deleted_kiosk_reenrolling_with_its_key_gets_a_new_entry(app, http, world, clock):
    """Re-enrolment matches live entries only: a deleted device is never brought back."""
    from authserver.security import now

    _, client = kiosk_world(world)
    key = DPoPKey()
    first = pending(app, http, client.client_id, key, clock, device_name="Old")
    old_id = approve(app, first["user_code"], "admin")["device_id"]
    with app.app_context():
        db.session.get(Device, old_id).deleted_at = int(now())
        db.session.commit()
    again = pending(app, http, client.client_id, key, clock, device_name="New")
    new_id = approve(app, again["user_code"], "admin")["device_id"]
    assert new_id != old_id
    with app.app_context():
        old = db.session.get(Device, old_id)
        assert old.deleted_at is not None and old.name == "Old"
        assert db.session.get(Device, new_id).name == "New"


# -- the decision's own checks when denying, which needs no approval right at a location -----


@pytest.mark.parametrize("subject", ["device", "user"])
def test_decide_refuses_a_denial_by_a_user_of_another_tenant_or_an_inactive_one(
    app, http, world, subject
):
    """Denying skips the approval rule (authorization.check_approval), so decide()'s own
    tenant and active check is what stops a stranger or a deactivated user from denying."""
    tenant, client = kiosk_world(world, device_subject=subject)
    other_tenant = world.tenant()
    world.user(other_tenant, login="mallory", roles=("TENANT.ADMIN",))
    world.user(tenant, login="gone", roles=("TENANT.ADMIN",))
    body = pending(app, http, client.client_id)
    with app.app_context():
        gone = user(tenant, "gone")
        gone.active = False
        db.session.commit()
        for who in (user(other_tenant, "mallory"), user(tenant, "gone")):
            with pytest.raises(device_flow.DecisionError) as info:
                device_flow.decide(record_of(body["user_code"]), who, False)
            assert info.value.code == "wrong_tenant"
        assert record_of(body["user_code"]).status == "pending"


def test_denying_a_kiosk_needs_the_right_to_enrol_somewhere_but_denying_a_sign_in_does_not(
    app, http, world
):
    tenant, kiosk = kiosk_world(world)
    world.user(tenant, login="clerk")  # no role
    kiosk_code = pending(app, http, kiosk.client_id)
    refused = approve(app, kiosk_code["user_code"], "clerk", "--deny")
    assert refused["exit_code"] != 0 and "not allowed" in refused["error"]
    with app.app_context():
        assert record_of(kiosk_code["user_code"]).status == "pending"
    from tests.device_helpers import DEVICE_GRANT

    signin = world.client(tenant, grant_types=(DEVICE_GRANT,), auth_method="none")
    with app.app_context():
        db.session.get(Client, signin.client_id).device_subject = "user"
        db.session.commit()
    signin_code = pending(app, http, signin.client_id)
    assert approve(app, signin_code["user_code"], "clerk", "--deny")["decision"] == "denied"


def test_claim_refuses_another_tenants_user_and_claims_only_its_own_code(app, http, world):
    tenant, client = kiosk_world(world)
    other_tenant = world.tenant()
    world.user(other_tenant, login="mallory", roles=("TENANT.ADMIN",))
    world.user(tenant, login="bob", roles=("TENANT.ADMIN",))
    mine = pending(app, http, client.client_id)
    theirs = pending(app, http, client.client_id)
    with app.app_context():
        with pytest.raises(device_flow.DecisionError) as info:
            device_flow.claim(record_of(mine["user_code"]), user(other_tenant, "mallory"))
        assert info.value.code == "wrong_tenant"
        assert record_of(mine["user_code"]).claimed_by is None
        device_flow.claim(record_of(mine["user_code"]), user(tenant, "admin"))
        assert record_of(theirs["user_code"]).claimed_by is None  # the bystander
        device_flow.claim(record_of(theirs["user_code"]), user(tenant, "bob"))
        assert record_of(theirs["user_code"]).claimed_by == user(tenant, "bob").id


def test_codes_of_a_client_deleted_since_cannot_be_decided(app, http, world):
    tenant, client = kiosk_world(world)
    body = pending(app, http, client.client_id)
    with app.app_context():
        record = record_of(body["user_code"])
        db.session.expunge(record)
        record.client_id = "cli_deleted"  # as read before the client was deleted
        with pytest.raises(device_flow.DecisionError) as info:
            device_flow.decide(record, user(tenant, "admin"), True)
        assert info.value.code == "invalid_client"


def test_a_refused_enrolment_leaves_nothing_in_the_callers_session(app, http, world, clock):
    """decide() undoes its own approval when enrolment is refused (a blocked kiosk): a caller
    that goes on and commits its own work afterwards does not commit that approval."""
    tenant, client = kiosk_world(world)
    key = DPoPKey()
    first = pending(app, http, client.client_id, key, clock)
    device_id = approve(app, first["user_code"], "admin")["device_id"]
    with app.app_context():
        db.session.get(Device, device_id).status = "BLOCKED"
        db.session.commit()
    again = pending(app, http, client.client_id, key, clock)
    with app.app_context():
        with pytest.raises(device_flow.DecisionError) as info:
            device_flow.decide(record_of(again["user_code"]), user(tenant, "admin"), True)
        assert info.value.code == "blocked"
        db.session.commit()  # the caller's own work
    with app.app_context():
        assert record_of(again["user_code"]).status == "pending"
        assert db.session.get(Device, device_id).status == "BLOCKED"


def test_each_decision_is_audited_with_who_decided_what(app, http, world):
    from authserver.models import AuditEvent

    tenant, client = kiosk_world(world)
    approved = pending(app, http, client.client_id)
    denied = pending(app, http, client.client_id)
    device_id = approve(app, approved["user_code"], "admin")["device_id"]
    approve(app, denied["user_code"], "admin", "--deny")
    with app.app_context():
        admin_id = user(tenant, "admin").id
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.type.in_(("device.approved", "device.denied")))
        ).all()
        got = sorted(
            (e.type, e.tenant_id, e.actor, e.device_id, e.data["client_id"]) for e in events
        )
        assert got == [
            ("device.approved", tenant, admin_id, device_id, client.client_id),
            ("device.denied", tenant, admin_id, None, client.client_id),
        ]


def test_a_kiosk_that_gives_no_name_is_called_kiosk(app, http, world):
    _, client = kiosk_world(world)
    body = pending(app, http, client.client_id)
    device_id = approve(app, body["user_code"], "admin")["device_id"]
    with app.app_context():
        assert db.session.get(Device, device_id).name == "Kiosk"


def test_reenrolment_records_who_updated_the_entry_and_when(app, http, world, clock):
    tenant, client = kiosk_world(world)
    world.user(tenant, login="bob", roles=("TENANT.ADMIN",))
    key = DPoPKey()
    first = pending(app, http, client.client_id, key, clock)
    device_id = approve(app, first["user_code"], "admin")["device_id"]
    clock.advance(60)
    again = pending(app, http, client.client_id, key, clock)
    assert approve(app, again["user_code"], "bob")["device_id"] == device_id
    with app.app_context():
        device = db.session.get(Device, device_id)
        admin, bob = user(tenant, "admin").id, user(tenant, "bob").id
        assert (device.created_by, device.updated_by, device.last_tenant_user_id) == (
            admin,
            bob,
            bob,
        )
        assert device.updated_at - device.created_at == 60_000  # milliseconds


def test_poll_answers_pending_then_slow_down_for_a_poll_too_soon(app, http, world):
    _, client = kiosk_world(world)
    body = pending(app, http, client.client_id)
    with app.app_context():
        code_hash, _ = device_flow.poll_keys(body["device_code"])
        row = device_flow.find_for_client(db.session.get(Client, client.client_id), code_hash, {})
        assert device_flow.poll(row) is device_flow.Poll.PENDING
        assert device_flow.poll(row) is device_flow.Poll.SLOW_DOWN


# -- the pending poll answered from the state store ------------------------------------------------


def polled(http, client_id: str, device_code: str) -> tuple[int, str | None]:
    r = poll(http, client_id, device_code)
    return r.status_code, (r.get_json() or {}).get("error")


def test_a_warm_pending_poll_reads_the_store_once_claims_its_slot_and_reads_no_row(
    app, http, world, clock, monkeypatch
):
    from tests.registry.test_hot_paths import Recorder

    _, client = kiosk_world(world)
    body = pending(app, http, client.client_id)
    assert polled(http, client.client_id, body["device_code"]) == (400, "authorization_pending")
    clock.advance(5)
    direct_reads: list[str] = []
    hot = app.extensions["authserver"].direct
    real_first = hot.first
    monkeypatch.setattr(
        hot, "first", lambda stmt, p: direct_reads.append(str(stmt)) or real_first(stmt, p)
    )
    rec = Recorder(app, monkeypatch)
    store = app.extensions["authserver"].store
    for name in ("add", "compare_and_put"):
        if hasattr(store, name):
            monkeypatch.setattr(store, name, rec._wrap(name, getattr(store, name)))
    try:
        assert polled(http, client.client_id, body["device_code"]) == (400, "authorization_pending")
    finally:
        rec.stop()
    # Every store operation is recorded, and the direct statements (the row's reader) too.
    assert rec.store_calls == ["get_many", "claim_or_hold"]
    assert direct_reads == []


def test_a_decision_reaches_the_next_poll_though_the_pending_entry_was_stored(
    app, http, world, clock
):
    _, client = kiosk_world(world)
    body = pending(app, http, client.client_id)
    assert polled(http, client.client_id, body["device_code"]) == (400, "authorization_pending")
    approve(app, body["user_code"], "admin")
    clock.advance(5)
    r = poll(http, client.client_id, body["device_code"])
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["access_token"]


def test_a_denial_reaches_the_next_poll_though_the_pending_entry_was_stored(
    app, http, world, clock
):
    _, client = kiosk_world(world)
    body = pending(app, http, client.client_id)
    assert polled(http, client.client_id, body["device_code"]) == (400, "authorization_pending")
    approve(app, body["user_code"], "admin", "--deny")
    clock.advance(5)
    assert polled(http, client.client_id, body["device_code"]) == (400, "access_denied")


def deciding_before_the_fill(app, monkeypatch, user_code: str, stall: float = 0, clock=None):
    """The next fill of a pending entry first lets a decision through (and, with ``stall``,
    waits that long): a poll that read the row while it was pending, then fills it late."""
    store = app.extensions["authserver"].store
    real_add = store.add
    results: list[bool] = []

    def add(key, value, ttl):
        approve(app, user_code, "admin")
        if stall:
            clock.advance(stall)
        results.append(real_add(key, value, ttl))
        return results[-1]

    monkeypatch.setattr(store, "add", add)
    return results


def test_a_fill_from_a_read_made_before_the_decision_cannot_outlive_it(
    app, http, world, clock, monkeypatch
):
    _, client = kiosk_world(world)
    body = pending(app, http, client.client_id)
    fills = deciding_before_the_fill(app, monkeypatch, body["user_code"])
    # This poll read the row before the decision: pending is its right answer.
    assert polled(http, client.client_id, body["device_code"]) == (400, "authorization_pending")
    assert fills == [False]
    monkeypatch.undo()
    clock.advance(5)
    assert poll(http, client.client_id, body["device_code"]).status_code == 200


def test_a_fill_that_stalled_for_minutes_still_cannot_outlive_the_decision(
    app, http, world, clock, monkeypatch
):
    """The void lives as long as the transaction (plus a margin), not a fixed time."""
    _, client = kiosk_world(world)
    body = pending(app, http, client.client_id)
    fills = deciding_before_the_fill(app, monkeypatch, body["user_code"], 300, clock)
    polled(http, client.client_id, body["device_code"])
    assert fills == [False]
    monkeypatch.undo()
    assert poll(http, client.client_id, body["device_code"]).status_code == 200


def test_a_fill_later_than_the_void_holds_an_expired_transaction(
    app, http, world, clock, monkeypatch, settings
):
    _, client = kiosk_world(world)
    body = pending(app, http, client.client_id)
    stall = settings.device_code_ttl + device_flow.VOID_MARGIN_SECONDS + 1
    fills = deciding_before_the_fill(app, monkeypatch, body["user_code"], stall, clock)
    assert polled(http, client.client_id, body["device_code"]) == (400, "expired_token")
    assert fills == [True]  # the void was gone: the late fill went in...
    monkeypatch.undo()
    # ...and answers what the row answers for an expired transaction, never "pending".
    assert polled(http, client.client_id, body["device_code"]) == (400, "expired_token")


def test_a_stored_transaction_of_a_client_id_with_separators_reads_back_whole(
    app, http, world, clock
):
    from authserver.admin import create_client
    from authserver.models import Tenant

    tenant = world.tenant()
    with app.app_context():
        client_id = create_client(
            db.session.get(Tenant, tenant), "kiosk", [DEVICE_GRANT], "none", client_id="kiosk|a|b"
        ).client.client_id
    code = pending(app, http, client_id)["device_code"]
    assert polled(http, client_id, code) == (400, "authorization_pending")  # stored
    clock.advance(5)
    assert polled(http, client_id, code) == (400, "authorization_pending")  # read back whole


def test_a_grown_interval_holds_for_polls_answered_from_the_store(app, http, world, clock):
    """RFC 8628 §3.5: after slow_down the interval is 5 s longer for every later poll, also
    when the transaction's entry in the store was written with the old one."""
    _, client = kiosk_world(world)
    code = pending(app, http, client.client_id)["device_code"]
    assert polled(http, client.client_id, code) == (400, "authorization_pending")  # stored: 5 s
    assert polled(http, client.client_id, code) == (400, "slow_down")  # now 10 s
    clock.advance(10)
    assert polled(http, client.client_id, code) == (400, "authorization_pending")
    clock.advance(6)  # enough for the old interval, not for the grown one
    assert polled(http, client.client_id, code) == (400, "slow_down")


def test_another_clients_poll_of_a_stored_transaction_is_an_unknown_code(app, http, world, clock):
    tenant, client = kiosk_world(world)
    other = world.client(tenant, grant_types=(DEVICE_GRANT,), auth_method="none")
    code = pending(app, http, client.client_id)["device_code"]
    assert polled(http, client.client_id, code) == (400, "authorization_pending")  # stored
    clock.advance(5)
    assert polled(http, other.client_id, code) == (400, "invalid_grant")
    assert polled(http, client.client_id, code) == (400, "authorization_pending")


def test_a_poll_that_computed_a_shorter_interval_does_not_shorten_the_stored_one(app, http, world):
    _, client = kiosk_world(world)
    code = pending(app, http, client.client_id)["device_code"]
    with app.app_context():
        code_hash, _ = device_flow.poll_keys(code)
        row = device_flow.find_for_client(db.session.get(Client, client.client_id), code_hash, {})
        hot = app.extensions["authserver"].direct
        hot.write(device_flow._GROW_INTERVAL, {"b_id": row.id, "b_interval": 15})
        hot.write(device_flow._GROW_INTERVAL, {"b_id": row.id, "b_interval": 10})  # late, stale
        db.session.expire_all()
        assert db.session.get(DeviceAuthorization, row.id).interval == 15
