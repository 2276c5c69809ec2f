"""RFC 8628 device authorization grant, through HTTP: endpoint, polling, decisions, redemption."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from authserver.models import Device, DeviceAuthorization, db
from tests.device_helpers import DEVICE_GRANT, approve, kiosk_world, poll, start
from tests.dpop_client import DPoPKey

USER_CODE = re.compile(r"^[BCDFGHJKLMNPQRSTVWXZ]{5}-[BCDFGHJKLMNPQRSTVWXZ]{5}$")


def test_device_authorization_response(http, world, settings):
    _, client = kiosk_world(world)
    resp = start(http, client.client_id, scope="devices:read", device_name="Lobby kiosk")
    assert resp.status_code == 200, resp.get_json()
    assert resp.headers["Cache-Control"] == "no-store"
    body = resp.get_json()
    assert USER_CODE.match(body["user_code"])
    assert len(body["device_code"]) >= 43  # 256 bits, base64url; RFC 8628 §5.2 needs >= 128
    assert body["verification_uri"] == settings.issuer + "/device"
    complete = urlsplit(body["verification_uri_complete"])
    assert parse_qs(complete.query)["user_code"] == [body["user_code"]]
    assert body["expires_in"] == settings.device_code_ttl == 600
    assert body["interval"] == settings.device_poll_interval == 5


def test_confidential_client_authenticates(http, world):
    tenant = world.tenant()
    creds = world.client(tenant, grant_types=(DEVICE_GRANT,), scope="devices:read")
    resp = start(http, creds.client_id, headers=creds.auth_header())
    assert resp.status_code == 200  # client_id in the body may repeat the Basic one
    resp = http.post("/oauth/device_authorization", data={}, headers=creds.auth_header())
    assert resp.status_code == 200
    bad = http.post("/oauth/device_authorization", data={"client_id": creds.client_id})
    assert bad.get_json()["error"] == "invalid_client"  # a confidential client must authenticate


def test_client_must_be_registered_for_the_grant(http, world):
    tenant = world.tenant()
    other = world.client(tenant, grant_types=("refresh_token",), auth_method="none")
    resp = start(http, other.client_id)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "unauthorized_client"
    # At the token endpoint too: a client not registered for the grant cannot redeem a code,
    # even a live one of another client (it is refused before the code is looked at).
    kiosk = world.client(tenant, grant_types=(DEVICE_GRANT,), auth_method="none")
    code = start(http, kiosk.client_id).get_json()["device_code"]
    refused = poll(http, other.client_id, code)
    assert refused.status_code == 400 and refused.get_json()["error"] == "unauthorized_client"


def test_scope_is_checked_against_the_client(http, world):
    _, client = kiosk_world(world, scope="devices:read")
    resp = start(http, client.client_id, scope="devices:write")
    assert resp.get_json()["error"] == "invalid_scope"


def test_unknown_client_is_invalid_client(http):
    assert start(http, "cli_nope").get_json()["error"] == "invalid_client"


def test_user_codes_are_unique_and_stored_as_hashes(http, world, app):
    _, client = kiosk_world(world)
    bodies = [start(http, client.client_id).get_json() for _ in range(30)]
    assert len({b["user_code"] for b in bodies}) == 30
    with app.app_context():
        rows = db.session.scalars(select(DeviceAuthorization)).all()
        stored = " ".join(f"{r.user_code_hash} {r.device_code_hash}" for r in rows)
    for b in bodies:
        assert b["device_code"] not in stored
        assert b["user_code"].replace("-", "") not in stored


def test_pending_then_approved_then_single_redemption(http, world, app, clock):
    tenant, client = kiosk_world(world)
    body = start(http, client.client_id, device_name="Till 3").get_json()
    pending = poll(http, client.client_id, body["device_code"])
    assert pending.status_code == 400
    assert pending.get_json()["error"] == "authorization_pending"
    done = approve(app, body["user_code"], "admin", "--till", "T3")
    assert done["decision"] == "approved" and done["device_id"].startswith("dev_")
    clock.advance(5)
    ok = poll(http, client.client_id, body["device_code"])
    assert ok.status_code == 200, ok.get_json()
    tokens = ok.get_json()
    assert tokens["token_type"] == "Bearer" and tokens["refresh_token"]
    claims = jwt.decode(
        tokens["access_token"], KeySet.import_key_set(http.get("/oauth/jwks").get_json())
    ).claims
    assert claims["sub"] == done["device_id"]
    assert claims["tenant"] == tenant

    # Another kiosk of the same client and tenant, redeemed too: the bystander.
    other = start(http, client.client_id, device_name="Till 4").get_json()
    other_done = approve(app, other["user_code"], "admin")
    bystander = poll(http, client.client_id, other["device_code"]).get_json()

    # A second redemption fails and revokes what the first one got, and nothing else.
    clock.advance(5)
    again = poll(http, client.client_id, body["device_code"])
    assert again.status_code == 400
    assert again.get_json()["error"] == "invalid_grant"
    resource = world.client(tenant)

    def introspect(token):
        return http.post(
            "/oauth/introspect", data={"token": token}, headers=resource.auth_header()
        ).get_json()

    for token in (tokens["access_token"], tokens["refresh_token"]):
        assert introspect(token) == {"active": False}
    for token in (bystander["access_token"], bystander["refresh_token"]):
        assert introspect(token)["active"] is True
    # The revoked family says why (what an operator reads when a kiosk asks what happened).
    from authserver.models import RefreshFamily

    with app.app_context():
        reasons = dict(db.session.execute(select(RefreshFamily.device_id,
                                                 RefreshFamily.revoked_reason)).all())  # fmt: skip
    assert reasons == {done["device_id"]: "device_code_reused", other_done["device_id"]: None}


def test_enrolment_creates_the_registry_device(http, world, app, clock):
    tenant, client = kiosk_world(world)
    body = start(
        http, client.client_id, device_name="Entrance kiosk", system_information="Linux 6.1"
    ).get_json()
    done = approve(app, body["user_code"], "admin", "--till", "T9")
    with app.app_context():
        device = db.session.get(Device, done["device_id"])
        assert device.tenant_id == tenant
        assert device.origin == "device_flow" and device.status == "ACTIVE"
        assert device.name == "Entrance kiosk" and device.till_id == "T9"
        assert device.system_information == "Linux 6.1"
        assert device.created_by == device.last_tenant_user_id


def test_denied_is_access_denied(http, world, app):
    _, client = kiosk_world(world)
    body = start(http, client.client_id).get_json()
    assert approve(app, body["user_code"], "admin", "--deny")["decision"] == "denied"
    resp = poll(http, client.client_id, body["device_code"])
    assert resp.get_json()["error"] == "access_denied"


def test_expired_is_expired_token(http, world, clock, settings):
    _, client = kiosk_world(world)
    body = start(http, client.client_id).get_json()
    clock.advance(settings.device_code_ttl + 1)
    assert poll(http, client.client_id, body["device_code"]).get_json()["error"] == "expired_token"


def test_unknown_code_and_another_clients_code_are_invalid_grant(http, world):
    tenant, client = kiosk_world(world)
    other = world.client(tenant, grant_types=(DEVICE_GRANT,), auth_method="none")
    body = start(http, client.client_id).get_json()
    assert poll(http, client.client_id, "nope").get_json()["error"] == "invalid_grant"
    assert poll(http, other.client_id, body["device_code"]).get_json()["error"] == "invalid_grant"
    assert poll(http, client.client_id, "").get_json()["error"] == "invalid_request"


def test_slow_down_grows_the_interval_and_a_client_that_backs_off_recovers(http, world, clock):
    _, client = kiosk_world(world)
    code = start(http, client.client_id).get_json()["device_code"]

    def status():
        return poll(http, client.client_id, code).get_json()["error"]

    assert status() == "authorization_pending"  # t=0; interval 5
    assert status() == "slow_down"  # t=0: too fast; interval 10 from now on
    clock.advance(5)
    assert status() == "slow_down"  # 5 s < 10 s: too fast again; interval 15
    clock.advance(15)
    assert status() == "authorization_pending"  # waited the grown interval: served
    clock.advance(15)
    assert status() == "authorization_pending"  # and stays served at that pace
    clock.advance(10)
    assert status() == "slow_down"  # 10 s is now too fast: the interval stayed grown


def test_first_poll_is_never_slowed_down(http, world):
    _, client = kiosk_world(world)
    code = start(http, client.client_id).get_json()["device_code"]
    assert poll(http, client.client_id, code).get_json()["error"] == "authorization_pending"


def test_cross_tenant_approval_is_refused(http, world, app):
    _, client = kiosk_world(world)
    stranger_tenant = world.tenant()
    world.user(stranger_tenant, login="mallory", password="correct horse")
    body = start(http, client.client_id).get_json()
    result = approve(app, body["user_code"], "mallory")
    assert result["exit_code"] != 0
    resp = poll(http, client.client_id, body["device_code"])
    assert resp.get_json()["error"] == "authorization_pending"


def test_a_decided_code_cannot_be_decided_again(http, world, app):
    _, client = kiosk_world(world)
    body = start(http, client.client_id).get_json()
    approve(app, body["user_code"], "admin", "--deny")
    assert approve(app, body["user_code"], "admin")["exit_code"] != 0


def test_user_code_is_normalised(http, world, app):
    _, client = kiosk_world(world)
    body = start(http, client.client_id).get_json()
    typed = " " + body["user_code"].lower().replace("-", " - ") + "!"
    assert approve(app, typed, "admin")["decision"] == "approved"


def test_dpop_proof_at_device_authorization_binds_the_transaction(http, world, settings, clock):
    _, client = kiosk_world(world)
    key = DPoPKey()
    body = start(
        http,
        client.client_id,
        proof=key.proof("POST", settings.issuer + "/oauth/device_authorization", iat=clock()),
    ).get_json()
    token_url = settings.issuer + "/oauth/token"
    no_proof = poll(http, client.client_id, body["device_code"])
    assert no_proof.get_json()["error"] == "invalid_dpop_proof"
    other = poll(
        http,
        client.client_id,
        body["device_code"],
        proof=DPoPKey().proof("POST", token_url, iat=clock()),
    )
    assert other.get_json()["error"] == "invalid_dpop_proof"
    same = poll(
        http, client.client_id, body["device_code"], proof=key.proof("POST", token_url, iat=clock())
    )
    assert same.get_json()["error"] == "authorization_pending"


def test_dpop_bound_enrolment_issues_dpop_tokens_and_binds_the_device(
    http, world, app, settings, clock
):
    _, client = kiosk_world(world)
    key = DPoPKey()
    body = start(
        http,
        client.client_id,
        proof=key.proof("POST", settings.issuer + "/oauth/device_authorization", iat=clock()),
    ).get_json()
    done = approve(app, body["user_code"], "admin")
    resp = poll(
        http,
        client.client_id,
        body["device_code"],
        proof=key.proof("POST", settings.issuer + "/oauth/token", iat=clock()),
    )
    assert resp.status_code == 200
    assert resp.get_json()["token_type"] == "DPoP"
    with app.app_context():
        assert db.session.get(Device, done["device_id"]).dpop_jkt == key.jkt


def test_sign_in_client_yields_user_subject_id_token_and_userinfo(
    http, world, app, settings, clock
):
    tenant, client = kiosk_world(world, device_subject="user", scope="openid devices:read")
    body = start(http, client.client_id, scope="openid devices:read").get_json()
    done = approve(app, body["user_code"], "admin")
    assert done["device_id"] is None  # a sign-in creates no registry device
    tokens = poll(http, client.client_id, body["device_code"]).get_json()
    jwks = KeySet.import_key_set(http.get("/oauth/jwks").get_json())
    access = jwt.decode(tokens["access_token"], jwks).claims
    assert access["sub"] == done["user_id"]
    id_token = jwt.decode(tokens["id_token"], jwks)
    c = id_token.claims
    # OIDC Core §15.1 / Discovery §3: RS256 is the ID token's default, for every relying party.
    assert id_token.header["kid"] and id_token.header["alg"] == "RS256"
    assert c["iss"] == settings.issuer and c["aud"] == client.client_id
    assert c["sub"] == done["user_id"]
    assert c["exp"] - c["iat"] == settings.id_token_ttl
    assert isinstance(c["auth_time"], int)
    import base64
    import hashlib

    digest = hashlib.sha256(tokens["access_token"].encode()).digest()[:16]
    assert c["at_hash"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    info = http.get(
        "/oauth/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert info.status_code == 200
    assert info.get_json()["sub"] == done["user_id"]
    assert info.get_json()["preferred_username"] == "admin"
    no_token = http.get("/oauth/userinfo")
    assert no_token.status_code == 401 and no_token.headers.get("WWW-Authenticate")


def test_no_id_token_without_openid_or_for_devices(http, world, app):
    _, client = kiosk_world(world, scope="openid devices:read")  # enrolment: sub is a device
    body = start(http, client.client_id, scope="openid devices:read").get_json()
    approve(app, body["user_code"], "admin")
    tokens = poll(http, client.client_id, body["device_code"]).get_json()
    assert "id_token" not in tokens
    info = http.get(
        "/oauth/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert info.status_code == 403


def test_grant_type_is_listed_in_discovery(http):
    doc = http.get("/.well-known/openid-configuration").get_json()
    assert DEVICE_GRANT in doc["grant_types_supported"]


# -- moved from the security review's regression file ------------------------------------


def test_a_device_blocked_between_approval_and_redemption_gets_no_token(http, world, app):
    _, client = kiosk_world(world)
    body = start(http, client.client_id).get_json()
    other = start(http, client.client_id).get_json()  # another kiosk, approved alike
    device_id = approve(app, body["user_code"], "admin")["device_id"]
    approve(app, other["user_code"], "admin")
    with app.app_context():
        db.session.get(Device, device_id).status = "BLOCKED"
        db.session.commit()
    assert poll(http, client.client_id, body["device_code"]).get_json()["error"] == "invalid_grant"
    assert poll(http, client.client_id, other["device_code"]).status_code == 200


@pytest.mark.parametrize("overrides", [{"signing_alg": "Ed25519"}])
def test_at_hash_follows_the_signing_algorithm(http, world, app, clock):
    """OIDC Core §3.1.3.6: at_hash uses the hash of the ID token's alg: SHA-512 for Ed25519."""
    import base64
    import hashlib

    _, client = kiosk_world(
        world, device_subject="user", scope="openid devices:read", id_token_alg="Ed25519"
    )
    body = start(http, client.client_id, scope="openid devices:read").get_json()
    approve(app, body["user_code"], "admin")
    clock.advance(7)
    tokens = poll(http, client.client_id, body["device_code"]).get_json()
    claims = jwt.decode(
        tokens["id_token"],
        KeySet.import_key_set(http.get("/oauth/jwks").get_json()),
        algorithms=["Ed25519"],
    ).claims
    digest = hashlib.sha512(tokens["access_token"].encode()).digest()[:32]
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    # auth_time is when the person approved, not when the device redeemed.
    assert claims["iat"] - claims["auth_time"] == 7


def test_a_client_registered_for_es256_gets_es256_id_tokens(http, world, app):
    """OIDC Dynamic Client Registration §2 id_token_signed_response_alg, set by the operator."""
    _, client = kiosk_world(
        world, device_subject="user", scope="openid devices:read", id_token_alg="ES256"
    )
    body = start(http, client.client_id, scope="openid devices:read").get_json()
    approve(app, body["user_code"], "admin")
    tokens = poll(http, client.client_id, body["device_code"]).get_json()
    jwks = KeySet.import_key_set(http.get("/oauth/jwks").get_json())
    token = jwt.decode(tokens["id_token"], jwks, algorithms=["ES256"])
    assert token.header["alg"] == "ES256"
    # Approved by an operator at the CLI: nobody typed a password, so neither amr nor acr.
    assert "amr" not in token.claims and "acr" not in token.claims


def test_an_id_token_needs_openid_and_a_user_subject_both(http, world, app):
    for scope, subject, expected in (
        ("openid devices:read", "user", True),
        ("devices:read", "user", False),
        ("openid devices:read", "device", False),
    ):
        _, client = kiosk_world(world, device_subject=subject, scope="openid devices:read")
        body = start(http, client.client_id, scope=scope).get_json()
        approve(app, body["user_code"], "admin")
        tokens = poll(http, client.client_id, body["device_code"]).get_json()
        assert ("id_token" in tokens) is expected, (scope, subject)


def test_device_name_and_system_information_limits_are_inclusive(http, world, app):
    """100 characters of name and 2000 of system information are stored; one more is refused."""
    _, client = kiosk_world(world)
    ok = start(http, client.client_id, device_name="N" * 100, system_information="S" * 2000)
    assert ok.status_code == 200, ok.get_json()
    with app.app_context():
        record = db.session.scalars(select(DeviceAuthorization)).one()
        assert (record.device_name, record.system_information) == ("N" * 100, "S" * 2000)
    for form in ({"device_name": "N" * 101}, {"system_information": "S" * 2001}):
        refused = start(http, client.client_id, **form)
        assert refused.status_code == 400
        assert refused.get_json()["error"] == "invalid_request", form
    with app.app_context():
        assert len(db.session.scalars(select(DeviceAuthorization)).all()) == 1


def test_a_redeemed_code_stays_invalid_grant_after_expiry_and_each_reuse_is_audited_once(
    http, world, app, clock, settings
):
    """A second redemption is reuse (invalid_grant, revocation), whenever it comes: not an
    expired_token once the code's lifetime is over. Each reuse is one audit event."""
    from authserver.models import AuditEvent

    _, client = kiosk_world(world)
    body = start(http, client.client_id).get_json()
    approve(app, body["user_code"], "admin")
    assert poll(http, client.client_id, body["device_code"]).status_code == 200

    def reuses() -> int:
        with app.app_context():
            return len(
                db.session.scalars(
                    select(AuditEvent.id).where(AuditEvent.type == "device_code.reuse_detected")
                ).all()
            )

    again = poll(http, client.client_id, body["device_code"])
    assert again.get_json()["error"] == "invalid_grant" and reuses() == 1
    clock.advance(settings.device_code_ttl + 1)
    late = poll(http, client.client_id, body["device_code"])
    assert late.get_json()["error"] == "invalid_grant" and reuses() == 2


def test_a_code_is_expired_at_exactly_its_expiry(http, world, clock, settings):
    _, client = kiosk_world(world)
    body = start(http, client.client_id).get_json()
    clock.advance(settings.device_code_ttl - 1)
    assert poll(http, client.client_id, body["device_code"]).get_json()["error"] == (
        "authorization_pending"
    )
    clock.advance(1)
    assert poll(http, client.client_id, body["device_code"]).get_json()["error"] == "expired_token"


@pytest.mark.parametrize("overrides", [{"metrics_token": "m3trics"}])
def test_device_flow_outcomes_are_counted(http, world, app, clock, settings):
    """authserver_device_flow_total: one count per outcome a client is told."""

    def counts() -> dict[str, float]:
        text = http.get("/metrics", headers={"Authorization": "Bearer m3trics"}).get_data(
            as_text=True
        )
        found = re.findall(r'^authserver_device_flow_total\{outcome="(\w+)"\} (\S+)$', text, re.M)
        return {outcome: float(value) for outcome, value in found}

    _, client = kiosk_world(world)
    before = counts()
    body = start(http, client.client_id).get_json()
    code = body["device_code"]
    assert poll(http, client.client_id, code).get_json()["error"] == "authorization_pending"
    assert poll(http, client.client_id, code).get_json()["error"] == "slow_down"
    approve(app, body["user_code"], "admin")
    denied = start(http, client.client_id).get_json()
    approve(app, denied["user_code"], "admin", "--deny")
    late = start(http, client.client_id).get_json()["device_code"]
    clock.advance(settings.device_code_ttl)
    assert poll(http, client.client_id, late).get_json()["error"] == "expired_token"
    after = counts()
    grew = {k: after[k] - before.get(k, 0.0) for k in after if after[k] != before.get(k, 0.0)}
    assert grew == {"pending": 1, "slow_down": 1, "approved": 1, "denied": 1, "expired": 1}


def test_a_poll_that_loses_the_redemption_race_gets_no_tokens_and_revokes_the_winners(
    http, world, app, monkeypatch
):
    """Two polls read the same approved code (RFC 8628 §3.5, DESIGN invariant 1): the one whose
    conditional UPDATE finds the code already redeemed gets invalid_grant, no tokens, and the
    winner's tokens are revoked (RFC 9700 §4.14.2); another kiosk's tokens stay active."""
    from authserver import device_flow

    _, client = kiosk_world(world)
    raced = start(http, client.client_id).get_json()
    other = start(http, client.client_id).get_json()
    for body in (raced, other):
        approve(app, body["user_code"], "admin")
    bystander = poll(http, client.client_id, other["device_code"]).get_json()
    winner = []
    real_get = device_flow.get

    def get_then_lose_the_race(record_id):
        record = real_get(record_id)  # read while approved
        if not winner:
            winner.append(None)
            with app.app_context():  # the other poll, in its own session, redeems first
                winner[0] = poll(http, client.client_id, raced["device_code"])
        return record

    monkeypatch.setattr(device_flow, "get", get_then_lose_the_race)
    loser = poll(http, client.client_id, raced["device_code"])
    monkeypatch.undo()
    assert winner[0].status_code == 200, winner[0].get_json()
    assert loser.status_code == 400 and loser.get_json()["error"] == "invalid_grant"
    assert "access_token" not in loser.get_json()
    checker = world.client(client.tenant_id)

    def active(token):
        return http.post(
            "/oauth/introspect", data={"token": token}, headers=checker.auth_header()
        ).get_json()["active"]

    got = winner[0].get_json()
    assert [active(got["access_token"]), active(got["refresh_token"])] == [False, False]
    assert [active(bystander["access_token"]), active(bystander["refresh_token"])] == [True, True]


def test_a_device_name_that_would_disguise_itself_is_refused(http, world, app):
    _, client = kiosk_world(world)
    resp = start(http, client.client_id, device_name="Lobby\u202ekiosk")
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request"
    assert resp.get_json()["error_description"].startswith("device_name contains invisible")
    with app.app_context():
        assert db.session.scalars(select(DeviceAuthorization)).all() == []


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_a_confidential_client_polls_with_either_secret_method(http, world, app, method):
    tenant = world.tenant()
    world.user(tenant, login="admin", roles=("TENANT.ADMIN",))
    creds = world.client(
        tenant, grant_types=(DEVICE_GRANT,), auth_method=method, scope="devices:read"
    )
    if method == "client_secret_basic":
        auth = {"headers": creds.auth_header()}
    else:
        auth = {"data": {"client_id": creds.client_id, "client_secret": creds.client_secret}}
    body = http.post("/oauth/device_authorization", **auth).get_json()
    approve(app, body["user_code"], "admin")
    form = {"grant_type": DEVICE_GRANT, "device_code": body["device_code"]}
    resp = http.post(
        "/oauth/token", data={**form, **auth.get("data", {})}, headers=auth.get("headers", {})
    )
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["token_type"] == "Bearer"


def test_a_code_purged_between_its_two_reads_is_unknown(http, world, app, monkeypatch):
    """The poll reads the transaction twice (the row, then the whole record): a purge in
    between leaves nothing to redeem, which is invalid_grant, not a server error."""
    from authserver import device_flow

    _, client = kiosk_world(world)
    body = start(http, client.client_id).get_json()
    approve(app, body["user_code"], "admin")
    real_get = device_flow.get

    def purged_first(record_id):
        with app.app_context():  # the purge, in its own session
            db.session.execute(
                DeviceAuthorization.__table__.delete().where(
                    DeviceAuthorization.__table__.c.id == record_id
                )
            )
            db.session.commit()
        return real_get(record_id)

    monkeypatch.setattr(device_flow, "get", purged_first)
    resp = poll(http, client.client_id, body["device_code"])
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"


def test_a_customer_signs_in_on_a_shared_screen_only_to_a_customer_app(http, world, app):
    """The kind of person decides which sign-in apps admit them, and a customer's token never
    carries a scope that manages the tenant (authserver.authorization)."""
    from authserver.admin import find_client, update_client

    tenant, client = kiosk_world(world, device_subject="user", scope="openid devices:read")
    world.user(tenant, login="cara@example.com", password="correct horse b", kind="customer")
    with app.app_context():
        update_client(find_client(client.client_id), user_kind="staff")
    body = start(http, client.client_id, scope="openid devices:read").get_json()
    refused = approve(app, body["user_code"], "cara@example.com")
    assert refused["exit_code"] == 1 and "This app is for staff" in refused["error"]
    assert poll(http, client.client_id, body["device_code"]).get_json()["error"] == (
        "authorization_pending"
    )
    with app.app_context():
        update_client(find_client(client.client_id), user_kind="any")
    body = start(http, client.client_id, scope="openid devices:read").get_json()
    approve(app, body["user_code"], "cara@example.com")
    tokens = poll(http, client.client_id, body["device_code"]).get_json()
    assert tokens["scope"] == "openid"  # devices:read is not a customer's
    assert (
        jwt.decode(
            tokens["access_token"], KeySet.import_key_set(http.get("/oauth/jwks").get_json())
        ).claims["scope"]
        == "openid"
    )
    # A sign-in that asks only for what customers never get cannot be approved by one.
    body = start(http, client.client_id, scope="devices:read").get_json()
    refused = approve(app, body["user_code"], "cara@example.com")
    assert refused["exit_code"] == 1 and "nothing a customer may have" in refused["error"]
