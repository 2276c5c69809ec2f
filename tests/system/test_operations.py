"""Operations: health, readiness, metrics, JSON request logs without secrets, audit events."""

from __future__ import annotations

import json
import logging
import re

import pytest

from authserver.config import load_settings
from tests.conftest import DATABASE_URL, cc_token
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
        tenant, login="admin", password=password, staff_code="777777", roles=("TENANT.ADMIN",)
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


def test_a_500_is_logged_with_its_exception_type_and_traceback(app):
    """Review F13: the error log of a server error names the exception and where it came from;
    the client sees a plain 500 without either."""
    import io

    from authserver.observability import JsonFormatter

    def boom():
        raise LookupError("the failure under test")

    app.add_url_rule("/test/boom", "boom", boom)
    app.testing = False  # as in production: the error is handled and logged, not raised
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logging.getLogger("authserver").addHandler(handler)
    try:
        resp = app.test_client().get("/test/boom")
    finally:
        logging.getLogger("authserver").removeHandler(handler)
    assert resp.status_code == 500
    assert "LookupError" not in resp.get_data(as_text=True)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    errors = [line for line in lines if line["level"] == "error"]
    assert errors, lines
    assert errors[0]["exc_type"] == "LookupError"
    assert "the failure under test" in errors[0]["traceback"]
    assert "in boom" in errors[0]["traceback"]


WRONG_CODE = "BBBBB-BBBBB"


def _enter_code(http, **headers):
    import re as _re

    token = _re.search(r'name="csrf" value="([^"]+)"', http.get("/device").get_data(as_text=True))
    return http.post(
        "/device",
        data={"csrf": token.group(1), "action": "code", "user_code": WRONG_CODE},
        headers=headers,
        environ_overrides={"REMOTE_ADDR": "10.0.0.2"},  # the load balancer's address
    )


@pytest.mark.parametrize("overrides", [{"user_code_failures_per_ip": 2}])
def test_x_forwarded_for_is_ignored_without_trusted_proxies(http):
    """Anyone can send X-Forwarded-For: by default it must not give a guesser fresh addresses."""
    statuses = [
        _enter_code(http, **{"X-Forwarded-For": f"198.51.100.{i}"}).status_code for i in range(3)
    ]
    assert statuses == [400, 400, 429]


@pytest.mark.parametrize("overrides", [{"user_code_failures_per_ip": 2, "trusted_proxies": 1}])
def test_behind_a_trusted_proxy_limits_key_on_the_forwarded_address(http):
    """AUTHSERVER_TRUSTED_PROXIES=1: the address the proxy saw, not the proxy's own, is limited;
    a value the client added in front of the proxy's is not trusted."""
    alice = {"X-Forwarded-For": "198.51.100.1"}
    bob = {"X-Forwarded-For": "198.51.100.2"}
    assert [_enter_code(http, **alice).status_code for _ in range(3)] == [400, 400, 429]
    assert _enter_code(http, **bob).status_code == 400
    spoofed = {"X-Forwarded-For": "203.0.113.9, 198.51.100.1"}  # the proxy appended alice's
    assert _enter_code(http, **spoofed).status_code == 429


@pytest.mark.skipif(
    bool(DATABASE_URL), reason="the embedded SQLite file only exists without DATABASE_URL"
)
def test_the_embedded_database_files_are_private(http, world, settings):
    import os
    import stat

    cc_token(http, world.client())  # some writes, so the WAL exists
    db_file = settings.instance_path / "authserver.db"
    files = [
        db_file,
        db_file.with_name("authserver.db-wal"),
        db_file.with_name("authserver.db-shm"),
    ]
    for path in files:
        assert path.exists(), path
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    assert stat.S_IMODE(os.stat(settings.instance_path).st_mode) == 0o700


# -- moved from the security review's regression file ------------------------------------


def test_error_logs_do_not_name_codes_in_paths(http, app, caplog):
    from authserver.ephemeral import RedisStore

    caplog.set_level(logging.INFO)
    state = app.extensions["authserver"]
    original, state.store = state.store, RedisStore("redis://127.0.0.1:1/0")
    try:
        resp = http.post(
            "/api/v1/devices/QHZQ-QXQF-ZQDX/link",
            json={"appId": "cli_x", "userCode": "1", "password": "p"},
        )
        http.post("/api/v1/device-authorizations/BCDF-GHJK", json={"decision": "deny"})
    finally:
        state.store = original
    assert resp.status_code in (400, 503)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "QHZQ" not in text and "BCDF" not in text
