"""/api/v1/locations."""

from __future__ import annotations


def test_location_crud(reg):
    t = reg.tenant()
    token = reg.service_token(t)
    created = reg.call(
        "POST", "/api/v1/locations", token, json={"name": "Dock", "kind": "warehouse"}
    )
    assert created.status_code == 201
    loc = created.get_json()["data"]
    assert loc["id"].startswith("loc_") and loc["kind"] == "warehouse"
    assert reg.call("GET", f"/api/v1/locations/{loc['id']}", token).get_json()["data"] == loc
    patched = reg.call("PATCH", f"/api/v1/locations/{loc['id']}", token, json={"name": "Dock 2"})
    assert patched.get_json()["data"]["name"] == "Dock 2"
    listed = reg.call("GET", "/api/v1/locations", token).get_json()
    assert [x["id"] for x in listed["data"]] == [loc["id"]] and listed["hasMore"] is False
    assert reg.call("DELETE", f"/api/v1/locations/{loc['id']}", token).status_code == 200
    assert reg.call("GET", f"/api/v1/locations/{loc['id']}", token).status_code == 404


def test_a_location_with_active_devices_cannot_be_deleted(reg):
    t = reg.tenant()
    token = reg.service_token(t)
    loc = reg.call("POST", "/api/v1/locations", token, json={"name": "Busy"}).get_json()["data"]
    device = reg.create_device(t, locationIds=[loc["id"]])
    resp = reg.call("DELETE", f"/api/v1/locations/{loc['id']}", token)
    assert resp.status_code == 409 and resp.content_type == "application/problem+json"
    reg.call("DELETE", f"/api/v1/devices/{device['id']}", token)
    assert reg.call("DELETE", f"/api/v1/locations/{loc['id']}", token).status_code == 200


def test_invalid_location_bodies(reg):
    t = reg.tenant()
    token = reg.service_token(t)
    for body in ({}, {"name": ""}, {"name": "x", "kind": "castle"}, {"name": "x", "zip": 1}):
        assert reg.call("POST", "/api/v1/locations", token, json=body).status_code == 400


def test_locations_are_paged(reg):
    t = reg.tenant()
    token = reg.service_token(t)
    for i in range(5):
        reg.call("POST", "/api/v1/locations", token, json={"name": f"L{i}"})
    names, cursor = [], None
    while True:
        q = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = reg.call("GET", f"/api/v1/locations?{q}", token).get_json()
        names += [x["name"] for x in page["data"]]
        if not page["hasMore"]:
            break
        cursor = page["nextCursor"]
    assert names == ["L0", "L1", "L2", "L3", "L4"]
