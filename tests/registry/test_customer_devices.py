"""Customers' devices over HTTP (seed 003): phones they own (push targets, unregistering revokes
the tokens bound to the phone's key) and cards the tenant issues them (masked, with a lifecycle);
customer A vs customer B, back office vs service vs device, tenant vs tenant."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.conftest import cc_token
from tests.device_helpers import DEVICE_GRANT, approve, poll, start
from tests.dpop_client import DPoPKey

MINE = "/api/v1/users/me/owned-devices"
ISSUED_MINE = "/api/v1/users/me/issued-devices"
CD = "customer-devices:read customer-devices:write"
PHONE = {
    "externalDeviceIdentifier": "990000862471854",
    "operatingSystem": "iOS 17.2",
    "nickname": "My Phone",
    "brandName": "Apple iPhone",
    "modelName": "15",
    "installationId": "inst-1",
    "pushId": "fcm:abc",
    "pushExpiresAt": "2030-01-01T00:00:00Z",
}


@pytest.fixture
def t(reg):
    return reg.tenant()


@pytest.fixture
def office(reg, world, t):
    return cc_token(reg.http, world.client(t.id, scope=CD)).get_json()["access_token"]


def customer(reg, t, login: str) -> tuple[str, str]:
    """A customer (a user without roles) and their own token."""
    token = reg.user_token(t, login, (), scope="devices:read")
    me = reg.call("GET", "/api/v1/users/me", token).get_json()["data"]
    return me["id"], token


def bound_customer_token(reg, world, t, login: str, key: DPoPKey) -> dict:
    """A customer's DPoP-bound token set, from a sign-in (device flow) bound to ``key``."""
    from authserver.models import Client, db

    client = world.client(t.id, grant_types=(DEVICE_GRANT, "refresh_token"), auth_method="none",
                          scope="devices:read")  # fmt: skip
    with reg.app.app_context():
        db.session.get(Client, client.client_id).device_subject = "user"
        db.session.commit()
    issuer = reg.settings.issuer
    body = start(
        reg.http, client.client_id, proof=key.proof("POST", issuer + "/oauth/device_authorization")
    ).get_json()
    approve(reg.app, body["user_code"], login)
    resp = poll(reg.http, client.client_id, body["device_code"],
                proof=key.proof("POST", issuer + "/oauth/token"))  # fmt: skip
    assert resp.status_code == 200, resp.get_json()
    return {**resp.get_json(), "client_id": client.client_id}


def problem(resp, status, field=None):
    assert resp.status_code == status, resp.get_json()
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    body = resp.get_json()
    if field is not None:
        assert body.get("field") == field, body
    return body


# -- owned devices: the customer's own -------------------------------------------------------------


def test_a_customer_registers_reads_lists_updates_and_unregisters_a_phone(reg, t):
    _, token = customer(reg, t, "ana")
    made = reg.call("POST", MINE, token, json=PHONE)
    assert made.status_code == 201, made.get_json()
    phone = made.get_json()["data"]
    assert phone["id"].startswith("own_") and phone["status"] == "ACTIVE"
    for name in ("externalDeviceIdentifier", "operatingSystem", "nickname", "brandName",
                 "modelName", "installationId", "pushId"):  # fmt: skip
        assert phone[name] == PHONE[name], name
    assert phone["pushExpiresAt"] == "2030-01-01T00:00:00.000Z"
    assert phone["dpopBound"] is False
    assert reg.call("GET", f"{MINE}/{phone['id']}", token).get_json()["data"] == phone
    assert [d["id"] for d in reg.call("GET", MINE, token).get_json()["data"]] == [phone["id"]]

    changed = reg.call(
        "PATCH",
        f"{MINE}/{phone['id']}",
        token,
        json={"nickname": "Work phone", "pushId": "fcm:new", "pushExpiresAt": None},
    )
    assert changed.status_code == 200
    data = changed.get_json()["data"]
    assert (data["nickname"], data["pushId"], data["pushExpiresAt"]) == (
        "Work phone", "fcm:new", None
    )  # fmt: skip

    gone = reg.call("POST", f"{MINE}/{phone['id']}/unregister", token)
    assert gone.status_code == 202
    gone = gone.get_json()["data"]
    assert gone["status"] == "UNREGISTERED" and gone["pushId"] is None and gone["unregisteredAt"]
    problem(reg.call("PATCH", f"{MINE}/{phone['id']}", token, json={"nickname": "x"}), 409)
    # Its identifier is free again; the unregistered one stays in the history.
    again = reg.call("POST", MINE, token, json=PHONE)
    assert again.status_code == 201
    listed = reg.call("GET", f"{MINE}?status=UNREGISTERED", token).get_json()["data"]
    assert [d["id"] for d in listed] == [phone["id"]]
    listed = reg.call("GET", f"{MINE}?status=ACTIVE", token).get_json()["data"]
    assert [d["id"] for d in listed] == [again.get_json()["data"]["id"]]


def test_the_identifier_is_unique_per_customer(reg, t):
    _, ana = customer(reg, t, "ana")
    _, bob = customer(reg, t, "bob")
    assert reg.call("POST", MINE, ana, json=PHONE).status_code == 201
    problem(reg.call("POST", MINE, ana, json=PHONE), 409, "externalDeviceIdentifier")
    assert reg.call("POST", MINE, bob, json=PHONE).status_code == 201  # another customer's


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "externalDeviceIdentifier"),
        ({"externalDeviceIdentifier": "has space"}, "externalDeviceIdentifier"),
        ({"externalDeviceIdentifier": "x" * 65}, "externalDeviceIdentifier"),
        ({**PHONE, "pushExpiresAt": "tomorrow"}, "pushExpiresAt"),
        ({**PHONE, "pushExpiresAt": "2030-01-01T00:00:00"}, "pushExpiresAt"),  # no zone
        ({**PHONE, "pushId": "bad push id"}, "pushId"),
        ({**PHONE, "nickname": "a\u202eb"}, None),  # refused for the whole body
        ({**PHONE, "imei": "1"}, None),
    ],
)
def test_a_bad_registration_is_a_400_and_nothing_is_stored(reg, t, body, field):
    _, token = customer(reg, t, "ana")
    problem(reg.call("POST", MINE, token, json=body), 400, field)
    assert reg.call("GET", MINE, token).get_json()["data"] == []


def test_another_customer_cannot_see_or_touch_a_phone(reg, world, t, office):
    _, ana = customer(reg, t, "ana")
    _, bob = customer(reg, t, "bob")
    phone = reg.call("POST", MINE, ana, json=PHONE).get_json()["data"]
    for method, path, body in (("GET", f"{MINE}/{phone['id']}", None),
                               ("PATCH", f"{MINE}/{phone['id']}", {"nickname": "mine now"}),
                               ("POST", f"{MINE}/{phone['id']}/unregister", None)):  # fmt: skip
        problem(reg.call(method, path, bob, json=body), 404)
    assert reg.call("GET", MINE, bob).get_json()["data"] == []
    still = reg.call("GET", f"{MINE}/{phone['id']}", ana).get_json()["data"]
    assert still["status"] == "ACTIVE" and still["nickname"] == "My Phone"
    # Nor can a customer of another tenant, nor its back office.
    other = reg.tenant()
    _, eve = customer(reg, other, "eve")
    problem(reg.call("GET", f"{MINE}/{phone['id']}", eve), 404)
    their_office = cc_token(reg.http, world.client(other.id, scope=CD)).get_json()["access_token"]
    ana_id = reg.call("GET", "/api/v1/users/me", ana).get_json()["data"]["id"]
    problem(reg.call("GET", f"/api/v1/users/{ana_id}/owned-devices", their_office), 404)
    problem(reg.call("GET", f"/api/v1/users/{ana_id}/push-targets", their_office), 404)


def test_unregistering_revokes_the_tokens_bound_to_the_phones_key_only(reg, world, t):
    customer(reg, t, "ana")  # creates ana
    key = DPoPKey()
    phone_tokens = bound_customer_token(reg, world, t, "ana", key)
    assert phone_tokens["token_type"] == "DPoP"
    other_key = DPoPKey()
    tablet_tokens = bound_customer_token(reg, world, t, "ana", other_key)
    _, bob = customer(reg, t, "bob")
    bob_key = DPoPKey()
    bob_tokens = bound_customer_token(reg, world, t, "bob", bob_key)

    def me(tokens, k) -> int:
        return reg.call("GET", "/api/v1/users/me", tokens["access_token"], key=k).status_code

    made = reg.call("POST", MINE, phone_tokens["access_token"], key=key, json=PHONE)
    assert made.status_code == 201 and made.get_json()["data"]["dpopBound"] is True
    bob_phone = reg.call("POST", MINE, bob_tokens["access_token"], key=bob_key, json=PHONE)
    assert bob_phone.status_code == 201
    reg.now.advance(1)
    # Unregistered from the tablet: the phone's tokens stop, the tablet's go on.
    gone = reg.call("POST", f"{MINE}/{made.get_json()['data']['id']}/unregister",
                    tablet_tokens["access_token"], key=other_key)  # fmt: skip
    assert gone.status_code == 202
    assert me(phone_tokens, key) == 401
    refreshed = reg.http.post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": phone_tokens["refresh_token"],
        "client_id": phone_tokens["client_id"]},
        headers={"DPoP": key.proof("POST", reg.settings.issuer + "/oauth/token")})  # fmt: skip
    assert refreshed.status_code == 400 and refreshed.get_json()["error"] == "invalid_grant"
    assert me(tablet_tokens, other_key) == 200
    assert me(bob_tokens, bob_key) == 200
    assert reg.call("GET", "/api/v1/users/me", bob).status_code == 200


# -- owned devices: the back office and services ----------------------------------------------------


def test_a_service_lists_a_customers_devices_and_live_push_targets(reg, t, office):
    ana_id, ana = customer(reg, t, "ana")
    bob_id, bob = customer(reg, t, "bob")
    live = reg.call("POST", MINE, ana, json=PHONE).get_json()["data"]
    no_expiry = reg.call(
        "POST",
        MINE,
        ana,
        json={**PHONE, "externalDeviceIdentifier": "w1", "pushId": "apns:w", "pushExpiresAt": None},
    )
    expired = reg.call(
        "POST",
        MINE,
        ana,
        json={**PHONE, "externalDeviceIdentifier": "t1", "pushExpiresAt": "2001-01-01T00:00:00Z"},
    )
    no_push = reg.call("POST", MINE, ana, json={"externalDeviceIdentifier": "p2"})
    gone = reg.call("POST", MINE, ana, json={**PHONE, "externalDeviceIdentifier": "old"})
    reg.call("POST", f"{MINE}/{gone.get_json()['data']['id']}/unregister", ana)
    reg.call("POST", MINE, bob, json=PHONE)
    assert all(r.status_code == 201 for r in (no_expiry, expired, no_push, gone))

    listed = reg.call("GET", f"/api/v1/users/{ana_id}/owned-devices", office).get_json()["data"]
    assert len(listed) == 5 and {d["customerId"] for d in listed} == {ana_id}
    targets = reg.call("GET", f"/api/v1/users/{ana_id}/push-targets", office).get_json()["data"]
    assert [(x["ownedDeviceId"], x["pushId"]) for x in targets] == [
        (live["id"], "fcm:abc"), (no_expiry.get_json()["data"]["id"], "apns:w")
    ]  # fmt: skip
    problem(reg.call("GET", f"/api/v1/users/{ana_id}/push-targets?all=1", office), 400)
    problem(reg.call("GET", "/api/v1/users/usr_nobody1/push-targets", office), 404)


@pytest.mark.parametrize(
    "caller, read, write",
    [("service", 200, 202), ("reader", 200, 403), ("devices_service", 403, 403),
     ("admin", 200, 202), ("user_manager", 200, 202), ("device_manager", 403, 403),
     ("customer_self", 403, 403), ("device", 403, 403)],
)  # fmt: skip
def test_who_may_see_and_unregister_a_customers_devices(reg, world, t, caller, read, write):
    ana_id, ana = customer(reg, t, "ana")
    phone = reg.call("POST", MINE, ana, json=PHONE).get_json()["data"]
    key = None
    if caller == "service":
        token = cc_token(reg.http, world.client(t.id, scope=CD)).get_json()["access_token"]
    elif caller == "reader":
        token = cc_token(reg.http, world.client(t.id, scope="customer-devices:read")).get_json()[
            "access_token"
        ]
    elif caller == "devices_service":
        token = reg.service_token(t)
    elif caller == "customer_self":
        token = ana
    elif caller == "device":
        _, tokens, key = reg.linked_device(t)
        token = tokens["access_token"]
    else:
        role = {"admin": "TENANT.ADMIN", "user_manager": "USER.MANAGER",
                "device_manager": "DEVICE.MANAGER"}[caller]  # fmt: skip
        token = reg.user_token(t, f"c-{caller}", (role,), scope=CD)
    got = reg.call("GET", f"/api/v1/users/{ana_id}/owned-devices", token, key=key)
    assert got.status_code == read
    done = reg.call("POST", f"/api/v1/users/{ana_id}/owned-devices/{phone['id']}/unregister",
                    token, key=key)  # fmt: skip
    assert done.status_code == write
    status = reg.call("GET", f"{MINE}/{phone['id']}", ana).get_json()["data"]["status"]
    assert status == ("UNREGISTERED" if write == 202 else "ACTIVE")


# -- issued devices ----------------------------------------------------------------------------------


def issue(reg, office, user_id, status=201, **body):
    body.setdefault("kind", "PAYMENT_CARD")
    body.setdefault("maskedIdentifier", "**** **** **** 4242")
    resp = reg.call("POST", f"/api/v1/users/{user_id}/issued-devices", office, json=body)
    assert resp.status_code == status, resp.get_json()
    return resp.get_json().get("data", resp.get_json())


def move(reg, office, user_id, device_id, status, **extra):
    return reg.call("POST", f"/api/v1/users/{user_id}/issued-devices/{device_id}/status", office,
                    json={"status": status, **extra})  # fmt: skip


def test_an_issued_card_moves_along_its_lifecycle_with_who_and_when(reg, t, office):
    ana_id, ana = customer(reg, t, "ana")
    card = issue(reg, office, ana_id, label="Visa Debit")
    assert (card["status"], card["kind"], card["maskedIdentifier"]) == (
        "ORDERED", "PAYMENT_CARD", "**** **** **** 4242"
    )  # fmt: skip
    for status in ("ACTIVE", "BLOCKED", "ACTIVE", "LOST", "CLOSED"):
        reg.now.advance(60)
        resp = move(reg, office, ana_id, card["id"], status, reason=f"to {status}")
        assert resp.status_code == 200, resp.get_json()
    history = resp.get_json()["data"]["statuses"]
    assert [s["status"] for s in history] == ["ORDERED", "ACTIVE", "BLOCKED", "ACTIVE", "LOST",
                                              "CLOSED"]  # fmt: skip
    assert history[2]["reason"] == "to BLOCKED" and history[2]["changedBy"].startswith("cli_")
    assert history[0]["changedAt"] < history[-1]["changedAt"]
    # The customer reads their own, with the same history.
    mine = reg.call("GET", f"{ISSUED_MINE}/{card['id']}", ana).get_json()["data"]
    assert mine["status"] == "CLOSED" and mine["statuses"] == history
    assert [d["id"] for d in reg.call("GET", ISSUED_MINE, ana).get_json()["data"]] == [card["id"]]


@pytest.mark.parametrize(
    "path, status",
    [(["ACTIVE", "CLOSED"], "ACTIVE"), ([], "BLOCKED"), ([], "LOST"), (["ACTIVE", "LOST"], "ACTIVE"),
     (["ACTIVE", "EXPIRED"], "BLOCKED"), ([], "ORDERED"), (["ACTIVE"], "ACTIVE")],
)  # fmt: skip
def test_an_illegal_transition_is_a_409_and_changes_nothing(reg, t, office, path, status):
    ana_id, _ = customer(reg, t, "ana")
    card = issue(reg, office, ana_id)
    for step in path:
        assert move(reg, office, ana_id, card["id"], step).status_code == 200
    body = problem(move(reg, office, ana_id, card["id"], status), 409)
    assert body["code"] == "illegal_transition"
    now = reg.call("GET", f"/api/v1/users/{ana_id}/issued-devices/{card['id']}", office)
    assert now.get_json()["data"]["status"] == (path[-1] if path else "ORDERED")
    assert len(now.get_json()["data"]["statuses"]) == len(path) + 1


@pytest.mark.parametrize(
    "masked",
    ["4242424242424242", "4242 4242 4242 4242", "**** 4242 4242 4242", "1234", "***",
     "**** **** **** 42a<"],
)  # fmt: skip
def test_a_whole_card_number_is_never_stored(reg, t, office, masked):
    ana_id, ana = customer(reg, t, "ana")
    problem(reg.call("POST", f"/api/v1/users/{ana_id}/issued-devices", office,
                     json={"kind": "PAYMENT_CARD", "maskedIdentifier": masked}), 400,
            "maskedIdentifier")  # fmt: skip
    assert reg.call("GET", ISSUED_MINE, ana).get_json()["data"] == []


def test_customers_read_only_their_own_issued_devices_and_cannot_change_them(reg, t, office):
    ana_id, ana = customer(reg, t, "ana")
    bob_id, bob = customer(reg, t, "bob")
    card = issue(reg, office, ana_id)
    problem(reg.call("GET", f"{ISSUED_MINE}/{card['id']}", bob), 404)
    assert reg.call("GET", ISSUED_MINE, bob).get_json()["data"] == []
    problem(move(reg, ana, ana_id, card["id"], "ACTIVE"), 403)  # no role: not the back office
    problem(reg.call("POST", f"/api/v1/users/{bob_id}/issued-devices", ana,
                     json={"kind": "OTHER", "maskedIdentifier": "****1"}), 403)  # fmt: skip
    # The back office cannot reach the card through another customer's path either.
    problem(move(reg, office, bob_id, card["id"], "ACTIVE"), 404)
    assert reg.call("GET", f"{ISSUED_MINE}/{card['id']}", ana).get_json()["data"]["status"] == (
        "ORDERED"
    )


def test_deleting_a_customer_deletes_their_devices(reg, t, office):
    ana_id, ana = customer(reg, t, "ana")
    reg.call("POST", MINE, ana, json=PHONE)
    issue(reg, office, ana_id)
    users_admin = cc_token(
        reg.http, reg.world.client(t.id, scope="users:write users:read")
    ).get_json()["access_token"]
    assert reg.call("DELETE", f"/api/v1/users/{ana_id}", users_admin).status_code == 200
    problem(reg.call("GET", f"/api/v1/users/{ana_id}/push-targets", office), 404)
    from authserver.models import IssuedDevice, IssuedDeviceStatus, OwnedDevice, db

    with reg.app.app_context():
        assert db.session.query(OwnedDevice).filter_by(user_id=ana_id).count() == 0
        assert db.session.query(IssuedDevice).filter_by(user_id=ana_id).count() == 0
        assert db.session.query(IssuedDeviceStatus).count() == 0


def test_customer_device_changes_are_audited(reg, t, office):
    ana_id, ana = customer(reg, t, "ana")
    phone = reg.call("POST", MINE, ana, json=PHONE).get_json()["data"]
    reg.now.advance(1)
    reg.call("POST", f"{MINE}/{phone['id']}/unregister", ana)
    reg.now.advance(1)
    card = issue(reg, office, ana_id)
    reg.now.advance(1)
    move(reg, office, ana_id, card["id"], "ACTIVE")
    auditor = reg.user_token(t, "auditor", ("TENANT.ADMIN",))
    events = reg.call("GET", "/api/v1/audit-events", auditor).get_json()["data"]
    ours = [(e["type"], e["actor"]) for e in events if "_device." in e["type"]]
    assert [x[0] for x in ours] == [
        "issued_device.status_changed",
        "issued_device.created",
        "owned_device.unregistered",
        "owned_device.registered",
    ]
    assert ours[-1][1] == ana_id and ours[0][1].startswith("cli_")


def test_unregistering_revokes_the_owners_tokens_on_the_key_not_another_persons(reg, world, t):
    """A shared screen: two people sign in with the same key. Ana unregisters the device she
    registered with it: her tokens on that key go, Bob's stay."""
    customer(reg, t, "ana")
    customer(reg, t, "bob")
    key = DPoPKey()
    ana = bound_customer_token(reg, world, t, "ana", key)
    bob = bound_customer_token(reg, world, t, "bob", key)
    made = reg.call("POST", MINE, ana["access_token"], key=key, json=PHONE).get_json()["data"]
    reg.now.advance(1)
    gone = reg.call("POST", f"{MINE}/{made['id']}/unregister", ana["access_token"], key=key)
    assert gone.status_code == 202
    assert reg.call("GET", "/api/v1/users/me", ana["access_token"], key=key).status_code == 401
    assert reg.call("GET", "/api/v1/users/me", bob["access_token"], key=key).status_code == 200


# -- each check on its own (from a mutation run of authserver/customer_devices.py) ------------------


def test_an_unknown_phone_is_a_404_and_a_change_is_kept_with_its_time(reg, t):
    _, token = customer(reg, t, "ana")
    problem(reg.call("GET", f"{MINE}/own_nosuchdevice", token), 404)
    problem(reg.call("PATCH", f"{MINE}/own_nosuchdevice", token, json={"nickname": "x"}), 404)
    phone = reg.call("POST", MINE, token, json=PHONE).get_json()["data"]
    reg.now.advance(2)
    reg.call("PATCH", f"{MINE}/{phone['id']}", token, json={"nickname": "Work phone"})
    read = reg.call("GET", f"{MINE}/{phone['id']}", token).get_json()["data"]
    assert read["nickname"] == "Work phone" and read["updatedAt"] > phone["updatedAt"]
    reg.now.advance(2)
    gone = reg.call("POST", f"{MINE}/{phone['id']}/unregister", token).get_json()["data"]
    assert gone["pushId"] is None and gone["pushExpiresAt"] is None
    assert gone["updatedAt"] > read["updatedAt"]
    assert reg.call("GET", f"{MINE}/{phone['id']}", token).get_json()["data"] == gone


def test_a_push_id_stops_being_a_target_at_its_expiry(reg, t, office):
    ana_id, ana = customer(reg, t, "ana")
    ends = int(reg.now()) + 60
    stamp = datetime.fromtimestamp(ends, UTC)
    reg.call(
        "POST", MINE, ana, json={**PHONE, "pushExpiresAt": stamp.strftime("%Y-%m-%dT%H:%M:%SZ")}
    )
    path = f"/api/v1/users/{ana_id}/push-targets"
    reg.now.t = ends - 1
    assert len(reg.call("GET", path, office).get_json()["data"]) == 1
    reg.now.t = ends
    assert reg.call("GET", path, office).get_json()["data"] == []


def test_unregistering_says_why_the_phones_sessions_ended(reg, world, t):
    from sqlalchemy import select

    from authserver.models import RefreshFamily, db

    customer(reg, t, "ana")
    key = DPoPKey()
    tokens = bound_customer_token(reg, world, t, "ana", key)
    phone = reg.call("POST", MINE, tokens["access_token"], key=key, json=PHONE).get_json()["data"]
    reg.call("POST", f"{MINE}/{phone['id']}/unregister", tokens["access_token"], key=key)
    with reg.app.app_context():
        reasons = db.session.scalars(select(RefreshFamily.revoked_reason)).all()
    assert reasons == ["device_unregistered"]


def test_an_issued_device_may_start_active_with_the_reason_kept(reg, t, office):
    ana_id, _ = customer(reg, t, "ana")
    resp = reg.call("POST", f"/api/v1/users/{ana_id}/issued-devices", office,
                    json={"kind": "HARDWARE_TOKEN", "maskedIdentifier": "TOKEN-****-7781",
                          "status": "ACTIVE", "reason": "handed over at the branch"})  # fmt: skip
    assert resp.status_code == 201, resp.get_json()
    card = resp.get_json()["data"]
    assert card["id"].startswith("isd_") and card["status"] == "ACTIVE"
    read = reg.call("GET", f"/api/v1/users/{ana_id}/issued-devices/{card['id']}", office)
    assert read.get_json()["data"]["statuses"] == [
        {"status": "ACTIVE", "changedBy": card["createdBy"], "changedAt": card["createdAt"],
         "reason": "handed over at the branch"}
    ]  # fmt: skip
    reg.now.advance(5)
    moved = move(reg, office, ana_id, card["id"], "BLOCKED").get_json()["data"]
    assert moved["updatedAt"] > card["updatedAt"]
    assert [s["status"] for s in moved["statuses"]] == ["ACTIVE", "BLOCKED"]


# The lifecycle as documented (docs/reference.md §4.12), written out here on purpose rather than
# read from the module, so that a wrong table in the code fails this test.
LIFECYCLE = {
    "ORDERED": {"ACTIVE", "CLOSED"},
    "ACTIVE": {"BLOCKED", "LOST", "EXPIRED", "CLOSED"},
    "BLOCKED": {"ACTIVE", "LOST", "EXPIRED", "CLOSED"},
    "LOST": {"CLOSED"},
    "EXPIRED": {"CLOSED"},
    "CLOSED": set(),
}
REACH = {"ORDERED": [], "ACTIVE": ["ACTIVE"], "BLOCKED": ["ACTIVE", "BLOCKED"],
         "LOST": ["ACTIVE", "LOST"], "EXPIRED": ["ACTIVE", "EXPIRED"], "CLOSED": ["CLOSED"]}  # fmt: skip


def test_every_move_of_the_lifecycle_is_allowed_or_refused_as_documented(reg, t, office):
    ana_id, _ = customer(reg, t, "ana")
    for origin, allowed in LIFECYCLE.items():
        for target in LIFECYCLE:
            card = issue(reg, office, ana_id)
            for step in REACH[origin]:
                assert move(reg, office, ana_id, card["id"], step).status_code == 200
            resp = move(reg, office, ana_id, card["id"], target)
            if target in allowed:
                assert resp.status_code == 200, (origin, target, resp.get_json())
                assert resp.get_json()["data"]["status"] == target
            else:
                body = problem(resp, 409)
                assert body["code"] == "illegal_transition", (origin, target)
                shown = ", ".join(sorted(allowed)) or "nothing (it is final)"
                assert body["detail"].endswith(f"is {origin} can become {shown}."), body


def test_of_two_changes_from_the_same_status_the_second_is_a_409(reg, t, office):
    from sqlalchemy import update

    from authserver import customer_devices as cd
    from authserver.models import IssuedDevice, db

    ana_id, _ = customer(reg, t, "ana")
    card = issue(reg, office, ana_id)
    with reg.app.app_context():
        stale = db.session.get(IssuedDevice, card["id"])
        assert stale.status == "ORDERED"
        # Another request activates it meanwhile, behind this session's back.
        with db.engine.begin() as conn:
            conn.execute(update(IssuedDevice).where(IssuedDevice.id == card["id"])
                         .values(status="ACTIVE"))  # fmt: skip
        with pytest.raises(cd.IllegalTransition, match="changed meanwhile"):
            cd.change_status(stale, "CLOSED", "usr_x", None)
    read = reg.call("GET", f"/api/v1/users/{ana_id}/issued-devices/{card['id']}", office)
    data = read.get_json()["data"]
    assert data["status"] == "ACTIVE" and [s["status"] for s in data["statuses"]] == ["ORDERED"]


def test_issued_devices_are_listed_by_status_and_an_unknown_one_is_a_404(reg, t, office):
    ana_id, ana = customer(reg, t, "ana")
    ordered = issue(reg, office, ana_id, label="Visa Debit")
    assert ordered["label"] == "Visa Debit"
    active = issue(reg, office, ana_id)
    move(reg, office, ana_id, active["id"], "ACTIVE")
    path = f"/api/v1/users/{ana_id}/issued-devices"
    listed = reg.call("GET", f"{path}?status=ACTIVE", office).get_json()["data"]
    assert [d["id"] for d in listed] == [active["id"]]
    mine = reg.call("GET", f"{ISSUED_MINE}?status=ORDERED", ana).get_json()["data"]
    assert [d["id"] for d in mine] == [ordered["id"]]
    problem(reg.call("GET", f"{path}/isd_nosuchdevice", office), 404)
    problem(reg.call("GET", f"{ISSUED_MINE}/isd_nosuchdevice", ana), 404)
    problem(move(reg, office, ana_id, "isd_nosuchdevice", "ACTIVE"), 404)


@pytest.mark.parametrize("masked, status", [("**** **** ***4 4242", 400), ("**** **** **** 4242", 201),
                                            ("12*345", 400), ("12*34", 201)])  # fmt: skip
def test_at_most_four_digits_of_a_masked_identifier_are_in_clear(reg, t, office, masked, status):
    ana_id, _ = customer(reg, t, "ana")
    issue(reg, office, ana_id, status=status, maskedIdentifier=masked)


def test_an_issued_device_is_a_card_a_hardware_token_or_other(reg, t, office):
    ana_id, _ = customer(reg, t, "ana")
    for kind in ("PAYMENT_CARD", "HARDWARE_TOKEN", "OTHER"):
        assert issue(reg, office, ana_id, kind=kind)["kind"] == kind
    body = issue(reg, office, ana_id, status=400, kind="WATCH")
    assert body["field"] == "kind"
