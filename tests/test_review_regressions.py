"""Regressions for findings of the security review: each test fails on the code before its fix."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from authserver.models import Device, RefreshFamily, db
from tests.device_helpers import approve, kiosk_world, poll, start
from tests.dpop_client import DPoPKey, b64, forge


def b64json(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


# -- 1. a family revoked while a refresh is in flight yields no live token -----------------------


def test_refresh_racing_a_family_revocation_issues_nothing_live(http, world, app, monkeypatch):
    tenant, client = kiosk_world(world)
    body = start(http, client.client_id).get_json()
    approve(app, body["user_code"], "admin")
    tokens = poll(http, client.client_id, body["device_code"]).get_json()

    import grants.refresh_token as rt

    real = rt.grant_is_live

    def revoke_meanwhile(**kw):
        # The revocation lands right after the refresh request was validated.
        ok = real(**kw)
        from authserver.tokens import revoke_family

        fam_id = db.session.scalar(db.select(RefreshFamily.id))
        revoke_family(fam_id, "revoked")
        db.session.commit()
        return ok

    monkeypatch.setattr(rt, "grant_is_live", revoke_meanwhile)
    resp = http.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": client.client_id,
        },
    )
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"


def test_access_token_of_a_revoked_family_is_inactive_everywhere(http, world, app):
    tenant, client = kiosk_world(world)
    body = start(http, client.client_id).get_json()
    approve(app, body["user_code"], "admin")
    tokens = poll(http, client.client_id, body["device_code"]).get_json()
    with app.app_context():  # only the family row: as if a rotation slipped past a revocation
        db.session.execute(db.update(RefreshFamily).values(revoked_at=1))
        db.session.commit()
    rs = world.client(tenant)
    intro = http.post(
        "/oauth/introspect", data={"token": tokens["access_token"]}, headers=rs.auth_header()
    ).get_json()
    assert intro == {"active": False}


# -- 2. introspection honours the device's status ------------------------------------------------


def test_introspection_of_a_blocked_devices_token_is_inactive(http, world, app):
    tenant, client = kiosk_world(world)
    body = start(http, client.client_id).get_json()
    device_id = approve(app, body["user_code"], "admin")["device_id"]
    tokens = poll(http, client.client_id, body["device_code"]).get_json()
    with app.app_context():  # status only, tokens untouched: the race the review described
        db.session.get(Device, device_id).status = "BLOCKED"
        db.session.commit()
    rs = world.client(tenant)
    for token in (tokens["access_token"], tokens["refresh_token"]):
        intro = http.post(
            "/oauth/introspect", data={"token": token}, headers=rs.auth_header()
        ).get_json()
        assert intro == {"active": False}


def test_a_device_blocked_between_approval_and_redemption_gets_no_token(http, world, app):
    _, client = kiosk_world(world)
    body = start(http, client.client_id).get_json()
    device_id = approve(app, body["user_code"], "admin")["device_id"]
    with app.app_context():
        db.session.get(Device, device_id).status = "BLOCKED"
        db.session.commit()
    assert poll(http, client.client_id, body["device_code"]).get_json()["error"] == "invalid_grant"


# -- 3. a blocked kiosk cannot unblock itself by enrolling again -------------------------------


def test_blocked_kiosk_cannot_reenrol_with_the_same_key(http, world, app, settings, clock):
    tenant, client = kiosk_world(world)
    key = DPoPKey()
    url = settings.issuer + "/oauth/device_authorization"
    body = start(http, client.client_id, proof=key.proof("POST", url, iat=clock())).get_json()
    device_id = approve(app, body["user_code"], "admin")["device_id"]
    with app.app_context():
        db.session.get(Device, device_id).status = "BLOCKED"
        db.session.commit()
    again = start(http, client.client_id, proof=key.proof("POST", url, iat=clock())).get_json()
    result = approve(app, again["user_code"], "admin")
    assert result.get("exit_code") and "blocked" in result["error"]
    with app.app_context():
        assert db.session.get(Device, device_id).status == "BLOCKED"


# -- 4. codes in paths never reach the logs, also on error paths --------------------------------


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


# -- 5. inputs that used to produce a 500 -------------------------------------------------------


def dpop_at_token(http, creds, proof):
    return http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={**creds.auth_header(), "DPoP": proof},
    )


def test_deeply_nested_dpop_header_is_a_400(http, world):
    creds = world.client()
    proof = b64json("[" * 1500) + "." + b64json("{}") + ".c2ln"
    resp = dpop_at_token(http, creds, proof)
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_dpop_proof"


def test_nan_iat_is_refused(http, world, settings):
    creds = world.client()
    key = DPoPKey()
    proof = key.proof("POST", settings.issuer + "/oauth/token", claims={"iat": float("nan")})
    resp = dpop_at_token(http, creds, proof)
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_dpop_proof"


def test_non_ascii_ath_is_refused_not_a_crash(app, http, world, settings):
    from grants.dpop import InvalidDPoPProof, verify_proof

    key = DPoPKey()
    proof = key.proof("GET", "https://x/api", claims={"ath": "é"})

    class Store:
        def claim_once(self, k, ttl):
            return True

    import time

    with pytest.raises(InvalidDPoPProof):
        verify_proof(
            [proof],
            method="GET",
            url="https://x/api",
            now=time.time(),
            max_age=60,
            max_future=10,
            store=Store(),
            access_token="tok",
        )


def test_non_ascii_csrf_is_a_400(http):
    http.get("/device")
    assert http.post("/device", data={"csrf": "é", "action": "code"}).status_code == 400


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/devices?limit=%C2%B2",
        "/api/v1/devices?q=a%00b",
        "/api/v1/devices/dev%00x",
        "/api/v1/locations?limit=%C2%B2",
    ],
)
def test_odd_query_values_are_400_or_404(http, world, path):
    from tests.conftest import cc_token

    token = cc_token(http, world.client()).get_json()["access_token"]
    resp = http.get(path, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code in (400, 404)


@pytest.mark.parametrize(
    "raw",
    ['{"name": "\\ud800"}', '{"name": "a\\u0000b"}', '{"name": ' + "[" * 2000 + "]" * 2000 + "}"],
)
def test_odd_json_bodies_are_400(http, world, raw):
    from tests.conftest import cc_token

    token = cc_token(http, world.client()).get_json()["access_token"]
    for path in ("/api/v1/devices", "/api/v1/locations"):
        resp = http.post(
            path,
            data=raw,
            content_type="application/json",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert resp.status_code == 400, (path, resp.get_data(as_text=True))


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


def test_basic_credentials_with_nul_are_invalid_client(http):
    raw = base64.b64encode(b"%00:x").decode()
    resp = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {raw}"},
    )
    assert resp.status_code == 401


def test_forged_proof_helper_is_still_refused(http, world):
    creds = world.client()
    resp = dpop_at_token(http, creds, forge({"typ": "dpop+jwt", "alg": "ES256"}, {}, b"x"))
    assert resp.status_code == 400
    assert b64(b"x")
