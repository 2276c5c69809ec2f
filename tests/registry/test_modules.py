"""Modules over HTTP (seed 002): the back office's CRUD and configs, a kiosk enrolling as a module
through the device flow and reading its own config (ETag polling), logout and revocation."""

from __future__ import annotations

import base64
import json

import pytest

from tests.conftest import cc_token
from tests.device_helpers import DEVICE_GRANT, approve, kiosk_world, poll, start
from tests.dpop_client import DPoPKey

MODULES = "/api/v1/modules"
SCOPES = "modules:read modules:write devices:read devices:write"


@pytest.fixture
def t(reg):
    return reg.tenant()


@pytest.fixture
def svc(reg, world, t):
    creds = world.client(t.id, scope=SCOPES)
    return cc_token(reg.http, creds).get_json()["access_token"]


def problem(resp, status, field=None):
    assert resp.status_code == status, resp.get_json()
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    body = resp.get_json()
    if field is not None:
        assert body.get("field") == field, body
    return body


def new_module(reg, token, status=201, **body):
    body.setdefault("id", "kiosk-1")
    body.setdefault("type", "KIOSK")
    resp = reg.call("POST", MODULES, token, json=body)
    assert resp.status_code == status, resp.get_json()
    return resp.get_json().get("data", resp.get_json())


def claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def refresh(reg, kiosk, tokens):
    """The kiosk's refresh request (a public client: no authentication, no proof)."""
    return reg.http.post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
        "client_id": kiosk.client.client_id})  # fmt: skip


class Kiosk:
    """A tenant with a kiosk client, an admin ("admin") and a service with the modules scopes."""

    def __init__(self, reg, world, scope="devices:read"):
        self.reg, self.world = reg, world
        self.tenant, self.client = kiosk_world(world, scope=scope)
        creds = world.client(self.tenant, scope=SCOPES)
        self.svc = cc_token(reg.http, creds).get_json()["access_token"]

    def module(self, module_id="kiosk-1", **body):
        return new_module(self.reg, self.svc, id=module_id, **body)

    def enrol(self, module=None, approve_module=None, key=None):
        """Run the device flow (asking for ``module``; the approver picking ``approve_module``)
        and return the token response."""
        http, issuer = self.reg.http, self.reg.settings.issuer
        form = {"module": module} if module else {}
        proof = key.proof("POST", issuer + "/oauth/device_authorization") if key else None
        started = start(http, self.client.client_id, proof=proof, **form)
        assert started.status_code == 200, started.get_json()
        body = started.get_json()
        extra = ("--module", approve_module) if approve_module else ()
        decided = approve(self.reg.app, body["user_code"], "admin", *extra)
        assert decided["decision"] == "approved", decided
        proof = key.proof("POST", issuer + "/oauth/token") if key else None
        resp = poll(http, self.client.client_id, body["device_code"], proof=proof)
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()


@pytest.fixture
def kiosk(reg, world):
    return Kiosk(reg, world)


# -- the back office: create, read, change, delete ----------------------------------------------------


def test_create_read_change_and_delete_a_module(reg, t, svc):
    loc = reg.call("POST", "/api/v1/locations", svc, json={"name": "Main"}).get_json()["data"]
    created = new_module(reg, svc, id="kiosk-1", type="KIOSK", production=True,
                         locationId=loc["id"], config={"menu": "breakfast", "idle": 60})  # fmt: skip
    assert created["id"] == "kiosk-1" and created["type"] == "KIOSK"
    assert created["production"] is True and created["locationId"] == loc["id"]
    assert created["config"] == {"menu": "breakfast", "idle": 60}
    assert reg.call("GET", f"{MODULES}/kiosk-1", svc).get_json()["data"] == created

    changed = reg.call("PATCH", f"{MODULES}/kiosk-1", svc, json={"config": {"menu": "lunch"}})
    assert changed.status_code == 200
    assert changed.get_json()["data"]["config"] == {"menu": "lunch"}
    assert changed.get_json()["data"]["production"] is True  # untouched by a PATCH

    replaced = reg.call("PUT", f"{MODULES}/kiosk-1", svc, json={"type": "KDS"})
    assert replaced.status_code == 200
    data = replaced.get_json()["data"]
    assert (data["type"], data["production"], data["locationId"], data["config"]) == (
        "KDS",
        False,
        None,
        {},
    )

    assert reg.call("DELETE", f"{MODULES}/kiosk-1", svc).get_json()["data"]["deleted"] is True
    problem(reg.call("GET", f"{MODULES}/kiosk-1", svc), 404)
    problem(reg.call("DELETE", f"{MODULES}/kiosk-1", svc), 404)


def test_a_module_id_is_created_only_once_per_tenant(reg, world, t, svc):
    new_module(reg, svc, id="kiosk-1")
    problem(reg.call("POST", MODULES, svc, json={"id": "kiosk-1", "type": "KDS"}), 409, "id")
    # Another tenant has its own namespace: the same id is theirs to use, and ours stays unseen.
    other = reg.tenant()
    other_svc = cc_token(reg.http, world.client(other.id, scope=SCOPES)).get_json()["access_token"]
    new_module(reg, other_svc, id="kiosk-1", type="KDS")
    assert reg.call("GET", f"{MODULES}/kiosk-1", svc).get_json()["data"]["type"] == "KIOSK"
    assert reg.call("GET", f"{MODULES}/kiosk-1", other_svc).get_json()["data"]["type"] == "KDS"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"id": "k", "type": "KIOSK"}, "id"),
        ({"id": "k" * 65, "type": "KIOSK"}, "id"),
        ({"id": "kiosk 1", "type": "KIOSK"}, "id"),
        ({"id": "me", "type": "KIOSK"}, "id"),
        ({"id": "kiosk-1", "type": "TOASTER"}, None),
        ({"id": "kiosk-1"}, None),
        ({"id": "kiosk-1", "type": "KIOSK", "config": ["a"]}, "config"),
        ({"id": "kiosk-1", "type": "KIOSK", "config": {"x": "y" * 13_000}}, "config"),
        ({"id": "kiosk-1", "type": "KIOSK", "production": "yes"}, "production"),
        ({"id": "kiosk-1", "type": "KIOSK", "colour": "red"}, None),
        ({"id": "kiosk-1", "type": "KIOSK", "userId": "usr_nobody"}, "userId"),
        ({"id": "kiosk-1", "type": "KIOSK", "locationId": "loc_nowhere"}, "locationId"),
    ],
)
def test_a_bad_module_is_a_400_naming_the_field_and_nothing_is_stored(reg, t, svc, body, field):
    problem(reg.call("POST", MODULES, svc, json=body), 400, field)
    assert reg.call("GET", MODULES, svc).get_json()["data"] == []


def test_a_user_or_location_of_another_tenant_cannot_be_named(reg, world, t, svc):
    other = reg.tenant()
    other_svc = cc_token(reg.http, world.client(other.id, scope=SCOPES)).get_json()["access_token"]
    loc = reg.call("POST", "/api/v1/locations", other_svc, json={"name": "Theirs"})
    user_id = world.user(other.id, login="theirs")
    problem(reg.call("POST", MODULES, svc, json={"id": "k1", "type": "KIOSK",
                                                 "locationId": loc.get_json()["data"]["id"]}),
            400, "locationId")  # fmt: skip
    problem(reg.call("POST", MODULES, svc, json={"id": "k1", "type": "KIOSK", "userId": user_id}),
            400, "userId")  # fmt: skip
    ours = world.user(t.id, login="ours")
    assert new_module(reg, svc, id="k1", userId=ours)["userId"] == ours


def test_the_id_in_a_replacement_must_be_the_paths(reg, t, svc):
    new_module(reg, svc, id="kiosk-1")
    problem(reg.call("PUT", f"{MODULES}/kiosk-1", svc, json={"id": "kiosk-2", "type": "KIOSK"}),
            400, "id")  # fmt: skip
    problem(reg.call("PUT", f"{MODULES}/kiosk-9", svc, json={"type": "KIOSK"}), 404)


# -- lists and finding by config ----------------------------------------------------------------------


def test_list_filters_by_type_location_production_id_and_config_member(reg, t, svc):
    loc = reg.call("POST", "/api/v1/locations", svc, json={"name": "Main"}).get_json()["data"]
    new_module(reg, svc, id="kiosk-1", locationId=loc["id"], config={"storeId": "abc-1"})
    new_module(reg, svc, id="kiosk-2", production=True, config={"storeId": "xyz-9"})
    new_module(reg, svc, id="kds-1", type="KDS", locationId=loc["id"], config={"storeId": "abc-1"})

    def ids(query):
        resp = reg.call("GET", f"{MODULES}?{query}", svc)
        assert resp.status_code == 200, resp.get_json()
        return [m["id"] for m in resp.get_json()["data"]]

    assert ids("") == ["kds-1", "kiosk-1", "kiosk-2"]
    assert ids("type=KIOSK") == ["kiosk-1", "kiosk-2"]
    assert ids(f"locationId={loc['id']}") == ["kds-1", "kiosk-1"]
    assert ids("production=true") == ["kiosk-2"]
    assert ids("production=false") == ["kds-1", "kiosk-1"]
    assert ids("id=sk-") == ["kiosk-1", "kiosk-2"]
    assert ids("id=%25") == []  # LIKE wildcards are literal
    assert ids("configName=config.storeId&configValue=abc-1") == ["kds-1", "kiosk-1"]
    assert ids(f"type=KIOSK&locationId={loc['id']}&configName=config.storeId"
               "&configValue=abc-1") == ["kiosk-1"]  # fmt: skip


@pytest.mark.parametrize(
    "query",
    ["moduleId=kiosk-1", "type=TOASTER", "production=yes", "configName=config.storeId",
     "configValue=abc", "configName=storeId&configValue=abc", "effective=1", "limit=0"],
)  # fmt: skip
def test_an_unknown_or_malformed_filter_is_a_400_never_the_unfiltered_list(reg, t, svc, query):
    new_module(reg, svc, id="kiosk-1")
    problem(reg.call("GET", f"{MODULES}?{query}", svc), 400)


def test_list_pages_with_a_cursor_and_says_when_more_exist(reg, t, svc):
    for i in range(5):
        new_module(reg, svc, id=f"m-{i}")
    seen, cursor = [], None
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = reg.call("GET", f"{MODULES}?{query}", svc).get_json()
        seen += [m["id"] for m in body["data"]]
        assert body["hasMore"] is (body["nextCursor"] is not None)
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert seen == [f"m-{i}" for i in range(5)]


# -- configs --------------------------------------------------------------------------------------------


def test_the_effective_config_is_the_common_config_with_the_modules_own_laid_over(reg, t, svc):
    common = {"currency": "PLN", "theme": {"colour": "#0a5", "font": "Inter"}, "idle": 60}
    resp = reg.call("PUT", "/api/v1/module-types/KIOSK/config", svc, json=common)
    assert resp.status_code == 200 and resp.get_json()["data"] == common
    new_module(reg, svc, id="kiosk-1", config={"theme": {"colour": "#f00"}, "idle": None})
    new_module(reg, svc, id="kds-1", type="KDS", config={"lanes": 3})

    effective = reg.call("GET", f"{MODULES}/kiosk-1/config", svc).get_json()["data"]
    assert effective == {"currency": "PLN", "theme": {"colour": "#f00", "font": "Inter"},
                         "idle": None}  # fmt: skip
    # Another type's common config does not apply.
    assert reg.call("GET", f"{MODULES}/kds-1/config", svc).get_json()["data"] == {"lanes": 3}
    assert reg.call("GET", "/api/v1/module-types/KDS/config", svc).get_json()["data"] == {}

    listed = reg.call("GET", f"{MODULES}?type=KIOSK&effective=true", svc).get_json()["data"]
    assert listed[0]["effectiveConfig"] == effective
    assert "effectiveConfig" not in reg.call("GET", MODULES, svc).get_json()["data"][0]


def test_common_config_needs_a_known_type_and_an_object(reg, t, svc):
    problem(reg.call("PUT", "/api/v1/module-types/TOASTER/config", svc, json={}), 400, "type")
    problem(reg.call("GET", "/api/v1/module-types/TOASTER/config", svc), 400, "type")
    resp = reg.call("PUT", "/api/v1/module-types/KIOSK/config", svc, json={"x": "y" * 13_000})
    problem(resp, 400)
    assert reg.call("GET", "/api/v1/module-types/KIOSK/config", svc).get_json()["data"] == {}


def test_module_changes_are_audited(reg, t, svc):
    new_module(reg, svc, id="kiosk-1")
    for method, path, body in (
        ("PATCH", f"{MODULES}/kiosk-1", {"production": True}),
        ("PUT", "/api/v1/module-types/KIOSK/config", {"a": 1}),
        ("POST", f"{MODULES}/kiosk-1/logout", None),
        ("DELETE", f"{MODULES}/kiosk-1", None),
    ):
        reg.now.advance(1)  # events are listed newest first
        assert reg.call(method, path, svc, json=body).status_code == 200
    resp = reg.call("GET", "/api/v1/audit-events", reg.user_token(t, "auditor", ("TENANT.ADMIN",)))
    assert resp.status_code == 200, resp.get_json()
    events = resp.get_json()["data"]
    events = [e for e in events if e["type"].startswith("module")]
    types = [e["type"] for e in events]
    assert types == ["module.deleted", "module.logged_out", "module_type.config_set",
                     "module.updated", "module.created"]  # fmt: skip
    assert events[0]["data"]["module_id"] == "kiosk-1"
    assert events[2]["data"]["type"] == "KIOSK"


# -- who may ------------------------------------------------------------------------------------------


def test_reading_and_changing_modules_needs_the_modules_scopes(reg, world, t, svc):
    new_module(reg, svc, id="kiosk-1")
    reader = cc_token(reg.http, world.client(t.id, scope="modules:read")).get_json()["access_token"]
    devices_only = reg.service_token(t)
    assert reg.call("GET", f"{MODULES}/kiosk-1", reader).status_code == 200
    problem(reg.call("PATCH", f"{MODULES}/kiosk-1", reader, json={"production": True}), 403)
    problem(reg.call("PUT", "/api/v1/module-types/KIOSK/config", reader, json={}), 403)
    problem(reg.call("POST", f"{MODULES}/kiosk-1/logout", reader), 403)
    problem(reg.call("GET", f"{MODULES}/kiosk-1", devices_only), 403)
    assert reg.call("GET", f"{MODULES}/kiosk-1", svc).get_json()["data"]["production"] is False


@pytest.mark.parametrize(
    "roles, allowed",
    [(("TENANT.ADMIN",), True), (("DEVICE.MANAGER",), True), (("USER.MANAGER",), False),
     (("STAFF",), False), ((), False)],
)  # fmt: skip
def test_people_manage_modules_by_role(reg, t, svc, roles, allowed):
    new_module(reg, svc, id="kiosk-1")
    token = reg.user_token(t, "person", roles, scope="modules:read modules:write")
    read = reg.call("GET", f"{MODULES}/kiosk-1", token)
    write = reg.call("PATCH", f"{MODULES}/kiosk-1", token, json={"production": True})
    assert (read.status_code, write.status_code) == ((200, 200) if allowed else (403, 403))


def test_device_tokens_never_manage_modules_and_the_back_office_has_no_module_of_its_own(
    reg, t, svc
):
    new_module(reg, svc, id="kiosk-1")
    _, linked, key = reg.linked_device(t)
    for method, path in (("GET", MODULES), ("GET", f"{MODULES}/kiosk-1"),
                         ("POST", f"{MODULES}/kiosk-1/logout")):  # fmt: skip
        problem(reg.call(method, path, linked["access_token"], key=key), 403)
    # /modules/me is for a device enrolled as a module: a linked terminal has none, a service
    # token is nobody's device.
    problem(reg.call("GET", f"{MODULES}/me", linked["access_token"], key=key), 403)
    problem(reg.call("GET", f"{MODULES}/me/config", svc), 403)
    problem(reg.call("GET", f"{MODULES}/me", None), 401)


# -- a kiosk enrolled as a module -----------------------------------------------------------------------


def test_a_kiosk_enrols_as_the_module_it_names_and_reads_its_config(reg, kiosk):
    kiosk.module("kiosk-1", config={"menu": "breakfast"})
    reg.call("PUT", "/api/v1/module-types/KIOSK/config", kiosk.svc, json={"currency": "PLN"})
    tokens = kiosk.enrol(module="kiosk-1")
    assert claims(tokens["access_token"])["module"] == "kiosk-1"
    token = tokens["access_token"]

    me = reg.call("GET", f"{MODULES}/me", token)
    assert me.status_code == 200 and me.get_json()["data"]["id"] == "kiosk-1"
    config = reg.call("GET", f"{MODULES}/me/config", token)
    assert config.get_json()["data"] == {"currency": "PLN", "menu": "breakfast"}
    common = reg.call("GET", f"{MODULES}/me/common-config", token)
    assert common.get_json()["data"] == {"currency": "PLN"}


def test_a_kiosk_polls_its_config_cheaply_and_sees_a_change_on_its_next_read(reg, kiosk):
    kiosk.module("kiosk-1", config={"menu": "breakfast"})
    token = kiosk.enrol(module="kiosk-1")["access_token"]
    first = reg.call("GET", f"{MODULES}/me/config", token)
    etag = first.headers["ETag"]
    assert etag.startswith('"') and first.headers["Cache-Control"] == "private, no-cache"

    again = reg.call("GET", f"{MODULES}/me/config", token, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""
    assert again.headers["ETag"] == etag
    # A list of tags, or W/ (weak comparison, RFC 9110 §13.1.2), matches too.
    listed = reg.call("GET", f"{MODULES}/me/config", token,
                      headers={"If-None-Match": f'"nope", W/{etag}'})  # fmt: skip
    assert listed.status_code == 304

    # The back office changes the common config: the next poll gets the new config.
    reg.call("PUT", "/api/v1/module-types/KIOSK/config", kiosk.svc, json={"currency": "EUR"})
    changed = reg.call("GET", f"{MODULES}/me/config", token, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.get_json()["data"] == {"currency": "EUR", "menu": "breakfast"}
    assert changed.headers["ETag"] != etag
    # And its own config.
    reg.call("PATCH", f"{MODULES}/kiosk-1", kiosk.svc, json={"config": {"menu": "lunch"}})
    own = reg.call("GET", f"{MODULES}/me/config", token,
                   headers={"If-None-Match": changed.headers["ETag"]})  # fmt: skip
    assert own.status_code == 200 and own.get_json()["data"]["menu"] == "lunch"


def test_the_approver_picks_the_module_when_the_kiosk_names_none(reg, kiosk):
    kiosk.module("kiosk-1")
    kiosk.module("kiosk-2")
    tokens = kiosk.enrol(approve_module="kiosk-2")
    assert claims(tokens["access_token"])["module"] == "kiosk-2"
    assert reg.call("GET", f"{MODULES}/me", tokens["access_token"]).get_json()["data"]["id"] == (
        "kiosk-2"
    )
    # Without a module, a kiosk's token has no module claim and no module to read.
    plain = kiosk.enrol()
    assert "module" not in claims(plain["access_token"])
    problem(reg.call("GET", f"{MODULES}/me/config", plain["access_token"]), 403)


def test_the_back_office_api_approves_a_kiosk_as_a_module(reg, kiosk):
    kiosk.module("kiosk-1")
    body = start(reg.http, kiosk.client.client_id).get_json()
    resp = reg.call("POST", f"/api/v1/device-authorizations/{body['user_code']}", kiosk.svc,
                    json={"decision": "approve", "moduleId": "kiosk-1"})  # fmt: skip
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["data"]["moduleId"] == "kiosk-1"
    token = poll(reg.http, kiosk.client.client_id, body["device_code"]).get_json()["access_token"]
    assert claims(token)["module"] == "kiosk-1"


def test_a_module_that_does_not_exist_cannot_be_enrolled_as(reg, kiosk, world):
    resp = start(reg.http, kiosk.client.client_id, module="kiosk-9")
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request"
    resp = start(reg.http, kiosk.client.client_id, module="x")
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request"
    # Another tenant's module is as unknown as none.
    other_tenant, _ = kiosk_world(world)
    other_svc = cc_token(reg.http, world.client(other_tenant, scope=SCOPES)).get_json()
    new_module(reg, other_svc["access_token"], id="theirs")
    assert start(reg.http, kiosk.client.client_id, module="theirs").status_code == 400
    # The approver cannot pick one either: the decision is refused, the code stays pending.
    body = start(reg.http, kiosk.client.client_id).get_json()
    refused = reg.call("POST", f"/api/v1/device-authorizations/{body['user_code']}", kiosk.svc,
                       json={"decision": "approve", "moduleId": "theirs"})  # fmt: skip
    assert problem(refused, 400)["code"] == "invalid_module"
    assert poll(reg.http, kiosk.client.client_id, body["device_code"]).get_json()["error"] == (
        "authorization_pending"
    )


def test_a_sign_in_client_cannot_name_a_module(reg, world):
    tenant, client = kiosk_world(world, device_subject="user")
    svc = cc_token(reg.http, world.client(tenant, scope=SCOPES)).get_json()["access_token"]
    new_module(reg, svc, id="kiosk-1")
    resp = start(reg.http, client.client_id, module="kiosk-1")
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request"


def test_a_dpop_bound_module_token_reads_with_its_proof(reg, kiosk):
    kiosk.module("kiosk-1", config={"menu": "breakfast"})
    key = DPoPKey()
    tokens = kiosk.enrol(module="kiosk-1", key=key)
    assert tokens["token_type"] == "DPoP"
    token = tokens["access_token"]
    assert reg.call("GET", f"{MODULES}/me/config", token, key=key).status_code == 200
    refused = reg.call("GET", f"{MODULES}/me/config", token)  # as Bearer: refused (RFC 9449 §7.2)
    assert refused.status_code == 401


def test_refreshed_tokens_keep_the_module(reg, kiosk):
    kiosk.module("kiosk-1")
    tokens = kiosk.enrol(module="kiosk-1")
    resp = refresh(reg, kiosk, tokens)
    assert resp.status_code == 200, resp.get_json()
    assert claims(resp.get_json()["access_token"])["module"] == "kiosk-1"
    assert reg.call("GET", f"{MODULES}/me", resp.get_json()["access_token"]).status_code == 200


# -- logout, deletion, re-enrolment: the module's tokens go, nobody else's ------------------------------


def refresh_status(reg, kiosk, tokens) -> int:
    return refresh(reg, kiosk, tokens).status_code


@pytest.mark.parametrize("how", ["logout", "delete"])
def test_logout_or_deletion_revokes_the_modules_tokens_only(reg, world, kiosk, how):
    kiosk.module("kiosk-1")
    kiosk.module("kiosk-2")
    target = kiosk.enrol(module="kiosk-1")
    bystander = kiosk.enrol(module="kiosk-2")
    plain = kiosk.enrol()  # the same client, no module
    # A module with the same id in another tenant is another module.
    other = Kiosk(reg, world)
    other.module("kiosk-1")
    foreign = other.enrol(module="kiosk-1")
    reg.now.advance(1)

    if how == "logout":
        resp = reg.call("POST", f"{MODULES}/kiosk-1/logout", kiosk.svc)
        assert resp.status_code == 200 and resp.get_json()["data"]["loggedOut"] is True
    else:
        assert reg.call("DELETE", f"{MODULES}/kiosk-1", kiosk.svc).status_code == 200

    assert reg.call("GET", f"{MODULES}/me", target["access_token"]).status_code == 401
    assert refresh_status(reg, kiosk, target) == 400
    assert reg.call("GET", f"{MODULES}/me", bystander["access_token"]).status_code == 200
    assert refresh_status(reg, kiosk, bystander) == 200
    assert reg.call("GET", "/api/v1/devices/me", plain["access_token"]).status_code == 200
    introspect = reg.http.post("/oauth/introspect", data={"token": plain["access_token"]},
                               headers=world_basic(reg, kiosk))  # fmt: skip
    assert introspect.get_json()["active"] is True
    assert reg.call("GET", f"{MODULES}/me", foreign["access_token"]).status_code == 200
    assert refresh_status(reg, other, foreign) == 200


def world_basic(reg, kiosk):
    """Client authentication of a confidential client of the kiosk's tenant (to introspect)."""
    creds = kiosk.world.client(kiosk.tenant, scope="devices:read")
    return creds.auth_header()


def test_enrolling_another_device_as_the_module_logs_the_first_out(reg, kiosk):
    kiosk.module("kiosk-1")
    first = kiosk.enrol(module="kiosk-1")
    reg.now.advance(1)
    second = kiosk.enrol(module="kiosk-1")
    assert reg.call("GET", f"{MODULES}/me", first["access_token"]).status_code == 401
    assert refresh_status(reg, kiosk, first) == 400
    assert reg.call("GET", f"{MODULES}/me", second["access_token"]).status_code == 200
    assert refresh_status(reg, kiosk, second) == 200


def test_the_module_claim_is_signed_and_cannot_be_added_by_the_device(reg, kiosk):
    kiosk.module("kiosk-1")
    token = kiosk.enrol()["access_token"]
    header, payload, signature = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged["module"] = "kiosk-1"
    raw = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    assert reg.call("GET", f"{MODULES}/me", f"{header}.{raw}.{signature}").status_code == 401


# -- found by review: re-enrolment is exact at any age; a location's approver; pending approvals ---


def test_re_enrolment_logs_out_an_enrolment_of_any_age(reg, kiosk):
    from authserver.models import DeviceAuthorization, db
    from authserver.retention import purge_expired

    kiosk.module("kiosk-1")
    first = kiosk.enrol(module="kiosk-1")
    # A day later, its device authorization record purged long ago, it has refreshed since.
    reg.now.advance(86_400)
    code_refresh = refresh(reg, kiosk, first).get_json()
    assert code_refresh.get("access_token"), code_refresh
    with reg.app.app_context():
        purge_expired(db.engine, reg.settings, int(reg.now()))
        assert db.session.query(DeviceAuthorization).count() == 0
    second = kiosk.enrol(module="kiosk-1")
    assert reg.call("GET", f"{MODULES}/me", code_refresh["access_token"]).status_code == 401
    refreshed = refresh(reg, kiosk, code_refresh)
    assert refreshed.status_code == 400
    assert reg.call("GET", f"{MODULES}/me", second["access_token"]).status_code == 200


def test_an_earlier_approval_not_yet_redeemed_is_ended_by_a_later_one(reg, kiosk):
    kiosk.module("kiosk-1")
    early = start(reg.http, kiosk.client.client_id, module="kiosk-1").get_json()
    approve(reg.app, early["user_code"], "admin")
    late = kiosk.enrol(module="kiosk-1")  # approved and redeemed before the first one polls
    refused = poll(reg.http, kiosk.client.client_id, early["device_code"])
    assert refused.status_code == 400 and refused.get_json()["error"] == "access_denied"
    assert reg.call("GET", f"{MODULES}/me", late["access_token"]).status_code == 200


def test_an_approver_at_one_location_enrols_only_as_that_locations_modules(reg, world, kiosk):
    svc = kiosk.svc
    here = reg.call("POST", "/api/v1/locations", svc, json={"name": "Here"}).get_json()["data"]
    there = reg.call("POST", "/api/v1/locations", svc, json={"name": "There"}).get_json()["data"]
    kiosk.module("ours", locationId=here["id"])
    kiosk.module("theirs", locationId=there["id"])
    kiosk.module("nowhere")
    world.user(kiosk.tenant, login="local", roles=(f"DEVICE.MANAGER@{here['id']}",))
    for module in ("theirs", "nowhere"):
        body = start(reg.http, kiosk.client.client_id, module=module).get_json()
        refused = approve(reg.app, body["user_code"], "local", "--location", here["id"])
        assert refused["exit_code"] == 1 and "module" in refused["error"], refused
    body = start(reg.http, kiosk.client.client_id, module="ours").get_json()
    done = approve(reg.app, body["user_code"], "local", "--location", here["id"])
    assert done["decision"] == "approved" and done["module_id"] == "ours"


# -- each check on its own (from a mutation run of authserver/modules.py) ----------------------------


def test_list_by_user_and_a_replacement_may_repeat_its_id(reg, world, t, svc):
    ana = world.user(t.id, login="ana")
    new_module(reg, svc, id="m-ana", userId=ana)
    new_module(reg, svc, id="m-none")
    found = reg.call("GET", f"{MODULES}?userId={ana}", svc).get_json()["data"]
    assert [m["id"] for m in found] == ["m-ana"]
    same = reg.call("PUT", f"{MODULES}/m-none", svc, json={"id": "m-none", "type": "KDS"})
    assert same.status_code == 200 and same.get_json()["data"]["type"] == "KDS"


def test_a_change_checks_the_user_and_location_it_names_and_moves_updated_at(reg, world, t, svc):
    made = new_module(reg, svc, id="kiosk-1")
    other = reg.tenant()
    theirs = world.user(other.id, login="theirs")
    problem(reg.call("PATCH", f"{MODULES}/kiosk-1", svc, json={"userId": theirs}), 400, "userId")
    loc = reg.call("POST", "/api/v1/locations", svc, json={"name": "Main"}).get_json()["data"]
    reg.now.advance(2)
    moved = reg.call("PATCH", f"{MODULES}/kiosk-1", svc, json={"locationId": loc["id"]})
    assert moved.get_json()["data"]["locationId"] == loc["id"]
    assert moved.get_json()["data"]["updatedAt"] > made["updatedAt"]


def test_the_config_limit_is_exactly_12_kib_of_compact_json(reg, t, svc):
    at_limit = {"x": "y" * (12_288 - len('{"x":""}'))}
    assert (
        reg.call("PUT", "/api/v1/module-types/KIOSK/config", svc, json=at_limit).status_code == 200
    )
    over = {"x": "y" * (12_289 - len('{"x":""}'))}
    problem(reg.call("PUT", "/api/v1/module-types/KIOSK/config", svc, json=over), 400, "body")
    problem(reg.call("POST", MODULES, svc, json={"id": "k", "type": "KIOSK", "config": over}),
            400)  # fmt: skip


def test_the_overlay_replaces_what_is_not_an_object_on_both_sides(reg, t, svc):
    reg.call("PUT", "/api/v1/module-types/KIOSK/config", svc,
             json={"theme": {"colour": "#0a5"}, "menu": "breakfast"})  # fmt: skip
    new_module(reg, svc, id="k1", config={"theme": "dark", "menu": {"items": 3}})
    new_module(reg, svc, id="k2", config=None)
    assert reg.call("GET", f"{MODULES}/k1/config", svc).get_json()["data"] == {
        "theme": "dark", "menu": {"items": 3}}  # fmt: skip
    assert reg.call("GET", f"{MODULES}/k2", svc).get_json()["data"]["config"] == {}
    assert reg.call("GET", f"{MODULES}/k2/config", svc).get_json()["data"] == {
        "theme": {"colour": "#0a5"}, "menu": "breakfast"}  # fmt: skip


@pytest.mark.parametrize(
    "module, words", [("me", "module must be a module id"), ("x", "module must be a module id"),
                      ("kiosk-9", "No such module")],
)  # fmt: skip
def test_why_a_module_cannot_be_enrolled_as(reg, kiosk, module, words):
    kiosk.module("kiosk-1")
    resp = start(reg.http, kiosk.client.client_id, module=module)
    assert resp.status_code == 400 and words in resp.get_json()["error_description"]


def test_a_patch_sets_the_user_and_a_replacement_without_one_clears_it(reg, world, t, svc):
    ana = world.user(t.id, login="ana")
    new_module(reg, svc, id="kiosk-1")
    given = reg.call("PATCH", f"{MODULES}/kiosk-1", svc, json={"userId": ana})
    assert given.get_json()["data"]["userId"] == ana
    assert reg.call("GET", f"{MODULES}/kiosk-1", svc).get_json()["data"]["userId"] == ana
    cleared = reg.call("PUT", f"{MODULES}/kiosk-1", svc, json={"type": "KIOSK"})
    assert cleared.get_json()["data"]["userId"] is None


def test_a_change_of_config_is_held_to_the_same_limit_as_a_new_one(reg, t, svc):
    new_module(reg, svc, id="kiosk-1", config={"menu": "breakfast"})
    over = {"x": "y" * 12_289}
    problem(reg.call("PATCH", f"{MODULES}/kiosk-1", svc, json={"config": over}), 400, "config")
    problem(reg.call("PUT", f"{MODULES}/kiosk-1", svc, json={"type": "KIOSK", "config": over}),
            400, "config")  # fmt: skip
    kept = reg.call("GET", f"{MODULES}/kiosk-1", svc).get_json()["data"]["config"]
    assert kept == {"menu": "breakfast"}


def test_the_config_limit_counts_compact_json_with_many_members(reg, t, svc):
    # Two members: the compact form has one "," and two ":"; exactly 12 KiB is accepted.
    filler = 12_288 - len('{"a":"","b":""}')
    at_limit = {"a": "y" * (filler // 2), "b": "y" * (filler - filler // 2)}
    assert len(json.dumps(at_limit, separators=(",", ":"))) == 12_288
    assert reg.call("POST", MODULES, svc,
                    json={"id": "k1", "type": "KIOSK", "config": at_limit}).status_code == 201  # fmt: skip
    at_limit["b"] += "y"
    problem(reg.call("POST", MODULES, svc, json={"id": "k2", "type": "KIOSK",
                                                 "config": at_limit}), 400, "config")  # fmt: skip


def test_a_null_config_is_stored_as_the_empty_object(reg, t, svc):
    from authserver import modules
    from authserver.models import Module, db

    assert modules.check_config(None, "config") == {}
    new_module(reg, svc, id="kiosk-1", config={"menu": "breakfast"})
    assert reg.call("PATCH", f"{MODULES}/kiosk-1", svc, json={"config": None}).status_code == 200
    new_module(reg, svc, id="kiosk-2")  # no config at all
    with reg.app.app_context():
        assert db.session.get(Module, (t.id, "kiosk-1")).config == {}
        assert db.session.get(Module, (t.id, "kiosk-2")).config == {}


def test_who_made_and_last_changed_a_module_and_a_common_config(reg, world, t):
    from authserver.models import ModuleTypeConfig, db

    first, second = (world.client(t.id, scope=SCOPES) for _ in range(2))
    a = cc_token(reg.http, first).get_json()["access_token"]
    b = cc_token(reg.http, second).get_json()["access_token"]
    made = new_module(reg, a, id="kiosk-1")
    assert made["createdBy"] == made["updatedBy"] == first.client_id
    changed = reg.call("PATCH", f"{MODULES}/kiosk-1", b, json={"production": True})
    data = changed.get_json()["data"]
    assert (data["createdBy"], data["updatedBy"]) == (first.client_id, second.client_id)
    # A change that changes nothing is no change: the last one to change it stays.
    same = reg.call("PATCH", f"{MODULES}/kiosk-1", a, json={"production": True})
    assert same.get_json()["data"]["updatedBy"] == second.client_id

    reg.call("PUT", "/api/v1/module-types/KIOSK/config", a, json={"menu": "breakfast"})
    reg.call("PUT", "/api/v1/module-types/KIOSK/config", b, json={"menu": "lunch"})
    with reg.app.app_context():
        found = db.session.get(ModuleTypeConfig, (t.id, "KIOSK"))
        assert (found.config, found.updated_by) == ({"menu": "lunch"}, second.client_id)


@pytest.mark.parametrize("how, reason", [("logout", "module_logout"), ("delete", "module_deleted")])
def test_the_revoked_sessions_say_why(reg, kiosk, how, reason):
    from sqlalchemy import select

    from authserver.models import RefreshFamily, db

    kiosk.module("kiosk-1")
    kiosk.module("kiosk-2")
    kiosk.enrol(module="kiosk-1")
    kiosk.enrol(module="kiosk-2")
    if how == "logout":
        reg.call("POST", f"{MODULES}/kiosk-1/logout", kiosk.svc)
    else:
        reg.call("DELETE", f"{MODULES}/kiosk-1", kiosk.svc)
    with reg.app.app_context():
        rows = db.session.execute(
            select(RefreshFamily.module_id, RefreshFamily.revoked_reason)
            .where(RefreshFamily.tenant_id == kiosk.tenant)
            .order_by(RefreshFamily.module_id)
        ).all()
    assert [tuple(r) for r in rows] == [("kiosk-1", reason), ("kiosk-2", None)]


# -- the /device page's module picker ---------------------------------------------------------------


def test_the_picker_lists_the_tenants_modules_by_id_up_to_its_limit(reg, t):
    from authserver import modules
    from authserver.models import Module, db

    with reg.app.app_context():
        at = reg.now()
        db.session.add_all(
            Module(
                tenant_id=t.id,
                id=f"m{i:03d}",
                type="KIOSK",
                production=False,
                config={},
                created_at=at,
                updated_at=at,
            )  # fmt: skip
            for i in range(501)
        )
        db.session.commit()
        found = modules.modules_for_picker(t.id, None, None)
        assert len(found) == 500 and found[0].id == "m000" and found[-1].id == "m499"
        # The one the device asked for is added first when the limit left it out.
        asked = modules.modules_for_picker(t.id, None, "m500")
        assert [m.id for m in asked[:2]] == ["m500", "m000"] and len(asked) == 501


def test_the_picker_adds_the_asked_module_once_and_only_one_the_approver_may_use(reg, t):
    from authserver import modules
    from authserver.models import Location, Module, db

    with reg.app.app_context():
        at = reg.now()
        here, there = (Location(id=f"loc_{n}", tenant_id=t.id, name=n, created_at=at,
                                updated_at=at) for n in ("here", "there"))  # fmt: skip
        db.session.add_all([here, there])
        for module_id, loc in (("a1", here), ("a2", here), ("a3", here), ("b1", there)):
            db.session.add(Module(tenant_id=t.id, id=module_id, type="KIOSK", production=False,
                                  config={}, location_id=loc.id, created_at=at, updated_at=at))  # fmt: skip
        db.session.commit()

        def ids(places, asked, limit=2):
            return [m.id for m in modules.modules_for_picker(t.id, places, asked, limit)]

        assert ids(None, None) == ["a1", "a2"]
        assert ids(None, "a2") == ["a1", "a2"]  # among them already: not twice
        assert ids(None, "a3") == ["a3", "a1", "a2"]
        assert ids(None, "zz") == ["a1", "a2"]  # no such module
        assert ids(frozenset({here.id}), "b1") == ["a1", "a2"]  # not one of the approver's
        assert ids(frozenset({there.id}), None) == ["b1"]


# -- re-enrolment, each layer on its own (from a mutation run of authserver/device_flow.py) ---------


def sub(token: str) -> str:
    return claims(token)["sub"]


def test_re_enrolment_ends_the_first_access_token_even_without_a_refresh_family(reg, world):
    """A kiosk client without refresh tokens has no family to revoke: the first access token is
    ended by its own deny entry alone. A kiosk of the same client without a module is a
    bystander."""
    kiosk = Kiosk(reg, world)
    plain_client = world.client(kiosk.tenant, grant_types=(DEVICE_GRANT,), auth_method="none",
                                scope="devices:read")  # fmt: skip
    kiosk.client = plain_client
    kiosk.module("kiosk-1")
    first = kiosk.enrol(module="kiosk-1")
    bystander = kiosk.enrol()
    assert "refresh_token" not in first
    reg.now.advance(1)
    second = kiosk.enrol(module="kiosk-1")
    assert reg.call("GET", f"{MODULES}/me", first["access_token"]).status_code == 401
    assert reg.call("GET", f"{MODULES}/me", second["access_token"]).status_code == 200
    assert reg.call("GET", "/api/v1/devices/me", bystander["access_token"]).status_code == 200


def test_re_enrolment_ends_a_blocked_enrolment_for_good(reg, kiosk):
    """The first device was blocked (its family revoked as blocked) when another one enrolled as
    the module; unblocking it with its sessions restored must not bring the module's earlier
    enrolment back."""
    kiosk.module("kiosk-1")
    first = kiosk.enrol(module="kiosk-1")
    reg.now.advance(1)
    rotated = refresh(reg, kiosk, first).get_json()
    device = sub(first["access_token"])
    reg.now.advance(1)
    blocked = reg.call("PATCH", f"/api/v1/devices/{device}", kiosk.svc, json={"status": "BLOCKED"})
    assert blocked.status_code == 200, blocked.get_json()
    reg.now.advance(1)
    second = kiosk.enrol(module="kiosk-1")
    reg.now.advance(1)
    back = reg.call("PATCH", f"/api/v1/devices/{device}", kiosk.svc,
                    json={"status": "ACTIVE", "restoreSessions": True})  # fmt: skip
    assert back.status_code == 200, back.get_json()
    assert reg.call("GET", f"{MODULES}/me", rotated["access_token"]).status_code == 401
    assert refresh_status(reg, kiosk, rotated) == 400
    assert reg.call("GET", f"{MODULES}/me", second["access_token"]).status_code == 200


def test_re_enrolment_leaves_other_modules_requests_and_tenants_alone(reg, world, kiosk):
    kiosk.module("kiosk-1")
    kiosk.module("kiosk-2")
    # Approved but not yet redeemed: one as another module, one as no module.
    other_module = start(reg.http, kiosk.client.client_id, module="kiosk-2").get_json()
    approve(reg.app, other_module["user_code"], "admin")
    no_module = start(reg.http, kiosk.client.client_id).get_json()
    approve(reg.app, no_module["user_code"], "admin")
    # Still pending: a device asking to be this very module, not decided yet.
    waiting = start(reg.http, kiosk.client.client_id, module="kiosk-1").get_json()
    # The same module id in another tenant, enrolled there.
    elsewhere = Kiosk(reg, world)
    elsewhere.module("kiosk-1")
    foreign = elsewhere.enrol(module="kiosk-1")
    reg.now.advance(1)

    kiosk.enrol(module="kiosk-1")

    for flow in (other_module, no_module):
        assert poll(reg.http, kiosk.client.client_id, flow["device_code"]).status_code == 200
    decided = approve(reg.app, waiting["user_code"], "admin")
    assert decided["decision"] == "approved", decided
    assert reg.call("GET", f"{MODULES}/me", foreign["access_token"]).status_code == 200
    assert refresh_status(reg, elsewhere, foreign) == 200


def test_the_ended_enrolments_family_says_why(reg, kiosk):
    from sqlalchemy import select

    from authserver.models import RefreshFamily, db

    kiosk.module("kiosk-1")
    first = kiosk.enrol(module="kiosk-1")
    reg.now.advance(1)
    second = kiosk.enrol(module="kiosk-1")
    with reg.app.app_context():
        reasons = dict(db.session.execute(
            select(RefreshFamily.device_id, RefreshFamily.revoked_reason)).all())  # fmt: skip
    assert reasons == {sub(first["access_token"]): "module_reenrolled",
                       sub(second["access_token"]): None}  # fmt: skip


def test_a_request_naming_a_deleted_module_can_still_be_denied(reg, kiosk):
    kiosk.module("kiosk-1")
    body = start(reg.http, kiosk.client.client_id, module="kiosk-1").get_json()
    assert reg.call("DELETE", f"{MODULES}/kiosk-1", kiosk.svc).status_code == 200
    denied = approve(reg.app, body["user_code"], "admin", "--deny")
    assert denied["decision"] == "denied", denied
    refused = poll(reg.http, kiosk.client.client_id, body["device_code"])
    assert refused.get_json()["error"] == "access_denied"


def test_only_a_device_enrolment_can_be_given_a_module(reg, world):
    tenant, signin = kiosk_world(world, device_subject="user")
    creds = world.client(tenant, scope=SCOPES)
    svc = cc_token(reg.http, creds).get_json()["access_token"]
    reg.call("POST", MODULES, svc, json={"id": "kiosk-1", "type": "KIOSK"})
    body = start(reg.http, signin.client_id).get_json()
    refused = approve(reg.app, body["user_code"], "admin", "--module", "kiosk-1")
    assert refused["exit_code"] == 1 and "device enrolment" in refused["error"], refused


def test_the_same_kiosk_enrols_again_with_its_identifier(reg, kiosk):
    key = DPoPKey()
    http, issuer = reg.http, reg.settings.issuer
    devices = []
    for _ in range(2):
        proof = key.proof("POST", issuer + "/oauth/device_authorization")
        body = start(http, kiosk.client.client_id, proof=proof,
                     device_identifier="KIOSK-0042").get_json()  # fmt: skip
        decided = approve(reg.app, body["user_code"], "admin")
        assert decided["decision"] == "approved", decided
        devices.append(decided["device_id"])
        reg.now.advance(1)
    assert devices[0] == devices[1]
    found = reg.call("GET", "/api/v1/devices?deviceIdentifier=KIOSK-0042", kiosk.svc)
    assert [d["id"] for d in found.get_json()["data"]] == [devices[0]]
    # Enrolling again with a new identifier changes it; without one, the identifier stays.
    for given, kept in (("KIOSK-0043", "KIOSK-0043"), (None, "KIOSK-0043")):
        proof = key.proof("POST", issuer + "/oauth/device_authorization")
        form = {"device_identifier": given} if given else {}
        body = start(http, kiosk.client.client_id, proof=proof, **form).get_json()
        assert approve(reg.app, body["user_code"], "admin")["device_id"] == devices[0]
        entry = reg.call("GET", f"/api/v1/devices/{devices[0]}", kiosk.svc).get_json()["data"]
        assert entry["identifier"] == kept
        reg.now.advance(1)
