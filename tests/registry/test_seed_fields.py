"""Seeds 000 and 001 as their clients send them: printers and the last order, exact search by
identifier, the seed's paging words, unknown parameters refused, DELETE answers, what a device
says about itself in the device flow."""

from __future__ import annotations

import pytest

from tests.conftest import cc_token
from tests.device_helpers import approve, kiosk_world, poll, start
from tests.dpop_client import DPoPKey

DEVICES = "/api/v1/devices"


@pytest.fixture
def t(reg):
    return reg.tenant()


@pytest.fixture
def svc(reg, t):
    return reg.service_token(t)


def problem(resp, status):
    assert resp.status_code == status, resp.get_json()
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    return resp.get_json()


# -- printers and the last order (seed 000) ---------------------------------------------------------


def test_printers_are_set_by_the_back_office_and_the_last_order_by_the_device(reg, t, svc):
    made = reg.create_device(t, svc, printerUids=["kitchen-1", "bar_2", "kitchen-1"])
    assert made["printerUids"] == ["kitchen-1", "bar_2"]  # in order, once each
    assert made["lastOrderUid"] is None
    changed = reg.call("PATCH", f"{DEVICES}/{made['id']}", svc, json={"printerUids": ["p3"]})
    assert changed.get_json()["data"]["printerUids"] == ["p3"]
    for bad in (["a b"], "p1", [1], ["x" * 65], [f"p{i}" for i in range(33)]):
        body = problem(reg.call("PATCH", f"{DEVICES}/{made['id']}", svc,
                                json={"printerUids": bad}), 400)  # fmt: skip
        assert body["field"] == "printerUids"
    # The back office does not set the last order; the terminal does, for itself only.
    problem(reg.call("PATCH", f"{DEVICES}/{made['id']}", svc, json={"lastOrderUid": "o1"}), 400)
    device, tokens, key = reg.linked_device(t)
    _, other_tokens, other_key = reg.linked_device(t)
    resp = reg.call("PATCH", f"{DEVICES}/me", tokens["access_token"], key=key,
                    json={"lastOrderUid": "ord-2026-0042"})  # fmt: skip
    assert resp.status_code == 200 and resp.get_json()["data"]["lastOrderUid"] == "ord-2026-0042"
    seen = reg.call("GET", f"{DEVICES}/{device['id']}", svc).get_json()["data"]
    assert seen["lastOrderUid"] == "ord-2026-0042"
    other = reg.call("GET", f"{DEVICES}/me", other_tokens["access_token"], key=other_key)
    assert other.get_json()["data"]["lastOrderUid"] is None  # the bystander is untouched
    problem(reg.call("PATCH", f"{DEVICES}/me", tokens["access_token"], key=key,
                     json={"lastOrderUid": "no spaces"}), 400)  # fmt: skip
    problem(reg.call("PATCH", f"{DEVICES}/me", tokens["access_token"], key=key,
                     json={"name": "renamed"}), 400)  # fmt: skip
    # Needs devices:write, like the system information.
    problem(reg.call("PATCH", f"{DEVICES}/me", svc, json={"lastOrderUid": "o2"}), 403)


# -- lists: exact identifier, the seed's words, unknown parameters --------------------------------------


def test_exact_search_by_device_identifier(reg, t, svc):
    device, _, _ = reg.linked_device(t)
    reg.linked_device(t)
    identifier = reg.call("GET", f"{DEVICES}/{device['id']}", svc).get_json()["data"]["identifier"]
    found = reg.call("GET", f"{DEVICES}?deviceIdentifier={identifier}", svc).get_json()["data"]
    assert [d["id"] for d in found] == [device["id"]]
    assert (
        reg.call("GET", f"{DEVICES}?deviceIdentifier={identifier[:-1]}", svc).get_json()["data"]
        == []
    )  # exact, not a part


@pytest.mark.parametrize(
    "query, parameter",
    [
        ("deviceStoreUid=loc_1", "deviceStoreUid"),
        ("pageNumber=2", "pageNumber"),
        ("limit=5&pageSize=5", "pageSize"),
        ("sortOrder=asc&sortDirection=ASC", "sortDirection"),
        ("sortDirection=UP", "sortOrder"),
        ("nmae=Till", "nmae"),
    ],
)
def test_an_unknown_parameter_is_a_400_naming_it_never_an_unfiltered_list(
    reg, t, svc, query, parameter
):
    reg.create_device(t, svc)
    body = problem(reg.call("GET", f"{DEVICES}?{query}", svc), 400)
    assert body["parameter"] == parameter and parameter in body["detail"]


@pytest.mark.parametrize(
    "path",
    ["/api/v1/locations?kind=store", "/api/v1/users?email=a", "/api/v1/audit-events?actor=x",
     "/api/v1/tenant/properties?name=x", "/api/v1/modules?venue=v1"],
)  # fmt: skip
def test_every_list_refuses_unknown_parameters(reg, world, t, path):
    scopes = "devices:read users:read tenant:read modules:read"
    token = cc_token(reg.http, world.client(t.id, scope=scopes)).get_json()["access_token"]
    if "audit" in path:
        token = reg.user_token(t, "auditor", ("TENANT.ADMIN",), scope="devices:read")
    body = problem(reg.call("GET", path, token), 400)
    assert body["parameter"] == path.split("?")[1].split("=")[0]


def test_the_seeds_page_size_and_sort_direction(reg, t, svc):
    for name in ("a", "b", "c"):
        reg.create_device(t, svc, name=name)
        reg.now.advance(1)
    page = reg.call("GET", f"{DEVICES}?pageSize=2&sortDirection=DESC", svc).get_json()
    assert [d["name"] for d in page["data"]] == ["c", "b"] and page["hasMore"] is True
    rest = reg.call("GET", f"{DEVICES}?pageSize=2&sortDirection=DESC&cursor={page['nextCursor']}",
                    svc).get_json()  # fmt: skip
    assert [d["name"] for d in rest["data"]] == ["a"] and rest["hasMore"] is False


def test_a_list_without_limit_says_more_pages_exist(reg, t, svc):
    for i in range(51):
        reg.create_device(t, svc, name=f"Till {i}")
    body = reg.call("GET", DEVICES, svc).get_json()
    assert len(body["data"]) == 50 and body["hasMore"] is True and body["nextCursor"]


# -- DELETE answers -----------------------------------------------------------------------------------


def test_every_delete_answers_deleted_true_or_204_when_asked_for_minimal(reg, world, t, svc):
    scopes = "devices:read devices:write modules:read modules:write tenant:read tenant:write"
    token = cc_token(reg.http, world.client(t.id, scope=scopes)).get_json()["access_token"]
    one = reg.create_device(t, token)
    two = reg.create_device(t, token)
    reg.call("POST", "/api/v1/modules", token, json={"id": "k-1", "type": "KIOSK"})
    reg.call("PUT", "/api/v1/tenant/properties/p", token, json={"value": "v"})
    loc = reg.call("POST", "/api/v1/locations", token, json={"name": "L"}).get_json()["data"]

    for path in (f"{DEVICES}/{one['id']}", "/api/v1/modules/k-1", "/api/v1/tenant/properties/p"):
        resp = reg.call("DELETE", path, token)
        assert resp.status_code == 200 and resp.get_json()["deleted"] is True, path
        assert resp.get_json()["data"]["deleted"] is True, path
    minimal = reg.call("DELETE", f"{DEVICES}/{two['id']}", token,
                       headers={"Prefer": "return=minimal"})  # fmt: skip
    assert minimal.status_code == 204 and minimal.get_data() == b""
    assert minimal.headers["Preference-Applied"] == "return=minimal"
    assert reg.call("GET", f"{DEVICES}/{two['id']}", token).status_code == 404  # it did delete
    other = reg.call("DELETE", f"/api/v1/locations/{loc['id']}", token,
                     headers={"Prefer": "respond-async, return=minimal"})  # fmt: skip
    assert other.status_code == 204


# -- what a device says about itself in the device flow ---------------------------------------------


def test_a_kiosk_gives_its_identifier_and_system_information_in_the_device_flow(reg, world):
    tenant, kiosk = kiosk_world(world)
    svc = cc_token(reg.http, world.client(tenant)).get_json()["access_token"]
    body = start(reg.http, kiosk.client_id, device_name="Lobby", deviceIdentifier="SN-0042",
                 system_information="KioskOS 3.1 build 7").get_json()  # fmt: skip
    assert approve(reg.app, body["user_code"], "admin")["decision"] == "approved"
    token = poll(reg.http, kiosk.client_id, body["device_code"]).get_json()
    assert token.get("access_token"), token
    found = reg.call("GET", f"{DEVICES}?deviceIdentifier=SN-0042", svc).get_json()["data"]
    assert len(found) == 1 and found[0]["systemInformation"] == "KioskOS 3.1 build 7"
    assert found[0]["name"] == "Lobby"

    # Another device of the tenant cannot take the identifier: the approval is refused.
    again = start(reg.http, kiosk.client_id, device_identifier="SN-0042").get_json()
    refused = approve(reg.app, again["user_code"], "admin")
    assert refused["exit_code"] != 0 and "identifier" in refused["error"]
    assert poll(reg.http, kiosk.client_id, again["device_code"]).get_json()["error"] == (
        "authorization_pending"
    )


@pytest.mark.parametrize(
    "form",
    [
        {"device_identifier": "has space"},
        {"device_identifier": "x" * 65},
        {"device_identifier": "a", "deviceIdentifier": "b"},
        {"system_information": "safe\u202etxt.exe"},
        {"system_information": "bell\x07"},
    ],
)
def test_what_a_device_says_about_itself_is_checked(reg, world, form):
    _, kiosk = kiosk_world(world)
    resp = start(reg.http, kiosk.client_id, **form)
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request"


def test_the_page_shows_what_the_device_says_about_itself(reg, world, http):
    from tests.endpoints.test_verification_page import enter, login

    _, kiosk = kiosk_world(world)
    body = start(http, kiosk.client_id, device_identifier="SN-7",
                 system_information="KioskOS <b>3.1</b>").get_json()  # fmt: skip
    enter(http, body["user_code"])
    login(http, "admin")
    review = http.get("/device").get_data(as_text=True)
    assert "SN-7" in review and "KioskOS &lt;b&gt;3.1&lt;/b&gt;" in review
    assert "It says about itself" in review


# -- unblocking: the caller decides whether the old sessions live again ---------------------------


def me_status(reg, tokens, key) -> int:
    return reg.call("GET", f"{DEVICES}/me", tokens["access_token"], key=key).status_code


def refresh_status(reg, t, tokens, key) -> tuple[int, dict]:
    resp = reg.http.post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
        "client_id": t.pos.client_id,
    }, headers={"DPoP": key.proof("POST", reg.settings.issuer + "/oauth/token", iat=reg.now())})  # fmt: skip
    return resp.status_code, resp.get_json()


def patch_status(reg, svc, device, **body):
    resp = reg.call("PATCH", f"{DEVICES}/{device['id']}", svc, json=body)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["data"]


def test_unblocking_with_restore_sessions_revives_what_the_block_ended(reg, t, svc):
    device, tokens, key = reg.linked_device(t)
    _, other, other_key = reg.linked_device(t)
    reg.now.advance(1)
    patch_status(reg, svc, device, status="BLOCKED")
    assert me_status(reg, tokens, key) == 401
    assert refresh_status(reg, t, tokens, key)[0] == 400
    reg.now.advance(1)
    restored = patch_status(reg, svc, device, status="ACTIVE", restoreSessions=True)
    assert restored["status"] == "ACTIVE"
    assert me_status(reg, tokens, key) == 200
    code, rotated = refresh_status(reg, t, tokens, key)
    assert code == 200, rotated
    assert me_status(reg, other, other_key) == 200  # the bystander was never touched
    events = reg.call("GET", "/api/v1/audit-events?type=device.activated",
                      reg.user_token(t, "auditor", ("TENANT.ADMIN",))).get_json()["data"]  # fmt: skip
    assert events[0]["data"]["restored_sessions"] is True


def test_unblocking_without_restore_keeps_the_old_sessions_dead(reg, t, svc):
    device, tokens, key = reg.linked_device(t)
    reg.now.advance(1)
    patch_status(reg, svc, device, status="BLOCKED")
    reg.now.advance(1)
    patch_status(reg, svc, device, status="ACTIVE", restoreSessions=False)
    assert me_status(reg, tokens, key) == 401
    assert refresh_status(reg, t, tokens, key)[0] == 400
    # A later block and restore does not revive what the first block ended.
    reg.now.advance(1)
    patch_status(reg, svc, device, status="BLOCKED")
    reg.now.advance(1)
    patch_status(reg, svc, device, status="ACTIVE", restoreSessions=True)
    assert me_status(reg, tokens, key) == 401
    assert refresh_status(reg, t, tokens, key)[0] == 400


def test_restore_revives_only_the_blocks_sessions_not_older_revocations(reg, t, svc):
    device, first, first_key = reg.linked_device(t)
    reg.now.advance(1)
    # The terminal is unlinked and linked again: the first session ends for good.
    code = patch_status(reg, svc, device, status="READY_TO_LINK")["linkCode"]
    reg.now.advance(1)
    second_key = DPoPKey()
    linked = reg.link(t, code, second_key)
    assert linked.status_code == 200, linked.get_json()
    second = linked.get_json()
    # One access token of the second session is revoked on its own (RFC 7009).
    code, renewed = refresh_status(reg, t, second, second_key)
    assert code == 200, renewed
    revoked = reg.http.post("/oauth/revoke", data={"token": renewed["access_token"],
                                                   "client_id": t.pos.client_id})  # fmt: skip
    assert revoked.status_code == 200
    assert me_status(reg, renewed, second_key) == 401
    reg.now.advance(1)
    patch_status(reg, svc, device, status="BLOCKED")
    reg.now.advance(1)
    patch_status(reg, svc, device, status="ACTIVE", restoreSessions=True)
    assert me_status(reg, second, second_key) == 200
    assert me_status(reg, renewed, second_key) == 401  # revoked on its own: stays revoked
    assert refresh_status(reg, t, renewed, second_key)[0] == 200
    assert me_status(reg, first, first_key) == 401
    assert refresh_status(reg, t, first, first_key)[0] == 400


@pytest.mark.parametrize(
    "start, body",
    [("ACTIVE", {"status": "ACTIVE", "restoreSessions": True}),
     ("BLOCKED", {"restoreSessions": True}),
     ("BLOCKED", {"status": "READY_TO_LINK", "restoreSessions": True}),
     ("BLOCKED", {"status": "ACTIVE", "restoreSessions": "yes"})],
)  # fmt: skip
def test_restore_sessions_only_when_unblocking(reg, t, svc, start, body):
    device, tokens, key = reg.linked_device(t)
    if start == "BLOCKED":
        patch_status(reg, svc, device, status="BLOCKED")
    resp = reg.call("PATCH", f"{DEVICES}/{device['id']}", svc, json=body)
    assert problem(resp, 400)["field"] == "restoreSessions"
    assert reg.call("GET", f"{DEVICES}/{device['id']}", svc).get_json()["data"]["status"] == start


# -- creation order: ids sort as they were made ------------------------------------------------------


def test_devices_made_in_one_second_list_in_creation_order(reg, t, svc):
    made = [reg.create_device(t, svc, name=f"Till {i}")["id"] for i in range(30)]  # frozen clock
    listed = reg.call("GET", f"{DEVICES}?limit=200", svc).get_json()["data"]
    assert [d["id"] for d in listed] == made
    newest_first = reg.call("GET", f"{DEVICES}?limit=200&sortOrder=desc", svc).get_json()["data"]
    assert [d["id"] for d in newest_first] == made[::-1]


def test_a_walk_sees_every_device_created_while_it_walks(reg, t, svc):
    for i in range(5):
        reg.create_device(t, svc, name=f"Till {i}")
    seen, cursor, extra = [], None, []
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = reg.call("GET", f"{DEVICES}?{query}", svc).get_json()
        seen += [d["id"] for d in page["data"]]
        if len(extra) < 3:  # a device arrives in the same second as the page's last one
            extra.append(reg.create_device(t, svc, name=f"New {len(extra)}")["id"])
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert set(extra) <= set(seen) and len(seen) == len(set(seen)) == 8


def test_ids_are_in_creation_order_across_milliseconds_and_within_one():
    from authserver.security import new_id

    ids = [new_id("dev") for _ in range(2500)]
    assert ids == sorted(ids) and len(set(ids)) == 2500
    assert all(len(i) <= 48 for i in ids)


def test_device_times_keep_milliseconds(reg, t, svc):
    from datetime import datetime

    def parse(text):
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    reg.now.t = float(int(reg.now.t) + 1)  # a whole second, so the steps below are exact
    first = reg.create_device(t, svc, name="A")
    assert first["createdAt"].endswith(".000Z")
    reg.now.advance(0.25)
    second = reg.create_device(t, svc, name="B")
    gap = parse(second["createdAt"]) - parse(first["createdAt"])
    assert gap.total_seconds() == 0.25
    reg.now.advance(0.125)
    changed = reg.call("PATCH", f"{DEVICES}/{first['id']}", svc, json={"name": "A2"})
    updated = changed.get_json()["data"]["updatedAt"]
    assert (parse(updated) - parse(first["createdAt"])).total_seconds() == 0.375
    assert len(updated) == len("2026-11-30T12:00:00.000Z")


# -- found by review: restoring never revives what was revoked for another reason ----------------------


def test_restore_keeps_dead_what_was_revoked_for_another_reason_during_the_block(reg, t, svc):
    device, tokens, key = reg.linked_device(t)
    reg.now.advance(1)
    patch_status(reg, svc, device, status="BLOCKED")
    # During the block the terminal's refresh token is revoked on its own (RFC 7009).
    revoked = reg.http.post("/oauth/revoke", data={"token": tokens["refresh_token"],
                                                   "client_id": t.pos.client_id})  # fmt: skip
    assert revoked.status_code == 200
    reg.now.advance(1)
    patch_status(reg, svc, device, status="ACTIVE", restoreSessions=True)
    assert refresh_status(reg, t, tokens, key)[0] == 400
    assert me_status(reg, tokens, key) == 401  # its family is revoked: so is its access token


def test_restore_works_after_the_purge_window(reg, t, svc):
    from authserver.models import db
    from authserver.retention import purge_expired

    device, tokens, key = reg.linked_device(t)
    reg.now.advance(1)
    patch_status(reg, svc, device, status="BLOCKED")
    reg.now.advance(reg.settings.max_token_lifetime + 3600)  # an hour's block: purges ran
    with reg.app.app_context():
        purge_expired(db.engine, reg.settings, int(reg.now()))
    svc = reg.service_token(t)  # the first one has expired meanwhile
    patch_status(reg, svc, device, status="ACTIVE", restoreSessions=True)
    code, body = refresh_status(reg, t, tokens, key)
    assert code == 200, body  # the family was kept while the device was blocked
    assert me_status(reg, body, key) == 200


def test_restore_in_the_store_only_replaces_the_blocks_own_mark(reg, t, svc, app):
    """The last step of a restore, alone: when the device was blocked again meanwhile, the store
    keeps the newer, stricter mark (compare-and-set on Redis; one transaction on SQL)."""
    from authserver import revocation
    from authserver.ephemeral import RedisStore
    from authserver.models import db

    with app.app_context():
        first = revocation.mark("device", "dev_cas")
        db.session.commit()
        if not isinstance(app.extensions["authserver"].store, RedisStore):
            # The SQL store is written in the restore's own transaction: nothing is left to do.
            assert revocation.restore_in_store("device", "dev_cas", "12345", None) is True
            assert revocation.current_mark("device", "dev_cas") == first
            return
        assert revocation.restore_in_store("device", "dev_cas", "12345", None) is False
        assert revocation.current_mark("device", "dev_cas") == first
        assert revocation.restore_in_store("device", "dev_cas", first, "777") is True
        assert revocation.current_mark("device", "dev_cas") == "777"


def test_an_identifier_is_unique_among_the_tenants_live_devices_only(reg, world):
    tenant, kiosk = kiosk_world(world)
    svc = cc_token(reg.http, world.client(tenant, scope="devices:read devices:write")).get_json()[
        "access_token"
    ]
    # Another tenant's device with the identifier is no obstacle.
    other, other_kiosk = kiosk_world(world)
    theirs = start(reg.http, other_kiosk.client_id, device_identifier="SN-0042").get_json()
    assert approve(reg.app, theirs["user_code"], "admin")["decision"] == "approved"
    first = start(reg.http, kiosk.client_id, device_identifier="SN-0042").get_json()
    done = approve(reg.app, first["user_code"], "admin")
    assert done["decision"] == "approved", done
    # A deleted device's identifier is free again.
    assert reg.call("DELETE", f"{DEVICES}/{done['device_id']}", svc).status_code in (200, 204)
    again = start(reg.http, kiosk.client_id, device_identifier="SN-0042").get_json()
    assert approve(reg.app, again["user_code"], "admin")["decision"] == "approved"


def test_restoring_the_sessions_of_a_device_never_marked_before_its_block(reg, t, svc):
    """A device of the API, never linked: no revocation mark before its block, so restoring
    puts back "no mark" (kept as mark 0), and tokens issued since are untouched by it."""
    from authserver import revocation

    made = reg.call("POST", DEVICES, svc, json={"name": "Back-office screen"})
    assert made.status_code == 201, made.get_json()
    device = made.get_json()["data"]
    with reg.app.app_context():
        assert revocation.current_mark("device", device["id"]) is None
    reg.now.advance(1)
    patch_status(reg, svc, device, status="BLOCKED")
    reg.now.advance(1)
    back = patch_status(reg, svc, device, status="ACTIVE", restoreSessions=True)
    assert back["status"] == "ACTIVE"
    with reg.app.app_context():
        assert revocation.current_mark("device", device["id"]) == "0"


def test_both_spellings_of_the_identifier_are_accepted_when_they_agree(reg, world):
    _, kiosk = kiosk_world(world)
    same = start(reg.http, kiosk.client_id, device_identifier="SN-9", deviceIdentifier="SN-9")
    assert same.status_code == 200, same.get_json()
    differ = start(reg.http, kiosk.client_id, device_identifier="SN-9", deviceIdentifier="SN-8")
    assert differ.status_code == 400 and "not both" in differ.get_json()["error_description"]


def test_unblocking_one_device_touches_no_other_devices_sessions(reg, t, svc):
    """Bystanders of restoring and of not restoring: each unblock decides for its own device's
    sessions only, and only for those the block ended."""
    from sqlalchemy import select

    from authserver.models import RefreshFamily, db

    def reasons(device) -> list:
        with reg.app.app_context():
            return list(db.session.scalars(select(RefreshFamily.revoked_reason)
                                           .where(RefreshFamily.device_id == device["id"])))  # fmt: skip

    a, a_tokens, a_key = reg.linked_device(t)
    b, b_tokens, b_key = reg.linked_device(t)
    c, c_tokens, c_key = reg.linked_device(t)
    d, d_tokens, _ = reg.linked_device(t)
    # D's session was ended before its block, for another reason (the terminal revoked it).
    revoked = reg.http.post("/oauth/revoke", data={"token": d_tokens["refresh_token"],
                                                   "client_id": t.pos.client_id})  # fmt: skip
    assert revoked.status_code == 200
    d_reason = reasons(d)
    assert d_reason != [None] and d_reason != ["device_blocked"]
    reg.now.advance(1)
    for device in (a, b, c, d):
        patch_status(reg, svc, device, status="BLOCKED")
    reg.now.advance(1)

    patch_status(reg, svc, a, status="ACTIVE", restoreSessions=True)
    assert reasons(b) == reasons(c) == ["device_blocked"]  # not revived with A's
    patch_status(reg, svc, b, status="ACTIVE")  # without its sessions
    patch_status(reg, svc, d, status="ACTIVE")
    assert reasons(b) == ["device_status"] and reasons(d) == d_reason
    assert reasons(c) == ["device_blocked"]  # still C's own decision to make
    patch_status(reg, svc, c, status="ACTIVE", restoreSessions=True)

    assert me_status(reg, a_tokens, a_key) == 200 and me_status(reg, c_tokens, c_key) == 200
    assert refresh_status(reg, t, c_tokens, c_key)[0] == 200
    assert me_status(reg, b_tokens, b_key) == 401
    assert refresh_status(reg, t, b_tokens, b_key)[0] == 400
