"""Issue 16's bulk operations on people, through the API: create many (JSON or CSV, all or
nothing, every failing row reported), disable / enable / delete many by ids or by filter (the
single user's rules: who may manage whom, audit events, tokens revoked), export."""

from __future__ import annotations

import csv
import io
import json

import pytest

from authserver import people_bulk
from authserver.models import User, db
from tests.conftest import cc_token
from tests.registry.conftest import audit_events

USERS = "/api/v1/users"
BULK = f"{USERS}/bulk"


@pytest.fixture
def t(reg):
    return reg.tenant()


@pytest.fixture
def svc(reg, world, t):
    creds = world.client(t.id, scope="users:read users:write")
    return cc_token(reg.http, creds).get_json()["access_token"]


@pytest.fixture
def loc(reg, t):
    resp = reg.call("POST", "/api/v1/locations", reg.service_token(t), json={"name": "Main"})
    return resp.get_json()["data"]["id"]


def me_status(reg, token) -> int:
    return reg.call("GET", f"{USERS}/me", token).status_code


def logins(reg, token, query: str = "") -> list[str]:
    resp = reg.call("GET", f"{USERS}?limit=200{query}", token)
    assert resp.status_code == 200, resp.get_json()
    return [u["login"] for u in resp.get_json()["data"]]


def test_bulk_create_from_json(reg, t, svc, loc, app):
    rows = [
        {"login": "anna@example.com", "staffCode": "4711", "password": "correct horse battery",
         "roles": [{"role": "STAFF", "locationId": loc}], "firstName": "Anna"},
        {"login": "ben@example.com", "staffCode": "4712", "kind": "staff"},
        {"login": "cara@example.com", "kind": "customer", "consents": ["terms_v2"]},
    ]  # fmt: skip
    resp = reg.call("POST", BULK, svc, json={"users": rows})
    assert resp.status_code == 201, resp.get_json()
    made = resp.get_json()["data"]
    assert [u["login"] for u in made] == [r["login"] for r in rows]
    assert made[0]["passwordSet"] and made[0]["staffCodeSet"] and not made[1]["passwordSet"]
    assert made[0]["roles"] == [{"role": "STAFF", "locationId": loc}]
    assert made[2]["kind"] == "customer" and made[2]["consents"] == ["terms_v2"]
    assert sorted(logins(reg, svc)) == sorted(["admin", *(r["login"] for r in rows)])
    assert {e.data["login"] for e in audit_events(app, t.id, "user.created")} == {
        r["login"] for r in rows}  # fmt: skip
    # The staff code and the password work as a single user's do.
    from authserver import users

    with app.app_context():
        assert users.find_by_staff_code(t.id, "4712").login == "ben@example.com"
        from authserver.security import verify_password

        anna = users.find_by_login(t.id, "anna@example.com")
        assert verify_password("correct horse battery", anna.password_hash)


def test_bulk_create_from_csv(reg, t, svc, loc):
    text = (
        "login,firstName,roles,consents,active,trusted,staffCode\r\n"
        f"dana@example.com,Dana,STAFF@{loc} CASHIER,terms marketing,false,true,5001\r\n"
        "eve@example.com,,,,,,\r\n"
    )
    resp = reg.call("POST", BULK, svc, data=text.encode(), content_type="text/csv")
    assert resp.status_code == 201, resp.get_json()
    dana, eve = resp.get_json()["data"]
    assert dana["roles"] == [{"role": "CASHIER", "locationId": None},
                             {"role": "STAFF", "locationId": loc}]  # fmt: skip
    assert sorted(dana["consents"]) == ["marketing", "terms"] and dana["active"] is False
    assert dana["trusted"] is True and dana["staffCodeSet"]
    assert eve["firstName"] is None and eve["active"] is True and eve["roles"] == []


def test_bulk_create_is_all_or_nothing_with_every_failing_row(reg, t, svc, loc):
    reg.call("POST", USERS, svc, json={"login": "taken@example.com", "staffCode": "9999"})
    manager = reg.user_token(t, "mgr", ("USER.MANAGER",))
    rows = [
        {"login": "ok@example.com"},
        {"login": "ok@example.com"},  # twice in the batch
        {"login": "taken@example.com"},  # taken
        {"login": "code@example.com", "staffCode": "9999"},  # staff code taken
        {"login": "admin@example.com", "roles": [{"role": "TENANT.ADMIN"}]},  # not the mgr's to give
        {"login": "far@example.com", "roles": [{"role": "STAFF", "locationId": "loc_none"}]},
        {"login": "cust@example.com", "kind": "customer", "roles": [{"role": "STAFF"}]},
        {"login": "weird@example.com", "colour": "red"},
        {"login": ""},
    ]  # fmt: skip
    resp = reg.call("POST", BULK, manager, json={"users": rows})
    assert resp.status_code == 400, resp.get_json()
    body = resp.get_json()
    assert [e["index"] for e in body["errors"]] == [1, 2, 3, 4, 5, 6, 7, 8]
    by_index = {e["index"]: e for e in body["errors"]}
    assert "row 0" in by_index[1]["detail"] and by_index[1]["field"] == "login"
    assert by_index[2]["field"] == "login" and "taken" in by_index[2]["detail"]
    assert by_index[3]["field"] == "staffCode"
    assert "TENANT.ADMIN" in by_index[4]["detail"]
    assert "loc_none" in by_index[5]["detail"]
    assert by_index[6]["field"] == "kind"
    assert sorted(logins(reg, svc)) == ["admin", "mgr", "taken@example.com"]


def test_bulk_create_limits(reg, t, svc, monkeypatch):
    rows = [{"login": f"u{i}@example.com", "password": "correct horse battery"}
            for i in range(people_bulk.MAX_PASSWORDS + 1)]  # fmt: skip
    resp = reg.call("POST", BULK, svc, json={"users": rows})
    assert resp.status_code == 400 and "100 rows with a password" in resp.get_json()["detail"]
    resp = reg.call("POST", BULK, svc, json={"users": [
        {"login": f"u{i}"} for i in range(people_bulk.MAX_ROWS + 1)]})  # fmt: skip
    assert resp.status_code == 400
    assert reg.call("POST", BULK, svc, json={"users": []}).status_code == 400
    assert logins(reg, svc) == ["admin"]  # the tenant's own, made with it


def test_bulk_disable_revokes_and_enable_keeps_them_dead(reg, t, svc, app):
    tokens = {name: reg.user_token(t, name, ("STAFF",)) for name in ("ann", "bob", "cyd")}
    ids = {}
    with app.app_context():
        for user in db.session.scalars(db.select(User).where(User.tenant_id == t.id)):
            ids[user.login] = user.id
    reg.now.advance(1)
    resp = reg.call("POST", f"{BULK}/disable", svc, json={"ids": [ids["ann"], ids["bob"]]})
    assert resp.get_json()["data"] == {"matched": 2, "changed": 2, "skipped": [],
                                       "hasMore": False, "lastId": None}  # fmt: skip
    assert me_status(reg, tokens["ann"]) == 401 and me_status(reg, tokens["bob"]) == 401
    assert me_status(reg, tokens["cyd"]) == 200
    assert {e.data["user_id"] for e in audit_events(app, t.id, "user.disabled")} == {
        ids["ann"], ids["bob"]}  # fmt: skip
    again = reg.call("POST", f"{BULK}/disable", svc, json={"ids": [ids["ann"]]}).get_json()
    assert again["data"]["skipped"] == [{"id": ids["ann"], "reason": "already_disabled"}]
    resp = reg.call("POST", f"{BULK}/enable", svc, json={"filter": {"active": "false"}})
    assert resp.get_json()["data"]["changed"] == 2
    assert len(audit_events(app, t.id, "user.enabled")) == 2
    assert me_status(reg, tokens["ann"]) == 401  # enabled, but the old tokens stay revoked
    assert sorted(logins(reg, svc, "&active=true")) == ["admin", "ann", "bob", "cyd"]


def test_bulk_delete_by_filter(reg, t, svc, app, loc):
    keep = reg.user_token(t, "keep", ("STAFF",))
    gone = reg.user_token(t, "gone", (f"CASHIER@{loc}",))
    reg.call("POST", BULK, svc, json={"users": [
        {"login": f"c{i}", "roles": [{"role": "CASHIER", "locationId": loc}]}
        for i in range(3)]})  # fmt: skip
    reg.now.advance(1)
    resp = reg.call("POST", f"{BULK}/delete", svc, json={"filter": {"locationId": loc}})
    assert resp.get_json()["data"]["changed"] == 4
    assert logins(reg, svc) == ["admin", "keep"]
    assert me_status(reg, gone) == 401 and me_status(reg, keep) == 200
    assert len(audit_events(app, t.id, "user.deleted")) == 4


def test_a_manager_cannot_reach_an_admin_through_a_bulk_change(reg, t, svc, app):
    """No escalation: by ids, a user the caller may not manage fails the whole request (403);
    by filter, such users are not selected at all."""
    admin = reg.user_token(t, "boss", ("TENANT.ADMIN",))
    staff = reg.user_token(t, "clerk", ("STAFF",))
    manager = reg.user_token(t, "mgr", ("USER.MANAGER",))
    with app.app_context():
        ids = {u.login: u.id for u in db.session.scalars(
            db.select(User).where(User.tenant_id == t.id))}  # fmt: skip
    resp = reg.call("POST", f"{BULK}/disable", manager,
                    json={"ids": [ids["clerk"], ids["boss"]]})  # fmt: skip
    assert resp.status_code == 403, resp.get_json()
    assert resp.get_json()["errors"] == [{"index": 1, "detail": "You may not manage this user."}]
    assert me_status(reg, staff) == 200 and me_status(reg, admin) == 200
    resp = reg.call("POST", f"{BULK}/disable", manager, json={"filter": {"kind": "staff"}})
    data = resp.get_json()["data"]
    # The clerk only: the manager cannot manage USER.MANAGER (themselves) either.
    assert data["changed"] == 1 and data["skipped"] == []
    assert me_status(reg, admin) == 200 and me_status(reg, staff) == 401
    resp = reg.call("POST", f"{BULK}/delete", manager, json={"filter": {"role": "TENANT.ADMIN"}})
    assert resp.get_json()["data"]["matched"] == 0
    assert "boss" in logins(reg, svc)


def test_unknown_or_foreign_ids_fail_the_whole_request(reg, t, svc, world):
    mine = reg.call("POST", USERS, svc, json={"login": "mine"}).get_json()["data"]["id"]
    other = reg.tenant()
    theirs = reg.call("POST", USERS, cc_token(reg.http, world.client(
        other.id, scope="users:write")).get_json()["access_token"],
        json={"login": "theirs"}).get_json()["data"]["id"]  # fmt: skip
    resp = reg.call("POST", f"{BULK}/delete", svc, json={"ids": [mine, theirs, "usr_nope"]})
    assert resp.status_code == 400
    assert [e["index"] for e in resp.get_json()["errors"]] == [1, 2]
    assert logins(reg, svc) == ["admin", "mine"]


@pytest.mark.parametrize(
    "body, detail",
    [
        ({}, "exactly one"),
        ({"filter": {}}, "at least one"),
        ({"filter": {"role": "KING"}}, "must be one of"),
        ({"filter": {"active": "yes"}}, "must be one of"),
        ({"ids": ["usr_a", "usr_a"]}, "twice"),
    ],
)
def test_bulk_change_refuses_unclear_requests(reg, t, svc, body, detail):
    resp = reg.call("POST", f"{BULK}/disable", svc, json=body)
    assert resp.status_code == 400 and detail in resp.get_json()["detail"]


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", BULK, {"users": [{"login": "new"}]}),
        ("POST", f"{BULK}/disable", {"filter": {"login": "nobody-matches"}}),
        ("POST", f"{BULK}/enable", {"filter": {"login": "nobody-matches"}}),
        ("POST", f"{BULK}/delete", {"filter": {"login": "nobody-matches"}}),
        ("GET", f"{USERS}/export?format=ndjson", None),
    ],
)
def test_authorization_matrix(reg, t, world, method, path, body):
    write = method == "POST"
    ok = 201 if path == BULK else 200
    device, tokens, key = reg.linked_device(t)
    reader = cc_token(reg.http, world.client(t.id, scope="users:read")).get_json()["access_token"]
    writer = cc_token(reg.http, world.client(t.id, scope="users:read users:write")).get_json()
    callers = {
        "service": (writer["access_token"], None, ok),
        "reader": (reader, None, 403 if write else ok),
        "admin": (reg.user_token(t, "boss", ("TENANT.ADMIN",)), None, ok),
        "user manager": (reg.user_token(t, "mgr", ("USER.MANAGER",)), None, ok),
        "device manager": (reg.user_token(t, "dev", ("DEVICE.MANAGER",)), None, 403),
        "device": (tokens["access_token"], key, 403),
        "nobody": (None, None, 401),
    }
    for name, (token, dpop, expected) in callers.items():
        if name != "service" and path == BULK:
            body = {"users": [{"login": f"new-{name}"}]}
        resp = reg.call(method, path, token, json=body, key=dpop)
        resp.get_data()
        assert resp.status_code == expected, (name, resp.status_code, resp.get_data()[:300])


def test_export_users(reg, t, svc, loc):
    made = reg.call("POST", BULK, svc, json={"users": [
        {"login": "b@example.com", "roles": [{"role": "STAFF", "locationId": loc}]},
        {"login": "a@example.com", "roles": [{"role": "TENANT.ADMIN"}], "staffCode": "5678"},
        {"login": "c@example.com", "kind": "customer"},
        {"login": "=1+2", "kind": "customer"},
    ]})  # fmt: skip
    assert made.status_code == 201, made.get_json()["errors"]
    resp = reg.call("GET", f"{USERS}/export?format=ndjson&kind=staff&login=example", svc)
    assert resp.mimetype == "application/x-ndjson"
    items = [json.loads(line) for line in resp.get_data(as_text=True).splitlines()]
    assert [u["login"] for u in items] == ["a@example.com", "b@example.com"]
    listed = reg.call("GET", f"{USERS}?kind=staff&login=example", svc).get_json()["data"]
    assert items == listed
    resp = reg.call("GET", f"{USERS}/export?format=csv", svc)
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert [r["login"] for r in rows] == [
        "'=1+2",
        "a@example.com",
        "admin",
        "b@example.com",
        "c@example.com",
    ]  # a formula is kept as text
    assert rows[1]["roles"] == "TENANT.ADMIN" and rows[3]["roles"] == f"STAFF@{loc}"
    assert rows[1]["staffCodeSet"] == "true" and rows[3]["staffCodeSet"] == "false"
    assert "password" not in rows[0] and "staffCode" not in rows[0]
    assert reg.call("GET", f"{USERS}/export?format=csv&limit=5", svc).status_code == 400


def _ids_by_login(app, tenant_id: str) -> dict[str, str]:
    with app.app_context():
        return {u.login: u.id for u in db.session.scalars(
            db.select(User).where(User.tenant_id == tenant_id))}  # fmt: skip


def test_a_filter_never_selects_the_caller(reg, t, app):
    """One request must not delete the account it acts with (perhaps the tenant's last
    administrator): a filter leaves the caller out; naming oneself by id is the way."""
    boss = reg.user_token(t, "boss", ("TENANT.ADMIN",))
    for name in ("s1", "s2"):
        reg.user_token(t, name, ("STAFF",))
    resp = reg.call("POST", f"{BULK}/delete", boss, json={"filter": {"kind": "staff"}})
    assert resp.status_code == 200, resp.get_json()
    assert me_status(reg, boss) == 200
    assert sorted(_ids_by_login(app, t.id)) == ["boss"]  # admin, s1 and s2 are gone
    resp = reg.call("POST", f"{BULK}/disable", boss, json={"filter": {"login": "boss"}})
    assert resp.get_json()["data"]["matched"] == 0


def test_a_caller_who_disables_themselves_stops_the_request(reg, t, app, monkeypatch):
    """By ids a caller may include themselves; once they are disabled the request stops (a
    403 with what was done), and nothing more is done with their rights."""
    monkeypatch.setattr(people_bulk, "CHUNK", 1)
    boss = reg.user_token(t, "boss", ("TENANT.ADMIN",))
    for name in ("c1", "c2"):
        reg.user_token(t, name, ("STAFF",))
    ids = _ids_by_login(app, t.id)
    resp = reg.call("POST", f"{BULK}/disable", boss,
                    json={"ids": [ids["c1"], ids["boss"], ids["c2"]]})  # fmt: skip
    assert resp.status_code == 403, resp.get_json()
    assert resp.get_json()["outcome"]["changed"] == 2
    with app.app_context():
        active = {u.login: u.active for u in db.session.scalars(
            db.select(User).where(User.tenant_id == t.id))}  # fmt: skip
    assert active == {"admin": True, "boss": False, "c1": False, "c2": True}


def test_an_export_holds_no_transaction_between_pages(reg, t, svc, app):
    from authserver import bulk
    from authserver.models import User as UserModel

    reg.call("POST", BULK, svc, json={"users": [{"login": f"u{i:02d}"} for i in range(7)]})
    with app.app_context():
        query = db.select(UserModel).where(UserModel.tenant_id == t.id)
        seen = []
        for line in bulk.walk(query, UserModel.login, UserModel.id, lambda u: u.login, page=2):
            assert not db.session().in_transaction(), line
            seen.append(line)
    assert seen == sorted(seen) and len(seen) == 8


def test_bulk_disable_and_delete_end_refresh_tokens(reg, t, svc, app):
    """The refresh tokens of each person a bulk disable or delete reaches are revoked in its
    transaction, as a single disable does: enabling the person again does not bring one back."""
    from authserver.models import Client, RefreshFamily
    from tests.device_helpers import DEVICE_GRANT, approve, poll, start

    signin = reg.world.client(t.id, grant_types=(DEVICE_GRANT, "refresh_token"),
                              auth_method="none", scope="users:read")  # fmt: skip
    with app.app_context():
        db.session.get(Client, signin.client_id).device_subject = "user"
        db.session.commit()
    refresh, ids = {}, {}
    for name in ("ann", "bob", "cyd"):
        reg.world.user(t.id, login=name, password="correct horse")
        body = start(reg.http, signin.client_id).get_json()
        approve(app, body["user_code"], name)
        got = poll(reg.http, signin.client_id, body["device_code"]).get_json()
        refresh[name] = got["refresh_token"]
    with app.app_context():
        for user in db.session.scalars(db.select(User).where(User.tenant_id == t.id)):
            ids[user.login] = user.id
    reg.now.advance(1)
    resp = reg.call("POST", f"{BULK}/disable", svc, json={"ids": [ids["ann"]]})
    assert resp.get_json()["data"]["changed"] == 1, resp.get_json()
    resp = reg.call("POST", f"{BULK}/delete", svc, json={"ids": [ids["bob"]]})
    assert resp.get_json()["data"]["changed"] == 1, resp.get_json()
    resp = reg.call("POST", f"{BULK}/enable", svc, json={"ids": [ids["ann"]]})
    assert resp.get_json()["data"]["changed"] == 1, resp.get_json()

    def exchange(token: str):
        return reg.http.post("/oauth/token", data={"grant_type": "refresh_token",
                             "refresh_token": token, "client_id": signin.client_id})  # fmt: skip

    for name in ("ann", "bob"):
        resp = exchange(refresh[name])
        assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant", name
    assert exchange(refresh["cyd"]).status_code == 200  # nobody else's
    with app.app_context():
        reasons = {f.user_id: f.revoked_reason for f in db.session.scalars(
            db.select(RefreshFamily).where(RefreshFamily.tenant_id == t.id))}  # fmt: skip
    assert reasons == {ids["ann"]: "subject_disabled", ids["bob"]: "subject_disabled",
                       ids["cyd"]: None}  # fmt: skip
