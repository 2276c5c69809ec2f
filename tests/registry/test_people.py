"""People over HTTP (seed 002): users, self-service, consents, roles; who may do which."""

from __future__ import annotations

import pytest

from tests.conftest import cc_token

USERS = "/api/v1/users"


@pytest.fixture
def t(reg):
    return reg.tenant()


@pytest.fixture
def svc(reg, world, t):
    """A back-office service token: users:read and users:write."""
    creds = world.client(t.id, scope="users:read users:write devices:read devices:write")
    return cc_token(reg.http, creds).get_json()["access_token"]


def new_user(reg, token, status=201, **body):
    body.setdefault("login", "anna@example.com")
    resp = reg.call("POST", USERS, token, json=body)
    assert resp.status_code == status, resp.get_json()
    return resp.get_json().get("data", resp.get_json())


def problem(resp, status, field=None):
    assert resp.status_code == status, resp.get_json()
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    body = resp.get_json()
    if field is not None:
        assert body.get("field") == field, body
    return body


def signs_in(reg, token) -> int:
    """The status a user's token gets at its own account."""
    return reg.call("GET", f"{USERS}/me", token).status_code


# -- create, read, list -----------------------------------------------------------------------------


def test_create_returns_the_profile_and_never_the_secrets(reg, t, svc):
    loc = reg.call("POST", "/api/v1/locations", svc, json={"name": "Main"}).get_json()["data"]
    user = new_user(
        reg,
        svc,
        login="anna@example.com",
        password="correct horse battery",
        firstName="Anna Maria",
        lastName="Nowak-Kowalska",
        phone="+48 (600) 100-200",
        pushId="fcm:abc123",
        consents=["marketing", "terms_v2", "marketing"],
        properties={"shoeSize": 38, "team": "north", "vip": True},
        trusted=True,
        roles=[{"role": "STAFF", "locationId": loc["id"]}, {"role": "DEVICE.MANAGER"}],
        staffCode="4711",
    )
    assert user["id"].startswith("usr_")
    assert user["login"] == "anna@example.com"
    assert (user["firstName"], user["lastName"]) == ("Anna Maria", "Nowak-Kowalska")
    assert (user["phone"], user["pushId"]) == ("+48 (600) 100-200", "fcm:abc123")
    assert user["consents"] == ["marketing", "terms_v2"]
    assert user["properties"] == {"shoeSize": 38, "team": "north", "vip": True}
    assert user["trusted"] is True and user["active"] is True
    assert {"role": "STAFF", "locationId": loc["id"]} in user["roles"]
    assert {"role": "DEVICE.MANAGER", "locationId": None} in user["roles"]
    assert user["passwordSet"] is True and user["staffCodeSet"] is True
    text = str(reg.call("GET", f"{USERS}/{user['id']}", svc).get_json())
    assert "correct horse battery" not in text and "4711" not in text
    assert reg.call("GET", f"{USERS}/{user['id']}", svc).get_json()["data"] == user
    # The staff code and password work: they link a terminal.
    assert links_a_terminal(reg, t, "4711", "correct horse battery")
    assert not links_a_terminal(reg, t, "4711", "wrong horse battery")


def links_a_terminal(reg, t, staff_code, password) -> bool:
    device = reg.create_device(t, status="READY_TO_LINK", appCode="CLIENT")
    resp = reg.link(t, device["linkCode"], staff_code=staff_code, password=password)
    assert resp.status_code in (200, 400), resp.get_json()
    return resp.status_code == 200


def test_a_user_created_without_a_password_cannot_sign_in_with_an_empty_one(reg, t, svc, app):
    user = new_user(reg, svc, login="nopass")
    assert user["passwordSet"] is False
    with app.app_context():
        from authserver.models import User, db
        from authserver.security import verify_password

        assert verify_password("", db.session.get(User, user["id"]).password_hash) is False


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"login": ""}, "login"),
        ({"login": "a" * 201}, "login"),
        ({"login": "x", "password": "short"}, "password"),
        ({"login": "x", "password": "p" * 65}, "password"),
        ({"login": "x", "password": None}, "password"),  # found by Schemathesis: was a 500
        ({"login": "x", "firstName": "<script>"}, "firstName"),
        ({"login": "x", "lastName": ""}, "lastName"),
        ({"login": "x", "phone": "12"}, "phone"),
        ({"login": "x", "phone": "call me;now"}, "phone"),
        ({"login": "x", "pushId": "ab"}, "pushId"),
        ({"login": "x", "consents": ["ok", "not ok"]}, "consents"),
        ({"login": "x", "consents": [f"c{i}" for i in range(17)]}, "consents"),
        ({"login": "x", "properties": {"bad key": 1}}, "properties"),
        ({"login": "x", "properties": {"nested": {"a": 1}}}, "properties"),
        ({"login": "x", "properties": {f"k{i}": 1 for i in range(33)}}, "properties"),
        ({"login": "x", "trusted": "yes"}, "trusted"),
        ({"login": "x", "active": 1}, "active"),
        ({"login": "x", "roles": [{"role": "FOO"}]}, "roles"),
        ({"login": "x", "roles": ["STAFF"]}, "roles"),
        ({"login": "x", "roles": [{"role": "SU", "locationId": "loc_abcdef"}]}, "roles"),
        ({"login": "x", "roles": [{"role": "STAFF"}] * 65}, "roles"),
        ({"login": "x", "staffCode": "12"}, "staffCode"),
        ({"login": "x", "id": "dev_12345678"}, "id"),
    ],
)
def test_each_invalid_field_is_a_400_naming_it_and_nothing_is_stored(reg, svc, body, field):
    problem(reg.call("POST", USERS, svc, json=body), 400, field)
    assert logins_of(reg, svc) == ["admin"]  # the tenant's first user, made by the fixture


def logins_of(reg, token, query=""):
    resp = reg.call("GET", f"{USERS}?{query}", token)
    assert resp.status_code == 200, resp.get_json()
    return [u["login"] for u in resp.get_json()["data"]]


def test_unknown_fields_and_foreign_locations_are_refused(reg, t, svc):
    assert "Unknown field" in problem(reg.call("POST", USERS, svc, json={"login": "x", "x": 1}),
                                      400)["detail"]  # fmt: skip
    other = reg.tenant()
    foreign = reg.call(
        "POST", "/api/v1/locations", reg.service_token(other), json={"name": "Theirs"}
    ).get_json()["data"]["id"]
    body = {"login": "x", "roles": [{"role": "STAFF", "locationId": foreign}]}
    problem(reg.call("POST", USERS, svc, json=body), 400, "roles")


def test_login_and_staff_code_are_unique_per_tenant_only(reg, t, svc, world):
    new_user(reg, svc, login="same", staffCode="1111")
    problem(reg.call("POST", USERS, svc, json={"login": "same"}), 409)
    # Also when checking the roles' locations reads the database first (found by Schemathesis:
    # the taken login surfaced there, as a 500).
    loc = reg.call("POST", "/api/v1/locations", svc, json={"name": "L"}).get_json()["data"]["id"]
    body = {"login": "same", "roles": [{"role": "STAFF", "locationId": loc}]}
    problem(reg.call("POST", USERS, svc, json=body), 409)
    other_user = new_user(reg, svc, login="other-one")
    problem(reg.call("PATCH", f"{USERS}/{other_user['id']}", svc,
                     json={"login": "same", "roles": body["roles"]}), 409)  # fmt: skip
    problem(reg.call("POST", USERS, svc, json={"login": "other", "staffCode": "1111"}), 409)
    other = reg.tenant()
    creds = world.client(other.id, scope="users:write users:read")
    token = cc_token(reg.http, creds).get_json()["access_token"]
    new_user(reg, token, login="same", staffCode="1111")  # another tenant: fine


def test_a_chosen_id_is_kept_and_a_taken_one_is_409(reg, svc):
    assert new_user(reg, svc, id="usr_from_crm_42", login="a")["id"] == "usr_from_crm_42"
    problem(reg.call("POST", USERS, svc, json={"id": "usr_from_crm_42", "login": "b"}), 409)


def test_another_tenants_user_does_not_exist_here(reg, t, svc, world):
    other = reg.tenant()
    creds = world.client(other.id, scope="users:write users:read")
    theirs = new_user(reg, cc_token(reg.http, creds).get_json()["access_token"], login="theirs")
    for method, body in (("GET", None), ("PATCH", {"trusted": True}), ("DELETE", None),
                         ("PUT", {"login": "mine"})):  # fmt: skip
        problem(reg.call(method, f"{USERS}/{theirs['id']}", svc, json=body), 404)
    assert logins_of(reg, svc) == ["admin"]


def test_list_filters_and_pages_by_login(reg, t, svc):
    loc = reg.call("POST", "/api/v1/locations", svc, json={"name": "North"}).get_json()["data"]
    new_user(reg, svc, login="adam@x", firstName="Adam", roles=[{"role": "STAFF"}])
    new_user(reg, svc, login="beata@x", lastName="Adamska",
             roles=[{"role": "STAFF", "locationId": loc["id"]}])  # fmt: skip
    new_user(reg, svc, login="cezary@x", roles=[{"role": "DEVICE.MANAGER"}], active=False)
    new_user(reg, svc, login="dorota_100%@x")

    def logins(query):
        return logins_of(reg, svc, query)

    assert logins("") == ["adam@x", "admin", "beata@x", "cezary@x", "dorota_100%@x"]
    assert logins("login=BEA") == ["beata@x"]
    assert logins("name=adam") == ["adam@x", "beata@x"]
    assert logins("role=STAFF") == ["adam@x", "beata@x"]
    assert logins("role=DEVICE.MANAGER") == ["cezary@x"]
    assert logins(f"locationId={loc['id']}") == ["beata@x"]
    assert logins("active=false") == ["cezary@x"]
    assert logins("active=true&role=STAFF&name=adams") == ["beata@x"]
    assert logins("login=_") == ["dorota_100%@x"]  # LIKE wildcards are literal
    assert logins("login=%25") == ["dorota_100%@x"]
    problem(reg.call("GET", f"{USERS}?active=yes", svc), 400)
    problem(reg.call("GET", f"{USERS}?role=FOO", svc), 400)
    seen, cursor = [], ""
    while True:
        page = reg.call("GET", f"{USERS}?limit=3{cursor}", svc).get_json()
        seen += [u["login"] for u in page["data"]]
        if not page["hasMore"]:
            break
        cursor = f"&cursor={page['nextCursor']}"
    assert seen == logins("")


# -- upsert, update, delete -------------------------------------------------------------------------


def test_put_creates_then_replaces_keeping_the_password(reg, t, svc):
    path = f"{USERS}/usr_crm_0001"
    body = {"login": "ola", "password": "correct horse", "firstName": "Ola", "phone": "123",
            "consents": ["a"], "roles": [{"role": "STAFF"}], "staffCode": "5555"}  # fmt: skip
    created = reg.call("PUT", path, svc, json=body)
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["data"]["id"] == "usr_crm_0001"
    replaced = reg.call("PUT", path, svc, json={"login": "ola", "lastName": "Nowak"})
    assert replaced.status_code == 200, replaced.get_json()
    data = replaced.get_json()["data"]
    assert (data["firstName"], data["lastName"], data["phone"]) == (None, "Nowak", None)
    assert data["consents"] == [] and data["roles"] == [] and data["passwordSet"] is True
    assert data["staffCodeSet"] is True
    assert links_a_terminal(reg, t, "5555", "correct horse")  # both kept
    problem(reg.call("PUT", f"{USERS}/not-an-id", svc, json={"login": "x"}), 400, "id")


def test_patch_changes_only_what_is_sent(reg, svc):
    user = new_user(reg, svc, login="p", firstName="Piotr", phone="555")
    resp = reg.call("PATCH", f"{USERS}/{user['id']}", svc, json={"phone": None, "trusted": True})
    data = resp.get_json()["data"]
    assert (data["firstName"], data["phone"], data["trusted"]) == ("Piotr", None, True)
    problem(reg.call("PATCH", f"{USERS}/{user['id']}", svc, json={"login": None}), 400, "login")


def test_deactivating_revokes_the_users_tokens_at_once_and_only_theirs(reg, t, svc):
    target = new_user(reg, svc, login="leaver", password="correct horse")
    token = reg.user_token(t, "leaver", create=False)
    bystander = reg.user_token(t, "stayer")
    assert signs_in(reg, token) == 200
    resp = reg.call("PATCH", f"{USERS}/{target['id']}", svc, json={"active": False})
    assert resp.get_json()["data"]["active"] is False
    assert signs_in(reg, token) == 401
    assert signs_in(reg, bystander) == 200
    events = reg.call("GET", "/api/v1/audit-events?type=user.disabled",
                      reg.user_token(t, "auditor", ("TENANT.ADMIN",))).get_json()["data"]  # fmt: skip
    assert [e["data"]["user_id"] for e in events] == [target["id"]]


def test_a_new_password_ends_the_old_sessions(reg, t, svc):
    target = new_user(reg, svc, login="pw", password="correct horse")
    token = reg.user_token(t, "pw", create=False)
    bystander = reg.user_token(t, "other")
    reg.call("PATCH", f"{USERS}/{target['id']}", svc, json={"password": "new correct horse"})
    assert signs_in(reg, token) == 401
    assert signs_in(reg, bystander) == 200


def test_delete_revokes_every_token_and_the_user_is_gone(reg, t, svc):
    target = new_user(reg, svc, login="gone", password="correct horse")
    token = reg.user_token(t, "gone", create=False)
    bystander = reg.user_token(t, "kept")
    resp = reg.call("DELETE", f"{USERS}/{target['id']}", svc)
    assert resp.get_json()["data"] == {"id": target["id"], "deleted": True}
    assert signs_in(reg, token) == 401
    assert signs_in(reg, bystander) == 200
    problem(reg.call("GET", f"{USERS}/{target['id']}", svc), 404)


# -- self-service -------------------------------------------------------------------------------


def test_a_person_reads_and_changes_their_own_profile_only(reg, t, svc):
    token = reg.user_token(t, "self", ("STAFF",))
    me = reg.call("GET", f"{USERS}/me", token).get_json()["data"]
    assert me["login"] == "self" and me["roles"] == [{"role": "STAFF", "locationId": None}]
    resp = reg.call("PATCH", f"{USERS}/me", token,
                    json={"firstName": "Zofia", "properties": {"lang": "pl"}})  # fmt: skip
    assert resp.get_json()["data"]["firstName"] == "Zofia"
    # Roles, login, active and trust are not one's own to change.
    for field, value in (("roles", [{"role": "TENANT.ADMIN"}]), ("login", "x"),
                         ("active", True), ("trusted", True)):  # fmt: skip
        body = problem(reg.call("PATCH", f"{USERS}/me", token, json={field: value}), 400)
        assert "Unknown field" in body["detail"]
    assert reg.call("GET", f"{USERS}/{me['id']}", svc).get_json()["data"]["roles"] == me["roles"]


@pytest.mark.parametrize("roles", [(), ("SU",), ("TENANT.ADMIN",), ("STAFF",)])
def test_anyone_changes_their_own_profile_whatever_their_roles(reg, t, roles):
    token = reg.user_token(t, "me", roles)
    resp = reg.call("PATCH", f"{USERS}/me", token, json={"phone": "600 100 200"})
    assert resp.status_code == 200, resp.get_json()
    assert reg.call("GET", f"{USERS}/me", token).get_json()["data"]["phone"] == "600 100 200"


def test_consents_are_set_and_unset(reg, t):
    token = reg.user_token(t, "c")
    add = reg.call("POST", f"{USERS}/me/consents", token, json={"set": ["terms", "marketing"]})
    assert add.get_json()["data"]["consents"] == ["marketing", "terms"]
    drop = reg.call("POST", f"{USERS}/me/consents", token,
                    json={"set": ["sms"], "unset": ["marketing"]})  # fmt: skip
    assert drop.get_json()["data"]["consents"] == ["sms", "terms"]
    problem(reg.call("POST", f"{USERS}/me/consents", token, json={"set": ["a"], "unset": ["a"]}),
            400)  # fmt: skip


def test_deleting_oneself_needs_the_login_and_ends_every_token(reg, t, svc):
    token = reg.user_token(t, "quitter")
    bystander = reg.user_token(t, "stays")
    problem(reg.call("DELETE", f"{USERS}/me", token, json={"login": "someone"}), 400, "login")
    assert signs_in(reg, token) == 200
    resp = reg.call("DELETE", f"{USERS}/me", token, json={"login": "quitter"})
    assert resp.status_code == 200 and resp.get_json()["data"]["deleted"] is True
    assert signs_in(reg, token) == 401
    assert signs_in(reg, bystander) == 200
    assert [u["login"] for u in reg.call("GET", USERS, svc).get_json()["data"]] == [
        "admin",
        "stays",
    ]


def test_only_a_users_own_token_reaches_me(reg, t, svc):
    assert reg.call("GET", f"{USERS}/me", svc).status_code == 403
    _, tokens, key = reg.linked_device(t)
    assert reg.call("GET", f"{USERS}/me", tokens["access_token"], key=key).status_code == 403
    assert reg.call("GET", f"{USERS}/me").status_code == 401


# -- who may manage people ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caller", "read", "write"),
    [
        ("service users:write", 200, 201),
        ("service users:read", 200, 403),
        ("service devices only", 403, 403),
        ("TENANT.ADMIN", 200, 201),
        ("USER.MANAGER", 200, 201),
        ("SU", 200, 201),
        ("DEVICE.MANAGER", 403, 403),
        ("USER.MANAGER@location", 403, 403),
        ("STAFF", 403, 403),
        ("device", 403, 403),
        ("foreign users:write", 200, 201),
        ("none", 401, 401),
    ],
)
def test_who_may_read_and_create_users(reg, t, world, caller, read, write):
    key = None
    if caller.startswith("service") or caller.startswith("foreign"):
        tenant = reg.tenant() if caller.startswith("foreign") else t
        scope = {"users:write": "users:read users:write", "users:read": "users:read",
                 "devices only": "devices:read devices:write"}[caller.split(" ", 1)[1]]  # fmt: skip
        token = cc_token(reg.http, world.client(tenant.id, scope=scope)).get_json()["access_token"]
    elif caller == "device":
        _, tokens, key = reg.linked_device(t)
        token = tokens["access_token"]
    elif caller == "none":
        token = None
    elif caller == "USER.MANAGER@location":
        svc = cc_token(reg.http, world.client(t.id, scope="users:write")).get_json()
        loc = reg.call("POST", "/api/v1/locations", reg.service_token(t), json={"name": "L"})
        role = {"role": "USER.MANAGER", "locationId": loc.get_json()["data"]["id"]}
        new_user(reg, svc["access_token"], login="scoped", roles=[role])
        # People are managed tenant-wide: the role held at one location grants nothing here.
        token = reg.user_token(t, "scoped", create=False)
    else:
        token = reg.user_token(t, "caller", (caller,))
    assert reg.call("GET", USERS, token, key=key).status_code == read
    resp = reg.call(
        "POST", USERS, token, key=key, json={"login": "made", "roles": [{"role": "STAFF"}]}
    )
    assert resp.status_code == write, resp.get_json()


def test_a_user_manager_cannot_reach_above_their_role(reg, t, svc):
    manager = reg.user_token(t, "um", ("USER.MANAGER",))
    admin = new_user(reg, svc, login="boss", roles=[{"role": "TENANT.ADMIN"}])
    staff = new_user(reg, manager, login="cashier", roles=[{"role": "STAFF"}])
    for body in ({"login": "x", "roles": [{"role": "TENANT.ADMIN"}]},
                 {"login": "y", "roles": [{"role": "USER.MANAGER"}]}):  # fmt: skip
        problem(reg.call("POST", USERS, manager, json=body), 403)
    # No takeover of an administrator's account: no new password, no deactivation, no delete.
    for method, body in (("PATCH", {"password": "taken over!"}), ("PATCH", {"active": False}),
                         ("PUT", {"login": "boss"}), ("DELETE", None)):  # fmt: skip
        problem(reg.call(method, f"{USERS}/{admin['id']}", manager, json=body), 403)
    promote = {"roles": [{"role": "TENANT.ADMIN"}]}
    problem(reg.call("PATCH", f"{USERS}/{staff['id']}", manager, json=promote), 403)
    ok = reg.call("PATCH", f"{USERS}/{staff['id']}", manager,
                  json={"roles": [{"role": "DEVICE.MANAGER"}]})  # fmt: skip
    assert ok.status_code == 200, ok.get_json()
    grant = {"role": "TENANT.ADMIN", "logins": ["cashier"]}
    problem(reg.call("POST", "/api/v1/roles/grants", manager, json=grant), 403)
    # Nobody grants SU over HTTP, not even an administrator or a service.
    for token in (svc, reg.user_token(t, "admin2", ("TENANT.ADMIN",))):
        problem(reg.call("POST", USERS, token, json={"login": "z", "roles": [{"role": "SU"}]}),
                403)  # fmt: skip
        problem(reg.call("POST", "/api/v1/roles/grants", token,
                         json={"role": "SU", "logins": ["cashier"]}), 403)  # fmt: skip


def test_a_role_change_takes_effect_on_the_next_request(reg, t, svc, clock):
    token = reg.user_token(t, "dm", ("DEVICE.MANAGER",))
    assert reg.call("GET", "/api/v1/devices", token).status_code == 200
    [user] = [u for u in reg.call("GET", f"{USERS}?login=dm", svc).get_json()["data"]
              if u["login"] == "dm"]  # fmt: skip
    bystander = reg.user_token(t, "dm2", ("DEVICE.MANAGER",))
    reg.call("PATCH", f"{USERS}/{user['id']}", svc, json={"roles": []})
    # A role taken away ends the tokens it stood behind; a new sign-in has no rights.
    assert reg.call("GET", "/api/v1/devices", token).status_code == 401
    assert reg.call("GET", "/api/v1/devices", bystander).status_code == 200
    clock.advance(1)  # (a token of the very millisecond of the revocation goes with it)
    again = reg.user_token(t, "dm", create=False)
    assert reg.call("GET", "/api/v1/devices", again).status_code == 403


# -- roles by login, revoked globally -----------------------------------------------------------


def test_grant_by_logins_reports_who_was_not_found(reg, t, svc):
    loc = reg.call("POST", "/api/v1/locations", svc, json={"name": "South"}).get_json()["data"]
    a = new_user(reg, svc, login="a")
    b = new_user(reg, svc, login="b", roles=[{"role": "STAFF", "locationId": loc["id"]}])
    other = reg.tenant()
    reg.world.user(other.id, login="c")  # another tenant's login is not found here
    resp = reg.call("POST", "/api/v1/roles/grants", svc,
                    json={"role": "STAFF", "locationId": loc["id"], "logins": ["a", "b", "c"]})  # fmt: skip
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["data"] == {"userIds": sorted([a["id"], b["id"]]),
                                       "unknownLogins": ["c"]}  # fmt: skip
    got = reg.call("GET", f"{USERS}/{a['id']}", svc).get_json()["data"]["roles"]
    assert got == [{"role": "STAFF", "locationId": loc["id"]}]
    problem(reg.call("POST", "/api/v1/roles/grants", svc,
                     json={"role": "STAFF", "logins": []}), 400, "logins")  # fmt: skip
    problem(reg.call("POST", "/api/v1/roles/grants", svc,
                     json={"role": "STAFF", "locationId": "loc_nowhere1", "logins": ["a"]}), 400)  # fmt: skip


def test_revoking_globally_spares_the_caller_and_never_touches_su(reg, t, svc, world):
    loc = reg.call("POST", "/api/v1/locations", svc, json={"name": "East"}).get_json()["data"]
    admin_token = reg.user_token(t, "boss", ("TENANT.ADMIN", "DEVICE.MANAGER"))
    x = new_user(reg, svc, login="x", roles=[{"role": "DEVICE.MANAGER"}, {"role": "STAFF"}])
    y = new_user(reg, svc, login="y", roles=[{"role": "DEVICE.MANAGER", "locationId": loc["id"]}])
    resp = reg.call("POST", "/api/v1/roles/revocations", admin_token,
                    json={"roles": ["DEVICE.MANAGER"]})  # fmt: skip
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["data"] == {"roles": ["DEVICE.MANAGER"], "usersChanged": 2}
    roles = {u["login"]: u["roles"] for u in reg.call("GET", USERS, svc).get_json()["data"]}
    assert roles["x"] == [{"role": "STAFF", "locationId": None}]  # the bystander role stays
    assert roles["y"] == []
    assert {"role": "DEVICE.MANAGER", "locationId": None} in roles["boss"]  # not from oneself
    for body in ({"roles": ["SU"]}, {"roles": []}, {"roles": ["A", "B", "C", "D", "E", "F"]}):
        problem(reg.call("POST", "/api/v1/roles/revocations", svc, json=body), 400)
    del x, y


# -- external identities, contact, tenant ---------------------------------------------------------


def test_external_identities_link_find_and_unlink(reg, t, svc, world):
    anna = new_user(reg, svc, login="anna@example.com")
    bob = new_user(reg, svc, login="bob@example.com")
    path = f"{USERS}/{anna['id']}/auth-strategies"
    linked = reg.call("PUT", path, svc, json={"strategy": "FB", "id": "12345",
                                               "password": "loyalty-secret"})  # fmt: skip
    assert linked.status_code == 201, linked.get_json()
    assert linked.get_json()["data"]["passwordSet"] is True
    assert "loyalty-secret" not in str(linked.get_json())
    again = reg.call("PUT", path, svc, json={"strategy": "FB", "id": "12345", "password": None})
    assert again.status_code == 200 and again.get_json()["data"]["passwordSet"] is False
    # One identity, one user: linking it to Bob as well is a conflict.
    taken = reg.call("PUT", f"{USERS}/{bob['id']}/auth-strategies", svc,
                     json={"strategy": "FB", "id": "12345"})  # fmt: skip
    problem(taken, 409)
    find = f"{USERS}/by-auth-strategy?strategy=FB&id=12345"
    assert reg.call("GET", find, svc).get_json()["data"]["id"] == anna["id"]
    assert (
        reg.call("GET", find + "&email=ANNA@example.com", svc).get_json()["data"]["id"]
        == (anna["id"])
    )
    # An address narrows; it never finds a user on its own.
    problem(reg.call("GET", find + "&email=bob@example.com", svc), 404)
    problem(reg.call("GET", f"{USERS}/by-auth-strategy?strategy=FB&id=999"
                            "&email=anna@example.com", svc), 404)  # fmt: skip
    problem(reg.call("GET", f"{USERS}/by-auth-strategy?strategy=FB", svc), 400)
    # Another tenant neither finds nor sees it.
    other = reg.tenant()
    theirs = cc_token(reg.http, world.client(other.id, scope="users:read users:write"))
    problem(reg.call("GET", find, theirs.get_json()["access_token"]), 404)
    # Inactive: the link stays listed but finds nobody.
    reg.call("PUT", path, svc, json={"strategy": "FB", "id": "12345", "active": False})
    problem(reg.call("GET", find, svc), 404)
    listed = reg.call("GET", path, svc).get_json()["data"]
    assert [(x["strategy"], x["id"], x["active"]) for x in listed] == [("FB", "12345", False)]
    gone = reg.call("DELETE", f"{path}/FB/12345", svc)
    assert gone.status_code == 200 and reg.call("GET", path, svc).get_json()["data"] == []
    problem(reg.call("DELETE", f"{path}/FB/12345", svc), 404)
    problem(reg.call("PUT", path, svc, json={"strategy": "F B", "id": "1"}), 400, "strategy")
    problem(reg.call("PUT", path, svc, json={"strategy": "FB", "id": "1", "password": "short"}),
            400, "password")  # fmt: skip


def test_a_user_has_at_most_16_identities_and_deleting_them_unlinks_all(reg, svc):
    anna = new_user(reg, svc, login="many")
    path = f"{USERS}/{anna['id']}/auth-strategies"
    for i in range(16):
        assert reg.call("PUT", path, svc, json={"strategy": f"S{i}", "id": "x"}).status_code == 201
    problem(reg.call("PUT", path, svc, json={"strategy": "S16", "id": "x"}), 400, "strategy")
    assert reg.call("DELETE", f"{USERS}/{anna['id']}", svc).status_code == 200
    problem(reg.call("GET", f"{USERS}/by-auth-strategy?strategy=S1&id=x", svc), 404)
    again = new_user(reg, svc, login="again")  # the identities are free again
    assert reg.call("PUT", f"{USERS}/{again['id']}/auth-strategies", svc,
                    json={"strategy": "S1", "id": "x"}).status_code == 201  # fmt: skip


def test_contact_and_tenant_views_for_services(reg, t, svc):
    anna = new_user(reg, svc, login="c@x", firstName="Cecylia", phone="600100200",
                    password="correct horse", consents=["sms"])  # fmt: skip
    contact = reg.call("GET", f"{USERS}/{anna['id']}/contact", svc).get_json()["data"]
    assert contact == {"id": anna["id"], "login": "c@x", "firstName": "Cecylia", "lastName": None,
                       "phone": "600100200", "pushId": None, "consents": ["sms"],
                       "active": True}  # fmt: skip
    tenant = reg.call("GET", "/api/v1/tenant", svc).get_json()["data"]
    assert tenant["id"] == t.id and tenant["active"] is True
    staff = reg.user_token(t, "nosy", ("STAFF",))
    assert reg.call("GET", f"{USERS}/{anna['id']}/contact", staff).status_code == 403


# -- kinds: staff and customers ---------------------------------------------------------------------


def test_a_customer_is_made_listed_and_holds_no_roles_or_staff_code(reg, t, svc):
    anna = new_user(reg, svc, login="anna@example.com", kind="customer")
    assert anna["kind"] == "customer"
    assert new_user(reg, svc, login="bo@example.com")["kind"] == "staff"  # the default
    customers = reg.call("GET", f"{USERS}?kind=customer", svc).get_json()["data"]
    assert [u["login"] for u in customers] == ["anna@example.com"]
    staff = reg.call("GET", f"{USERS}?kind=staff", svc).get_json()["data"]
    assert "anna@example.com" not in {u["login"] for u in staff} and len(staff) == 2  # + admin
    problem(reg.call("GET", f"{USERS}?kind=robot", svc), 400)
    # A customer with a role or a staff code: refused, and nothing is made.
    body = problem(reg.call("POST", USERS, svc, json={
        "login": "cy@example.com", "kind": "customer", "roles": [{"role": "STAFF"}],
    }), 400, field="kind")  # fmt: skip
    assert "no roles" in body["detail"]
    problem(reg.call("POST", USERS, svc, json={
        "login": "cy@example.com", "kind": "customer", "staffCode": "4711",
    }), 400, field="kind")  # fmt: skip
    assert reg.call("GET", f"{USERS}?login=cy", svc).get_json()["data"] == []
    problem(reg.call("PATCH", f"{USERS}/{anna['id']}", svc, json={"roles": [{"role": "STAFF"}]}),
            400, field="kind")  # fmt: skip
    problem(reg.call("POST", USERS, svc, json={"login": "dy@example.com", "kind": None}), 400,
            field="kind")  # fmt: skip
    # Staff again: then a role may be given.
    made_staff = reg.call("PATCH", f"{USERS}/{anna['id']}", svc,
                          json={"kind": "staff", "roles": [{"role": "STAFF"}]})  # fmt: skip
    assert made_staff.status_code == 200, made_staff.get_json()
    assert made_staff.get_json()["data"]["kind"] == "staff"


def test_a_new_kind_ends_the_persons_tokens(reg, t, svc):
    token = reg.user_token(t, "eve@example.com", scope="openid devices:read")
    assert signs_in(reg, token) == 200
    user_id = reg.call("GET", f"{USERS}?login=eve", svc).get_json()["data"][0]["id"]
    changed = reg.call("PATCH", f"{USERS}/{user_id}", svc, json={"kind": "customer"})
    assert changed.status_code == 200 and changed.get_json()["data"]["kind"] == "customer"
    assert signs_in(reg, token) == 401
