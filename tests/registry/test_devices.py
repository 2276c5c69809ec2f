"""/api/v1/devices: CRUD, filters, sorting, keyset pagination, statuses and token kills."""

from __future__ import annotations

import pytest

from authserver.models import Device, db


def test_create_audit_device(reg):
    t = reg.tenant()
    device = reg.create_device(t, name="POS Till 2", externalId="POS-2")
    assert device["id"].startswith("dev_")
    assert device["origin"] == "api" and device["status"] == "ACTIVE"
    assert device["externalId"] == "POS-2" and "linkCode" not in device
    assert device["createdAt"].endswith("Z")


def test_create_device_to_link_shows_the_link_code_once(reg):
    t = reg.tenant()
    device = reg.create_device(t, status="READY_TO_LINK")
    assert device["status"] == "READY_TO_LINK" and device["origin"] == "link"
    assert len(device["linkCode"].replace("-", "")) == 12
    again = reg.call("GET", f"/api/v1/devices/{device['id']}", reg.service_token(t)).get_json()
    assert "linkCode" not in again["data"]


def test_duplicate_external_id_is_409_and_freed_by_delete(reg):
    t = reg.tenant()
    first = reg.create_device(t, externalId="X-1")
    dup = reg.call(
        "POST", "/api/v1/devices", reg.service_token(t), json={"name": "dup", "externalId": "X-1"}
    )
    assert dup.status_code == 409
    assert dup.content_type == "application/problem+json"
    other = reg.tenant()  # another tenant may use the same externalId
    reg.create_device(other, externalId="X-1")
    assert (
        reg.call("DELETE", f"/api/v1/devices/{first['id']}", reg.service_token(t)).status_code
        == 200
    )
    reg.create_device(t, externalId="X-1")
    # The other tenant's device of the same externalId is untouched by the delete.
    listed = reg.call("GET", "/api/v1/devices?externalId=X-1", reg.service_token(other))
    assert [d["externalId"] for d in listed.get_json()["data"]] == ["X-1"]


def test_get_patch_delete(reg):
    t = reg.tenant()
    token = reg.service_token(t)
    loc = reg.call("POST", "/api/v1/locations", token, json={"name": "Main", "kind": "store"})
    loc_id = loc.get_json()["data"]["id"]
    device = reg.create_device(t)
    bystander = reg.create_device(t, name="Bystander")
    resp = reg.call(
        "PATCH",
        f"/api/v1/devices/{device['id']}",
        token,
        json={
            "name": "Renamed",
            "locationIds": [loc_id],
            "tillId": "T7",
            "appCode": "ASSISTANT",
            "externalId": "E-7",
        },
    )
    assert resp.status_code == 200, resp.get_json()
    data = resp.get_json()["data"]
    assert (
        data["name"],
        data["locationIds"],
        data["tillId"],
        data["appCode"],
        data["externalId"],
    ) == ("Renamed", [loc_id], "T7", "ASSISTANT", "E-7")
    assert reg.call("DELETE", f"/api/v1/devices/{device['id']}", token).status_code == 200
    assert reg.call("GET", f"/api/v1/devices/{device['id']}", token).status_code == 404
    listed = reg.call("GET", "/api/v1/devices", token).get_json()["data"]
    assert device["id"] not in {d["id"] for d in listed}
    # The bystander is still there, unchanged.
    assert bystander["id"] in {d["id"] for d in listed}
    kept = reg.call("GET", f"/api/v1/devices/{bystander['id']}", token).get_json()["data"]
    assert (kept["name"], kept["status"]) == ("Bystander", "ACTIVE")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "x" * 101},
        {"name": 5},
        {"name": "a", "appCode": "TOASTER"},
        {"name": "a", "status": "BLOCKED"},
        {"name": "a", "locationIds": ["loc_unknown"]},
        {"name": "a", "bogus": 1},
        {"name": "a", "externalId": ""},
    ],
)
def test_invalid_create_bodies_are_400(reg, body):
    t = reg.tenant()
    resp = reg.call("POST", "/api/v1/devices", reg.service_token(t), json=body)
    assert resp.status_code == 400
    assert resp.content_type == "application/problem+json"


def test_filters_and_search(reg):
    t = reg.tenant()
    token = reg.service_token(t)
    loc = reg.call("POST", "/api/v1/locations", token, json={"name": "North"}).get_json()["data"]
    a = reg.create_device(t, name="Front Scanner", externalId="A-1", locationIds=[loc["id"]])
    b = reg.create_device(t, name="Back office PC", appCode="ASSISTANT")
    c = reg.create_device(t, name="Till 100%", status="READY_TO_LINK", tillId="KASA-7")

    def ids(query):
        resp = reg.call("GET", "/api/v1/devices?" + query, token)
        assert resp.status_code == 200, resp.get_json()
        return {d["id"] for d in resp.get_json()["data"]}

    assert ids(f"locationId={loc['id']}") == {a["id"]}
    assert ids("name=SCANNER") == {a["id"]}
    assert ids("name=100%25") == {c["id"]}  # % is matched literally
    assert ids("origin=link") == {c["id"]}
    assert ids("status=READY_TO_LINK") == {c["id"]}
    assert ids("appCode=ASSISTANT") == {b["id"]}
    assert ids("externalId=A-1") == {a["id"]}
    assert ids("q=a-1") == {a["id"]}
    assert ids("q=office") == {b["id"]}
    assert ids("q=kasa-7") == {c["id"]}  # the till too (issue 16)
    assert reg.call("GET", "/api/v1/devices?status=LOST", token).status_code == 400
    assert reg.call("GET", "/api/v1/devices?sortBy=secret", token).status_code == 400
    assert reg.call("GET", "/api/v1/devices?limit=0", token).status_code == 400
    assert reg.call("GET", "/api/v1/devices?limit=201", token).status_code == 400
    assert reg.call("GET", "/api/v1/devices?cursor=forged", token).status_code == 400


@pytest.mark.parametrize("sort_by", ["name", "createdAt", "updatedAt", "lastActivityAt"])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_sorting(reg, clock, sort_by, order):
    t = reg.tenant()
    token = reg.service_token(t)
    for name in ("c", "a", "b"):
        reg.create_device(t, name=name)
        clock.advance(1)
    data = reg.call("GET", f"/api/v1/devices?sortBy={sort_by}&sortOrder={order}", token).get_json()[
        "data"
    ]
    keys = [d["name"] if sort_by == "name" else (d[sort_by] or "", d["id"]) for d in data]
    assert keys == sorted(keys, reverse=(order == "desc"))


@pytest.mark.parametrize("sort_by", ["name", "createdAt", "updatedAt", "lastActivityAt"])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_pages_of_two_walk_the_same_list_as_one_page(reg, clock, sort_by, order):
    """Each page is chosen first and then rendered (with its locations): walking pages of two,
    ties in the sort key included, gives the whole list, in its order, each item whole."""
    t = reg.tenant()
    token = reg.service_token(t)
    locs = [reg.call("POST", "/api/v1/locations", token, json={"name": n, "kind": "store"})
            .get_json()["data"]["id"] for n in ("North", "South")]  # fmt: skip
    for i, name in enumerate(("b", "a", "b", "c", "a", "d", "b")):
        reg.create_device(t, name=name, locationIds=locs[: i % 3])
        if i % 2:
            clock.advance(1)  # pairs created in the same second: ties in the time keys
    query = f"sortBy={sort_by}&sortOrder={order}"
    whole = reg.call("GET", f"/api/v1/devices?{query}", token).get_json()["data"]
    walked, cursor = [], None
    while True:
        more = f"&cursor={cursor}" if cursor else ""
        body = reg.call("GET", f"/api/v1/devices?{query}&limit=2{more}", token).get_json()
        walked += body["data"]
        if not body["hasMore"]:
            break
        cursor = body["nextCursor"]
    assert walked == whole and len(whole) == 7
    assert sorted(len(d["locationIds"]) for d in whole) == [0, 0, 0, 1, 1, 2, 2]
    assert all(d["locationIds"] == sorted(d["locationIds"]) for d in whole)


def test_walking_pages_while_devices_come_and_go(reg, clock):
    """Keyset pagination: no duplicates, and nothing that existed throughout is skipped."""
    t = reg.tenant()
    token = reg.service_token(t)
    stable = []
    for i in range(25):
        stable.append(reg.create_device(t, name=f"dev {i:02d}")["id"])
        clock.advance(1)
    doomed = [reg.create_device(t, name=f"doomed {i}")["id"] for i in range(5)]
    seen, cursor, pages = [], None, 0
    while True:
        query = "limit=4&sortBy=createdAt" + (f"&cursor={cursor}" if cursor else "")
        body = reg.call("GET", f"/api/v1/devices?{query}", token).get_json()
        seen += [d["id"] for d in body["data"]]
        pages += 1
        # Churn between pages: new devices appear, some vanish.
        reg.create_device(t, name=f"new {pages}")
        if doomed:
            reg.call("DELETE", f"/api/v1/devices/{doomed.pop()}", token)
        if not body["hasMore"]:
            assert body["nextCursor"] is None
            break
        cursor = body["nextCursor"]
    assert len(seen) == len(set(seen)), "a device appeared on two pages"
    assert set(stable) <= set(seen), "a device that existed throughout was skipped"


def test_default_page_size_is_50(reg):
    t = reg.tenant()
    token = reg.service_token(t)
    for i in range(52):
        reg.create_device(t, name=f"d{i}")
    body = reg.call("GET", "/api/v1/devices", token).get_json()
    assert len(body["data"]) == 50 and body["hasMore"] is True


def test_a_device_reads_the_same_in_a_list_as_on_its_own(reg):
    """Lists read rows with statements of their own (not the ORM): every field, including the
    JSON ones (printers) and the set-by-the-device ones, comes back as the device's own page."""
    t = reg.tenant()
    token = reg.service_token(t)
    locs = [reg.call("POST", "/api/v1/locations", token, json={"name": n, "kind": "store"})
            .get_json()["data"]["id"] for n in ("Main", "Annex", "Depot")]  # fmt: skip
    full = reg.create_device(t, name='Kasa "Zachód" \\ 2 ☕', externalId="F-1", tillId="7",
                             printerUids=["kitchen-1", "bar_2"],
                             locationIds=list(reversed(locs)))  # fmt: skip
    bare = reg.create_device(t, name="Bare")
    _, tokens, key = reg.linked_device(t)
    reg.call("PATCH", "/api/v1/devices/me", tokens["access_token"], key=key,
             json={"lastOrderUid": "ord-1"})  # fmt: skip
    own = {d["id"]: reg.call("GET", f"/api/v1/devices/{d['id']}", token).get_json()["data"]
           for d in reg.call("GET", "/api/v1/devices", token).get_json()["data"]}  # fmt: skip
    assert own[full["id"]] == full  # as the create answered (through the ORM)
    assert own[full["id"]]["printerUids"] == ["kitchen-1", "bar_2"]
    assert own[full["id"]]["locationIds"] == sorted(locs)
    assert own[full["id"]]["name"] == 'Kasa "Zachód" \\ 2 ☕'
    assert own[bare["id"]]["printerUids"] == []
    assert any(d["lastOrderUid"] == "ord-1" and d["lastActivityAt"] for d in own.values())
    for query in ("", "?sortBy=name", "?q=f", "?externalId=F-1", "?sortOrder=desc&limit=2",
                  "?sortBy=lastActivityAt&sortOrder=desc", f"?locationId={locs[1]}"):  # fmt: skip
        for listed in reg.call("GET", f"/api/v1/devices{query}", token).get_json()["data"]:
            assert listed == own[listed["id"]], query


def test_cursor_of_another_sort_is_refused(reg):
    t = reg.tenant()
    token = reg.service_token(t)
    for i in range(3):
        reg.create_device(t, name=f"d{i}")
    cursor = reg.call("GET", "/api/v1/devices?limit=1", token).get_json()["nextCursor"]
    assert (
        reg.call("GET", f"/api/v1/devices?limit=1&sortBy=name&cursor={cursor}", token).status_code
        == 400
    )


def still_works(reg, t, tokens, key) -> None:
    """A bystander terminal: its access token reads /me and its refresh token rotates."""
    me = reg.call("GET", "/api/v1/devices/me", tokens["access_token"], key=key)
    assert me.status_code == 200
    refreshed = reg.http.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": t.pos.client_id,
        },
        headers={"DPoP": key.proof("POST", reg.settings.issuer + "/oauth/token")},
    )
    assert refreshed.status_code == 200, refreshed.get_json()


def test_blocking_kills_the_devices_tokens_at_once(reg):
    t = reg.tenant()
    device, tokens, key = reg.linked_device(t)
    _, other_tokens, other_key = reg.linked_device(t)
    me = reg.call("GET", "/api/v1/devices/me", tokens["access_token"], key=key)
    assert me.status_code == 200
    admin = reg.service_token(t)
    blocked = reg.call(
        "PATCH", f"/api/v1/devices/{device['id']}", admin, json={"status": "BLOCKED"}
    )
    assert blocked.get_json()["data"]["status"] == "BLOCKED"
    assert reg.call("GET", "/api/v1/devices/me", tokens["access_token"], key=key).status_code == 401
    refresh = reg.http.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": t.pos.client_id,
        },
        headers={"DPoP": key.proof("POST", reg.settings.issuer + "/oauth/token")},
    )
    assert refresh.get_json()["error"] == "invalid_grant"
    # Back to ACTIVE is allowed for a linked device, but the old tokens stay dead.
    active = reg.call("PATCH", f"/api/v1/devices/{device['id']}", admin, json={"status": "ACTIVE"})
    assert active.status_code == 200
    assert reg.call("GET", "/api/v1/devices/me", tokens["access_token"], key=key).status_code == 401
    still_works(reg, t, other_tokens, other_key)


def test_unlinking_issues_a_new_code_and_clears_the_key(reg):
    t = reg.tenant()
    device, tokens, key = reg.linked_device(t)
    _, other_tokens, other_key = reg.linked_device(t)
    admin = reg.service_token(t)
    resp = reg.call(
        "PATCH", f"/api/v1/devices/{device['id']}", admin, json={"status": "READY_TO_LINK"}
    )
    data = resp.get_json()["data"]
    assert data["status"] == "READY_TO_LINK"
    assert data["identifier"] is None and data["dpopJkt"] is None
    assert data["linkCode"] and data["linkCode"] != device["linkCode"]
    assert reg.call("GET", "/api/v1/devices/me", tokens["access_token"], key=key).status_code == 401
    # Relinked with the new code and a new key.
    from tests.dpop_client import DPoPKey

    new_key = DPoPKey()
    assert reg.link(t, device["linkCode"], new_key).get_json()["error"] == "invalid_grant"
    relinked = reg.link(t, data["linkCode"], new_key)
    assert relinked.status_code == 200
    still_works(reg, t, other_tokens, other_key)


def test_ready_to_link_cannot_be_made_active_by_patch(reg):
    t = reg.tenant()
    device = reg.create_device(t, status="READY_TO_LINK")
    resp = reg.call(
        "PATCH", f"/api/v1/devices/{device['id']}", reg.service_token(t), json={"status": "ACTIVE"}
    )
    assert resp.status_code == 409


def test_delete_revokes_tokens_and_hides_the_device(reg, app):
    t = reg.tenant()
    device, tokens, key = reg.linked_device(t)
    _, other_tokens, other_key = reg.linked_device(t)
    admin = reg.service_token(t)
    assert reg.call("DELETE", f"/api/v1/devices/{device['id']}", admin).get_json() == {
        "deleted": True,  # seed 001's answer, beside the envelope
        "data": {"id": device["id"], "deleted": True},
    }
    assert reg.call("GET", "/api/v1/devices/me", tokens["access_token"], key=key).status_code == 401
    intro = reg.http.post(
        "/oauth/introspect", data={"token": tokens["access_token"]}, headers=t.service.auth_header()
    ).get_json()
    assert intro == {"active": False}
    with app.app_context():
        assert db.session.get(Device, device["id"]).deleted_at is not None
    still_works(reg, t, other_tokens, other_key)


@pytest.mark.parametrize(
    "body",
    [
        {"name": "\u202egnp.exe"},
        {"name": "Till\u200b1"},
        {"name": "Till", "tillId": "T\u2067"},
        {"name": "Line\nbreak"},
    ],
)
def test_names_that_disguise_themselves_are_refused(reg, body):
    """Review F12: bidi overrides and other format characters are refused in every field a
    person reads; the same rule as the /device page and the device authorization endpoint."""
    t = reg.tenant()
    resp = reg.call("POST", "/api/v1/devices", reg.service_token(t), json=body)
    assert resp.status_code == 400
    assert resp.content_type == "application/problem+json"


def test_location_names_follow_the_same_rule(reg):
    t = reg.tenant()
    resp = reg.call("POST", "/api/v1/locations", reg.service_token(t), json={"name": "A\u202eB"})
    assert resp.status_code == 400


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_bodies_must_be_utf8(reg, encoding):
    """RFC 8259 §8.1: JSON between systems is UTF-8; UTF-16 and UTF-32 bodies are refused."""
    t = reg.tenant()
    resp = reg.http.post(
        "/api/v1/devices",
        data='{"name": "Till"}'.encode(encoding),
        headers={
            "Authorization": f"Bearer {reg.service_token(t)}",
            "Content-Type": "application/json",
        },
    )
    assert resp.status_code == 400
    assert resp.get_json()["detail"] in (
        "The body must be UTF-8 (RFC 8259 §8.1).",
        "The body is not valid JSON.",  # UTF-16-LE without a BOM decodes as UTF-8 with NULs
    )


def test_a_declared_charset_other_than_utf8_is_refused(reg):
    t = reg.tenant()
    resp = reg.http.post(
        "/api/v1/devices",
        data=b'{"name": "Till"}',
        headers={
            "Authorization": f"Bearer {reg.service_token(t)}",
            "Content-Type": "application/json; charset=latin-1",
        },
    )
    assert resp.status_code == 400


@pytest.mark.parametrize("raw", [b'{"name": NaN}', b'{"name": "x", "n": Infinity}'])
def test_non_json_numbers_are_refused(reg, raw):
    t = reg.tenant()
    resp = reg.http.post(
        "/api/v1/devices",
        data=raw,
        headers={
            "Authorization": f"Bearer {reg.service_token(t)}",
            "Content-Type": "application/json",
        },
    )
    assert resp.status_code == 400
