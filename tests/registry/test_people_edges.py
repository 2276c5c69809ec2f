"""People: each check on its own (found by mutation testing of ``authserver/users.py``): the
active-user gate without the revocation that normally comes with it, what a replacement resets,
what every change records, and the limits."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from authserver.models import Tenant, User, db
from tests.conftest import cc_token

USERS = "/api/v1/users"


@pytest.fixture
def t(reg):
    return reg.tenant()


@pytest.fixture
def svc(reg, world, t):
    creds = world.client(t.id, scope="users:read users:write devices:read devices:write")
    return cc_token(reg.http, creds).get_json()["access_token"]


def problem(resp, status, field=None):
    assert resp.status_code == status, resp.get_json()
    body = resp.get_json()
    if field is not None:
        assert body.get("field") == field, body
    return body


# -- the active-user gate, alone ------------------------------------------------------------------
# Deactivating a user through the API also revokes their tokens; these change the row directly,
# so only the gate (users.get_active) stands between the still-valid token and the account.


@pytest.mark.parametrize("how", ["user_inactive", "user_gone", "tenant_inactive"])
def test_a_valid_token_of_an_inactive_user_or_tenant_reaches_nothing(reg, t, how):
    token = reg.user_token(t, "ana", ("TENANT.ADMIN",), scope="users:read users:write")
    assert reg.call("GET", f"{USERS}/me", token).status_code == 200
    assert reg.call("GET", USERS, token).status_code == 200
    with reg.app.app_context():
        user = db.session.scalar(db.select(User).filter_by(tenant_id=t.id, login="ana"))
        if how == "user_inactive":
            user.active = False
        elif how == "user_gone":
            db.session.delete(user)
        else:
            db.session.get(Tenant, t.id).active = False
        db.session.commit()
    assert reg.call("GET", f"{USERS}/me", token).status_code in (401, 403)
    assert reg.call("GET", USERS, token).status_code in (401, 403)
    if how != "tenant_inactive":
        # The tenant's other people go on.
        other = reg.user_token(t, "bob", ("TENANT.ADMIN",), scope="users:read")
        assert reg.call("GET", USERS, other).status_code == 200


def test_the_authenticator_app_shows_the_tenants_name(reg, world):
    tid = world.tenant("Corner Shop")
    world.user(tid, login="admin", password="correct horse", roles=("TENANT.ADMIN",))
    from tests.registry.conftest import Tenant as RegTenant

    t = RegTenant(id=tid, service=None, reader=None, pos=None)  # type: ignore[arg-type]
    token = reg.user_token(t, "ana", ())
    made = reg.call("POST", f"{USERS}/me/totp/secret", token).get_json()["data"]
    assert unquote(made["otpauthUri"]).startswith("otpauth://totp/Corner Shop:ana")


# -- a replacement (PUT) resets what it does not send ---------------------------------------------


def test_a_replacement_resets_every_field_it_does_not_send(reg, t, svc):
    loc = reg.call("POST", "/api/v1/locations", svc, json={"name": "Main"}).get_json()["data"]
    made = reg.call("POST", USERS, svc, json={
        "login": "ana", "firstName": "Ana", "lastName": "Nowak", "phone": "600100200",
        "pushId": "fcm:1", "consents": ["terms"], "properties": {"team": "north"},
        "trusted": True, "roles": [{"role": "STAFF", "locationId": loc["id"]}],
        "password": "correct horse battery", "staffCode": "4321",
    }).get_json()["data"]  # fmt: skip
    reg.call("PATCH", f"{USERS}/{made['id']}", svc, json={"active": False})
    replaced = reg.call("PUT", f"{USERS}/{made['id']}", svc, json={"login": "ana.n"})
    assert replaced.status_code == 200, replaced.get_json()
    data = replaced.get_json()["data"]
    assert data["login"] == "ana.n"
    for name, cleared in (("firstName", None), ("lastName", None), ("phone", None),
                          ("pushId", None), ("consents", []), ("properties", {}),
                          ("trusted", False), ("roles", []), ("active", True)):  # fmt: skip
        assert data[name] == cleared, name
    # The password and the staff code stay unless sent.
    assert data["passwordSet"] is True and data["staffCodeSet"] is True


def test_a_replacement_sets_what_it_sends(reg, t, svc):
    made = reg.call("POST", USERS, svc, json={"login": "ana"}).get_json()["data"]
    body = {
        "login": "ana",
        "consents": ["terms"],
        "properties": {"vip": True},
        "trusted": True,
        "active": False,
        "staffCode": "9876",
        "password": "a new long password",
    }
    data = reg.call("PUT", f"{USERS}/{made['id']}", svc, json=body).get_json()["data"]
    assert (data["consents"], data["properties"], data["trusted"], data["active"]) == (
        ["terms"], {"vip": True}, True, False
    )  # fmt: skip
    assert data["staffCodeSet"] is True and data["passwordSet"] is True


def test_creating_a_user_with_a_taken_id_is_a_409(reg, t, svc):
    made = reg.call("PUT", f"{USERS}/usr_chosen01", svc, json={"login": "ana"})
    assert made.status_code == 201, made.get_json()
    taken = reg.call("POST", USERS, svc, json={"id": "usr_chosen01", "login": "other"})
    problem(taken, 409)
    assert reg.call("GET", f"{USERS}/usr_chosen01", svc).get_json()["data"]["login"] == "ana"


# -- what changes record -----------------------------------------------------------------------------


def test_every_change_to_a_person_is_audited_with_what_changed(reg, t, svc):
    auditor = reg.user_token(t, "auditor", ("TENANT.ADMIN",), scope="devices:read")

    def events(type_: str) -> list[dict]:
        resp = reg.call("GET", f"/api/v1/audit-events?type={type_}", auditor)
        assert resp.status_code == 200
        return resp.get_json()["data"]

    made = reg.call("POST", USERS, svc, json={"login": "ana"}).get_json()["data"]
    created = [(e["data"]["user_id"], e["data"]["login"]) for e in events("user.created")]
    assert created[0] == (made["id"], "ana")
    reg.now.advance(1)
    reg.call("PATCH", f"{USERS}/{made['id']}", svc,
             json={"login": "ana2", "staffCode": "5555", "roles": [{"role": "STAFF"}],
                   "firstName": "Ana"})  # fmt: skip
    updated = [e for e in events("user.updated") if e["data"]["user_id"] == made["id"]]
    assert sorted(updated[0]["data"]["changed"]) == ["firstName", "login", "roles", "staffCode"]
    reg.now.advance(1)
    reg.call("PATCH", f"{USERS}/{made['id']}", svc, json={"active": False})
    reg.now.advance(1)
    reg.call("PATCH", f"{USERS}/{made['id']}", svc, json={"active": True})
    assert [e["data"]["user_id"] for e in events("user.disabled")] == [made["id"]]
    assert [e["data"]["user_id"] for e in events("user.enabled")] == [made["id"]]
    # Status changes are their own events: no user.updated for them.
    updated = [e for e in events("user.updated") if e["data"]["user_id"] == made["id"]]
    assert len(updated) == 1
    # Sending the status it already has changes and records nothing.
    reg.now.advance(1)
    reg.call("PATCH", f"{USERS}/{made['id']}", svc, json={"active": True})
    assert len(events("user.enabled")) == 1
    reg.call("POST", "/api/v1/roles/grants", svc, json={"role": "DEVICE.MANAGER",
                                                         "logins": ["ana2"]})  # fmt: skip
    granted = events("role.granted")
    assert granted[0]["data"]["role"] == "DEVICE.MANAGER"
    assert granted[0]["data"]["user_ids"] == [made["id"]]
    reg.call("POST", "/api/v1/roles/revocations", svc, json={"roles": ["STAFF"]})
    revoked = events("role.revoked")
    assert revoked[0]["data"]["roles"] == ["STAFF"] and revoked[0]["data"]["users"] >= 1
    reg.call("DELETE", f"{USERS}/{made['id']}", svc)
    deleted = events("user.deleted")
    assert deleted[0]["data"] == {"user_id": made["id"], "login": "ana2"}


def test_changes_move_updated_at(reg, t, svc):
    made = reg.call("POST", USERS, svc, json={"login": "ana"}).get_json()["data"]
    stamps = [made["updatedAt"]]
    for method, path, body in (
        ("PATCH", f"{USERS}/{made['id']}", {"firstName": "Ana"}),
        ("POST", "/api/v1/roles/grants", {"role": "STAFF", "logins": ["ana"]}),
        ("POST", "/api/v1/roles/revocations", {"roles": ["STAFF"]}),
    ):
        reg.now.advance(2)
        assert reg.call(method, path, svc, json=body).status_code == 200
        stamps.append(reg.call("GET", f"{USERS}/{made['id']}", svc).get_json()["data"]["updatedAt"])
    assert len(set(stamps)) == len(stamps) and stamps == sorted(stamps)
    token = reg.user_token(t, "bob", ())
    before = reg.call("GET", f"{USERS}/me", token).get_json()["data"]["updatedAt"]
    reg.now.advance(2)
    after = reg.call("POST", f"{USERS}/me/consents", token, json={"set": ["terms"]})
    assert after.get_json()["data"]["updatedAt"] > before


# -- limits and rights -------------------------------------------------------------------------------


def test_at_most_sixteen_consents(reg, t):
    token = reg.user_token(t, "ana", ())
    sixteen = [f"c{i}" for i in range(16)]
    ok = reg.call("POST", f"{USERS}/me/consents", token, json={"set": sixteen})
    assert ok.status_code == 200 and len(ok.get_json()["data"]["consents"]) == 16
    problem(reg.call("POST", f"{USERS}/me/consents", token, json={"set": ["c16"]}), 400, "set")
    again = reg.call("POST", f"{USERS}/me/consents", token, json={"set": ["c0"], "unset": ["c1"]})
    assert len(again.get_json()["data"]["consents"]) == 15


def test_a_role_at_a_location_that_does_not_exist_is_refused_beside_real_ones(reg, t, svc):
    reg.call("POST", "/api/v1/locations", svc, json={"name": "Main"})
    body = {"login": "ana", "roles": [{"role": "STAFF", "locationId": "loc_missing"}]}
    problem(reg.call("POST", USERS, svc, json=body), 400, "roles")


def test_a_user_manager_cannot_take_or_link_what_they_could_not_give(reg, t, svc):
    manager = reg.user_token(t, "um", ("USER.MANAGER",))
    admin_id = reg.call("POST", USERS, svc, json={
        "login": "boss", "roles": [{"role": "TENANT.ADMIN"}]}).get_json()["data"]["id"]  # fmt: skip
    problem(reg.call("POST", "/api/v1/roles/revocations", manager,
                     json={"roles": ["TENANT.ADMIN"]}), 403)  # fmt: skip
    problem(reg.call("PUT", f"{USERS}/{admin_id}/auth-strategies", manager,
                     json={"strategy": "FB", "id": "boss-fb"}), 403)  # fmt: skip
    boss = reg.call("GET", f"{USERS}/{admin_id}", svc).get_json()["data"]
    assert boss["roles"] == [{"role": "TENANT.ADMIN", "locationId": None}]
    assert reg.call("GET", f"{USERS}/{admin_id}/auth-strategies", svc).get_json()["data"] == []
