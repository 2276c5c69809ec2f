"""DESIGN's invariants across worker processes: ``authserver serve`` with 4 worker processes on the configured
backends (CI: PostgreSQL + Redis; locally also the embedded SQLite store), concurrent requests."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import make_env, start_server, stop_server
from tests.dpop_client import DPoPKey

pytestmark = pytest.mark.processes
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
LINK_GRANT = "urn:authserver:params:oauth:grant-type:link-code"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(
        make_env(tmp_path_factory.mktemp("xproc"), AUTHSERVER_METRICS_TOKEN="scrape"), workers=4
    )
    try:
        tenant = srv.cli("tenants", "create", "Cross")
        srv.cli(
            "users",
            "create",
            "--tenant",
            tenant["id"],
            "--login",
            "admin",
            "--password",
            "correct horse",
            "--user-code",
            "4321",
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
        srv.pos = srv.cli(
            "clients",
            "create",
            "--tenant",
            tenant["id"],
            "--name",
            "POS",
            "--public",
            "--grant-type",
            LINK_GRANT,
            "--scope",
            "devices:read",
        )
        srv.service = srv.cli(
            "clients",
            "create",
            "--tenant",
            tenant["id"],
            "--name",
            "svc",
            "--grant-type",
            "client_credentials",
            "--scope",
            "devices:read devices:write",
        )
        yield srv
    finally:
        stop_server(srv)


def at_once(n, fn):
    barrier = threading.Barrier(n)

    def go(i):
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(go, range(n)))


def begin(server):
    return requests.post(
        f"{server.url}/oauth/device_authorization",
        data={"client_id": server.kiosk["client_id"]},
        timeout=10,
    ).json()


def redeem(server, code):
    return requests.post(
        f"{server.url}/oauth/token",
        timeout=20,
        data={
            "grant_type": DEVICE_GRANT,
            "device_code": code,
            "client_id": server.kiosk["client_id"],
        },
    )


def service_token(server):
    return requests.post(
        f"{server.url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(server.service["client_id"], server.service["client_secret"]),
        timeout=10,
    ).json()["access_token"]


def test_invariant_1_a_device_code_is_redeemed_once_across_processes(server):
    start = begin(server)
    server.cli("device", "approve", start["user_code"], "--user", "admin")
    responses = at_once(24, lambda _: redeem(server, start["device_code"]))
    assert sum(r.status_code == 200 for r in responses) == 1


def test_invariant_1_a_refresh_token_is_rotated_once_across_processes(server):
    start = begin(server)
    server.cli("device", "approve", start["user_code"], "--user", "admin")
    refresh = redeem(server, start["device_code"]).json()["refresh_token"]
    responses = at_once(
        16,
        lambda _: requests.post(
            f"{server.url}/oauth/token",
            timeout=20,
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh,
                "client_id": server.kiosk["client_id"],
            },
        ),
    )
    assert sum(r.status_code == 200 for r in responses) <= 1
    assert {r.json().get("error") for r in responses if r.status_code != 200} <= {"invalid_grant"}


def test_invariant_2_a_dpop_proof_is_accepted_once_across_processes(server):
    proof = DPoPKey().proof("POST", f"{server.url}/oauth/token")
    auth = (server.service["client_id"], server.service["client_secret"])
    responses = at_once(
        16,
        lambda _: requests.post(
            f"{server.url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=auth,
            headers={"DPoP": proof},
            timeout=20,
        ),
    )
    assert sum(r.status_code == 200 for r in responses) == 1
    assert {r.json()["error"] for r in responses if r.status_code != 200} == {"invalid_dpop_proof"}


def test_slow_down_is_consistent_across_workers(server):
    code = begin(server)["device_code"]
    responses = at_once(12, lambda _: redeem(server, code))
    errors = sorted(r.json()["error"] for r in responses)
    assert errors.count("authorization_pending") == 1, errors
    assert errors.count("slow_down") == 11, errors


def test_invariant_3_a_blocked_device_is_refused_by_every_worker(server):
    admin = service_token(server)
    created = requests.post(
        f"{server.url}/api/v1/devices",
        json={"name": "Till X", "status": "READY_TO_LINK"},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=10,
    ).json()["data"]
    key = DPoPKey()
    tokens = requests.post(
        f"{server.url}/oauth/token",
        timeout=10,
        data={
            "grant_type": LINK_GRANT,
            "client_id": server.pos["client_id"],
            "link_code": created["linkCode"],
            "user_code": "4321",
            "password": "correct horse",
        },
        headers={"DPoP": key.proof("POST", f"{server.url}/oauth/token")},
    ).json()
    token = tokens["access_token"]
    me = f"{server.url}/api/v1/devices/me"

    def call(_):
        return requests.get(
            me,
            timeout=20,
            headers={
                "Authorization": f"DPoP {token}",
                "DPoP": key.proof("GET", me, access_token=token),
            },
        )

    assert {r.status_code for r in at_once(12, call)} == {200}
    requests.patch(
        f"{server.url}/api/v1/devices/{created['id']}",
        json={"status": "BLOCKED"},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=10,
    )
    assert {r.status_code for r in at_once(24, call)} == {401}


def issued(server) -> float:
    text = requests.get(
        f"{server.url}/metrics", headers={"Authorization": "Bearer scrape"}, timeout=10
    ).text
    for line in text.splitlines():
        if line.startswith('authserver_tokens_issued_total{grant="client_credentials"}'):
            return float(line.split()[-1])
    return 0.0


def test_metrics_aggregate_across_workers(server):
    before = issued(server)
    auth = (server.service["client_id"], server.service["client_secret"])
    results = at_once(
        30,
        lambda _: requests.post(
            f"{server.url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=auth,
            timeout=20,
        ),
    )
    assert all(r.status_code == 200 for r in results)
    assert issued(server) - before == 30.0  # summed over every worker that served them
    assert requests.get(f"{server.url}/metrics", timeout=10).status_code == 404


def test_link_guess_limit_holds_under_concurrency(server):
    admin = service_token(server)
    created = requests.post(
        f"{server.url}/api/v1/devices",
        json={"name": "Till G", "status": "READY_TO_LINK"},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=10,
    ).json()["data"]

    def guess(i):
        return requests.post(
            f"{server.url}/oauth/token",
            timeout=20,
            data={
                "grant_type": LINK_GRANT,
                "client_id": server.pos["client_id"],
                "link_code": created["linkCode"],
                "user_code": "4321",
                "password": f"guess-{i}",
            },
        )

    responses = at_once(12, guess)
    evaluated = [r for r in responses if r.status_code == 400]
    refused = [r for r in responses if r.status_code == 429]
    assert len(evaluated) <= 5  # AUTHSERVER_LINK_FAILURES_PER_CODE, whatever the concurrency
    assert len(evaluated) + len(refused) == 12
