"""Issue 16's bulk operations on devices, through the API as a back office calls them: create
many (JSON or CSV, all or nothing, a report of every failing row), block / unblock / delete many
by ids or by filter (audited, tokens revoked, bounded), export the filtered list, and count."""

from __future__ import annotations

import csv
import io
import itertools
import json

import pytest

from authserver import device_bulk
from authserver.models import Device, RefreshFamily, db
from tests.registry.conftest import audit_events

DEVICES = "/api/v1/devices"
BULK = f"{DEVICES}/bulk"


@pytest.fixture
def t(reg):
    return reg.tenant()


@pytest.fixture
def svc(reg, t):
    return reg.service_token(t)


def me_status(reg, tokens, key) -> int:
    return reg.call("GET", f"{DEVICES}/me", tokens["access_token"], key=key).status_code


def refresh_status(reg, t, tokens, key) -> int:
    resp = reg.http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
              "client_id": t.pos.client_id},
        headers={"DPoP": key.proof("POST", reg.settings.issuer + "/oauth/token",
                                   iat=reg.now())},
    )  # fmt: skip
    return resp.status_code


def listed(reg, token, query: str = "") -> list[dict]:
    resp = reg.call("GET", f"{DEVICES}?limit=200{query}", token)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["data"]


def bulk_csv(reg, token, text: str):
    return reg.call("POST", BULK, token, data=text.encode(), content_type="text/csv")


# -- create many ---------------------------------------------------------------------------------


def test_bulk_create_from_json_gives_every_device_and_each_link_code_once(reg, t, svc):
    loc = reg.call("POST", "/api/v1/locations", svc, json={"name": "Main", "kind": "store"})
    loc_id = loc.get_json()["data"]["id"]
    rows = [{"name": f"Till {i}", "externalId": f"S1-T{i}", "status": "READY_TO_LINK",
             "locationIds": [loc_id], "tillId": str(i)} for i in range(30)]  # fmt: skip
    rows.append({"name": "Audit desk"})
    resp = reg.call("POST", BULK, svc, json={"devices": rows})
    assert resp.status_code == 201, resp.get_json()
    assert resp.headers["Cache-Control"] == "no-store"
    made = resp.get_json()["data"]
    assert [d["name"] for d in made] == [r["name"] for r in rows]  # in the order sent
    assert len({d["id"] for d in made}) == 31
    codes = [d["linkCode"] for d in made[:30]]
    assert len(set(codes)) == 30 and all(len(c.replace("-", "")) == 12 for c in codes)
    assert "linkCode" not in made[30] and made[30]["status"] == "ACTIVE"
    assert made[0]["locationIds"] == [loc_id] and made[0]["origin"] == "link"
    # The list shows them as the answer did, without the codes.
    shown = {d["id"]: d for d in listed(reg, svc)}
    for d in made:
        expected = {k: v for k, v in d.items() if k not in ("linkCode", "linkCodeExpiresAt")}
        assert shown[d["id"]] == expected
    # Each code links its own terminal, once.
    from tests.dpop_client import DPoPKey

    assert reg.link(t, codes[7], DPoPKey()).status_code == 200
    got = reg.call("GET", f"{DEVICES}/{made[7]['id']}", svc).get_json()["data"]
    assert got["status"] == "ACTIVE" and got["identifier"]
    assert reg.link(t, codes[7], DPoPKey()).get_json()["error"] == "invalid_grant"


def test_bulk_create_from_csv(reg, t, svc):
    loc = reg.call("POST", "/api/v1/locations", svc, json={"name": "Main", "kind": "store"})
    loc_id = loc.get_json()["data"]["id"]
    text = (
        "\ufeffname,externalId,locationIds,tillId,appCode,status,printerUids\r\n"
        f'"Till, front",S2-T1,{loc_id},1,CLIENT,READY_TO_LINK,p1 p2\r\n'
        "Back office,S2-BO,,,,,\r\n"
        "\r\n"
    )
    resp = bulk_csv(reg, svc, text)
    assert resp.status_code == 201, resp.get_json()
    front, back = resp.get_json()["data"]
    assert front["name"] == "Till, front" and front["printerUids"] == ["p1", "p2"]
    assert front["locationIds"] == [loc_id] and front["appCode"] == "CLIENT"
    assert front["linkCode"] and front["status"] == "READY_TO_LINK"
    assert back["externalId"] == "S2-BO" and back["tillId"] is None
    assert back["status"] == "ACTIVE" and back["locationIds"] == []


def test_bulk_create_is_all_or_nothing_with_every_failing_row_reported(reg, t, svc):
    reg.create_device(t, externalId="TAKEN")
    rows = [
        {"name": "ok 0", "externalId": "A"},
        {"name": "", "externalId": "B"},  # no name
        {"name": "dup of row 0", "externalId": "A"},
        {"name": "taken", "externalId": "TAKEN"},
        {"name": "nowhere", "locationIds": ["loc_nope"]},
        {"name": "bad status", "status": "BLOCKED"},
        {"name": "stray", "colour": "red"},
        "not an object",
        {"name": "ok 8"},
    ]
    resp = reg.call("POST", BULK, svc, json={"devices": rows})
    assert resp.status_code == 400
    body = resp.get_json()
    assert resp.content_type == "application/problem+json"
    assert body["errorCount"] == 7
    assert [e["index"] for e in body["errors"]] == [1, 2, 3, 4, 5, 6, 7]
    by_index = {e["index"]: e for e in body["errors"]}
    assert by_index[2]["field"] == "externalId" and "row 0" in by_index[2]["detail"]
    assert by_index[3]["field"] == "externalId" and "already exists" in by_index[3]["detail"]
    assert by_index[4]["field"] == "locationIds" and "loc_nope" in by_index[4]["detail"]
    assert by_index[5]["field"] == "status"
    assert "colour" in by_index[6]["detail"]
    # Nothing was created: only the device made before.
    assert [d["externalId"] for d in listed(reg, svc)] == ["TAKEN"]


def test_bulk_create_csv_errors_name_the_line(reg, t, svc):
    text = "name,externalId\nTill 1,X1\nTill 2\n,X3\nTill\x074,X4\nTill 5,X1\n"
    resp = bulk_csv(reg, svc, text)
    assert resp.status_code == 400
    errors = resp.get_json()["errors"]
    assert [(e["index"], e["line"]) for e in errors] == [(1, 3), (2, 4), (3, 5), (4, 6)]
    assert "cells" in errors[0]["detail"]
    assert errors[1]["field"] == "name"
    assert errors[3]["field"] == "externalId"
    assert listed(reg, svc) == []


@pytest.mark.parametrize(
    "text, detail",
    [
        ("", "first line names the columns"),
        ("name,colour\nTill,red\n", "Unknown column(s): colour"),
        ("name,name\nA,B\n", "named twice"),
        ("externalId\nX\n", "name is required"),
        ('name\n"unterminated\n', "malformed"),
        ("name\n", "no rows"),
    ],
)
def test_bulk_create_refuses_a_malformed_csv(reg, t, svc, text, detail):
    resp = bulk_csv(reg, svc, text)
    assert resp.status_code == 400
    assert detail in resp.get_json()["detail"]


def test_bulk_create_limits(reg, t, svc, app):
    too_many = [{"name": f"T{i}"} for i in range(device_bulk.MAX_ROWS + 1)]
    resp = reg.call("POST", BULK, svc, json={"devices": too_many})
    assert resp.status_code == 400
    assert "1-10000" in resp.get_json()["detail"]
    csv_text = "name\n" + "".join(f"T{i}\n" for i in range(device_bulk.MAX_ROWS + 1))
    resp = bulk_csv(reg, svc, csv_text)
    assert resp.status_code == 400 and "At most 10000" in resp.get_json()["detail"]
    assert reg.call("POST", BULK, svc, json={"devices": []}).status_code == 400
    # The body limit for bulk requests is its own (AUTHSERVER_MAX_BULK_REQUEST_BYTES).
    settings = app.extensions["authserver"].settings
    big = "name\n" + "x" * (settings.max_bulk_request_bytes + 1)
    assert bulk_csv(reg, svc, big).status_code == 413
    wrong = reg.call("POST", BULK, svc, data=b"name\nA\n", content_type="text/plain")
    assert wrong.status_code == 400 and "text/csv" in wrong.get_json()["detail"]
    assert listed(reg, svc) == []


def test_bulk_create_of_the_full_ten_thousand(reg, t, svc):
    rows = [{"name": f"Till {i:05d}", "externalId": f"E{i}", "status": "READY_TO_LINK"}
            for i in range(device_bulk.MAX_ROWS)]  # fmt: skip
    resp = reg.call("POST", BULK, svc, json={"devices": rows})
    assert resp.status_code == 201
    made = resp.get_json()["data"]
    assert len(made) == device_bulk.MAX_ROWS
    assert len({d["linkCode"] for d in made}) == device_bulk.MAX_ROWS
    page = reg.call("GET", f"{DEVICES}?limit=1&count=true", svc).get_json()
    assert page["count"] == device_bulk.MAX_ROWS and page["countExact"] is True


# -- block, unblock, delete many -----------------------------------------------------------------


def test_bulk_block_by_ids_revokes_every_touched_device_and_no_other(reg, t, svc, app):
    linked = [reg.linked_device(t) for _ in range(3)]
    bystander = reg.linked_device(t)
    reg.now.advance(1)
    ids = [d["id"] for d, _, _ in linked]
    resp = reg.call("POST", f"{BULK}/block", svc, json={"ids": ids})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["data"] == {"matched": 3, "changed": 3, "skipped": [],
                                       "hasMore": False, "lastId": None}  # fmt: skip
    for _, tokens, key in linked:
        assert me_status(reg, tokens, key) == 401
        assert refresh_status(reg, t, tokens, key) == 400
    _, tokens, key = bystander
    assert me_status(reg, tokens, key) == 200
    assert {d["id"]: d["status"] for d in listed(reg, svc)} == {
        **dict.fromkeys(ids, "BLOCKED"), bystander[0]["id"]: "ACTIVE"}  # fmt: skip
    events = audit_events(app, t.id, "device.blocked")
    assert sorted(e.device_id for e in events) == sorted(ids)
    assert all(e.actor == t.service.client_id for e in events)
    assert all(e.data == {"previous": "ACTIVE", "bulk": True} for e in events)
    # Blocking again changes nothing and says why.
    again = reg.call("POST", f"{BULK}/block", svc, json={"ids": ids[:1]}).get_json()["data"]
    assert again["changed"] == 0
    assert again["skipped"] == [{"id": ids[0], "reason": "already_blocked"}]
    assert len(audit_events(app, t.id, "device.blocked")) == 3


def test_bulk_block_then_unblock_with_restored_sessions_one_by_one(reg, t, svc):
    """A bulk block keeps what an unblock needs to restore a device's sessions (PATCH with
    restoreSessions), exactly as a single block does."""
    device, tokens, key = reg.linked_device(t)
    reg.now.advance(1)
    reg.call("POST", f"{BULK}/block", svc, json={"ids": [device["id"]]})
    assert me_status(reg, tokens, key) == 401
    reg.now.advance(1)
    resp = reg.call("PATCH", f"{DEVICES}/{device['id']}", svc,
                    json={"status": "ACTIVE", "restoreSessions": True})  # fmt: skip
    assert resp.status_code == 200, resp.get_json()
    assert me_status(reg, tokens, key) == 200


def test_bulk_unblock_keeps_the_old_sessions_dead_and_skips_what_it_cannot(reg, t, svc, app):
    device, tokens, key = reg.linked_device(t)
    unlinked = reg.create_device(t, status="READY_TO_LINK")
    active = reg.create_device(t)
    reg.now.advance(1)
    ids = [device["id"], unlinked["id"]]
    assert reg.call("POST", f"{BULK}/block", svc, json={"ids": ids}).status_code == 200
    reg.now.advance(1)
    resp = reg.call("POST", f"{BULK}/unblock", svc, json={"ids": [*ids, active["id"]]})
    data = resp.get_json()["data"]
    assert data["matched"] == 3 and data["changed"] == 1
    assert sorted(data["skipped"], key=lambda s: s["id"]) == sorted(
        [{"id": unlinked["id"], "reason": "not_linked"},
         {"id": active["id"], "reason": "not_blocked"}], key=lambda s: s["id"])  # fmt: skip
    statuses = {d["id"]: d["status"] for d in listed(reg, svc)}
    assert statuses == {device["id"]: "ACTIVE", unlinked["id"]: "BLOCKED", active["id"]: "ACTIVE"}
    assert me_status(reg, tokens, key) == 401  # unblocked, but its old tokens stay dead
    assert refresh_status(reg, t, tokens, key) == 400
    with app.app_context():
        reasons = {f.revoked_reason for f in db.session.scalars(
            db.select(RefreshFamily).where(RefreshFamily.device_id == device["id"]))}  # fmt: skip
    assert reasons == {"device_status"}  # no longer restorable
    [event] = audit_events(app, t.id, "device.activated")
    assert event.device_id == device["id"] and event.data["previous"] == "BLOCKED"


def test_a_filter_unblock_never_selects_what_it_cannot_unblock(reg, t, svc, monkeypatch):
    """Blocked devices that are not linked stay out of the filter's selection: a client
    following hasMore finishes, however many of them there are."""
    monkeypatch.setattr(device_bulk, "MAX_ROWS", 2)
    unlinked = [reg.create_device(t, status="READY_TO_LINK", name=f"U{i}")["id"] for i in range(3)]
    device, _, _ = reg.linked_device(t)
    ids = [*unlinked, device["id"]]
    assert reg.call("POST", f"{BULK}/block", svc, json={"ids": ids}).status_code == 400  # limit
    for start in (0, 2):
        reg.call("POST", f"{BULK}/block", svc, json={"ids": ids[start : start + 2]})
    data = reg.call("POST", f"{BULK}/unblock", svc,
                    json={"filter": {"status": "BLOCKED"}}).get_json()["data"]  # fmt: skip
    assert data == {"matched": 1, "changed": 1, "skipped": [], "hasMore": False,
                    "lastId": device["id"]}  # fmt: skip
    statuses = {d["id"]: d["status"] for d in listed(reg, svc)}
    assert statuses[device["id"]] == "ACTIVE"
    assert {statuses[i] for i in unlinked} == {"BLOCKED"}


def test_bulk_delete_by_ids(reg, t, svc, app):
    device, tokens, key = reg.linked_device(t)
    plain = reg.create_device(t, externalId="FREE-ME")
    keep = reg.create_device(t)
    reg.now.advance(1)
    resp = reg.call("POST", f"{BULK}/delete", svc, json={"ids": [device["id"], plain["id"]]})
    assert resp.get_json()["data"]["changed"] == 2
    assert [d["id"] for d in listed(reg, svc)] == [keep["id"]]
    assert reg.call("GET", f"{DEVICES}/{plain['id']}", svc).status_code == 404
    assert me_status(reg, tokens, key) == 401
    assert refresh_status(reg, t, tokens, key) == 400
    reg.create_device(t, externalId="FREE-ME")  # the externalId is free again
    assert {e.device_id for e in audit_events(app, t.id, "device.deleted")} == {
        device["id"], plain["id"]}  # fmt: skip
    # A deleted device is not a device any more: naming it fails the whole request.
    again = reg.call("POST", f"{BULK}/block", svc, json={"ids": [keep["id"], plain["id"]]})
    assert again.status_code == 400
    assert again.get_json()["errors"] == [{"index": 1, "detail": "No such device."}]
    assert {d["status"] for d in listed(reg, svc)} == {"ACTIVE"}


def test_an_unknown_or_foreign_id_fails_the_whole_request(reg, t, svc):
    mine = [reg.create_device(t)["id"] for _ in range(3)]
    other = reg.tenant()
    theirs = reg.create_device(other)["id"]
    for action in ("block", "delete"):
        resp = reg.call("POST", f"{BULK}/{action}", svc,
                        json={"ids": [mine[0], theirs, mine[1], "dev_nope", mine[2]]})  # fmt: skip
        assert resp.status_code == 400
        body = resp.get_json()
        assert body["errorCount"] == 2 and [e["index"] for e in body["errors"]] == [1, 3]
    assert {d["status"] for d in listed(reg, svc)} == {"ACTIVE"} and len(listed(reg, svc)) == 3
    theirs_now = reg.call("GET", f"{DEVICES}/{theirs}", reg.service_token(other)).get_json()
    assert theirs_now["data"]["status"] == "ACTIVE"


def test_bulk_block_by_filter_touches_only_the_filtered_devices_of_the_tenant(reg, t, svc, app):
    loc = reg.call("POST", "/api/v1/locations", svc, json={"name": "North", "kind": "store"})
    north = loc.get_json()["data"]["id"]
    in_north = [reg.linked_device(t) for _ in range(2)]
    for d, _, _ in in_north:
        reg.call("PATCH", f"{DEVICES}/{d['id']}", svc, json={"locationIds": [north]})
    elsewhere = reg.linked_device(t)
    other = reg.tenant()
    other_svc = reg.service_token(other)
    reg.call("POST", "/api/v1/locations", other_svc, json={"name": "North", "kind": "store"})
    foreign = reg.create_device(other)
    reg.now.advance(1)
    resp = reg.call("POST", f"{BULK}/block", svc, json={"filter": {"locationId": north}})
    assert resp.get_json()["data"] == {"matched": 2, "changed": 2, "skipped": [],
                                       "hasMore": False,
                                       "lastId": max(d["id"] for d, _, _ in in_north)}  # fmt: skip
    for _, tokens, key in in_north:
        assert me_status(reg, tokens, key) == 401
    assert me_status(reg, elsewhere[1], elsewhere[2]) == 200
    assert reg.call("GET", f"{DEVICES}/{foreign['id']}", other_svc).get_json()["data"][
        "status"] == "ACTIVE"  # fmt: skip
    # The same filter again: nothing left to block.
    again = reg.call("POST", f"{BULK}/block", svc, json={"filter": {"locationId": north}})
    assert again.get_json()["data"]["matched"] == 0
    # A filter on q, the list's search, selects as the list does.
    named = reg.create_device(t, name="Kiosk lobby")
    resp = reg.call("POST", f"{BULK}/delete", svc, json={"filter": {"q": "LOBBY"}})
    assert resp.get_json()["data"]["changed"] == 1
    assert reg.call("GET", f"{DEVICES}/{named['id']}", svc).status_code == 404


def test_a_filter_change_goes_on_where_it_stopped(reg, t, svc, monkeypatch):
    """At most MAX_ROWS changes per request, in transactions of CHUNK: hasMore says to send the
    request again, and the next request goes on with the devices left."""
    monkeypatch.setattr(device_bulk, "MAX_ROWS", 5)
    monkeypatch.setattr(device_bulk, "CHUNK", 2)
    made = [reg.create_device(t, name=f"Till {i}")["id"] for i in range(12)]
    seen = 0
    rounds = []
    while True:
        data = reg.call("POST", f"{BULK}/block", svc,
                        json={"filter": {"name": "till"}}).get_json()["data"]  # fmt: skip
        rounds.append((data["changed"], data["hasMore"]))
        seen += data["changed"]
        if not data["hasMore"]:
            break
    assert rounds == [(5, True), (5, True), (2, False)]
    assert seen == 12
    assert {d["status"] for d in listed(reg, svc)} == {"BLOCKED"} and len(made) == 12


@pytest.mark.parametrize(
    "body, detail",
    [
        ({}, "exactly one"),
        ({"ids": ["dev_a"], "filter": {"q": "x"}}, "exactly one"),
        ({"ids": []}, "no ids"),
        ({"ids": "dev_a"}, "list"),
        ({"ids": ["dev_a", "dev_a"]}, "twice"),
        ({"filter": {}}, "at least one"),
        ({"filter": {"colour": "red"}}, "Unknown filter"),
        ({"filter": {"status": "GONE"}}, "must be one of"),
        ({"filter": {"q": 5}}, "string"),
        ({"filter": "q=x"}, "object"),
        ({"ids": ["dev_a"], "restoreSessions": True}, "applies to unblocking"),
        ({"ids": ["dev_a"], "colour": "red"}, "Unknown field"),
    ],
)
def test_bulk_change_refuses_unclear_requests(reg, t, svc, body, detail):
    reg.create_device(t)
    resp = reg.call("POST", f"{BULK}/block", svc, json=body)
    assert resp.status_code == 400, resp.get_json()
    assert detail in resp.get_json()["detail"]
    assert {d["status"] for d in listed(reg, svc)} == {"ACTIVE"}


def test_bulk_change_limits_its_ids(reg, t, svc):
    ids = [f"dev_{i}" for i in range(device_bulk.MAX_ROWS + 1)]
    resp = reg.call("POST", f"{BULK}/delete", svc, json={"ids": ids})
    assert resp.status_code == 400 and "at most 10000" in resp.get_json()["detail"]


def test_bulk_change_runs_in_bounded_transactions(reg, t, svc, monkeypatch, app):
    """Each chunk is its own transaction: the commits counted are ceil(n / CHUNK)."""
    monkeypatch.setattr(device_bulk, "CHUNK", 3)
    ids = [reg.create_device(t)["id"] for _ in range(7)]
    commits = []
    from sqlalchemy import event

    with app.app_context():
        engine = db.engine

    def count(conn):
        commits.append(1)

    event.listen(engine, "commit", count)
    try:
        resp = reg.call("POST", f"{BULK}/block", svc, json={"ids": ids})
    finally:
        event.remove(engine, "commit", count)
    assert resp.get_json()["data"]["changed"] == 7
    assert len(commits) == 3


def test_a_store_failure_changes_nothing_in_that_chunk_and_a_retry_finishes(
    reg, t, svc, monkeypatch, app
):
    """Fail closed: when revoking fails (the store unreachable), the chunk's devices stay as
    they were (never BLOCKED with live tokens); the same request again finishes the job."""
    from authserver import revocation
    from authserver.ephemeral import StoreUnavailable

    monkeypatch.setattr(device_bulk, "CHUNK", 2)
    linked = [reg.linked_device(t) for _ in range(4)]
    ids = [d["id"] for d, _, _ in linked]
    real = revocation.mark_many
    calls = []

    def flaky(kind, idents):
        calls.append(idents)
        if len(calls) == 2:
            raise StoreUnavailable("redis unreachable")
        return real(kind, idents)

    monkeypatch.setattr(revocation, "mark_many", flaky)
    reg.now.advance(1)
    resp = reg.call("POST", f"{BULK}/block", svc, json={"ids": ids})
    assert resp.status_code == 503
    statuses = {d["id"]: d["status"] for d in listed(reg, svc)}
    assert [statuses[i] for i in ids] == ["BLOCKED", "BLOCKED", "ACTIVE", "ACTIVE"]
    for i, (_, tokens, key) in enumerate(linked):
        assert me_status(reg, tokens, key) == (401 if i < 2 else 200)
    resp = reg.call("POST", f"{BULK}/block", svc, json={"ids": ids})
    data = resp.get_json()["data"]
    assert data["changed"] == 2 and len(data["skipped"]) == 2
    for _, tokens, key in linked:
        assert me_status(reg, tokens, key) == 401


# -- who may -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", BULK, {"devices": [{"name": "A"}]}),
        ("POST", f"{BULK}/block", {"filter": {"q": "no such device"}}),
        ("POST", f"{BULK}/unblock", {"filter": {"q": "no such device"}}),
        ("POST", f"{BULK}/delete", {"filter": {"q": "no such device"}}),
        ("GET", f"{DEVICES}/export?format=csv", None),
    ],
)
def test_authorization_matrix(reg, t, method, path, body):
    """Writes need devices:write (and a device role for a person); the export devices:read;
    a device's own token never."""
    write = method == "POST"
    ok = 201 if path == BULK else 200
    device, tokens, key = reg.linked_device(t)
    callers = {
        "service": (reg.service_token(t), None, ok),
        "reader": (reg.service_token(t, write=False), None, 403 if write else ok),
        "admin": (reg.user_token(t, "boss", ("TENANT.ADMIN",)), None, ok),
        "manager": (reg.user_token(t, "mgr", ("DEVICE.MANAGER",)), None, ok),
        "user manager": (reg.user_token(t, "ppl", ("USER.MANAGER",)), None, 403),
        "device": (tokens["access_token"], key, 403),
        "nobody": (None, None, 401),
    }
    for name, (token, dpop, expected) in callers.items():
        resp = reg.call(method, path, token, json=body, key=dpop)
        resp.get_data()  # an export streams: read it to its end
        assert resp.status_code == expected, (name, resp.status_code, resp.get_data()[:300])
    assert me_status(reg, tokens, key) == 200  # no caller reached the device


# -- export --------------------------------------------------------------------------------------


def test_export_streams_every_filtered_device_as_csv_and_ndjson(reg, t, svc, monkeypatch):
    monkeypatch.setattr(device_bulk, "walk", _small_pages(device_bulk.walk))
    made = [reg.create_device(t, name=f"Till {i:02d}", externalId=f"X{i}")["id"]
            for i in range(7)]  # fmt: skip
    reg.create_device(t, name='=HYPERLINK("http://evil")')
    other = reg.tenant()
    reg.create_device(other, name="Till of another tenant")
    resp = reg.call("GET", f"{DEVICES}/export?format=ndjson&name=till&sortBy=name&sortOrder=desc",
                    svc)  # fmt: skip
    assert resp.status_code == 200
    assert resp.mimetype == "application/x-ndjson"
    assert resp.headers["Content-Disposition"] == 'attachment; filename="devices.ndjson"'
    lines = resp.get_data(as_text=True).splitlines()
    items = [json.loads(line) for line in lines]
    assert [d["id"] for d in items] == made[::-1]
    assert items == listed(reg, svc, "&name=till&sortBy=name&sortOrder=desc")
    resp = reg.call("GET", f"{DEVICES}/export?format=csv", svc)
    assert resp.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert len(rows) == 8
    assert rows[0]["id"] == made[0] and rows[0]["externalId"] == "X0"
    assert rows[-1]["name"] == '\'=HYPERLINK("http://evil")'  # kept as text in a spreadsheet


def _small_pages(walk):
    def walk_in_pages_of_two(tenant_id, query, rendered, page=1000):
        return walk(tenant_id, query, rendered, page=2)

    return walk_in_pages_of_two


@pytest.mark.parametrize(
    "query, detail",
    [
        ("", "format is required"),
        ("?format=xml", "format must be one of"),
        ("?format=csv&limit=5", "Unknown query parameter"),
        ("?format=csv&colour=red", "Unknown query parameter"),
    ],
)
def test_export_refuses_what_it_does_not_know(reg, t, svc, query, detail):
    resp = reg.call("GET", f"{DEVICES}/export{query}", svc)
    assert resp.status_code == 400
    assert detail in resp.get_json()["detail"]


# -- count ---------------------------------------------------------------------------------------


def test_count_on_request(reg, t, svc, monkeypatch):
    for i in range(5):
        reg.create_device(t, name=f"Till {i}", status="READY_TO_LINK" if i % 2 else "ACTIVE")
    reg.create_device(reg.tenant(), name="Till of another")
    page = reg.call("GET", f"{DEVICES}?limit=2&count=true", svc).get_json()
    assert page["count"] == 5 and page["countExact"] is True and len(page["data"]) == 2
    page = reg.call("GET", f"{DEVICES}?count=true&status=READY_TO_LINK", svc).get_json()
    assert page["count"] == 2
    assert "count" not in reg.call("GET", DEVICES, svc).get_json()
    assert "count" not in reg.call("GET", f"{DEVICES}?count=false", svc).get_json()
    assert reg.call("GET", f"{DEVICES}?count=yes", svc).status_code == 400
    # Beyond the exact part: exact on SQLite, the planner's estimate (flagged) on PostgreSQL,
    # unless only status, origin and appCode filter (the tallies: exact on both).
    from authserver import devices

    monkeypatch.setattr(devices, "COUNT_EXACT_UP_TO", 3)
    for query, expected in (("", 5), ("&status=ACTIVE&origin=api", 3), ("&appCode=UNKNOWN", 5)):
        page = reg.call("GET", f"{DEVICES}?count=true{query}", svc).get_json()
        assert (page["count"], page["countExact"]) == (expected, True), query
    page = reg.call("GET", f"{DEVICES}?count=true&name=till", svc).get_json()
    with reg.app.app_context():
        postgres = db.engine.dialect.name == "postgresql"
    if postgres:
        assert page["countExact"] is False and page["count"] >= 4
    else:
        assert page["countExact"] is True and page["count"] == 5


def test_a_count_beyond_the_exact_part_is_a_flagged_estimate(reg, t, svc, clock, monkeypatch):
    """Beyond ``COUNT_EXACT_UP_TO`` a count is an estimate, flagged: on SQLite the share of
    matches in windows of devices spread over their creation times, times the tenant's devices;
    exact again (and flagged so) when the windows saw every device."""
    from authserver import devices

    for i in range(12):  # created a second apart: six tills, then six kiosks
        reg.create_device(t, name=f"Till {i}" if i < 6 else f"Kiosk {i}")
        clock.advance(1)
    for i in range(6):  # another tenant's devices are neither counted nor sampled
        reg.create_device(reg.tenant(), name=f"Till x{i}")
    monkeypatch.setattr(devices, "COUNT_EXACT_UP_TO", 3)
    with reg.app.app_context():
        postgres = db.engine.dialect.name == "postgresql"
    page = reg.call("GET", f"{DEVICES}?limit=1&count=true&q=till", svc).get_json()
    if postgres:  # the planner's estimate
        assert page["countExact"] is False and page["count"] >= 4
        return
    assert (page["count"], page["countExact"]) == (6, True)  # windows of 1,000 saw all 12
    # Three windows of two, starting at 0, 11/3 and 22/3 s: devices 0-1 and 4-5 (tills) and
    # 8-9 (kiosks): 4 of 6 sampled, times 12 devices. An estimate, and flagged as one.
    monkeypatch.setattr(devices, "SAMPLE_WINDOWS", 3)
    monkeypatch.setattr(devices, "SAMPLE_WINDOW", 2)
    page = reg.call("GET", f"{DEVICES}?limit=1&count=true&q=till", svc).get_json()
    assert (page["count"], page["countExact"]) == (8, False)
    page = reg.call("GET", f"{DEVICES}?limit=1&count=true&name=kiosk%201", svc).get_json()
    assert (page["count"], page["countExact"]) == (2, True)  # 10 and 11: within the exact part
    # Never below what was counted exactly, never above the tenant's devices.
    page = reg.call("GET", f"{DEVICES}?limit=1&count=true&q=i", svc).get_json()
    assert (page["count"], page["countExact"]) == (12, False)
    monkeypatch.setattr(devices, "SAMPLE_WINDOWS", 1)
    monkeypatch.setattr(devices, "SAMPLE_WINDOW", 1)  # device 0 alone: a till
    page = reg.call("GET", f"{DEVICES}?limit=1&count=true&name=kiosk", svc).get_json()
    assert (page["count"], page["countExact"]) == (4, False)  # 0 sampled, 4 counted


def test_sample_windows_that_overlap_count_each_device_once(reg, t, svc, clock, monkeypatch):
    """Windows that overlap (a window runs into the next one's start): a device seen by both is
    one device of the sample, else a sample that missed some would pass for the whole tenant."""
    from authserver import devices

    for i in range(6):  # six tills in one instant
        reg.create_device(t, name=f"Till {i}")
    for i in range(1, 13):  # then a kiosk a second, at 1 to 12 s
        clock.advance(1)
        reg.create_device(t, name=f"Kiosk {i}")
    monkeypatch.setattr(devices, "COUNT_EXACT_UP_TO", 3)
    monkeypatch.setattr(devices, "SAMPLE_WINDOWS", 3)
    monkeypatch.setattr(devices, "SAMPLE_WINDOW", 8)
    with reg.app.app_context():
        if db.engine.dialect.name == "postgresql":
            pytest.skip("PostgreSQL estimates with its planner; the sample is SQLite's")
    # Windows from 0 s (the tills, kiosks 1-2), 4 s (kiosks 4-11) and 8 s (kiosks 8-12): 17
    # devices (not kiosk 3), 6 tills among them, of 18.
    page = reg.call("GET", f"{DEVICES}?limit=1&count=true&q=till", svc).get_json()
    assert (page["count"], page["countExact"]) == (round(18 * 6 / 17), False)


def test_models_unchanged_by_bulk_insert(reg, t, svc, app):
    """A bulk-created device is the row a single create makes (every column the same but its
    id, times and code)."""
    one = reg.create_device(t, name="Same", tillId="1", status="READY_TO_LINK")
    many = reg.call("POST", BULK, svc, json={"devices": [
        {"name": "Same", "tillId": "1", "status": "READY_TO_LINK"}]}).get_json()["data"]  # fmt: skip
    with app.app_context():
        a, b = db.session.get(Device, one["id"]), db.session.get(Device, many[0]["id"])
        varying = {"id", "created_at", "updated_at", "link_code_hash", "link_code_expires_at",
                   "external_id"}  # fmt: skip
        for column in Device.__table__.c:
            if column.key not in varying:
                assert getattr(a, column.key) == getattr(b, column.key), column.key
        assert a.link_code_hash != b.link_code_hash and b.link_code_expires_at


def test_counts_follow_every_change_of_every_device(reg, t, svc, app):
    """The count of each combination of status, origin and appCode (each or none) equals the
    list's length after creates, links, blocks, unblocks, unlinks, changes of appCode and
    deletes, one by one and in bulk, and after a hard delete (the tallies are kept by triggers,
    migration 0022)."""

    def check():
        everything = listed(reg, svc)
        for status, origin, app_code in itertools.product(
            (None, "ACTIVE", "READY_TO_LINK", "BLOCKED"), (None, "api", "link"),
            (None, "UNKNOWN", "CLIENT"),
        ):  # fmt: skip
            query = "".join(f"&{name}={value}" for name, value in (
                ("status", status), ("origin", origin), ("appCode", app_code)) if value)  # fmt: skip
            page = reg.call("GET", f"{DEVICES}?limit=1&count=true{query}", svc).get_json()
            expected = [d for d in everything if status in (None, d["status"])
                        and origin in (None, d["origin"]) and app_code in (None, d["appCode"])]  # fmt: skip
            assert (page["count"], page["countExact"]) == (len(expected), True), query

    check()
    other = reg.tenant()
    reg.create_device(other)  # another tenant's devices are not counted
    linked = [reg.linked_device(t)[0] for _ in range(2)]
    made = reg.call("POST", BULK, svc, json={"devices": [
        {"name": f"T{i}", "status": "READY_TO_LINK" if i % 2 else "ACTIVE",
         "appCode": "CLIENT" if i % 3 else "UNKNOWN"}
        for i in range(6)]}).get_json()["data"]  # fmt: skip
    check()
    resp = reg.call("PATCH", f"{DEVICES}/{made[0]['id']}", svc, json={"appCode": "CLIENT"})
    assert resp.status_code == 200 and resp.get_json()["data"]["appCode"] == "CLIENT"
    check()
    reg.call("POST", f"{BULK}/block", svc, json={"ids": [linked[0]["id"], made[0]["id"]]})
    check()
    reg.call("PATCH", f"{DEVICES}/{linked[1]['id']}", svc, json={"status": "BLOCKED"})
    reg.call("PATCH", f"{DEVICES}/{linked[0]['id']}", svc, json={"status": "READY_TO_LINK"})
    check()
    reg.call("POST", f"{BULK}/unblock", svc, json={"filter": {"status": "BLOCKED"}})
    check()
    reg.call("DELETE", f"{DEVICES}/{made[1]['id']}", svc)
    reg.call("POST", f"{BULK}/delete", svc, json={"ids": [made[2]["id"], made[3]["id"]]})
    check()
    with app.app_context():
        db.session.execute(db.delete(Device).where(Device.id == made[4]["id"]))
        db.session.commit()
    check()


def test_tallies_are_folded_and_stay_exact(reg, t, svc, app, monkeypatch):
    """On PostgreSQL each change appends its net change to the tallies; a count that reads more
    than FOLD_ABOVE rows folds the tenant's into one per combination, and counts stay exact
    across the fold and after it. (On SQLite a tally is one row per combination already.)"""
    from sqlalchemy import text

    from authserver import devices

    monkeypatch.setattr(devices, "FOLD_ABOVE", 3)

    def rows():
        with app.app_context():
            return db.session.execute(
                text("SELECT status, n FROM device_tallies WHERE tenant_id = :t"), {"t": t.id}
            ).all()

    def counts():
        return [reg.call("GET", f"{DEVICES}?limit=1&count=true{q}", svc).get_json()["count"]
                for q in ("", "&status=ACTIVE", "&status=BLOCKED")]  # fmt: skip

    made = [reg.create_device(t, name=f"Till {i}") for i in range(6)]
    for device in made[:2]:
        reg.call("PATCH", f"{DEVICES}/{device['id']}", svc, json={"status": "BLOCKED"})
    before = len(rows())
    assert counts() == [6, 4, 2]
    assert sorted(rows()) == [("ACTIVE", 4), ("BLOCKED", 2)]  # folded (or never apart)
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            assert before > 3  # one appended row per change, until the fold
    reg.call("DELETE", f"{DEVICES}/{made[5]['id']}", svc)
    seventh = reg.create_device(t, name="Till 7")
    reg.call("PATCH", f"{DEVICES}/{seventh['id']}", svc, json={"status": "BLOCKED"})
    assert counts() == [6, 3, 3]
    other = reg.tenant()
    reg.create_device(other)
    assert counts() == [6, 3, 3]
    # The purge folds every tenant's rows, counted or not.
    for device in made[:3]:
        reg.call("PATCH", f"{DEVICES}/{device['id']}", svc, json={"name": "Renamed"})
    reg.call("PATCH", f"{DEVICES}/{made[3]['id']}", svc, json={"status": "BLOCKED"})
    from authserver import retention

    with app.app_context():
        retention.purge_expired(db.engine, reg.settings, int(reg.now()))
    assert sorted(rows()) == [("ACTIVE", 2), ("BLOCKED", 4)]
    assert counts() == [6, 2, 4]


def test_after_goes_on_from_a_previous_answers_last_id(reg, t, svc):
    ids = sorted(reg.create_device(t, name=f"Till {i}")["id"] for i in range(4))
    resp = reg.call("POST", f"{BULK}/block", svc,
                    json={"filter": {"name": "till"}, "after": ids[1]})  # fmt: skip
    data = resp.get_json()["data"]
    assert data["changed"] == 2 and data["lastId"] == ids[3]
    statuses = {d["id"]: d["status"] for d in listed(reg, svc)}
    assert [statuses[i] for i in ids] == ["ACTIVE", "ACTIVE", "BLOCKED", "BLOCKED"]
    resp = reg.call("POST", f"{BULK}/block", svc, json={"ids": ids[:1], "after": ids[0]})
    assert resp.status_code == 400 and resp.get_json()["field"] == "after"


@pytest.mark.parametrize("overrides", [{"bulk_requests_per_tenant": 2}])
def test_each_tenant_has_a_budget_of_bulk_requests(reg, t, svc):
    """A bulk write may hold SQLite's write lock for about a second: one tenant cannot send
    them without end (invariant 8), and its budget is its own."""
    body = {"filter": {"name": "nothing matches this"}}
    for _ in range(2):
        assert reg.call("POST", f"{BULK}/block", svc, json=body).status_code == 200
    refused = reg.call("POST", BULK, svc, json={"devices": [{"name": "A"}]})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert listed(reg, svc) == []
    other = reg.tenant()
    assert reg.call("POST", f"{BULK}/block", reg.service_token(other), json=body).status_code == 200
    reg.now.advance(61)
    assert reg.call("POST", f"{BULK}/block", svc, json=body).status_code == 200


def test_bulk_unblock_with_restored_sessions(reg, t, svc, app):
    """restoreSessions in bulk does what it does one by one: the sessions each block ended (in
    bulk or one by one) live again; the audit event says so."""
    a, b = reg.linked_device(t), reg.linked_device(t)
    reg.now.advance(1)
    reg.call("POST", f"{BULK}/block", svc, json={"ids": [a[0]["id"]]})
    reg.call("PATCH", f"{DEVICES}/{b[0]['id']}", svc, json={"status": "BLOCKED"})
    for _, tokens, key in (a, b):
        assert me_status(reg, tokens, key) == 401
    reg.now.advance(1)
    resp = reg.call("POST", f"{BULK}/unblock", svc,
                    json={"filter": {"status": "BLOCKED"}, "restoreSessions": True})  # fmt: skip
    assert resp.get_json()["data"]["changed"] == 2
    for _, tokens, key in (a, b):
        assert me_status(reg, tokens, key) == 200
        assert refresh_status(reg, t, tokens, key) == 200
    events = audit_events(app, t.id, "device.activated")
    assert {e.device_id for e in events} == {a[0]["id"], b[0]["id"]}
    assert all(e.data["restored_sessions"] is True for e in events)
