"""The device flow and refresh rotation against real server processes (``authserver serve``).

On the embedded default one worker with threads; on PostgreSQL + Redis (CI) two workers, so the
single-use guarantees are shown across processes.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import DATABASE_URL, make_env, start_server, stop_server
from tests.device_helpers import kiosk_login

pytestmark = pytest.mark.processes
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
WORKERS = 2 if DATABASE_URL else 1


@pytest.fixture
def server(tmp_path):
    srv = start_server(
        make_env(tmp_path / "flow", AUTHSERVER_DEVICE_POLL_INTERVAL="1"), workers=WORKERS
    )
    try:
        tenant = srv.cli("tenants", "create", "Flow")
        srv.cli(
            "users",
            "create",
            "--tenant",
            tenant["id"],
            "--login",
            "admin",
            "--password",
            "correct horse",
            "--role",
            "TENANT.ADMIN",
        )
        srv.kiosk = srv.cli(
            "clients",
            "create",
            "--tenant",
            tenant["id"],
            "--name",
            "Kiosk",
            "--public",
            "--grant-type",
            DEVICE_GRANT,
            "--grant-type",
            "refresh_token",
            "--scope",
            "devices:read",
        )
        yield srv
    finally:
        stop_server(srv)


def begin(server):
    resp = requests.post(
        f"{server.url}/oauth/device_authorization",
        data={"client_id": server.kiosk["client_id"]},
        timeout=5,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def redeem(server, device_code):
    return requests.post(
        f"{server.url}/oauth/token",
        timeout=10,
        data={
            "grant_type": DEVICE_GRANT,
            "device_code": device_code,
            "client_id": server.kiosk["client_id"],
        },
    )


def test_a_code_is_redeemed_once_under_20_simultaneous_requests(server):
    start = begin(server)
    server.cli("device", "approve", start["user_code"], "--user", "admin")
    barrier = threading.Barrier(20)

    def go(_):
        barrier.wait()
        return redeem(server, start["device_code"])

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(go, range(20)))
    ok = [r for r in responses if r.status_code == 200]
    assert len(ok) == 1, [r.text for r in responses]
    assert {r.json()["error"] for r in responses if r.status_code != 200} == {"invalid_grant"}


def test_one_refresh_token_rotates_once_under_simultaneous_requests(server):
    start = begin(server)
    server.cli("device", "approve", start["user_code"], "--user", "admin")
    tokens = redeem(server, start["device_code"]).json()
    barrier = threading.Barrier(10)

    def go(_):
        barrier.wait()
        return requests.post(
            f"{server.url}/oauth/token",
            timeout=10,
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": server.kiosk["client_id"],
            },
        )

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(go, range(10)))
    assert sum(r.status_code == 200 for r in responses) <= 1
    assert all(r.json().get("error") in (None, "invalid_grant") for r in responses)


def test_kiosk_cli_runs_the_flow(server):
    status, body, shown = kiosk_login(
        server,
        "Terminal kiosk",
        lambda code: server.cli("device", "approve", code, "--user", "admin"),
    )
    assert "█" in shown or "▀" in shown  # the QR code was drawn
    assert status == 0, body
    assert body["token_type"] == "DPoP"
    assert "waiting for approval" in shown


def test_a_kiosk_keeps_its_key_and_tokens_reads_its_module_config_and_refreshes(server, tmp_path):
    import json
    import os
    import stat

    from authserver.kiosk import run_call, run_refresh

    tenant_id = server.kiosk["tenant_id"]
    service = server.cli("clients", "create", "--tenant", tenant_id, "--name", "Back office",
                         "--grant-type", "client_credentials", "--scope",
                         "modules:read modules:write")  # fmt: skip
    office = requests.post(f"{server.url}/oauth/token", data={"grant_type": "client_credentials"},
                           auth=(service["client_id"], service["client_secret"]),
                           timeout=10).json()["access_token"]  # fmt: skip
    auth = {"Authorization": f"Bearer {office}"}
    created = requests.post(
        f"{server.url}/api/v1/modules",
        headers=auth,
        timeout=10,
        json={"id": "kiosk-1", "type": "KIOSK", "config": {"menu": "am"}},
    )
    assert created.status_code == 201, created.text

    state = tmp_path / "kiosk.json"
    status, body, _ = kiosk_login(
        server, "Lobby kiosk",
        lambda code: server.cli("device", "approve", code, "--user", "admin"),
        module="kiosk-1", state_file=state,
    )  # fmt: skip
    assert status == 0, body
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600
    # What it prints says where the tokens are, not the tokens (the file is 0600, logs are not).
    assert body == {"state": str(state), "token_type": "DPoP", "expires_in": 900,
                    "scope": "devices:read", "refresh_token_kept": True}  # fmt: skip
    kept = json.loads(state.read_text())
    assert "PRIVATE KEY" in kept["dpop_private_key_pem"]
    first_refresh = kept["refresh_token"]

    code, config = run_call(state, "/api/v1/modules/me/config")
    assert (code, config) == (0, {"status": 200, "data": {"menu": "am"}})
    changed = requests.patch(f"{server.url}/api/v1/modules/kiosk-1", headers=auth, timeout=10,
                             json={"config": {"menu": "pm"}})  # fmt: skip
    assert changed.status_code == 200
    assert run_call(state, "/api/v1/modules/me/config")[1]["data"] == {"menu": "pm"}

    code, refreshed = run_refresh(state)
    assert code == 0 and refreshed["refresh_token_kept"] is True
    assert json.loads(state.read_text())["refresh_token"] != first_refresh
    assert run_call(state, "/api/v1/modules/me")[1]["data"]["id"] == "kiosk-1"
    # The rotated-out refresh token is dead: reusing it revokes the grant (RFC 9700 §4.14.2).
    reused = requests.post(f"{server.url}/oauth/token", timeout=10, data={
        "grant_type": "refresh_token", "refresh_token": first_refresh,
        "client_id": server.kiosk["client_id"]})  # fmt: skip
    assert reused.status_code == 400
    code, after = run_call(state, "/api/v1/modules/me")
    assert code == 1 and after["status"] == 401
