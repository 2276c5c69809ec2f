"""The verification page (RFC 8628 §3.3, §5): forms, CSRF, headers, sign-in, limits, decisions."""

from __future__ import annotations

import re

import pytest

from authserver.config import ConfigError, load_settings
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


def login(http, login_, password="correct horse"):
    return http.post(
        "/device",
        data={"csrf": csrf(http), "action": "login", "login": login_, "password": password},
    )


def decide(http, action, **fields):
    return http.post("/device", data={"csrf": csrf(http), "action": action, **fields})


def test_security_headers_and_cookie_flags(http):
    resp = http.get("/device")
    assert resp.status_code == 200
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert "script-src" not in resp.headers["Content-Security-Policy"]  # default-src 'none'
    assert resp.headers["Cache-Control"] == "no-store"
    assert "<script" not in resp.get_data(as_text=True)
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
    for text in ("test client", "Lobby kiosk", "devices:read", "UTC", "Main street", "Till"):
        assert text in review
    done = decide(http, "approve", location_id="loc_main", till_id="T1")
    assert done.status_code == 200 and "Device approved" in done.get_data(as_text=True)
    tokens = poll(http, client.client_id, body["device_code"])
    assert tokens.status_code == 200, tokens.get_json()


def test_verification_uri_complete_asks_to_compare_and_looks_nothing_up(http, world, app):
    _, client = kiosk_world(world)
    body = start(http, client.client_id).get_json()
    path = body["verification_uri_complete"].split("127.0.0.1:8000", 1)[1]
    page = http.get(path).get_data(as_text=True)
    assert body["user_code"] in page and "codes match" in page
    # Showing the page consumed nothing: the global budget is intact.
    store = app.extensions["authserver"].store
    assert store.claim_once("ucglobal:0", ttl=1) is True


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


def test_wrong_codes_are_limited_per_address(http, world, settings):
    _, client = kiosk_world(world)
    for _ in range(settings.user_code_failures_per_ip):
        assert enter(http, "BBBB-BBBB", ip="198.51.100.7").status_code == 400
    locked = enter(http, start(http, client.client_id).get_json()["user_code"], ip="198.51.100.7")
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert "Too many wrong codes" in locked.get_data(as_text=True)


def test_wrong_codes_are_limited_globally(http, world, settings, clock):
    _, client = kiosk_world(world)
    for i in range(settings.user_code_failures_global):
        assert enter(http, "BBBB-BBBB", ip=f"203.0.113.{i}").status_code == 400
    good = start(http, client.client_id).get_json()["user_code"]
    locked = enter(http, good, ip="203.0.113.200")  # a fresh address: the global budget is spent
    assert locked.status_code == 429
    clock.advance(settings.device_code_ttl)  # the slots free up after a code's lifetime
    fresh = start(http, client.client_id).get_json()["user_code"]
    assert enter(http, fresh, ip="203.0.113.201").status_code == 303


def test_a_correct_code_gives_its_slot_back(http, world, settings):
    _, client = kiosk_world(world)
    for i in range(settings.user_code_failures_global * 2):
        code = start(http, client.client_id).get_json()["user_code"]
        assert enter(http, code, ip=f"192.0.2.{i}").status_code == 303


def test_guessing_bound_from_the_configured_limits(settings):
    """RFC 8628 §5.1: with the configured limits the chance of guessing a given live code within
    its lifetime stays below 2^-32: G wrong entries per code lifetime, 20^8 possible codes."""
    g = settings.user_code_failures_global
    assert settings.user_code_guess_probability == g / 20**8
    assert g / 20**8 < 2**-32
    assert (g + 1) / 20**8 >= 2**-32 or g < 5  # the default is the largest budget that fits


def test_a_configuration_breaking_the_bound_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="2\\^-32"):
        load_settings(
            {"AUTHSERVER_INSTANCE_PATH": str(tmp_path), "AUTHSERVER_USER_CODE_FAILURES_GLOBAL": "6"}
        )


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
    assert decide(http, "approve", location_id=foreign).status_code == 409
