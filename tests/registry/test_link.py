"""The link-code grant and POST /api/v1/devices/{linkCode}/link (seed 000)."""

from __future__ import annotations

import json

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.dpop_client import DPoPKey
from tests.registry.conftest import LINK_GRANT


def test_link_with_dpop_binds_the_device(reg):
    t = reg.tenant()
    device = reg.create_device(t, status="READY_TO_LINK", appCode="CLIENT")
    key = DPoPKey()
    resp = reg.link(t, device["linkCode"], key, system_information="Linux pos 6.1")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["token_type"] == "DPoP" and body["refresh_token"]
    claims = jwt.decode(
        body["access_token"], KeySet.import_key_set(reg.http.get("/oauth/jwks").get_json())
    ).claims
    assert claims["sub"] == device["id"] and claims["cnf"] == {"jkt": key.jkt}
    data = reg.call("GET", f"/api/v1/devices/{device['id']}", reg.service_token(t)).get_json()[
        "data"
    ]
    assert data["status"] == "ACTIVE" and data["identifier"]
    assert data["dpopJkt"] == key.jkt and data["systemInformation"] == "Linux pos 6.1"
    assert data["lastTenantUserId"].startswith("usr_")


def test_link_with_username_instead_of_user_code(reg):
    t = reg.tenant()
    device = reg.create_device(t, status="READY_TO_LINK")
    resp = reg.link(t, device["linkCode"], staff_code="", username="admin")
    assert resp.status_code == 200, resp.get_json()


def test_wrong_code_user_or_password_give_one_generic_error(reg):
    t = reg.tenant()
    device = reg.create_device(t, status="READY_TO_LINK")
    answers = [
        reg.link(t, "BBBB-CCCC-DDDD").get_json(),
        reg.link(t, device["linkCode"], staff_code="9999").get_json(),
        reg.link(t, device["linkCode"], password="wrong password").get_json(),
    ]
    assert answers[0] == answers[1] == answers[2]
    assert answers[0]["error"] == "invalid_grant"


def test_a_link_code_links_once(reg):
    t = reg.tenant()
    device = reg.create_device(t, status="READY_TO_LINK")
    assert reg.link(t, device["linkCode"]).status_code == 200
    assert reg.link(t, device["linkCode"]).get_json()["error"] == "invalid_grant"


def test_link_codes_expire(reg, clock):
    t = reg.tenant()
    device = reg.create_device(t, status="READY_TO_LINK")
    clock.advance(reg.settings.link_code_ttl + 1)
    assert reg.link(t, device["linkCode"]).get_json()["error"] == "invalid_grant"


def test_guesses_are_limited_per_link_code(reg):
    t = reg.tenant()
    device = reg.create_device(t, status="READY_TO_LINK")
    for i in range(reg.settings.link_failures_per_code):
        # Other accounts, other networks: only the link code is shared.
        reg.link(
            t, device["linkCode"], staff_code=f"99{i}", password=f"guess {i}", ip=f"198.51.{i}.1"
        )
    locked = reg.link(t, device["linkCode"])  # even the right password is refused for now
    assert locked.status_code == 429
    assert locked.headers["Retry-After"]


def test_guesses_are_limited_per_address(reg):
    t = reg.tenant()
    for i in range(reg.settings.link_failures_per_ip):
        # Other link codes, other accounts: only the address is shared.
        reg.link(t, f"BBBB-CCCC-DD{'BCDFGHJKLM'[i]}D", staff_code=f"99{i}")
    device = reg.create_device(t, status="READY_TO_LINK")
    assert reg.link(t, device["linkCode"]).status_code == 429
    # Another address is not held back by these guesses.
    assert reg.link(t, device["linkCode"], ip="198.51.100.7").status_code == 200


def test_a_client_of_another_tenant_cannot_link(reg):
    t, other = reg.tenant(), reg.tenant()
    device = reg.create_device(t, status="READY_TO_LINK")
    resp = reg.http.post(
        "/oauth/token",
        data={
            "grant_type": LINK_GRANT,
            "link_code": device["linkCode"],
            "user_code": "1234",
            "password": "correct horse",
            "client_id": other.pos.client_id,
        },
    )
    assert resp.get_json()["error"] == "invalid_grant"


def test_client_must_be_registered_for_the_link_grant(reg):
    t = reg.tenant()
    device = reg.create_device(t, status="READY_TO_LINK")
    resp = reg.http.post(
        "/oauth/token",
        data={
            "grant_type": LINK_GRANT,
            "link_code": device["linkCode"],
            "user_code": "1234",
            "password": "correct horse",
        },
        headers=t.service.auth_header(),
    )
    assert resp.get_json()["error"] == "unauthorized_client"


def test_dpop_bound_client_must_link_with_a_proof(reg, app):
    from authserver.models import Client, db

    t = reg.tenant()
    with app.app_context():
        db.session.get(Client, t.pos.client_id).dpop_bound = True
        db.session.commit()
    device = reg.create_device(t, status="READY_TO_LINK")
    assert reg.link(t, device["linkCode"]).get_json()["error"] == "invalid_dpop_proof"
    assert reg.link(t, device["linkCode"], DPoPKey()).status_code == 200


def test_linked_devices_refresh_needs_its_key(reg):
    t = reg.tenant()
    device, tokens, key = reg.linked_device(t)
    url = reg.settings.issuer + "/oauth/token"
    form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": t.pos.client_id,
    }
    assert reg.http.post("/oauth/token", data=form).get_json()["error"] == "invalid_dpop_proof"
    other = reg.http.post("/oauth/token", data=form, headers={"DPoP": DPoPKey().proof("POST", url)})
    assert other.get_json()["error"] == "invalid_dpop_proof"
    ok = reg.http.post("/oauth/token", data=form, headers={"DPoP": key.proof("POST", url)})
    assert ok.status_code == 200 and ok.get_json()["token_type"] == "DPoP"


def test_rest_link_endpoint_speaks_seed_000(reg, clock):
    t = reg.tenant()
    device = reg.create_device(t, status="READY_TO_LINK")
    key = DPoPKey()
    path = f"/api/v1/devices/{device['linkCode']}/link"
    resp = reg.http.post(
        path,
        json={
            "appId": t.pos.client_id,
            "userCode": "1234",
            "password": "correct horse",
            "systemInformation": "Linux till 6.1",
        },
        headers={"DPoP": key.proof("POST", reg.settings.issuer + path)},
    )
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert set(body) >= {"token", "refreshToken", "expires"}
    assert isinstance(body["expires"], int) and body["expires"] > clock()
    me = reg.call("GET", "/api/v1/devices/me", body["token"], key=key)
    assert me.status_code == 200 and me.get_json()["data"]["id"] == device["id"]


def test_rest_link_endpoint_errors_are_problems(reg):
    t = reg.tenant()
    bad = reg.http.post(
        "/api/v1/devices/BBBB-CCCC-DDDD/link",
        json={"appId": t.pos.client_id, "userCode": "1234", "password": "correct horse"},
    )
    assert bad.status_code == 400
    assert bad.content_type == "application/problem+json"
    assert bad.get_json()["error"] == "invalid_grant"
    secretive = reg.http.post(
        "/api/v1/devices/BBBB-CCCC-DDDD/link",
        json={"appId": t.service.client_id, "userCode": "1234", "password": "correct horse"},
    )
    assert secretive.get_json()["error"] == "invalid_client"
    assert reg.http.post("/api/v1/devices/X/link", json=[]).status_code == 400


def test_password_guessing_on_one_account_is_limited_from_any_address(reg):
    """Review F4 for the link-code grant: guesses at one staff member's password, spread over
    link codes and networks, are limited per account; the right password then waits too."""
    t = reg.tenant()
    limit = reg.settings.sign_in_failures_per_account
    for i in range(limit):
        device = reg.create_device(t, status="READY_TO_LINK")
        resp = reg.link(t, device["linkCode"], password=f"guess {i}", ip=f"198.51.{i}.1")
        assert resp.get_json()["error"] == "invalid_grant"
    device = reg.create_device(t, status="READY_TO_LINK")
    locked = reg.link(t, device["linkCode"], ip="198.51.200.1")
    assert locked.status_code == 429
    assert 0 < int(locked.headers["Retry-After"]) <= reg.settings.sign_in_account_window


def test_a_terminal_linked_through_a_confidential_client_stays_bound_to_its_key(reg, world):
    """A confidential client's refresh family is not DPoP-bound (RFC 9449 §5); a terminal it
    linked with a key is, whatever its client: the device-key check alone refuses the rest."""
    t = reg.tenant()
    confidential = world.client(
        t.id, grant_types=(LINK_GRANT, "refresh_token"), scope="devices:read devices:write"
    )
    device = reg.create_device(t, status="READY_TO_LINK")
    key = DPoPKey()
    url = reg.settings.issuer + "/oauth/token"
    linked = reg.http.post(
        "/oauth/token",
        data={
            "grant_type": LINK_GRANT,
            "link_code": device["linkCode"],
            "user_code": "1234",
            "password": "correct horse",
        },
        headers={**confidential.auth_header(), "DPoP": key.proof("POST", url)},
    )
    assert linked.status_code == 200, linked.get_json()
    refresh_token = linked.get_json()["refresh_token"]

    def refresh(proof=None):
        headers = {**confidential.auth_header(), **({"DPoP": proof} if proof else {})}
        return reg.http.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            headers=headers,
        )

    for bad in (None, DPoPKey().proof("POST", url)):
        resp = refresh(bad)
        assert resp.get_json()["error"] == "invalid_dpop_proof", resp.get_json()
        assert "device's key" in resp.get_json()["error_description"]
    ok = refresh(key.proof("POST", url))
    assert ok.status_code == 200 and ok.get_json()["token_type"] == "DPoP"


def test_seed_000_calls_the_staff_code_user_code(reg):
    """``user_code`` is seed 000's name for the staff code: accepted in its place, not beside it."""
    t = reg.tenant()
    device = reg.create_device(t, status="READY_TO_LINK")
    both = reg.link(t, device["linkCode"], user_code="1234")  # staff_code is sent too
    assert both.get_json()["error"] == "invalid_request"
    seed_name = reg.link(t, device["linkCode"], staff_code="", user_code="1234")
    assert seed_name.status_code == 200, seed_name.get_json()


# -- moved from the security review's regression file ------------------------------------


def test_surrogate_password_on_the_link_endpoint_is_a_4xx(http, world):
    tenant = world.tenant()
    pos = world.client(
        tenant,
        grant_types=("urn:authserver:params:oauth:grant-type:link-code",),
        auth_method="none",
    )
    resp = http.post(
        "/api/v1/devices/BBBB-CCCC-DDDD/link",
        data=json.dumps(
            {"appId": pos.client_id, "userCode": "1234", "password": "\ud800x"}
        ).replace("\\\\", "\\"),
        content_type="application/json",
    )
    assert 400 <= resp.status_code < 500


# -- the link grant's own checks, each alone ----------------------------------------------


def test_successful_links_cost_no_attempts(reg):
    """A staff member linking one terminal after another is never throttled: each success
    gives its charges back, so more links than the per-account limit all succeed."""
    t = reg.tenant()
    for _ in range(reg.settings.sign_in_failures_per_account + 1):
        device = reg.create_device(t, status="READY_TO_LINK")
        resp = reg.link(t, device["linkCode"])
        assert resp.status_code == 200, resp.get_json()


def test_a_deactivated_staff_member_cannot_link(reg, app):
    from authserver.models import User, db

    t = reg.tenant()
    device = reg.create_device(t, status="READY_TO_LINK")
    with app.app_context():
        db.session.query(User).filter_by(tenant_id=t.id).one().active = False
        db.session.commit()
    resp = reg.link(t, device["linkCode"])
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"
    data = reg.call("GET", f"/api/v1/devices/{device['id']}", reg.service_token(t)).get_json()
    assert data["data"]["status"] == "READY_TO_LINK"


@pytest.mark.parametrize(
    "form",
    [
        {"link_code": ""},
        {"password": ""},
        {"staff_code": ""},  # and no user_code or username either
    ],
)
def test_link_code_password_and_a_staff_member_are_required(reg, form):
    t = reg.tenant()
    device = reg.create_device(t, status="READY_TO_LINK")
    resp = reg.link(t, form.pop("link_code", device["linkCode"]), **form)
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request"
    assert "required" in resp.get_json()["error_description"]  # refused up front, by name
    assert reg.link(t, device["linkCode"]).status_code == 200  # nothing was consumed


def test_a_link_without_a_client_address_is_served(reg):
    """A server that gives no client address (a Unix socket) still links; the per-address
    limit then counts such requests together."""
    t = reg.tenant()
    device = reg.create_device(t, status="READY_TO_LINK")
    resp = reg.http.post(
        "/oauth/token",
        data={
            "grant_type": LINK_GRANT,
            "link_code": device["linkCode"],
            "staff_code": "1234",
            "password": "correct horse",
            "client_id": t.pos.client_id,
        },
        environ_overrides={"REMOTE_ADDR": None},
    )
    assert resp.status_code == 200, resp.get_json()


def test_the_terminal_that_loses_a_concurrent_link_gets_no_tokens(reg, app, monkeypatch):
    """Two terminals send the same link code at once: both find the device ready to link, one
    conditional UPDATE moves it out of READY_TO_LINK, the other gets invalid_grant and no
    tokens, and the device stays bound to the winner's key."""
    import grants.link_code

    t = reg.tenant()
    device = reg.create_device(t, status="READY_TO_LINK")
    winner_key, loser_key = DPoPKey(), DPoPKey()
    real = grants.link_code.find_linkable
    winner = []

    def find_then_lose_the_race(tenant_id, link_code):
        found = real(tenant_id, link_code)  # still READY_TO_LINK for this request
        if not winner:
            winner.append(None)
            with app.app_context():  # the other terminal, in its own session, links first
                winner[0] = reg.link(t, device["linkCode"], winner_key)
        return found

    monkeypatch.setattr(grants.link_code, "find_linkable", find_then_lose_the_race)
    loser = reg.link(t, device["linkCode"], loser_key)
    monkeypatch.undo()
    assert winner[0].status_code == 200, winner[0].get_json()
    assert loser.status_code == 400 and loser.get_json()["error"] == "invalid_grant"
    assert "access_token" not in loser.get_json()
    data = reg.call("GET", f"/api/v1/devices/{device['id']}", reg.service_token(t)).get_json()
    assert (data["data"]["status"], data["data"]["dpopJkt"]) == ("ACTIVE", winner_key.jkt)
