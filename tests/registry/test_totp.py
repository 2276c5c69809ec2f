"""The second factor (RFC 6238) over HTTP, with the test clock: configuring, proving, removing,
and every interactive sign-in asking for it (link grant, link URL, the /device page)."""

from __future__ import annotations

import base64
import json

import pyotp
import pytest

from tests.conftest import cc_token
from tests.device_helpers import DEVICE_GRANT, poll, start
from tests.endpoints.test_verification_page import csrf, enter, login

ME = "/api/v1/users/me"


@pytest.fixture
def t(reg):
    return reg.tenant()


def configure(reg, token, clock) -> str:
    """Turn TOTP on for the token's user; the secret."""
    resp = reg.call("POST", f"{ME}/totp/secret", token)
    assert resp.status_code == 201, resp.get_json()
    secret = resp.get_json()["data"]["secret"]
    code = pyotp.TOTP(secret).at(clock())
    done = reg.call("PUT", f"{ME}/totp", token, json={"code": code})
    assert done.status_code == 200 and done.get_json()["data"]["totpEnabled"] is True
    clock.advance(30)  # the code just used is spent: tests start on a fresh step
    return secret


def claims(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_a_secret_is_shown_once_and_on_only_after_a_code_proves_it(reg, t, clock, app):
    token = reg.user_token(t, "anna", ("STAFF",))
    assert reg.call("PUT", f"{ME}/totp", token, json={"code": "123456"}).status_code == 409
    resp = reg.call("POST", f"{ME}/totp/secret", token)
    assert resp.headers["Cache-Control"] == "no-store"
    data = resp.get_json()["data"]
    secret = data["secret"]
    assert len(secret) == 32 and data["expiresIn"] == 600
    assert data["otpauthUri"].startswith("otpauth://totp/") and f"secret={secret}" in data[
        "otpauthUri"
    ]  # fmt: skip
    assert "<svg" in data["qrCodeSvg"]
    assert 'd="M4,4' in data["qrCodeSvg"]  # the finder pattern after a 4-module quiet zone
    assert reg.call("GET", ME, token).get_json()["data"]["totpEnabled"] is False  # not yet
    wrong = reg.call("PUT", f"{ME}/totp", token, json={"code": "000000"})
    assert wrong.status_code == 400 and wrong.get_json()["field"] == "code"
    other = reg.call("PUT", f"{ME}/totp", token,
                     json={"code": pyotp.TOTP(secret).at(clock()), "secret": "A" * 32})  # fmt: skip
    assert other.status_code == 400 and other.get_json()["field"] == "secret"
    ok = reg.call("PUT", f"{ME}/totp", token, json={"code": pyotp.TOTP(secret).at(clock())})
    assert ok.status_code == 200 and ok.get_json()["data"]["totpEnabled"] is True
    # The pending secret is spent: configuring again needs a new one.
    clock.advance(30)
    again = reg.call("PUT", f"{ME}/totp", token, json={"code": pyotp.TOTP(secret).at(clock())})
    assert again.status_code == 409
    # At rest: encrypted, bound to this user (a copy in another user's row does not decrypt).
    with app.app_context():
        from authserver import totp
        from authserver.models import User, db
        from keys.encryption import KeyDecryptionError

        anna = db.session.scalar(db.select(User).where(User.login == "anna"))
        assert secret.encode() not in anna.totp_secret_enc
        admin = db.session.scalar(
            db.select(User).where(User.login == "admin", User.tenant_id == t.id)
        )
        admin.totp_secret_enc = anna.totp_secret_enc
        with pytest.raises(KeyDecryptionError):
            totp.check_code(admin, pyotp.TOTP(secret).at(clock()), clock())
        db.session.rollback()


def link(reg, t, staff_code, **extra):
    device = reg.create_device(t, status="READY_TO_LINK", appCode="CLIENT")
    return reg.link(t, device["linkCode"], staff_code=staff_code, **extra)


def staff_with_totp(reg, t, clock, login_="anna", code="4711") -> str:
    """A staff member (staff code ``code``, password "correct horse") with TOTP on; the secret."""
    people = cc_token(reg.http, reg.world.client(t.id, scope="users:write users:read"))
    made = reg.call("POST", "/api/v1/users", people.get_json()["access_token"],
                    json={"login": login_, "password": "correct horse", "staffCode": code,
                          "roles": [{"role": "STAFF"}]})  # fmt: skip
    assert made.status_code == 201, made.get_json()
    return configure(reg, reg.user_token(t, login_, create=False), clock)


def test_the_link_grant_asks_for_the_code_and_takes_each_code_once(reg, t, clock):
    secret = staff_with_totp(reg, t, clock)
    missing = link(reg, t, "4711")
    assert missing.status_code == 400 and missing.get_json()["error"] == "totp_required"
    wrong_password = link(reg, t, "4711", password="wrong horse")
    assert wrong_password.get_json()["error"] == "invalid_grant"  # no hint without the password
    assert link(reg, t, "4711", totp="000000").get_json()["error"] == "invalid_grant"
    code = pyotp.TOTP(secret).at(clock())
    ok = link(reg, t, "4711", totp=code)
    assert ok.status_code == 200, ok.get_json()
    again = link(reg, t, "4711", totp=code)  # RFC 6238 §5.2: never twice
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"
    # One step of drift either way is accepted; two are not (codes never used before).
    clock.advance(60)
    assert link(reg, t, "4711", totp=pyotp.TOTP(secret).at(clock() - 30)).status_code == 200
    assert link(reg, t, "4711", totp=pyotp.TOTP(secret).at(clock() + 30)).status_code == 200
    clock.advance(150)
    assert link(reg, t, "4711", totp=pyotp.TOTP(secret).at(clock() - 60)).status_code == 400
    assert link(reg, t, "4711", totp=pyotp.TOTP(secret).at(clock() + 60)).status_code == 400


def test_wrong_codes_are_limited_per_account(reg, t, clock):
    secret = staff_with_totp(reg, t, clock)
    statuses = [link(reg, t, "4711", totp=f"{i:06d}", ip=f"198.51.100.{i}").status_code
                for i in range(1, 8)]  # fmt: skip
    assert statuses == [400] * 5 + [429] * 2  # 5 wrong codes per account in 5 minutes
    # Even the right code waits while the account is throttled, until the window ends.
    assert link(reg, t, "4711", totp=pyotp.TOTP(secret).at(clock())).status_code == 429
    clock.advance(299)
    assert link(reg, t, "4711", totp=pyotp.TOTP(secret).at(clock())).status_code == 429
    clock.advance(1)
    assert link(reg, t, "4711", totp=pyotp.TOTP(secret).at(clock())).status_code == 200


def test_wrong_codes_are_limited_per_hour_across_windows(reg, t, clock):
    """Five wrong codes every five minutes would be 60 an hour: the hourly tier stops at 20.
    Through the API (configuring), where no password limit is charged beside the code's."""
    reg.world.user(t.id, login="hourly", roles=("STAFF",))
    start = clock()
    tokens = {}

    def fresh_secret():
        # A new sign-in now and then: access tokens last 15 minutes, the test an hour.
        tokens["now"] = reg.user_token(t, "hourly", create=False)
        resp = reg.call("POST", f"{ME}/totp/secret", tokens["now"])
        return resp.get_json()["data"]["secret"]

    def attempt(code):
        return reg.call("PUT", f"{ME}/totp", tokens["now"], json={"code": code}).status_code

    for window in range(4):
        secret = fresh_secret()
        right = pyotp.TOTP(secret).at(clock())
        wrongs = [c for c in (f"{window}{i:05d}" for i in range(9)) if c != right][:5]
        assert [attempt(c) for c in wrongs] == [400] * 5, window
        assert attempt(wrongs[0]) == 429  # the five-minute tier
        clock.advance(300)
    assert clock() - start < 3600
    secret = fresh_secret()
    assert attempt(pyotp.TOTP(secret).at(clock())) == 429  # the hourly tier, right code or not
    clock.advance(3600 - (clock() - start))
    secret = fresh_secret()
    assert attempt(pyotp.TOTP(secret).at(clock())) == 200


def test_the_link_url_asks_for_the_code_too(reg, t, clock):
    secret = staff_with_totp(reg, t, clock)
    body = {"appId": t.pos.client_id, "staffCode": "4711", "password": "correct horse"}
    device = reg.create_device(t, status="READY_TO_LINK", appCode="CLIENT")
    path = f"/api/v1/devices/{device['linkCode']}/link"
    missing = reg.http.post(path, json=body)
    assert missing.status_code == 400 and missing.get_json()["error"] == "totp_required"
    ok = reg.http.post(path, json={**body, "totp": pyotp.TOTP(secret).at(clock())})
    assert ok.status_code == 200, ok.get_json()


def test_the_device_page_asks_for_the_code_and_tokens_say_how_the_user_signed_in(
    reg, t, clock, http, app
):
    secret = staff_with_totp(reg, t, clock, login_="zofia")
    from authserver.models import Client, db

    signin = reg.world.client(t.id, grant_types=(DEVICE_GRANT,), auth_method="none",
                              scope="openid devices:read")  # fmt: skip
    with app.app_context():
        db.session.get(Client, signin.client_id).device_subject = "user"
        db.session.commit()
    flow = start(http, signin.client_id, scope="openid devices:read").get_json()
    enter(http, flow["user_code"])
    step = login(http, "zofia")
    assert step.status_code == 200 and 'name="action" value="totp"' in step.get_data(as_text=True)
    # Not signed in yet: the review page is not reachable with the password alone.
    assert 'value="approve"' not in http.get("/device").get_data(as_text=True)
    wrong = http.post("/device", data={"csrf": csrf(http), "action": "totp", "code": "000000"})
    assert wrong.status_code == 401
    right = http.post("/device", data={"csrf": csrf(http), "action": "totp",
                                       "code": pyotp.TOTP(secret).at(clock())})  # fmt: skip
    assert right.status_code == 303, right.get_data(as_text=True)
    approved = http.post("/device", data={"csrf": csrf(http), "action": "approve"})
    assert approved.status_code == 200, approved.get_data(as_text=True)
    tokens = poll(http, signin.client_id, flow["device_code"]).get_json()
    assert claims(tokens["access_token"])["amr"] == ["pwd", "otp"]
    assert claims(tokens["id_token"])["amr"] == ["pwd", "otp"]
    # The half-done sign-in cannot be finished twice with the cookie it left.
    replay = http.post("/device", data={"csrf": csrf(http), "action": "totp",
                                        "code": pyotp.TOTP(secret).at(clock() + 30)})  # fmt: skip
    assert replay.status_code == 400


def test_without_a_second_factor_the_token_says_password(reg, t, http, app):
    reg.world.user(t.id, login="plain", password="correct horse")
    from authserver.models import Client, db

    signin = reg.world.client(t.id, grant_types=(DEVICE_GRANT,), auth_method="none",
                              scope="openid devices:read")  # fmt: skip
    with app.app_context():
        db.session.get(Client, signin.client_id).device_subject = "user"
        db.session.commit()
    flow = start(http, signin.client_id, scope="openid devices:read").get_json()
    enter(http, flow["user_code"])
    assert login(http, "plain").status_code == 303
    http.post("/device", data={"csrf": csrf(http), "action": "approve"})
    tokens = poll(http, signin.client_id, flow["device_code"]).get_json()
    assert claims(tokens["access_token"])["amr"] == ["pwd"]
    assert claims(tokens["id_token"])["amr"] == ["pwd"]


def test_removing_the_second_factor(reg, t, clock):
    token = reg.user_token(t, "own", ("STAFF",))
    secret = configure(reg, token, clock)
    wrong = reg.call("DELETE", f"{ME}/totp", token, json={"code": "000000"})
    assert wrong.status_code == 400
    off = reg.call("DELETE", f"{ME}/totp", token, json={"code": pyotp.TOTP(secret).at(clock())})
    assert off.status_code == 200 and off.get_json()["data"]["totpEnabled"] is False
    assert reg.call("DELETE", f"{ME}/totp", token, json={"code": "123456"}).status_code == 409
    # An administrator turns off a lost phone's factor; a user manager not an admin's.
    victim = reg.user_token(t, "lost", ("STAFF",))
    configure(reg, victim, clock)
    boss = reg.user_token(t, "boss", ("TENANT.ADMIN",))
    configure(reg, boss, clock)
    lost_id = reg.call("GET", ME, victim).get_json()["data"]["id"]
    boss_id = reg.call("GET", ME, boss).get_json()["data"]["id"]
    manager = reg.user_token(t, "um", ("USER.MANAGER",))
    assert reg.call("DELETE", f"/api/v1/users/{boss_id}/totp", manager).status_code == 403
    cleared = reg.call("DELETE", f"/api/v1/users/{lost_id}/totp", manager)
    assert cleared.status_code == 200 and cleared.get_json()["data"]["totpEnabled"] is False
    assert reg.call("GET", ME, boss).get_json()["data"]["totpEnabled"] is True  # bystander


def test_a_code_in_other_digits_is_wrong_not_a_server_error(reg, t, clock, http):
    """Arabic-Indic digits are digits to str.isdigit but not to a constant-time comparison of
    ASCII text: refused as a wrong code, at the token endpoint and on the page."""
    staff_with_totp(reg, t, clock)
    resp = link(reg, t, "4711", totp="\u0661\u0662\u0663\u0664\u0665\u0666")
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"
    assert link(reg, t, "4711", totp="12345").get_json()["error"] == "invalid_grant"


def test_a_used_code_stays_used_while_it_could_still_match(reg, t, clock):
    """The claim on a used step outlives the drift window: 30 s later the same code (one step
    back, still matching) is refused; wrong codes through the API are throttled like others."""
    secret = staff_with_totp(reg, t, clock)
    clock.advance(30 - clock() % 30)  # the start of a step
    code = pyotp.TOTP(secret).at(clock())
    assert link(reg, t, "4711", totp=code).status_code == 200
    clock.advance(15)  # the same step, later: the step is what is claimed, not the instant
    assert link(reg, t, "4711", totp=code).get_json()["error"] == "invalid_grant"
    clock.advance(15)
    assert link(reg, t, "4711", totp=code).get_json()["error"] == "invalid_grant"
    clock.advance(29)
    assert link(reg, t, "4711", totp=code).get_json()["error"] == "invalid_grant"
    token = reg.user_token(t, "api-user", ("STAFF",))
    reg.call("POST", f"{ME}/totp/secret", token)
    statuses = [reg.call("PUT", f"{ME}/totp", token, json={"code": f"{i:06d}"}).status_code
                for i in range(7)]  # fmt: skip
    assert statuses[:5] == [400] * 5 and statuses[-1] == 429
    last = reg.call("PUT", f"{ME}/totp", token, json={"code": "000009"})
    assert last.status_code == 429 and int(last.headers["Retry-After"]) >= 1
    assert last.get_json()["detail"] == "Too many wrong codes. Wait a few minutes."


def test_wrong_codes_count_against_the_account_on_every_channel(reg, t, clock):
    """Five wrong codes on one channel (the API) throttle the code on another (the link grant),
    whose own password limits are untouched: the limit is the account's, not the channel's."""
    secret = staff_with_totp(reg, t, clock)
    token = reg.user_token(t, "anna", create=False)
    for i in range(5):
        wrong = reg.call("DELETE", f"{ME}/totp", token, json={"code": f"9{i:05d}"})
        assert wrong.status_code == 400
    throttled = link(reg, t, "4711", totp=pyotp.TOTP(secret).at(clock()))
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) >= 1


def test_a_code_used_early_stays_used_until_it_can_no_longer_match(reg, t, clock):
    """The longest a code matches: used as the next step's code at the very start of a step, it
    still matches until the end of the step after next, 90 s later. It must stay spent for all
    of that time."""
    secret = staff_with_totp(reg, t, clock)
    clock.advance(30 - clock() % 30)  # the start of a step
    future = pyotp.TOTP(secret).at(clock() + 30)
    assert link(reg, t, "4711", totp=future).status_code == 200
    clock.advance(89)  # still within one step of the code's own
    assert link(reg, t, "4711", totp=future).get_json()["error"] == "invalid_grant"
