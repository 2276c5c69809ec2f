"""Staff sign-in on a linked terminal (seed 000 device users): the device's token acts, the staff
member's credentials (and TOTP) authenticate; the token is about the person, acted by the device."""

from __future__ import annotations

import base64
import json

import pyotp
import pytest

from tests.conftest import cc_token
from tests.dpop_client import DPoPKey
from tests.registry.conftest import LINK_GRANT

STAFF = "urn:authserver:params:oauth:grant-type:staff-sign-in"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"


def claims(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


class Shop:
    """A tenant with two stores, a terminal linked at the first, and a people service."""

    def __init__(self, reg, world):
        self.reg, self.world = reg, world
        self.t = reg.tenant()
        self.pos = world.client(self.t.id, grant_types=(LINK_GRANT, "refresh_token", STAFF),
                                auth_method="none", scope="devices:read users:read")  # fmt: skip
        people = world.client(self.t.id, scope="users:read users:write")
        self.people = cc_token(reg.http, people).get_json()["access_token"]
        admin = reg.service_token(self.t)
        self.north = self.location(admin, "North")
        self.south = self.location(admin, "South")
        self.device, self.device_token, self.key = self.terminal(admin, self.north)

    def location(self, admin, name):
        resp = self.reg.call("POST", "/api/v1/locations", admin, json={"name": name})
        return resp.get_json()["data"]["id"]

    def terminal(self, admin, location):
        device = self.reg.create_device(self.t, admin, status="READY_TO_LINK", appCode="CLIENT",
                                        locationIds=[location])  # fmt: skip
        key = DPoPKey()
        resp = self.reg.link(self.t, device["linkCode"], key, client_id=self.pos.client_id)
        assert resp.status_code == 200, resp.get_json()
        return device, resp.get_json()["access_token"], key

    def person(self, login, code, roles):
        body = {"login": login, "password": "correct horse", "staffCode": code, "roles": roles}
        resp = self.reg.call("POST", "/api/v1/users", self.people, json=body)
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()["data"]

    def sign_in(self, staff_code, key="device", actor=None, client_id=None, ip=None, **form):
        key = self.key if key == "device" else key
        headers = {}
        if key is not None:
            headers["DPoP"] = key.proof("POST", self.reg.settings.issuer + "/oauth/token",
                                        iat=self.reg.now())  # fmt: skip
        data = {"grant_type": STAFF, "client_id": client_id or self.pos.client_id,
                "actor_token": actor or self.device_token, "actor_token_type": ACCESS,
                "staff_code": staff_code, "password": "correct horse", **form}  # fmt: skip
        environ = {"REMOTE_ADDR": ip} if ip else {}
        return self.reg.http.post(
            "/oauth/token", data=data, headers=headers, environ_overrides=environ
        )

    def me(self, token, key=None):
        return self.reg.call("GET", "/api/v1/users/me", token, key=key or self.key)


@pytest.fixture
def shop(reg, world):
    return Shop(reg, world)


def test_a_cashier_signs_in_on_the_terminal_of_her_store(shop, reg):
    anna = shop.person("anna", "4711", [{"role": "STAFF", "locationId": shop.north}])
    resp = shop.sign_in("4711")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["issued_token_type"] == ACCESS and body["token_type"] == "DPoP"
    assert "refresh_token" not in body and body["expires_in"] <= 900
    assert body["scope"] == "devices:read users:read"  # the terminal client's, as granted
    c = claims(body["access_token"])
    assert c["sub"] == anna["id"] == c["uid"] and c["did"] == shop.device["id"]
    assert c["act"] == {"sub": shop.device["id"]}  # RFC 8693 §4.1
    assert c["cnf"] == claims(shop.device_token)["cnf"]  # the terminal's own key
    assert c["amr"] == ["pwd"]
    assert shop.me(body["access_token"]).get_json()["data"]["login"] == "anna"
    # Without the terminal's key the token is worthless.
    assert reg.call("GET", "/api/v1/users/me", body["access_token"]).status_code == 401
    # Seed 000: the device remembers who signed in last.
    me = reg.call("GET", "/api/v1/devices/me", shop.device_token, key=shop.key).get_json()
    assert me["data"]["lastTenantUserId"] == anna["id"]
    auditor = reg.user_token(shop.t, "auditor", ("TENANT.ADMIN",))
    events = reg.call("GET", "/api/v1/audit-events?type=device.staff_signed_in", auditor)
    [event] = events.get_json()["data"]
    assert event["deviceId"] == shop.device["id"] and event["actor"] == anna["id"]
    assert event["data"] == {"user_id": anna["id"], "amr": "pwd"}


@pytest.mark.parametrize(
    ("roles", "allowed"),
    [
        ([{"role": "STAFF"}], True),  # tenant-wide
        ([{"role": "DEVICE.MANAGER", "locationId": "NORTH"}], True),
        ([{"role": "STAFF", "locationId": "SOUTH"}], False),  # another store
        ([], False),
    ],
)
def test_only_people_allowed_on_the_device_sign_in(shop, roles, allowed):
    for role in roles:
        if role.get("locationId") in ("NORTH", "SOUTH"):
            role["locationId"] = shop.north if role["locationId"] == "NORTH" else shop.south
    shop.person("bob", "5555", roles)
    resp = shop.sign_in("5555")
    assert resp.status_code == (200 if allowed else 400), resp.get_json()
    if not allowed:
        assert resp.get_json()["error"] == "invalid_grant"


def test_what_is_refused(shop, reg, world):
    shop.person("anna", "4711", [{"role": "STAFF"}])
    assert shop.sign_in("4711", password="wrong horse").get_json()["error"] == "invalid_grant"
    assert shop.sign_in("9999").get_json()["error"] == "invalid_grant"
    # The device's token is bound: no proof, or a proof by another key, is refused.
    assert shop.sign_in("4711", key=None).get_json()["error"] == "invalid_dpop_proof"
    assert shop.sign_in("4711", key=DPoPKey()).get_json()["error"] == "invalid_dpop_proof"
    # Only a live device token of this client acts: not a service token, not a staff token.
    service = reg.service_token(shop.t)
    assert shop.sign_in("4711", key=None, actor=service).get_json()["error"] == "invalid_grant"
    staff = shop.sign_in("4711").get_json()["access_token"]
    assert shop.sign_in("4711", actor=staff).get_json()["error"] == "invalid_grant"
    other = world.client(shop.t.id, grant_types=(STAFF,), auth_method="none", scope="devices:read")
    assert shop.sign_in("4711", client_id=other.client_id).get_json()["error"] == "invalid_grant"
    linker = shop.sign_in("4711", client_id=shop.t.pos.client_id)  # not registered for it
    assert linker.get_json()["error"] == "unauthorized_client"
    missing = reg.http.post("/oauth/token", data={"grant_type": STAFF, "client_id":
                                                  shop.pos.client_id, "password": "x"})  # fmt: skip
    assert missing.get_json()["error"] == "invalid_request"


def test_a_second_factor_is_asked_for(shop, reg, clock):
    shop.person("zofia", "7777", [{"role": "STAFF"}])
    token = reg.user_token(shop.t, "zofia", create=False)
    secret = reg.call("POST", "/api/v1/users/me/totp/secret", token).get_json()["data"]["secret"]
    reg.call("PUT", "/api/v1/users/me/totp", token, json={"code": pyotp.TOTP(secret).at(clock())})
    clock.advance(30)
    assert shop.sign_in("7777").get_json()["error"] == "totp_required"
    assert shop.sign_in("7777", totp="000000").get_json()["error"] == "invalid_grant"
    ok = shop.sign_in("7777", totp=pyotp.TOTP(secret).at(clock()))
    assert ok.status_code == 200 and claims(ok.get_json()["access_token"])["amr"] == ["pwd", "otp"]


def test_blocking_the_device_or_deactivating_the_person_ends_the_sign_in(shop, reg):
    anna = shop.person("anna", "4711", [{"role": "STAFF"}])
    shop.person("bob", "5555", [{"role": "STAFF"}])
    admin = reg.service_token(shop.t)
    second, second_token, second_key = shop.terminal(admin, shop.south)
    on_first = shop.sign_in("4711").get_json()["access_token"]
    bob_first = shop.sign_in("5555").get_json()["access_token"]
    anna_second = shop.sign_in("4711", key=second_key, actor=second_token).get_json()
    anna_second = anna_second["access_token"]
    reg.call("PATCH", f"/api/v1/devices/{shop.device['id']}", admin, json={"status": "BLOCKED"})
    assert shop.me(on_first).status_code == 401
    assert shop.me(bob_first).status_code == 401
    assert shop.me(anna_second, second_key).status_code == 200  # the other terminal: untouched
    reg.call("PATCH", f"/api/v1/users/{anna['id']}", shop.people, json={"active": False})
    assert shop.me(anna_second, second_key).status_code == 401
    del second


def test_taking_the_role_away_ends_the_sign_in(shop, reg, clock):
    anna = shop.person("anna", "4711", [{"role": "STAFF", "locationId": shop.north}])
    shop.person("bob", "5555", [{"role": "STAFF"}])
    token = shop.sign_in("4711").get_json()["access_token"]
    bystander = shop.sign_in("5555").get_json()["access_token"]
    more = reg.call("PATCH", f"/api/v1/users/{anna['id']}", shop.people,
                    json={"roles": [{"role": "STAFF", "locationId": shop.north},
                                    {"role": "DEVICE.MANAGER"}]})  # fmt: skip
    assert more.status_code == 200 and shop.me(token).status_code == 200  # a role given: kept
    reg.call("PATCH", f"/api/v1/users/{anna['id']}", shop.people,
             json={"roles": [{"role": "DEVICE.MANAGER"}]})  # fmt: skip
    assert shop.me(token).status_code == 401
    assert shop.me(bystander).status_code == 200
    clock.advance(1)  # past the revocation's millisecond
    again = shop.sign_in("4711").get_json()["access_token"]  # DEVICE.MANAGER: tenant-wide
    assert shop.me(again).status_code == 200
    revoked = reg.call("POST", "/api/v1/roles/revocations", shop.people,
                       json={"roles": ["DEVICE.MANAGER"]})  # fmt: skip
    assert revoked.get_json()["data"]["usersChanged"] == 1
    assert shop.me(again).status_code == 401
    assert shop.me(bystander).status_code == 200


def test_a_terminal_linked_without_a_key_signs_staff_in_with_bearer_tokens(shop, reg):
    """A terminal linked without DPoP holds a bearer token; the staff token is bearer too, and a
    proof sent along binds nothing it could not bind before."""
    shop.person("anna", "4711", [{"role": "STAFF"}])
    device = reg.create_device(shop.t, status="READY_TO_LINK", appCode="CLIENT")
    linked = reg.link(shop.t, device["linkCode"], client_id=shop.pos.client_id)
    assert linked.status_code == 200 and linked.get_json()["token_type"] == "Bearer"
    resp = shop.sign_in("4711", key=None, actor=linked.get_json()["access_token"])
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["token_type"] == "Bearer"
    c = claims(resp.get_json()["access_token"])
    assert "cnf" not in c and c["act"] == {"sub": device["id"]}
    assert reg.call("GET", "/api/v1/users/me", resp.get_json()["access_token"]).status_code == 200


@pytest.mark.parametrize(
    ("overrides", "lifetime"),
    [({"access_token_ttl": 300}, 300), ({"access_token_ttl": 3600}, 900)],
    ids=["access tokens shorter", "access tokens longer"],
)
def test_a_staff_token_lives_15_minutes_at_most_and_never_longer_than_access_tokens(
    shop, overrides, lifetime
):
    shop.person("anna", "4711", [{"role": "STAFF"}])
    body = shop.sign_in("4711").get_json()
    c = claims(body["access_token"])
    assert body["expires_in"] == lifetime == c["exp"] - c["iat"]


def test_malformed_requests_and_guessing(shop, reg):
    shop.person("anna", "4711", [{"role": "STAFF"}])
    wrong_type = shop.sign_in("4711", actor_token_type="urn:ietf:params:oauth:token-type:jwt")
    assert wrong_type.status_code == 400 and wrong_type.get_json()["error"] == "invalid_request"
    assert "actor_token_type" in wrong_type.get_json()["error_description"]
    no_password = shop.sign_in("4711", password="")  # RFC 6749 §3.1: empty is omitted
    assert no_password.get_json()["error"] == "invalid_request"
    assert "actor_token and password" in no_password.get_json()["error_description"]
    no_actor = shop.reg.http.post("/oauth/token", data={
        "grant_type": STAFF, "client_id": shop.pos.client_id, "actor_token": "",
        "actor_token_type": ACCESS, "staff_code": "4711", "password": "correct horse"})  # fmt: skip
    assert no_actor.get_json()["error"] == "invalid_request"
    assert "actor_token and password" in no_actor.get_json()["error_description"]
    nobody = shop.sign_in("", password="correct horse")
    assert nobody.get_json()["error"] == "invalid_request"
    assert "staff_code or username" in nobody.get_json()["error_description"]
    by_login = shop.sign_in("", username="anna")
    assert by_login.status_code == 200, by_login.get_json()
    assert shop.sign_in("", username="anna", password="wrong").get_json()["error"] == (
        "invalid_grant"
    )
    # Guessing one account's password from one terminal is throttled like every sign-in.
    statuses = [shop.sign_in("4711", password=f"guess {i}").status_code for i in range(7)]
    assert statuses[-1] == 429 and 400 in statuses
    assert shop.sign_in("4711").status_code == 429  # even the right password, for now


def test_each_check_on_the_actor_holds_on_its_own(shop, reg, app):
    """The actor's liveness and the device's state are separate layers: each refuses alone."""
    shop.person("anna", "4711", [{"role": "STAFF"}])
    assert shop.sign_in("4711", actor="not.a-token").get_json()["error"] == "invalid_grant"
    # A revoked device token of an ACTIVE device (revoked by its client, RFC 7009).
    admin = reg.service_token(shop.t)
    device, token, key = shop.terminal(admin, shop.north)
    reg.http.post("/oauth/revoke", data={"token": token, "client_id": shop.pos.client_id})
    refused = shop.sign_in("4711", key=key, actor=token)
    assert refused.get_json()["error"] == "invalid_grant"
    assert "not a live device token" in refused.get_json()["error_description"]
    # A device made inactive without its tokens being revoked (as a restore from a backup
    # could leave it): its live token does not sign anyone in.
    from authserver.models import Device, db

    for change in ({"status": "BLOCKED"}, {"deleted_at": 1}):
        device, token, key = shop.terminal(admin, shop.north)
        with app.app_context():
            row = db.session.get(Device, device["id"])
            for name, value in change.items():
                setattr(row, name, value)
            db.session.commit()
        refused = shop.sign_in("4711", key=key, actor=token)
        assert refused.get_json()["error_description"] == "The device is not active.", change


def test_guessing_from_one_address_does_not_lock_out_another(shop):
    """Per address: 20 wrong passwords from one address (over several accounts, so no account
    limit is reached) stop that address, not the terminal next door."""
    for n in range(5):
        shop.person(f"p{n}", f"70{n}0", [{"role": "STAFF"}])
    wrong = [shop.sign_in(f"70{n}0", password="wrong", ip="203.0.113.7").status_code
             for n in range(5) for _ in range(4)]  # fmt: skip
    assert wrong == [400] * 20
    assert shop.sign_in("7000", ip="203.0.113.7").status_code == 429
    assert shop.sign_in("7000", ip="198.18.0.9").status_code == 200


def test_what_is_not_a_wrong_guess_is_not_counted_as_one(shop, reg, clock):
    """Right credentials never use up the guessing budget: signing in again and again, being
    asked for a code, or lacking the right to this device all give their charge back."""
    shop.person("anna", "4711", [{"role": "STAFF"}])
    assert [shop.sign_in("4711").status_code for _ in range(8)] == [200] * 8
    bob = shop.person("bob", "5555", [])
    assert [shop.sign_in("5555").status_code for _ in range(8)] == [400] * 8  # not allowed
    reg.call("PATCH", f"/api/v1/users/{bob['id']}", shop.people,
             json={"roles": [{"role": "STAFF"}]})  # fmt: skip
    assert shop.sign_in("5555").status_code == 200
    shop.person("zofia", "7777", [{"role": "STAFF"}])
    token = reg.user_token(shop.t, "zofia", create=False)
    secret = reg.call("POST", "/api/v1/users/me/totp/secret", token).get_json()["data"]["secret"]
    reg.call("PUT", "/api/v1/users/me/totp", token, json={"code": pyotp.TOTP(secret).at(clock())})
    clock.advance(30)
    assert [shop.sign_in("7777").get_json()["error"] for _ in range(8)] == ["totp_required"] * 8
    assert shop.sign_in("7777", totp=pyotp.TOTP(secret).at(clock())).status_code == 200


def test_a_deactivated_person_cannot_sign_in(shop, reg):
    anna = shop.person("anna", "4711", [{"role": "STAFF"}])
    reg.call("PATCH", f"/api/v1/users/{anna['id']}", shop.people, json={"active": False})
    refused = shop.sign_in("4711")
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_grant"
    # Refused as a wrong sign-in, before any question of rights on the device.
    assert refused.get_json()["error_description"] == "The staff code, login or password is wrong."


def test_a_login_is_looked_up_in_the_terminals_tenant_only(reg, world):
    """Two tenants each have an "anna" with the same password: signing in by login on one
    tenant's terminal is that tenant's anna, whichever was created first."""
    other = reg.tenant()
    world.user(other.id, login="anna", password="correct horse", roles=("STAFF",))
    shop = Shop(reg, world)  # created after the other tenant's anna
    ours = shop.person("anna", "4711", [{"role": "STAFF"}])
    resp = shop.sign_in("", username="anna")
    assert resp.status_code == 200, resp.get_json()
    assert claims(resp.get_json()["access_token"])["sub"] == ours["id"]
