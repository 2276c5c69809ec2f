"""The verification page under attack (security review F2-F6, F9, F11, F12): every test is a
sequence of HTTP requests an attacker (and a legitimate user beside them) would send."""

from __future__ import annotations

import pytest

from authserver.models import DeviceAuthorization, Location, db
from authserver.security import now
from tests.device_helpers import approve, cli, kiosk_world, poll, start
from tests.endpoints.test_verification_page import csrf, decide, enter, login

WRONG = "BBBBB-BBBBB"


def post(http, ip="192.0.2.1", headers=None, **data):
    return http.post(
        "/device", data=data, headers=headers or {}, environ_overrides={"REMOTE_ADDR": ip}
    )


def code_of(http, client_id, **form):
    return start(http, client_id, **form).get_json()


def add_location(app, tenant, loc_id, name="Main street"):
    with app.app_context():
        db.session.add(
            Location(
                id=loc_id,
                tenant_id=tenant,
                name=name,
                kind="store",
                created_at=now(),
                updated_at=now(),
            )
        )
        db.session.commit()


# -- F2: one actor cannot close /device for everyone ----------------------------------------------


def test_user_codes_are_ten_characters_in_two_groups(http, world):
    _, client = kiosk_world(world)
    code = code_of(http, client.client_id)["user_code"]
    assert len(code) == 11 and code[5] == "-"
    assert code.replace("-", "").isalpha() and code.isupper()


def test_invariant_8_an_attacker_guessing_from_several_addresses_does_not_lock_out_others(
    app, world, settings
):
    """F2: on main, 3 wrong codes from one address and 2 from another closed the page for every
    user of every tenant for 10 minutes."""
    _, client = kiosk_world(world)
    attacker = app.test_client()
    for net in range(3):  # three networks, each address up to its own limit
        for _ in range(settings.user_code_failures_per_ip):
            assert enter(attacker, WRONG, ip=f"198.51.{net}.7").status_code == 400
        assert enter(attacker, WRONG, ip=f"198.51.{net}.7").status_code == 429
    victim = app.test_client()
    code = code_of(victim, client.client_id)["user_code"]
    assert enter(victim, code, ip="192.0.2.55").status_code == 303


def test_the_address_limit_answers_the_true_retry_after(http, world, settings, clock):
    _, client = kiosk_world(world)
    assert enter(http, WRONG, ip="198.51.100.7").status_code == 400
    clock.advance(100)
    for _ in range(settings.user_code_failures_per_ip - 1):
        assert enter(http, WRONG, ip="198.51.100.7").status_code == 400
    locked = enter(http, code_of(http, client.client_id)["user_code"], ip="198.51.100.7")
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) == settings.user_code_ip_window - 100
    assert "sign in first" in locked.get_data(as_text=True)
    clock.advance(settings.user_code_ip_window - 100)
    fresh = code_of(http, client.client_id)["user_code"]
    assert enter(http, fresh, ip="198.51.100.7").status_code == 303


@pytest.mark.parametrize(
    "overrides", [{"user_code_failures_per_ip": 3, "user_code_failures_per_network": 5}]
)
def test_addresses_of_one_network_share_a_budget(app, world):
    _, client = kiosk_world(world)
    attacker = app.test_client()
    for i in range(5):  # five addresses of one /24, one wrong code each... then the /24 is full
        assert enter(attacker, WRONG, ip=f"203.0.113.{i + 1}").status_code == 400
    assert enter(attacker, WRONG, ip="203.0.113.99").status_code == 429
    other = app.test_client()  # another network is not affected
    code = code_of(other, client.client_id)["user_code"]
    assert enter(other, code, ip="198.51.100.1").status_code == 303


@pytest.mark.parametrize(
    "overrides", [{"user_code_failures_per_ip": 100, "user_code_failures_per_network": 3}]
)
def test_ipv6_addresses_of_one_64_share_a_budget(app, world):
    attacker = app.test_client()
    for i in range(3):
        assert enter(attacker, WRONG, ip=f"2001:db8:1:2::{i + 1}").status_code == 400
    assert enter(attacker, WRONG, ip="2001:db8:1:2:ffff::99").status_code == 429  # same /64
    assert enter(attacker, WRONG, ip="2001:db8:1:3::1").status_code == 400  # the next /64


@pytest.mark.parametrize("overrides", [{"user_code_failures_global": 4}])
def test_when_anonymous_entry_is_exhausted_staff_sign_in_first_and_still_connect(app, world):
    """Even an attacker with addresses in many networks only spends the anonymous budget: staff
    who sign in first enter codes against their own account and tenant."""
    tenant, client = kiosk_world(world)
    attacker = app.test_client()
    for net in range(5):
        enter(attacker, WRONG, ip=f"198.51.{net}.1")
    staff = app.test_client()
    body = code_of(staff, client.client_id)
    code = body["user_code"]
    throttled = enter(staff, code, ip="192.0.2.44")
    assert throttled.status_code == 429
    page = throttled.get_data(as_text=True)
    assert 'name="organisation"' in page and "sign in first" in page
    signed_in = login(staff, "admin", ip="192.0.2.44", organisation=tenant)
    assert signed_in.status_code == 303
    assert "Signed in as" in staff.get("/device").get_data(as_text=True)
    assert enter(staff, code, ip="192.0.2.44").status_code == 303
    assert "Allow this device?" in staff.get("/device").get_data(as_text=True)
    assert "Device approved" in decide(staff, "approve").get_data(as_text=True)
    assert poll(staff, client.client_id, body["device_code"]).status_code == 200


def test_sign_in_first_with_the_tenant_name(app, world):
    tenant, client = kiosk_world(world)
    with app.app_context():
        from authserver.models import Tenant

        name = db.session.get(Tenant, tenant).name
    http = app.test_client()
    assert login(http, "admin", organisation=name).status_code == 303
    body = code_of(http, client.client_id)
    assert enter(http, body["user_code"]).status_code == 303
    assert "Device approved" in decide(http, "approve").get_data(as_text=True)
    assert poll(http, client.client_id, body["device_code"]).status_code == 200


def test_sign_in_first_with_an_unknown_organisation_says_nothing_more(app, world):
    kiosk_world(world)
    resp = login(app.test_client(), "admin", organisation="no such org")
    assert resp.status_code == 401
    assert "organisation, login or password is wrong" in resp.get_data(as_text=True)


@pytest.mark.parametrize(
    "overrides", [{"user_code_failures_per_account": 3, "user_code_failures_per_tenant": 5}]
)
def test_signed_in_guesses_count_against_the_account_and_the_tenant(app, world):
    tenant, client = kiosk_world(world)
    world.user(tenant, login="bob", password="correct horse", roles=("TENANT.ADMIN",))
    world.user(tenant, login="carol", password="correct horse", roles=("TENANT.ADMIN",))
    alice, bob, carol = app.test_client(), app.test_client(), app.test_client()
    login(alice, "admin", organisation=tenant)
    login(bob, "bob", organisation=tenant)
    login(carol, "carol", organisation=tenant)
    for _ in range(3):
        assert enter(alice, WRONG).status_code == 400
    assert enter(alice, WRONG).status_code == 429  # the account is done
    assert enter(bob, WRONG).status_code == 400
    assert enter(bob, WRONG).status_code == 400  # 5 for the tenant
    code = code_of(carol, client.client_id)["user_code"]
    assert enter(carol, code).status_code == 429  # the tenant is done for this window
    # ... and nobody's anonymous entry paid for it.
    anonymous = app.test_client()
    assert enter(anonymous, code, ip="192.0.2.200").status_code == 303


def test_a_signed_in_user_only_matches_codes_of_their_tenant(app, world):
    tenant, _ = kiosk_world(world)
    _, foreign_client = kiosk_world(world)
    http = app.test_client()
    login(http, "admin", organisation=tenant)
    foreign = code_of(http, foreign_client.client_id)["user_code"]
    resp = enter(http, foreign)
    assert resp.status_code == 400 and "not valid" in resp.get_data(as_text=True)


def test_guessing_bound_from_the_configured_limits(settings):
    """RFC 8628 §5.1: during a code's life at most 2 (G + T) wrong codes are compared (two fixed
    windows of each budget overlap it); each hits with probability 1 / 20^10."""
    g, t = settings.user_code_failures_global, settings.user_code_failures_per_tenant
    assert settings.user_code_guess_probability == 2 * (g + t) / 20**10
    assert settings.user_code_guess_probability < 2**-32
    assert (g, t) == (1000, 100)


@pytest.mark.parametrize(
    "env",
    [
        {"AUTHSERVER_USER_CODE_FAILURES_GLOBAL": "1100"},
        {"AUTHSERVER_USER_CODE_FAILURES_PER_TENANT": "200"},
    ],
)
def test_a_configuration_breaking_the_bound_is_refused(tmp_path, env):
    from authserver.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="2\\^-32"):
        load_settings({"AUTHSERVER_INSTANCE_PATH": str(tmp_path), **env})


# -- F3: CSRF -------------------------------------------------------------------------------------


def test_a_post_without_a_session_is_refused_even_with_a_dash(app, world):
    """F3: on main ``csrf=-`` with no session cookie passed, so a third-party page could push an
    attacker's code into a visitor's session."""
    _, client = kiosk_world(world)
    code = code_of(app.test_client(), client.client_id)["user_code"]
    victim = app.test_client()  # never loaded the page: no session, no token
    for forged in ("-", ""):
        resp = post(victim, action="code", user_code=code, csrf=forged)
        assert resp.status_code == 400
    assert "Enter the code" in victim.get("/device").get_data(as_text=True)


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_a_form_sent_from_another_site_is_refused(http, world, headers):
    _, client = kiosk_world(world)
    code = code_of(http, client.client_id)["user_code"]
    resp = post(http, headers=headers, action="code", user_code=code, csrf=csrf(http))
    assert resp.status_code == 400
    assert "Enter the code" in http.get("/device").get_data(as_text=True)


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://127.0.0.1:8000"},
        {"Sec-Fetch-Site": "same-origin"},
        # What Chromium sends for our own form under a strict referrer policy.
        {"Origin": "null", "Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},  # typed into the address bar, a bookmark
    ],
)
def test_a_form_from_this_site_passes(http, world, headers):
    _, client = kiosk_world(world)
    code = code_of(http, client.client_id)["user_code"]
    resp = post(http, headers=headers, action="code", user_code=code, csrf=csrf(http))
    assert resp.status_code == 303


# -- F4, F5: password guessing --------------------------------------------------------------------


def test_password_guessing_is_limited_per_account_from_any_address(app, world, settings):
    """F4: on main 33 guesses from 3 addresses went through, then the right password worked."""
    tenant, client = kiosk_world(world)
    attacker = app.test_client()
    for i in range(settings.sign_in_failures_per_account):
        resp = login(attacker, "admin", "wrong", ip=f"198.51.{i}.9", organisation=tenant)
        assert resp.status_code == 401
    right = login(attacker, "admin", "correct horse", ip="198.51.99.9", organisation=tenant)
    assert right.status_code == 429
    assert int(right.headers["Retry-After"]) <= settings.sign_in_account_window


def test_the_hourly_account_limit_backs_off(app, world, settings, clock):
    tenant, _ = kiosk_world(world)
    attacker = app.test_client()
    tries = 0
    for _ in range(
        settings.sign_in_failures_per_account_hour // settings.sign_in_failures_per_account
    ):
        for _ in range(settings.sign_in_failures_per_account):
            assert (
                login(
                    attacker, "admin", "wrong", organisation=tenant, ip=f"10.{tries}.0.1"
                ).status_code
                == 401
            )
            tries += 1
        clock.advance(settings.sign_in_account_window)
    assert tries == settings.sign_in_failures_per_account_hour
    locked = login(attacker, "admin", "correct horse", organisation=tenant, ip="10.200.0.1")
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > settings.sign_in_account_window


def test_rotating_logins_does_not_escape_the_address_limit_nor_cost_argon2(
    app, world, settings, monkeypatch
):
    """F5: on main, a new login per attempt defeated the limit: 103 argon2 checks in 20 s."""
    import authserver.browser_session as page

    tenant, _ = kiosk_world(world)
    checks = []
    real = page.verify_password
    monkeypatch.setattr(page, "verify_password", lambda p, h: checks.append(1) or real(p, h))
    attacker = app.test_client()
    for i in range(settings.sign_in_failures_per_ip):
        assert (
            login(attacker, f"user{i}", "x", organisation=tenant, ip="198.51.100.3").status_code
            == 401
        )
    assert len(checks) == settings.sign_in_failures_per_ip
    for i in range(5):
        resp = login(attacker, f"other{i}", "x", organisation=tenant, ip="198.51.100.3")
        assert resp.status_code == 429
    assert len(checks) == settings.sign_in_failures_per_ip  # refused before any argon2 work


def test_a_right_password_gives_its_charge_back(app, world, settings):
    tenant, _ = kiosk_world(world)
    http = app.test_client()
    for _ in range(settings.sign_in_failures_per_ip * 2):
        assert login(http, "admin", organisation=tenant).status_code == 303


# -- F6: approval rights --------------------------------------------------------------------------


def test_a_user_without_a_device_role_cannot_approve_an_enrolment_on_the_page(app, world):
    """F6: on main a user with no role approved a kiosk and chose its location."""
    tenant, client = kiosk_world(world)
    world.user(tenant, login="clerk", password="correct horse", roles=())
    body = code_of(app.test_client(), client.client_id)
    clerk = app.test_client()
    enter(clerk, body["user_code"])
    resp = login(clerk, "clerk")
    assert resp.status_code == 403
    assert "not allowed to add devices" in resp.get_data(as_text=True)
    # Nothing was claimed: an administrator can still approve it.
    admin = app.test_client()
    enter(admin, body["user_code"], ip="192.0.2.77")
    assert login(admin, "admin").status_code == 303
    assert "Device approved" in decide(admin, "approve").get_data(as_text=True)


def test_a_user_without_a_device_role_cannot_approve_with_the_cli(app, http, world):
    tenant, client = kiosk_world(world)
    world.user(tenant, login="clerk", password="correct horse", roles=())
    body = code_of(http, client.client_id)
    result = approve(app, body["user_code"], "clerk")
    assert result["exit_code"] == 1 and "not allowed" in result["error"]
    assert poll(http, client.client_id, body["device_code"]).get_json()["error"] == (
        "authorization_pending"
    )
    assert cli(app, "device", "approve", body["user_code"], "--user", "admin")["decision"] == (
        "approved"
    )


def test_a_location_scoped_manager_enrols_only_at_their_location(app, world):
    tenant, client = kiosk_world(world)
    add_location(app, tenant, "loc_mine", "Mine")
    add_location(app, tenant, "loc_other", "Other")
    world.user(tenant, login="lm", password="correct horse", roles=("DEVICE.MANAGER@loc_mine",))
    body = code_of(app.test_client(), client.client_id)
    http = app.test_client()
    enter(http, body["user_code"])
    assert login(http, "lm").status_code == 303
    review = http.get("/device").get_data(as_text=True)
    assert "Mine" in review and "Other" not in review
    refused = decide(http, "approve", location_id="loc_other")
    assert refused.status_code == 403
    done = decide(http, "approve", location_id="loc_mine")
    assert "Device approved" in done.get_data(as_text=True)


def test_any_user_may_approve_their_own_sign_in(app, http, world):
    tenant, client = kiosk_world(world, device_subject="user", scope="openid devices:read")
    world.user(tenant, login="clerk", password="correct horse", roles=())
    body = code_of(http, client.client_id)
    enter(http, body["user_code"])
    assert login(http, "clerk").status_code == 303
    assert "Device approved" in decide(http, "approve").get_data(as_text=True)
    assert poll(http, client.client_id, body["device_code"]).status_code == 200


# -- F9: one validation for every channel, HTML errors on HTML pages ------------------------------


@pytest.mark.parametrize(
    "field,value",
    [
        ("name", "Till\x00 1"),
        ("name", "Kiosk\x1b[2J"),
        ("till_id", "T\x001"),
        ("name", "\u202egnp.exe"),
        ("till_id", "T\u200b1"),
    ],
)
def test_the_review_form_refuses_hidden_characters_with_an_html_page(
    app, http, world, field, value
):
    _, client = kiosk_world(world)
    body = code_of(http, client.client_id, device_name="Lobby")
    enter(http, body["user_code"])
    login(http, "admin")
    resp = decide(http, "approve", **{field: value})
    assert resp.status_code == 400
    assert resp.content_type.startswith("text/html")
    assert "Allow this device?" in resp.get_data(as_text=True)  # back to the form, with why
    with app.app_context():
        record = db.session.query(DeviceAuthorization).one()
        assert record.status == "pending" and record.device_name == "Lobby"
    assert "Device approved" in decide(http, "approve", name="Lobby 2").get_data(as_text=True)


# -- F11: signing out ends the session -------------------------------------------------------------


def test_a_replayed_cookie_after_sign_out_approves_nothing(app, world):
    _, client = kiosk_world(world)
    http = app.test_client()
    body = code_of(http, client.client_id)
    enter(http, body["user_code"])
    login(http, "admin")
    stolen = http.get_cookie("authserver_session").value
    token = csrf(http)
    assert post(http, action="logout", csrf=token).status_code == 303
    http.set_cookie("authserver_session", stolen)
    resp = post(http, action="approve", csrf=token)
    assert resp.status_code == 400 and "Nothing to approve" in resp.get_data(as_text=True)
    assert poll(http, client.client_id, body["device_code"]).get_json()["error"] == (
        "authorization_pending"
    )


# -- F12: phishing guidance on every step ---------------------------------------------------------


def test_every_step_shows_the_code_and_the_warning(app, world):
    _, client = kiosk_world(world)
    http = app.test_client()
    body = code_of(http, client.client_id, device_name="Lobby kiosk")
    enter(http, body["user_code"])
    sign_in = http.get("/device").get_data(as_text=True)
    login(http, "admin")
    review = http.get("/device").get_data(as_text=True)
    for page in (sign_in, review):
        assert body["user_code"] in page
        assert "Approve only if you started this on a device in front of you" in page
    assert "The device calls itself" in review and "not checked" in review


@pytest.mark.parametrize("name", ["\u202eKiosk", "Kiosk\u2066x", "Ki\u200bosk", "\ufeffKiosk"])
def test_format_characters_are_refused_in_the_device_name(http, world, name):
    _, client = kiosk_world(world)
    resp = start(http, client.client_id, device_name=name)
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request"


def test_joiners_stay_allowed_for_emoji_and_scripts(http, world):
    _, client = kiosk_world(world)
    assert (
        start(http, client.client_id, device_name="Chef \U0001f468\u200d\U0001f373").status_code
        == 200
    )
