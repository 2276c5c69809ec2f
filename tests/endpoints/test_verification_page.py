"""The verification page (RFC 8628 §3.3, §5): forms, CSRF, headers, sign-in, limits, decisions."""

from __future__ import annotations

import re

import pytest

from authserver.models import Location, db
from authserver.security import new_id, now
from tests.device_helpers import kiosk_world, poll, start

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf(http) -> str:
    return CSRF.search(http.get("/device").get_data(as_text=True)).group(1)


def enter(http, code, ip="192.0.2.1"):
    return http.post(
        "/device",
        data={"csrf": csrf(http), "action": "code", "user_code": code},
        environ_overrides={"REMOTE_ADDR": ip},
    )


def login(http, login_, password="correct horse", ip="192.0.2.1", organisation=None):
    data = {"csrf": csrf(http), "action": "login", "login": login_, "password": password}
    if organisation is not None:
        data["organisation"] = organisation
    return http.post("/device", data=data, environ_overrides={"REMOTE_ADDR": ip})


def decide(http, action, **fields):
    return http.post("/device", data={"csrf": csrf(http), "action": action, **fields})


def test_security_headers_and_cookie_flags(http):
    resp = http.get("/device")
    assert resp.status_code == 200
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    csp = [d.strip() for d in resp.headers["Content-Security-Policy"].split(";")]
    # One script of our own (local times), never inline code or eval.
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in [d for d in csp if d.startswith("script-src")][0]
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Referrer-Policy"] == "same-origin"  # the URL may carry a code
    html = resp.get_data(as_text=True)
    assert html.count("<script") == 1 and '<script src="/device/local-time.js" defer>' in html
    js = http.get("/device/local-time.js")
    assert js.status_code == 200 and js.content_type.startswith("text/javascript")
    assert '<label for="user_code">' in resp.get_data(as_text=True)
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # loopback http issuer


@pytest.mark.parametrize("overrides", [{"issuer": "https://auth.example.com"}])
def test_cookie_is_secure_off_loopback(http):
    assert "Secure" in http.get("/device").headers["Set-Cookie"]


def test_post_without_csrf_is_refused(http, world):
    _, client = kiosk_world(world)
    body = start(http, client.client_id).get_json()
    http.get("/device")
    resp = http.post("/device", data={"action": "code", "user_code": body["user_code"]})
    assert resp.status_code == 400
    resp = http.post(
        "/device", data={"csrf": "forged", "action": "code", "user_code": body["user_code"]}
    )
    assert resp.status_code == 400


def test_complete_flow_in_the_browser(http, world, app, clock):
    tenant, client = kiosk_world(world)
    with app.app_context():
        db.session.add(
            Location(
                id="loc_main",
                tenant_id=tenant,
                name="Main street",
                kind="store",
                created_at=now(),
                updated_at=now(),
            )
        )
        db.session.commit()
    body = start(http, client.client_id, device_name="Lobby kiosk").get_json()
    assert enter(http, body["user_code"]).status_code == 303
    page = http.get("/device").get_data(as_text=True)
    assert "Sign in" in page
    assert login(http, "admin").status_code == 303
    review = http.get("/device").get_data(as_text=True)
    for text in (
        "test client",
        "Lobby kiosk",
        "See this organisation&#39;s devices and locations",  # devices:read, in words
        "UTC",  # without scripts; the page's script shows the viewer's local time
        "Main street",
        "Till",
        "Connecting a device to <strong>",  # whose page it is
    ):
        assert text in review, text
    done = decide(http, "approve", location_id="loc_main", till_id="T1")
    assert done.status_code == 200 and "Device approved" in done.get_data(as_text=True)
    tokens = poll(http, client.client_id, body["device_code"])
    assert tokens.status_code == 200, tokens.get_json()


@pytest.mark.parametrize("overrides", [{"user_code_failures_global": 1}])
def test_verification_uri_complete_asks_to_compare_and_looks_nothing_up(http, world, app):
    _, client = kiosk_world(world)
    body = start(http, client.client_id).get_json()
    path = body["verification_uri_complete"].split("127.0.0.1:8000", 1)[1]
    for _ in range(3):
        page = http.get(path).get_data(as_text=True)
        assert body["user_code"] in page and "codes match" in page
    # Showing the page consumed nothing: a budget of one wrong code is still whole.
    assert enter(http, "BBBBB-BBBBB").status_code == 400
    assert enter(http, body["user_code"]).status_code == 429


def test_deny_in_the_browser(http, world):
    _, client = kiosk_world(world)
    body = start(http, client.client_id).get_json()
    enter(http, body["user_code"])
    login(http, "admin")
    assert "denied" in decide(http, "deny").get_data(as_text=True)
    assert poll(http, client.client_id, body["device_code"]).get_json()["error"] == "access_denied"


def test_wrong_password_and_other_tenants_user(http, world):
    _, client = kiosk_world(world)
    other_tenant = world.tenant()
    world.user(other_tenant, login="mallory", password="correct horse")
    body = start(http, client.client_id).get_json()
    enter(http, body["user_code"])
    assert login(http, "admin", "wrong password").status_code == 401
    # A user of another tenant cannot sign in for this code: the login is looked up in the
    # code's tenant only.
    assert login(http, "mallory").status_code == 401


def test_a_code_claimed_by_another_user_cannot_be_approved(app, world):
    tenant, client = kiosk_world(world)
    world.user(tenant, login="bob", password="correct horse", roles=("TENANT.ADMIN",))
    alice, bob = app.test_client(), app.test_client()
    body = start(alice, client.client_id).get_json()
    enter(alice, body["user_code"], ip="192.0.2.10")
    login(alice, "admin")
    enter(bob, body["user_code"], ip="192.0.2.11")
    resp = login(bob, "bob")
    assert resp.status_code == 409
    assert "Another person" in resp.get_data(as_text=True)
    assert "Device approved" in decide(alice, "approve").get_data(as_text=True)


def test_location_of_another_tenant_is_refused(http, world, app):
    tenant, client = kiosk_world(world)
    other = world.tenant()
    with app.app_context():
        db.session.add(
            Location(
                id=new_id("loc"),
                tenant_id=other,
                name="Theirs",
                kind="store",
                created_at=now(),
                updated_at=now(),
            )
        )
        db.session.commit()
        foreign = db.session.query(Location).filter_by(tenant_id=other).one().id
    body = start(http, client.client_id).get_json()
    enter(http, body["user_code"])
    login(http, "admin")
    refused = decide(http, "approve", location_id=foreign)
    # The same 400 as the API gives: back to the form, with the reason.
    assert refused.status_code == 400 and "No such location" in refused.get_data(as_text=True)


# -- moved from the security review's regression file ------------------------------------


def test_non_ascii_csrf_is_a_400(http):
    http.get("/device")
    assert http.post("/device", data={"csrf": "é", "action": "code"}).status_code == 400


def test_the_id_token_says_when_the_person_signed_in_on_the_page(http, world, app, clock):
    """OIDC Core §2 auth_time: the sign-in on /device, not the later decision or redemption."""
    from joserfc import jwt
    from joserfc.jwk import KeySet

    _, client = kiosk_world(world, device_subject="user", scope="openid devices:read")
    body = start(http, client.client_id, scope="openid devices:read").get_json()
    enter(http, body["user_code"])
    login(http, "admin")
    signed_in = int(clock())
    clock.advance(30)
    assert "Device approved" in decide(http, "approve").get_data(as_text=True)
    clock.advance(7)
    tokens = poll(http, client.client_id, body["device_code"]).get_json()
    claims = jwt.decode(
        tokens["id_token"], KeySet.import_key_set(http.get("/oauth/jwks").get_json())
    ).claims
    assert claims["auth_time"] == signed_in
    assert claims["iat"] - claims["auth_time"] == 37


def test_a_blocked_kiosk_enrolling_again_is_refused_on_the_page_and_nothing_is_approved(
    http, world, app, clock
):
    from authserver.models import Device
    from tests.device_helpers import approve
    from tests.dpop_client import DPoPKey

    _, client = kiosk_world(world)
    key = DPoPKey()
    url = app.extensions["authserver"].settings.issuer + "/oauth/device_authorization"
    first = start(http, client.client_id, proof=key.proof("POST", url, iat=clock())).get_json()
    device_id = approve(app, first["user_code"], "admin")["device_id"]
    with app.app_context():
        db.session.get(Device, device_id).status = "BLOCKED"
        db.session.commit()
    again = start(http, client.client_id, proof=key.proof("POST", url, iat=clock())).get_json()
    enter(http, again["user_code"])
    login(http, "admin")
    refused = decide(http, "approve")
    assert refused.status_code == 409 and "blocked" in refused.get_data(as_text=True)
    token_url = app.extensions["authserver"].settings.issuer + "/oauth/token"
    still = poll(
        http,
        client.client_id,
        again["device_code"],
        proof=key.proof("POST", token_url, iat=clock()),
    )
    assert still.get_json()["error"] == "authorization_pending"
    with app.app_context():
        assert db.session.get(Device, device_id).status == "BLOCKED"


def _add_module(app, tenant, module_id, module_type="KIOSK"):
    from authserver.models import Module

    with app.app_context():
        db.session.add(Module(tenant_id=tenant, id=module_id, type=module_type, production=False,
                              config={}, created_at=now(), updated_at=now()))  # fmt: skip
        db.session.commit()


def test_the_approver_sees_and_picks_the_module_a_kiosk_runs_as(http, world, app):
    import base64
    import json

    tenant, client = kiosk_world(world)
    _add_module(app, tenant, "kiosk-1")
    _add_module(app, tenant, "kds-1", "KDS")
    other, _ = kiosk_world(world)
    _add_module(app, other, "theirs")
    body = start(http, client.client_id, module="kiosk-1").get_json()
    enter(http, body["user_code"])
    login(http, "admin")
    review = http.get("/device").get_data(as_text=True)
    assert '<option value="kiosk-1" selected>kiosk-1 (KIOSK)</option>' in review
    assert "kds-1 (KDS)" in review and "theirs" not in review
    assert '<option value="">' not in review.split('id="module_id"')[1].split("</select>")[0]
    # Another tenant's module, posted by hand, is refused and nothing is approved.
    refused = decide(http, "approve", module_id="theirs")
    assert refused.status_code == 400 and "No such module" in refused.get_data(as_text=True)
    assert poll(http, client.client_id, body["device_code"]).get_json()["error"] == (
        "authorization_pending"
    )
    done = decide(http, "approve", module_id="kds-1")
    assert "Device approved" in done.get_data(as_text=True)
    token = poll(http, client.client_id, body["device_code"]).get_json()["access_token"]
    payload = token.split(".")[1]
    assert (
        json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["module"]
        == "kds-1"
    )
