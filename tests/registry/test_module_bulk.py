"""Issue 16's bulk operations on modules, through the API: create many (all or nothing, every
failing row reported), log out / delete many by ids or by filter (each module's tokens revoked,
audited), export; and the paths they take are no module's id."""

from __future__ import annotations

import csv
import io
import json

import pytest

from authserver import module_bulk
from tests.registry.conftest import audit_events
from tests.registry.test_modules import MODULES, Kiosk, refresh_status

BULK = f"{MODULES}/bulk"


@pytest.fixture
def kiosk(reg, world):
    return Kiosk(reg, world)


def ids(reg, kiosk, query: str = "") -> list[str]:
    resp = reg.call("GET", f"{MODULES}?limit=200{query}", kiosk.svc)
    assert resp.status_code == 200, resp.get_json()
    return [m["id"] for m in resp.get_json()["data"]]


def test_bulk_create(reg, kiosk, app):
    loc = reg.call("POST", "/api/v1/locations", kiosk.svc, json={"name": "Main"})
    loc_id = loc.get_json()["data"]["id"]
    rows = [{"id": f"kiosk-{i}", "type": "KIOSK", "locationId": loc_id,
             "config": {"menu": "breakfast", "n": i}} for i in range(20)]  # fmt: skip
    rows.append({"id": "kds-1", "type": "KDS", "production": True})
    resp = reg.call("POST", BULK, kiosk.svc, json={"modules": rows})
    assert resp.status_code == 201, resp.get_json()
    made = resp.get_json()["data"]
    assert [m["id"] for m in made] == [r["id"] for r in rows]
    assert made[3]["config"] == {"menu": "breakfast", "n": 3} and made[20]["production"] is True
    assert sorted(ids(reg, kiosk)) == sorted(r["id"] for r in rows)
    assert len(audit_events(app, kiosk.tenant, "module.created")) == 21
    # Each one is enrolled into as a module made one by one.
    tokens = kiosk.enrol(module="kiosk-7")
    me = reg.call("GET", f"{MODULES}/me", tokens["access_token"]).get_json()["data"]
    assert me["id"] == "kiosk-7"


def test_bulk_create_is_all_or_nothing(reg, kiosk, world):
    kiosk.module("taken")
    other = reg.tenant()
    foreign_user = world.user(other.id, login="x", password="correct horse")
    rows = [
        {"id": "ok-1", "type": "KIOSK"},
        {"id": "ok-1", "type": "KIOSK"},  # twice
        {"id": "taken", "type": "KIOSK"},
        {"id": "far", "type": "KIOSK", "locationId": "loc_nope"},
        {"id": "who", "type": "KIOSK", "userId": foreign_user},
        {"id": "me", "type": "KIOSK"},  # a path, not an id
        {"id": "bulk", "type": "KIOSK"},
        {"id": "typo", "type": "TOASTER"},
        {"id": "cfg", "type": "KIOSK", "config": [1, 2]},
    ]
    resp = reg.call("POST", BULK, kiosk.svc, json={"modules": rows})
    assert resp.status_code == 400
    errors = resp.get_json()["errors"]
    assert [e["index"] for e in errors] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert {e["field"] for e in errors} == {"id", "locationId", "userId", "type", "config"}
    assert ids(reg, kiosk) == ["taken"]


def test_bulk_logout_and_delete_revoke_each_modules_tokens_only(reg, kiosk, app):
    for i in range(3):
        kiosk.module(f"kiosk-{i}")
    enrolled = {i: kiosk.enrol(module=f"kiosk-{i}") for i in range(3)}
    reg.now.advance(1)
    resp = reg.call("POST", f"{BULK}/logout", kiosk.svc, json={"ids": ["kiosk-0", "kiosk-1"]})
    assert resp.get_json()["data"]["changed"] == 2
    for i, expected in ((0, 401), (1, 401), (2, 200)):
        status = reg.call("GET", f"{MODULES}/me", enrolled[i]["access_token"]).status_code
        assert status == expected, i
    assert refresh_status(reg, kiosk, enrolled[0]) == 400
    assert len(audit_events(app, kiosk.tenant, "module.logged_out")) == 2
    assert sorted(ids(reg, kiosk)) == ["kiosk-0", "kiosk-1", "kiosk-2"]  # logged out, still there
    resp = reg.call("POST", f"{BULK}/delete", kiosk.svc, json={"filter": {"type": "KIOSK"}})
    assert resp.get_json()["data"]["changed"] == 3
    assert ids(reg, kiosk) == []
    assert reg.call("GET", f"{MODULES}/me", enrolled[2]["access_token"]).status_code == 401
    assert len(audit_events(app, kiosk.tenant, "module.deleted")) == 3


def test_a_logout_by_filter_goes_on_with_after(reg, kiosk, monkeypatch):
    """A logout leaves its modules selected: hasMore and lastId, then after, walk them all."""
    monkeypatch.setattr(module_bulk, "MAX_ROWS", 2)
    for i in range(5):
        kiosk.module(f"kiosk-{i}")
    done, after = [], None
    while True:
        body = {"filter": {"type": "KIOSK"}, **({"after": after} if after else {})}
        data = reg.call("POST", f"{BULK}/logout", kiosk.svc, json=body).get_json()["data"]
        done.append(data["changed"])
        after = data["lastId"]
        if not data["hasMore"]:
            break
    assert done == [2, 2, 1] and after == "kiosk-4"


def test_unknown_ids_fail_the_whole_request(reg, kiosk, world):
    kiosk.module("kiosk-1")
    other = Kiosk(reg, world)
    other.module("kiosk-9")
    resp = reg.call("POST", f"{BULK}/delete", kiosk.svc, json={"ids": ["kiosk-1", "kiosk-9"]})
    assert resp.status_code == 400 and [e["index"] for e in resp.get_json()["errors"]] == [1]
    assert ids(reg, kiosk) == ["kiosk-1"] and ids(reg, other) == ["kiosk-9"]


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", BULK, {"modules": [{"id": "new-1", "type": "KIOSK"}]}),
        ("POST", f"{BULK}/logout", {"filter": {"id": "no-such-module"}}),
        ("POST", f"{BULK}/delete", {"filter": {"id": "no-such-module"}}),
        ("GET", f"{MODULES}/export?format=ndjson", None),
    ],
)
def test_authorization_matrix(reg, kiosk, world, method, path, body):
    from tests.conftest import cc_token

    write = method == "POST"
    ok = 201 if path == BULK else 200
    t = reg.tenant()
    device, tokens, key = reg.linked_device(t)
    reader = world.client(t.id, scope="modules:read")
    writer = world.client(t.id, scope="modules:read modules:write")
    callers = {
        "service": (cc_token(reg.http, writer).get_json()["access_token"], None, ok),
        "reader": (cc_token(reg.http, reader).get_json()["access_token"], None,
                   403 if write else ok),
        "admin": (reg.user_token(t, "boss", ("TENANT.ADMIN",),
                                 scope="modules:read modules:write"), None, ok),
        "device manager": (reg.user_token(t, "dm", ("DEVICE.MANAGER",),
                                          scope="modules:read modules:write"), None, ok),
        "user manager": (reg.user_token(t, "um", ("USER.MANAGER",),
                                        scope="modules:read modules:write"), None, 403),
        "device": (tokens["access_token"], key, 403),
        "nobody": (None, None, 401),
    }  # fmt: skip
    for name, (token, dpop, expected) in callers.items():
        if path == BULK:
            body = {"modules": [{"id": f"new-{name.replace(' ', '-')}", "type": "KIOSK"}]}
        resp = reg.call(method, path, token, json=body, key=dpop)
        resp.get_data()
        assert resp.status_code == expected, (name, resp.status_code, resp.get_data()[:300])


def test_export_modules(reg, kiosk):
    reg.call("POST", BULK, kiosk.svc, json={"modules": [
        {"id": "kiosk-1", "type": "KIOSK", "config": {"menu": "=x"}},
        {"id": "kds-1", "type": "KDS", "production": True},
    ]})  # fmt: skip
    resp = reg.call("GET", f"{MODULES}/export?format=ndjson&type=KIOSK", kiosk.svc)
    items = [json.loads(line) for line in resp.get_data(as_text=True).splitlines()]
    assert [m["id"] for m in items] == ["kiosk-1"]
    assert items == reg.call("GET", f"{MODULES}?type=KIOSK", kiosk.svc).get_json()["data"]
    resp = reg.call("GET", f"{MODULES}/export?format=csv&production=true", kiosk.svc)
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert [(r["id"], r["production"]) for r in rows] == [("kds-1", "true")]
    resp = reg.call("GET", f"{MODULES}/export?format=csv", kiosk.svc)
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(resp.get_data(as_text=True)))}
    assert json.loads(rows["kiosk-1"]["config"]) == {"menu": "=x"}


@pytest.mark.parametrize("reserved", ["bulk", "export", "me"])
def test_the_bulk_paths_are_no_modules_id(reg, kiosk, reserved):
    resp = reg.call("POST", MODULES, kiosk.svc, json={"id": reserved, "type": "KIOSK"})
    assert resp.status_code == 400 and resp.get_json()["field"] == "id"


def test_bulk_create_from_csv(reg, kiosk):
    text = (
        "id,type,production,config\r\n"
        'kiosk-a,KIOSK,true,"{""menu"": ""lunch"", ""idle"": 30}"\r\n'
        "kds-a,KDS,,\r\n"
    )
    resp = reg.call("POST", BULK, kiosk.svc, data=text.encode(), content_type="text/csv")
    assert resp.status_code == 201, resp.get_json()
    a, b = resp.get_json()["data"]
    assert a["production"] is True and a["config"] == {"menu": "lunch", "idle": 30}
    assert b["production"] is False and b["config"] == {}
    bad = "id,type,config\r\nkiosk-b,KIOSK,{not json\r\nkiosk-a,KIOSK,\r\n"
    resp = reg.call("POST", BULK, kiosk.svc, data=bad.encode(), content_type="text/csv")
    assert resp.status_code == 400
    errors = resp.get_json()["errors"]
    assert [(e["index"], e["line"], e["field"]) for e in errors] == [
        (0, 2, "config"), (1, 3, "id")]  # fmt: skip
    assert sorted(ids(reg, kiosk)) == ["kds-a", "kiosk-a"]
