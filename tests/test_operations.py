"""Operations: health, readiness, metrics, JSON request logs without secrets, audit events."""

from __future__ import annotations

import json
import logging
import re

import pytest

from authserver.config import load_settings
from tests.conftest import cc_token
from tests.device_helpers import DEVICE_GRANT, approve, poll, start
from tests.dpop_client import DPoPKey


def test_healthz_and_readyz(http):
    assert http.get("/healthz").get_json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json() == {
        "status": "ready",
        "checks": {"database": "ok", "store": "ok", "signing_key": "ok"},
    }


def test_readyz_reports_an_unreachable_store(http, app):
    from authserver.ephemeral import RedisStore

    state = app.extensions["authserver"]
    original, state.store = state.store, RedisStore("redis://127.0.0.1:1/0")
    try:
        resp = http.get("/readyz")
        assert resp.status_code == 503 and resp.headers["Retry-After"]
        assert resp.get_json()["checks"]["store"] == "unreachable"
    finally:
        state.store = original


def test_metrics_are_not_public(http):
    assert http.get("/metrics").status_code == 404


@pytest.mark.parametrize("overrides", [{"metrics_token": "m3trics"}])
def test_metrics_with_the_token(http, world):
    creds = world.client()
    cc_token(http, creds)
    assert http.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 404
    resp = http.get("/metrics", headers={"Authorization": "Bearer m3trics"})
    assert resp.status_code == 200
    text = resp.get_data(as_text=True)
    assert 'authserver_tokens_issued_total{grant="client_credentials"}' in text
    assert "authserver_http_requests_total" in text
    assert "authserver_http_request_duration_seconds_bucket" in text


def test_request_ids_are_echoed_and_generated(http):
    assert (
        http.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"]
        == "abc-123"
    )
    generated = http.get("/healthz", headers={"X-Request-ID": "bad id"}).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{16}", generated)


def test_metrics_token_setting(tmp_path):
    s = load_settings(
        {"AUTHSERVER_INSTANCE_PATH": str(tmp_path), "AUTHSERVER_METRICS_TOKEN": "scrape-me-7x"}
    )
    assert s.metrics_token == "scrape-me-7x"
    assert "scrape-me-7x" not in repr(s)


def test_logs_never_carry_a_secret(http, world, app, caplog, settings, clock):
    """Run every flow, then scan each log line for any token, code, secret or password used."""
    caplog.set_level(logging.DEBUG)
    secrets: list[str] = []
    tenant = world.tenant()
    password = "pa55-word-for-logs"
    world.user(
        tenant, login="admin", password=password, user_code="777777", roles=("TENANT.ADMIN",)
    )
    creds = world.client(tenant)
    secrets += [creds.client_secret, password, "777777"]

    key = DPoPKey()
    token = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={
            **creds.auth_header(),
            "DPoP": key.proof("POST", settings.issuer + "/oauth/token", iat=clock()),
        },
    ).get_json()["access_token"]
    secrets.append(token)
    http.post("/oauth/introspect", data={"token": token}, headers=creds.auth_header())
    bad = dict(creds.auth_header())
    http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_secret": "leak-me-not"},
        headers=bad,
    )
    secrets.append("leak-me-not")

    kiosk = world.client(
        tenant,
        grant_types=(DEVICE_GRANT, "refresh_token"),
        auth_method="none",
        scope="devices:read",
    )
    body = start(http, kiosk.client_id).get_json()
    secrets += [body["device_code"], body["user_code"], body["user_code"].replace("-", "")]
    http.get(body["verification_uri_complete"].split("8000", 1)[1])  # user code in the query
    csrf = re.search(r'name="csrf" value="([^"]+)"', http.get("/device").get_data(as_text=True))
    http.post(
        "/device", data={"csrf": csrf.group(1), "action": "code", "user_code": body["user_code"]}
    )
    http.post(
        "/device",
        data={"csrf": csrf.group(1), "action": "login", "login": "admin", "password": password},
    )
    approve(app, body["user_code"], "admin")
    tokens = poll(http, kiosk.client_id, body["device_code"]).get_json()
    secrets += [tokens["access_token"], tokens["refresh_token"]]
    refreshed = http.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": kiosk.client_id,
        },
    ).get_json()
    secrets += [refreshed["access_token"], refreshed["refresh_token"]]
    http.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",  # reuse: audit + revoke
            "refresh_token": tokens["refresh_token"],
            "client_id": kiosk.client_id,
        },
    )
    http.post("/oauth/revoke", data={"token": token}, headers=creds.auth_header())

    pos = world.client(
        tenant,
        grant_types=("urn:authserver:params:oauth:grant-type:link-code",),
        auth_method="none",
        scope="devices:read",
    )
    admin = cc_token(http, creds).get_json()["access_token"]
    secrets.append(admin)
    device = http.post(
        "/api/v1/devices",
        json={"name": "t", "status": "READY_TO_LINK"},
        headers={"Authorization": f"Bearer {admin}"},
    ).get_json()["data"]
    secrets.append(device["linkCode"])
    linked = http.post(
        f"/api/v1/devices/{device['linkCode']}/link",
        json={"appId": pos.client_id, "userCode": "777777", "password": password},
    ).get_json()
    secrets += [linked["token"]]

    lines = [r.getMessage() for r in caplog.records if r.name.startswith("authserver")]
    access = [json.loads(m) for m in lines if m.startswith("{") and '"authserver.access"' in m]
    assert len(access) >= 15
    assert {"request_id", "client_id", "tenant", "grant", "outcome", "status"} <= set(access[0])
    assert any(a["grant"] == DEVICE_GRANT for a in access)
    assert any(a["outcome"] == "invalid_grant" for a in access)
    assert any(a["client_id"] == creds.client_id and a["tenant"] == tenant for a in access)
    everything = "\n".join(lines)
    for secret in secrets:
        assert secret and secret not in everything, "a secret reached the logs"


def test_audit_events_for_tenant_admins(http, world, app):
    tenant = world.tenant()
    world.user(tenant, login="boss", password="correct horse", roles=("TENANT.ADMIN",))
    signin = world.client(
        tenant, grant_types=(DEVICE_GRANT,), auth_method="none", scope="devices:read devices:write"
    )
    kiosk = world.client(
        tenant, grant_types=(DEVICE_GRANT,), auth_method="none", scope="devices:read"
    )
    from authserver.models import Client, db

    with app.app_context():
        db.session.get(Client, signin.client_id).device_subject = "user"
        db.session.commit()
    body = start(http, signin.client_id).get_json()
    approve(app, body["user_code"], "boss")
    admin = poll(http, signin.client_id, body["device_code"]).get_json()["access_token"]
    auth = {"Authorization": f"Bearer {admin}"}

    enrol = start(http, kiosk.client_id).get_json()
    device_id = approve(app, enrol["user_code"], "boss")["device_id"]
    http.patch(f"/api/v1/devices/{device_id}", json={"status": "BLOCKED"}, headers=auth)
    http.delete(f"/api/v1/devices/{device_id}", headers=auth)

    events = http.get("/api/v1/audit-events", headers=auth)
    assert events.status_code == 200, events.get_json()
    types = [e["type"] for e in events.get_json()["data"]]
    for expected in ("client.created", "device.approved", "device.blocked", "device.deleted"):
        assert expected in types
    by_device = http.get(f"/api/v1/audit-events?deviceId={device_id}", headers=auth).get_json()
    assert {e["type"] for e in by_device["data"]} == {
        "device.approved",
        "device.blocked",
        "device.deleted",
    }
    only = http.get("/api/v1/audit-events?type=device.blocked", headers=auth).get_json()
    assert [e["type"] for e in only["data"]] == ["device.blocked"]
    page = http.get("/api/v1/audit-events?limit=2", headers=auth).get_json()
    assert len(page["data"]) == 2 and page["hasMore"]
    rest = http.get(
        f"/api/v1/audit-events?limit=50&cursor={page['nextCursor']}", headers=auth
    ).get_json()
    assert not {e["id"] for e in page["data"]} & {e["id"] for e in rest["data"]}
    # Service tokens and other tenants see nothing.
    service = cc_token(http, world.client(tenant)).get_json()["access_token"]
    assert (
        http.get("/api/v1/audit-events", headers={"Authorization": f"Bearer {service}"}).status_code
        == 403
    )
