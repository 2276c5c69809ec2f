"""A device reads the same in a list as on its own after every kind of change.

The list takes each item's JSON from the database: rendered by the page's statement on SQLite,
kept in the row by triggers on PostgreSQL (migration 0024). The device's own page is built in
Python (``registry.serialize.device_json``) from the ORM. Every change below must reach the
list's text: a trigger that missed one (a location removed, a bulk statement, an activity touch)
would show a stale device here."""

from __future__ import annotations

import pytest
from sqlalchemy import literal_column, select, text

from authserver.models import Device, db
from authserver.registry.serialize import DEVICE_JSON_RENDERED

DEVICES = "/api/v1/devices"


def _listed(reg, token) -> dict[str, dict]:
    """Every device of the token's tenant as the list shows it (pages of 3: several pages)."""
    found: dict[str, dict] = {}
    cursor = ""
    while True:
        body = reg.call("GET", f"{DEVICES}?limit=3{cursor}", token).get_json()
        found.update({d["id"]: d for d in body["data"]})
        if not body["hasMore"]:
            return found
        cursor = f"&cursor={body['nextCursor']}"


def _assert_list_matches_own(reg, token) -> dict[str, dict]:
    listed = _listed(reg, token)
    for device_id, item in listed.items():
        own = reg.call("GET", f"{DEVICES}/{device_id}", token).get_json()["data"]
        assert item == own, device_id
        assert list(item) == list(own)  # the keys in the same order
    return listed


def test_every_kind_of_change_reaches_the_list(reg, clock):
    t = reg.tenant()
    svc = reg.service_token(t)

    def location(name: str) -> str:
        resp = reg.call("POST", "/api/v1/locations", svc, json={"name": name, "kind": "store"})
        return resp.get_json()["data"]["id"]

    main, annex, depot = location("Main"), location("Annex"), location("Depot")
    a = reg.create_device(t, svc, name='Kasa "A" \\ ☕', externalId="A-1", tillId="1",
                          printerUids=["p-1"], locationIds=[depot, main])  # fmt: skip
    b = reg.create_device(t, svc, name="B")
    listed = _assert_list_matches_own(reg, svc)
    assert listed[a["id"]]["locationIds"] == sorted([depot, main])

    # Fields and locations changed by PATCH (locations replaced: rows deleted and inserted).
    clock.advance(2)
    resp = reg.call("PATCH", f"{DEVICES}/{a['id']}", svc,
                    json={"name": "A2", "externalId": None, "printerUids": [],
                          "locationIds": [annex]})  # fmt: skip
    assert resp.status_code == 200, resp.get_json()
    listed = _assert_list_matches_own(reg, svc)
    assert listed[a["id"]]["locationIds"] == [annex] and listed[a["id"]]["name"] == "A2"
    reg.call("PATCH", f"{DEVICES}/{b['id']}", svc, json={"locationIds": [main, annex]})
    reg.call("PATCH", f"{DEVICES}/{a['id']}", svc, json={"locationIds": []})
    listed = _assert_list_matches_own(reg, svc)
    assert listed[a["id"]]["locationIds"] == [] and len(listed[b["id"]]["locationIds"]) == 2

    # A location deleted takes itself out of its (blocked) devices' lists.
    reg.call("PATCH", f"{DEVICES}/{b['id']}", svc, json={"status": "BLOCKED"})
    assert reg.call("DELETE", f"/api/v1/locations/{main}", svc).status_code == 200
    listed = _assert_list_matches_own(reg, svc)
    assert listed[b["id"]]["locationIds"] == [annex]
    assert listed[b["id"]]["status"] == "BLOCKED"

    # A linked terminal: its key, identifier, who linked it; then its own calls (activity time,
    # lastOrderUid through /devices/me).
    clock.advance(2)
    pos, tokens, key = reg.linked_device(t)
    resp = reg.call("PATCH", f"{DEVICES}/me", tokens["access_token"], key=key,
                    json={"lastOrderUid": "ord-9"})  # fmt: skip
    assert resp.status_code == 200, resp.get_json()
    listed = _assert_list_matches_own(reg, svc)
    assert listed[pos["id"]]["dpopJkt"] and listed[pos["id"]]["lastActivityAt"]
    assert listed[pos["id"]]["lastOrderUid"] == "ord-9"
    # Unlinked: a new code, the key and identifier cleared.
    reg.call("PATCH", f"{DEVICES}/{pos['id']}", svc, json={"status": "READY_TO_LINK"})
    listed = _assert_list_matches_own(reg, svc)
    assert listed[pos["id"]]["dpopJkt"] is None

    # Bulk: created with locations, blocked and unblocked by ids, deleted.
    clock.advance(2)
    rows = [{"name": f"Bulk {i}", "locationIds": [depot] if i % 2 else []} for i in range(5)]
    made = reg.call("POST", f"{DEVICES}/bulk", svc, json={"devices": rows})
    assert made.status_code == 201, made.get_json()
    ids = [d["id"] for d in made.get_json()["data"]]
    listed = _assert_list_matches_own(reg, svc)
    assert listed[ids[1]]["locationIds"] == [depot]
    assert reg.call("POST", f"{DEVICES}/bulk/block", svc, json={"ids": ids[:3]}).status_code == 200
    clock.advance(2)
    assert (
        reg.call("POST", f"{DEVICES}/bulk/unblock", svc, json={"ids": ids[:1]}).status_code == 200
    )
    listed = _assert_list_matches_own(reg, svc)
    assert [listed[i]["status"] for i in ids[:4]] == ["ACTIVE", "BLOCKED", "BLOCKED", "ACTIVE"]
    assert reg.call("POST", f"{DEVICES}/bulk/delete", svc, json={"ids": ids[3:]}).status_code == 200
    assert reg.call("DELETE", f"{DEVICES}/{b['id']}", svc).status_code == 200
    listed = _assert_list_matches_own(reg, svc)
    assert ids[3] not in listed and b["id"] not in listed


def test_the_kept_text_is_the_rendered_text_on_postgresql(reg, app):
    """PostgreSQL: for every device, the column the triggers keep holds exactly what the
    statement would render (and the list reads the column, not the rendering)."""
    t = reg.tenant()
    svc = reg.service_token(t)
    loc = reg.call("POST", "/api/v1/locations", svc, json={"name": "M", "kind": "store"})
    reg.create_device(t, svc, name="x", locationIds=[loc.get_json()["data"]["id"]],
                      printerUids=["a"])  # fmt: skip
    reg.create_device(t, svc, name="y", status="READY_TO_LINK")
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("the kept column exists on PostgreSQL only (SQLite renders per read)")
        rows = db.session.execute(
            select(Device.id, literal_column("devices.api_json"), DEVICE_JSON_RENDERED)
        ).all()
        assert len(rows) == 2
        for device_id, kept, rendered in rows:
            assert kept is not None and kept == rendered, device_id
        # An operator's own SQL goes through the trigger too.
        db.session.execute(text("UPDATE devices SET name = 'renamed by hand'"))
        kept = db.session.scalars(
            select(literal_column("devices.api_json")).select_from(Device)
        ).all()
        assert all('"name":"renamed by hand"' in k for k in kept)
        db.session.commit()
    assert all(d["name"] == "renamed by hand" for d in _assert_list_matches_own(reg, svc).values())
