"""The registry API answers every error as problem details (RFC 9457), with a type per status,
and reads its list queries and the link URL as strictly as the token endpoint reads forms."""

from __future__ import annotations

import pytest

from authserver.ephemeral import StoreUnavailable
from authserver.models import Client, db
from tests.device_helpers import DEVICE_GRANT, approve, poll, start

PROBLEM = "application/problem+json"


def admin_token(reg, t) -> str:
    """A token of the tenant's administrator (user "admin"), through a sign-in with the device
    flow: audit events are for administrators."""
    signin = reg.world.client(
        t.id, grant_types=(DEVICE_GRANT,), auth_method="none", scope="devices:read"
    )
    with reg.app.app_context():
        db.session.get(Client, signin.client_id).device_subject = "user"
        db.session.commit()
    body = start(reg.http, signin.client_id).get_json()
    approve(reg.app, body["user_code"], "admin")
    return poll(reg.http, signin.client_id, body["device_code"]).get_json()["access_token"]


def problem(resp, status: int, slug: str) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.content_type == PROBLEM
    body = resp.get_json()
    assert body["type"] == f"urn:authserver:problem:{slug}" and body["status"] == status
    assert body["detail"]
    return body


def test_an_unknown_api_path_is_a_not_found_problem(reg):
    problem(reg.http.get("/api/v1/nothing-here"), 404, "not-found")
    # OAuth endpoints keep RFC 6749's JSON (the same handler, another path).
    oauth = reg.http.get("/oauth/nothing-here")
    assert oauth.status_code == 404 and oauth.get_json()["error"] == "not_found"


def test_a_wrong_method_is_a_problem_with_allow(reg):
    resp = reg.http.put("/api/v1/locations")
    problem(resp, 405, "method-not-allowed")
    assert set(resp.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_a_body_too_large_is_a_problem(reg, app):
    t = reg.tenant()
    big = "x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    resp = reg.call(
        "POST", "/api/v1/locations", reg.service_token(t), data=big,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    problem(resp, 413, "payload-too-large")


def test_an_unreachable_database_is_a_problem_with_retry_after(reg, app, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from authserver.registry import devices as views

    t = reg.tenant()
    token = reg.service_token(t)

    def down(*_a, **_k):
        raise OperationalError("SELECT", {}, Exception("test: the database is down"))

    monkeypatch.setattr(views, "search_devices", down)
    resp = reg.call("GET", "/api/v1/devices", token)
    body = problem(resp, 503, "service-unavailable")
    assert resp.headers["Retry-After"] == str(body["retryAfter"])
    # The OAuth endpoints keep RFC 6749's temporarily_unavailable.
    store = app.extensions["authserver"].store

    def store_down(*_a, **_k):
        raise StoreUnavailable("test: the store is down")

    monkeypatch.setattr(store, "get_many", store_down)
    monkeypatch.setattr(store, "hit_many", store_down)
    oauth = reg.http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers=t.service.auth_header()
    )
    assert oauth.status_code == 503 and oauth.get_json()["error"] == "temporarily_unavailable"


def test_the_link_urls_throttle_is_a_too_many_requests_problem(reg):
    t = reg.tenant()
    device = reg.create_device(t, status="READY_TO_LINK")
    url = f"/api/v1/devices/{device['linkCode']}/link"
    body = {"appId": t.pos.client_id, "staffCode": "1234", "password": "wrong password"}
    answers = [reg.http.post(url, json=body) for _ in range(8)]
    wrong, throttled = answers[0], answers[-1]
    assert problem(wrong, 400, "bad-request")["error"] == "invalid_grant"
    got = problem(throttled, 429, "too-many-requests")
    assert got["error"] == "invalid_grant"
    assert got["retryAfter"] == int(throttled.headers["Retry-After"]) > 0


def test_the_link_url_refuses_both_names_of_the_staff_code(reg):
    t = reg.tenant()
    device = reg.create_device(t, status="READY_TO_LINK")
    resp = reg.http.post(
        f"/api/v1/devices/{device['linkCode']}/link",
        json={
            "appId": t.pos.client_id,
            "staffCode": "1234",
            "userCode": "1234",
            "password": "correct horse",
        },  # fmt: skip
    )
    assert "not both" in problem(resp, 400, "validation-error")["detail"]


def test_system_information_is_bounded_alike_at_the_token_endpoint(reg):
    t = reg.tenant()
    device = reg.create_device(t, status="READY_TO_LINK")
    too_long = reg.link(t, device["linkCode"], system_information="x" * 2001)
    assert too_long.status_code == 400
    assert too_long.get_json()["error_description"] == "system_information is too long."
    assert reg.link(t, device["linkCode"], system_information="x" * 2000).status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/locations", "/api/v1/audit-events"])
@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("limit=5&limit=6", "more than once"),
        ("cursor=" + "a" * 201, "too long"),
        ("cursor=a%07b", "control characters"),
    ],  # fmt: skip
)
def test_every_list_reads_its_query_strictly(reg, world, path, query, says):
    t = reg.tenant()
    token = admin_token(reg, t) if path.endswith("audit-events") else reg.service_token(t)
    resp = reg.call("GET", f"{path}?{query}", token)
    assert says in problem(resp, 400, "validation-error")["detail"]


def test_an_unknown_audit_event_type_is_refused(reg):
    t = reg.tenant()
    resp = reg.call("GET", "/api/v1/audit-events?type=nope", admin_token(reg, t))
    assert "type must be one of" in problem(resp, 400, "validation-error")["detail"]


@pytest.mark.parametrize("with_locations", [False, True])
def test_a_taken_external_id_is_a_conflict_whatever_else_changes(reg, with_locations):
    """Found by Schemathesis: a PATCH that also set locationIds flushed the taken externalId on
    the way and answered 500."""
    t = reg.tenant()
    token = reg.service_token(t)
    reg.create_device(t, token, externalId="till-1")
    other = reg.create_device(t, token, externalId="till-2")
    body = {"externalId": "till-1", "status": "BLOCKED", "tillId": "0"}
    if with_locations:
        body["locationIds"] = []
    resp = reg.call("PATCH", f"/api/v1/devices/{other['id']}", token, json=body)
    problem(resp, 409, "conflict")
    shown = reg.call("GET", f"/api/v1/devices/{other['id']}", token).get_json()["data"]
    assert (shown["externalId"], shown["status"]) == ("till-2", "ACTIVE")  # nothing changed
