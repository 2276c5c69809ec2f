"""The authorization code flow through HTTP, as a browser and a client app see it: the
authorization endpoint and its pages, PKCE, the code at the token endpoint, OpenID Connect,
consent, PAR, DPoP binding and RP-initiated logout (RFC 6749 §4.1, RFC 7636, RFC 9126,
RFC 9207, RFC 9449 §10, RFC 8252, OIDC Core §3.1)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pyotp
import pytest

from tests.conftest import ClientCreds
from tests.dpop_client import DPoPKey

APP = "https://app.example.com/callback"
NATIVE = "http://127.0.0.1/cb"
ISSUER_ERRORS = ("invalid_request", "login_required", "consent_required", "access_denied")


def s256(verifier: str) -> str:
    return (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def csrf_of(resp: Any) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', resp.get_data(as_text=True)).group(1)


def interaction_of(resp: Any) -> str:
    return re.search(r'name="interaction" value="([^"]+)"', resp.get_data(as_text=True)).group(1)


def query_of(resp: Any) -> dict[str, str]:
    assert resp.status_code == 303, resp.get_data(as_text=True)
    return {k: v[0] for k, v in parse_qs(urlsplit(resp.headers["Location"]).query).items()}


@dataclass
class Flow:
    http: Any
    app: Any
    tenant: str
    first_party: ClientCreds
    third_party: ClientCreds
    confidential: ClientCreds

    def authorize(
        self, client: ClientCreds, verifier: str | None = "v" * 43, **extra: str | None
    ) -> Any:
        params: dict[str, str] = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": APP,
            "scope": "openid profile",
            "state": "st-1",
            "nonce": "n-1",
        }
        if verifier is not None:
            params |= {"code_challenge": s256(verifier), "code_challenge_method": "S256"}
        params |= {k: v for k, v in extra.items() if v is not None}
        for k in [k for k, v in extra.items() if v is None]:
            params.pop(k, None)
        return self.http.get("/oauth/authorize?" + urlencode(params))

    def cont(self, page: Any, **form: str) -> Any:
        data = {"csrf": csrf_of(page), "interaction": interaction_of(page), **form}
        return self.http.post("/oauth/authorize/continue", data=data)

    def sign_in(self, page: Any, login: str = "alice", password: str = "correct horse") -> Any:
        return self.cont(page, action="login", login=login, password=password)

    def token(
        self, client: ClientCreds, code: str, verifier: str = "v" * 43, headers: Any = None,
        **form: str,
    ) -> Any:  # fmt: skip
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": APP,
                "code_verifier": verifier, **form}  # fmt: skip
        headers = dict(headers or {})
        if client.client_secret:
            headers |= client.auth_header()
        else:
            data["client_id"] = client.client_id
        return self.http.post("/oauth/token", data=data, headers=headers)

    def code(self, client: ClientCreds | None = None, **extra: str) -> str:
        """A code for alice (signing her in when needed)."""
        client = client or self.first_party
        resp = self.authorize(client, **extra)
        if resp.status_code == 200:
            resp = self.sign_in(resp)
        if resp.status_code == 200 and "Allow access" in resp.get_data(as_text=True):
            resp = self.cont(resp, action="allow")
        return query_of(resp)["code"]


def _client(world, tenant: str, *, public: bool, first_party: bool, **extra: Any) -> ClientCreds:
    from authserver.admin import create_client
    from authserver.models import Tenant, db

    with world.app.app_context():
        created = create_client(
            db.session.get(Tenant, tenant), "Shop app",
            ["authorization_code", "refresh_token"], "none" if public else "client_secret_basic",
            "openid profile email phone devices:read", redirect_uris=[APP, NATIVE],
            post_logout_redirect_uris=["https://app.example.com/bye"], first_party=first_party,
            **extra,
        )  # fmt: skip
        return ClientCreds(created.client.client_id, created.client_secret, tenant)


@pytest.fixture
def flow(app, http, world) -> Flow:
    tenant = world.tenant()
    world.user(tenant, login="alice", password="correct horse")
    return Flow(
        http,
        app,
        tenant,
        _client(world, tenant, public=True, first_party=True),
        _client(world, tenant, public=True, first_party=False),
        _client(world, tenant, public=False, first_party=True),
    )


# -- the whole flow --------------------------------------------------------------------------------


def test_a_person_signs_in_and_the_app_gets_tokens_and_an_id_token(flow, settings):
    page = flow.authorize(flow.first_party)
    assert page.status_code == 200 and 'name="password"' in page.get_data(as_text=True)
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    back = flow.sign_in(page)
    got = query_of(back)
    assert back.headers["Location"].startswith(APP + "?")
    # RFC 9207: iss; RFC 6749 §4.1.2: state unchanged.
    assert got["state"] == "st-1" and got["iss"] == settings.issuer
    resp = flow.token(flow.first_party, got["code"])
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["token_type"] == "Bearer" and body["refresh_token"]
    assert body["scope"] == "openid profile"
    claims = jwt_claims(body["id_token"])
    assert claims["nonce"] == "n-1" and claims["aud"] == flow.first_party.client_id
    assert claims["iss"] == settings.issuer and claims["amr"] == ["pwd"]
    assert claims["acr"] == "urn:authserver:acr:pwd"  # OIDC Core §2: one of acr_values_supported
    assert isinstance(claims["auth_time"], int) and claims["at_hash"]
    info = flow.http.get(
        "/oauth/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert info.status_code == 200 and info.get_json()["sub"] == claims["sub"]
    assert info.get_json()["preferred_username"] == "alice"


def test_userinfo_answers_with_the_claims_of_the_granted_scopes(flow, world):
    """OIDC Core §5.4: profile, email and phone each release their claims; openid alone, none."""
    from authserver.models import User, db

    world.user(flow.tenant, login="bo@example.com", password="correct horse")
    with flow.app.app_context():
        bo = db.session.query(User).filter_by(tenant_id=flow.tenant, login="bo@example.com").one()
        bo.first_name, bo.last_name, bo.phone = "Bo", "Berg", "+48123456789"
        bo.updated_at = 1_800_000_000
        db.session.commit()
    got = {}
    for scope in ("openid", "openid profile email phone"):
        page = flow.authorize(flow.first_party, scope=scope, prompt="login")
        code = query_of(flow.sign_in(page, login="bo@example.com"))["code"]
        token = flow.token(flow.first_party, code).get_json()["access_token"]
        info = flow.http.get("/oauth/userinfo", headers={"Authorization": f"Bearer {token}"})
        got[scope] = info.get_json()
    assert set(got["openid"]) == {"sub", "preferred_username", "tenant"}
    full = got["openid profile email phone"]
    assert (
        full["name"] == "Bo Berg" and full["given_name"] == "Bo" and full["family_name"] == "Berg"
    )
    assert full["updated_at"] == 1_800_000_000
    assert full["email"] == "bo@example.com" and full["email_verified"] is False
    assert full["phone_number"] == "+48123456789"
    # alice's login is no address: no email claim for her.
    token = flow.token(flow.first_party, flow.code(scope="openid email", prompt="login")).get_json()
    info = flow.http.get("/oauth/userinfo",
                         headers={"Authorization": f"Bearer {token['access_token']}"})  # fmt: skip
    assert "email" not in info.get_json()


def test_the_device_page_knows_the_person_an_app_signed_in(flow):
    """One browser session for the server's pages: signed in at an app, /device says who."""
    before = flow.http.get("/device").get_data(as_text=True)
    assert "Signed in as" not in before
    flow.code()
    after = flow.http.get("/device").get_data(as_text=True)
    assert "Signed in as <strong>alice</strong>" in after and 'value="logout"' in after


def test_a_signed_in_person_is_not_asked_again_single_sign_on(flow):
    flow.code()
    again = flow.authorize(flow.confidential)
    assert "code" in query_of(again)  # straight back, no page
    # prompt=login asks anyway; max_age bounds the age of the sign-in.
    assert flow.authorize(flow.first_party, prompt="login").status_code == 200


def test_max_age_asks_for_a_new_sign_in_when_the_last_is_older(flow, clock):
    flow.code()
    clock.advance(30)
    assert "code" in query_of(flow.authorize(flow.first_party, max_age="60"))
    page = flow.authorize(flow.first_party, max_age="10")
    assert page.status_code == 200
    code = query_of(flow.sign_in(page))["code"]
    body = flow.token(flow.first_party, code).get_json()
    assert jwt_claims(body["id_token"])["auth_time"] == int(clock())


def test_prompt_none_without_a_session_is_login_required(flow, settings):
    got = query_of(flow.authorize(flow.first_party, prompt="none"))
    assert got == {
        "error": "login_required",
        "error_description": "Sign-in required.",
        "state": "st-1",
        "iss": settings.issuer,
    }


def test_a_user_with_totp_gives_the_code_from_the_app(flow, clock):
    from authserver import totp
    from authserver.models import User, db

    secret = pyotp.random_base32()
    with flow.app.app_context():
        user = db.session.query(User).filter_by(login="alice", tenant_id=flow.tenant).one()
        user.totp_secret_enc = totp.encrypt(user, secret)
        user.totp_enabled_at = int(clock())
        db.session.commit()
    asked = flow.sign_in(flow.authorize(flow.first_party))
    assert asked.status_code == 200 and 'name="code"' in asked.get_data(as_text=True)
    wrong = flow.cont(asked, action="totp", code="000000")
    assert wrong.status_code == 401
    code = query_of(flow.cont(wrong, action="totp", code=pyotp.TOTP(secret).at(clock())))["code"]
    body = flow.token(flow.first_party, code).get_json()
    assert jwt_claims(body["id_token"])["amr"] == ["pwd", "otp"]
    assert jwt_claims(body["id_token"])["acr"] == "urn:authserver:acr:mfa"


@pytest.mark.parametrize("overrides", [{"sign_in_pages_per_ip": 3}])
def test_sign_in_pages_are_limited_per_address_not_per_app(flow, app):
    """Each sign-in page keeps the request in the store for minutes: one address cannot fill it,
    and the limit is the address's, so others still sign in to the same app."""
    url = flow.authorize(flow.first_party).request.full_path  # one page, this browser's
    for _ in range(2):
        assert app.test_client().get(url).status_code == 200  # new browsers, same address
    over = app.test_client().get(url)
    assert over.status_code == 429 and "Location" not in over.headers
    assert int(over.headers["Retry-After"]) > 0
    # A browser that already has a sign-in going is not charged again.
    assert flow.http.get(url).status_code == 200
    elsewhere = app.test_client().get(url, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert elsewhere.status_code == 200


def test_a_wrong_password_stays_on_the_page(flow):
    page = flow.authorize(flow.first_party)
    wrong = flow.sign_in(page, password="wrong")
    assert wrong.status_code == 401 and "Location" not in wrong.headers
    assert "login or password is wrong" in wrong.get_data(as_text=True)


def test_a_person_of_another_tenant_cannot_sign_in_to_this_app(flow, world):
    other = world.tenant()
    world.user(other, login="bob", password="correct horse")
    wrong = flow.sign_in(flow.authorize(flow.first_party), login="bob")
    assert wrong.status_code == 401


def test_a_form_without_the_session_token_is_refused(flow):
    page = flow.authorize(flow.first_party)
    data = {"interaction": interaction_of(page), "action": "login", "login": "alice",
            "password": "correct horse", "csrf": "forged"}  # fmt: skip
    refused = flow.http.post("/oauth/authorize/continue", data=data)
    assert refused.status_code == 400 and "Location" not in refused.headers


def test_a_form_of_another_interaction_is_refused(flow):
    first = flow.authorize(flow.first_party)
    flow.authorize(flow.first_party, state="st-2")  # a second tab replaces the first
    refused = flow.sign_in(first)
    assert refused.status_code == 400 and "Location" not in refused.headers


def test_cancelling_the_sign_in_is_access_denied(flow):
    got = query_of(flow.cont(flow.authorize(flow.first_party), action="cancel"))
    assert got["error"] == "access_denied" and got["state"] == "st-1"


# -- redirect URIs: never to one that is not registered --------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "https://evil.example/callback",
        APP + "/more",
        APP + "?x=1",
        "https://app.example.com/callback/",
        "HTTPS://app.example.com/callback",
        "http://127.0.0.1:5000/other",
        "http://localhost:5000/cb",
        None,
    ],
)
def test_an_unregistered_redirect_uri_is_never_redirected_to(flow, uri):
    resp = flow.authorize(flow.first_party, redirect_uri=uri)
    assert resp.status_code == 400
    assert "Location" not in resp.headers
    assert "redirect_uri" in resp.get_data(as_text=True)


def test_an_unknown_client_or_a_repeated_client_id_is_shown_not_redirected(flow):
    unknown = flow.http.get("/oauth/authorize?" + urlencode(
        {"client_id": "cli_nobody", "redirect_uri": APP, "response_type": "code"}))  # fmt: skip
    assert unknown.status_code == 400 and "Location" not in unknown.headers
    twice = flow.http.get(
        f"/oauth/authorize?client_id={flow.first_party.client_id}"
        f"&client_id={flow.third_party.client_id}&redirect_uri={APP}&response_type=code"
    )
    assert twice.status_code == 400 and "Location" not in twice.headers


def test_a_native_app_may_use_any_port_on_its_loopback_redirect(flow):
    """RFC 8252 §7.3."""
    uri = "http://127.0.0.1:53127/cb"
    got = query_of(flow.sign_in(flow.authorize(flow.first_party, redirect_uri=uri)))
    assert flow.http  # the answer went to the port the app chose
    resp = flow.token(flow.first_party, got["code"], redirect_uri=uri)
    assert resp.status_code == 200


# -- PKCE ------------------------------------------------------------------------------------------


def test_pkce_is_required_for_every_client_and_only_s256(flow):
    missing = query_of(flow.authorize(flow.confidential, verifier=None))
    assert (
        missing["error"] == "invalid_request" and "code_challenge" in missing["error_description"]
    )
    plain = query_of(flow.authorize(flow.first_party, code_challenge_method="plain"))
    assert plain["error"] == "invalid_request" and "S256" in plain["error_description"]
    no_method = query_of(flow.authorize(flow.first_party, code_challenge_method=None))
    assert no_method["error"] == "invalid_request"


def test_a_wrong_verifier_gets_no_tokens(flow):
    code = flow.code()
    wrong = flow.token(flow.first_party, code, verifier="w" * 43)
    assert wrong.status_code == 400 and wrong.get_json()["error"] == "invalid_grant"
    missing = flow.token(flow.first_party, code, verifier="")
    assert missing.status_code == 400 and missing.get_json()["error"] == "invalid_request"


# -- the code --------------------------------------------------------------------------------------


def test_a_code_is_good_once_and_its_reuse_revokes_what_it_gave(flow):
    code = flow.code()
    first = flow.token(flow.first_party, code).get_json()
    again = flow.token(flow.first_party, code)
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"
    # RFC 6749 §4.1.2: what the first redemption got is revoked.
    me = flow.http.get(
        "/oauth/userinfo", headers={"Authorization": f"Bearer {first['access_token']}"}
    )
    assert me.status_code == 401
    refresh = flow.http.post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": first["refresh_token"],
        "client_id": flow.first_party.client_id})  # fmt: skip
    assert refresh.status_code == 400 and refresh.get_json()["error"] == "invalid_grant"


def test_a_code_of_another_client_is_refused_and_stays_good_for_its_own(flow):
    code = flow.code()
    other = flow.token(flow.confidential, code)
    assert other.status_code == 400 and other.get_json()["error"] == "invalid_grant"
    assert flow.token(flow.first_party, code).status_code == 200


def test_the_redirect_uri_at_the_token_endpoint_must_be_the_same(flow):
    code = flow.code()
    resp = flow.token(flow.first_party, code, redirect_uri="http://127.0.0.1/cb")
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"


def test_a_code_lives_a_minute(flow, clock):
    code = flow.code()
    clock.advance(61)
    resp = flow.token(flow.first_party, code)
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"


def test_a_confidential_client_authenticates_to_redeem(flow):
    code = flow.code(flow.confidential)
    no_secret = flow.http.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": APP,
        "code_verifier": "v" * 43, "client_id": flow.confidential.client_id})  # fmt: skip
    assert no_secret.status_code == 401
    assert flow.token(flow.confidential, code).status_code == 200


def test_codes_are_stored_only_as_hashes(flow):
    from authserver.models import AuthorizationCode, db

    code = flow.code()
    with flow.app.app_context():
        rows = db.session.query(AuthorizationCode).all()
        assert rows and all(code not in (r.code_hash, r.id) for r in rows)


def test_a_used_code_is_kept_while_its_tokens_live_then_purged(flow, settings, clock):
    """A reuse must still find the code to revoke what it gave; after that it is deleted."""
    from authserver.models import AuthorizationCode, db
    from authserver.retention import purge_expired

    code = flow.code()
    flow.token(flow.first_party, code)
    clock.advance(max(settings.purge_grace, settings.access_token_ttl))
    with flow.app.app_context():
        assert purge_expired(db.engine, settings, int(clock()))["authorization_codes"] == 0
    assert flow.token(flow.first_party, code).get_json()["error"] == "invalid_grant"
    clock.advance(61)
    with flow.app.app_context():
        assert purge_expired(db.engine, settings, int(clock()))["authorization_codes"] == 1
        assert db.session.query(AuthorizationCode).count() == 0


# -- consent ---------------------------------------------------------------------------------------


def test_a_third_party_app_asks_for_consent_once(flow):
    page = flow.sign_in(flow.authorize(flow.third_party))
    assert page.status_code == 200 and "Allow access" in page.get_data(as_text=True)
    denied = query_of(flow.cont(page, action="deny"))
    assert denied["error"] == "access_denied" and denied["state"] == "st-1"
    page = flow.authorize(flow.third_party)
    assert "code" in query_of(flow.cont(page, action="allow"))
    assert "code" in query_of(flow.authorize(flow.third_party))  # remembered
    assert flow.authorize(flow.third_party, prompt="consent").status_code == 200
    more = flow.authorize(flow.third_party, scope="openid phone")
    assert more.status_code == 200  # a scope not consented to yet


def test_a_person_sees_and_withdraws_an_apps_consent_and_its_tokens_end(flow):
    third = flow.token(flow.third_party, flow.code(flow.third_party)).get_json()
    own = flow.token(flow.first_party, flow.code()).get_json()
    mine = {"Authorization": f"Bearer {own['access_token']}"}
    listed = flow.http.get("/api/v1/users/me/app-consents", headers=mine)
    assert listed.status_code == 200
    [given] = listed.get_json()["data"]
    assert given["clientId"] == flow.third_party.client_id
    assert given["scope"] == ["openid", "profile"]
    gone = flow.http.delete(f"/api/v1/users/me/app-consents/{flow.third_party.client_id}",
                            headers=mine)  # fmt: skip
    assert gone.status_code == 200
    assert flow.http.get("/api/v1/users/me/app-consents", headers=mine).get_json()["data"] == []
    # The app's tokens for the person end at once, and it asks again.
    bearer = {"Authorization": f"Bearer {third['access_token']}"}
    assert flow.http.get("/oauth/userinfo", headers=bearer).status_code == 401
    refresh = flow.http.post("/oauth/token", data={"grant_type": "refresh_token",
        "refresh_token": third["refresh_token"], "client_id": flow.third_party.client_id})  # fmt: skip
    assert refresh.get_json()["error"] == "invalid_grant"
    assert flow.authorize(flow.third_party).status_code == 200  # the consent page again
    again = flow.http.delete(f"/api/v1/users/me/app-consents/{flow.third_party.client_id}",
                             headers=mine)  # fmt: skip
    assert again.status_code == 404


def test_a_third_party_apps_token_does_not_reach_the_persons_account(flow):
    """Consent covers the scopes an app asked for, never the account's own settings."""
    third = flow.token(flow.third_party, flow.code(flow.third_party)).get_json()
    bearer = {"Authorization": f"Bearer {third['access_token']}"}
    for method, path in (("GET", "/api/v1/users/me"), ("GET", "/api/v1/users/me/app-consents"),
                         ("POST", "/api/v1/users/me/totp/secret")):  # fmt: skip
        assert flow.http.open(path, method=method, headers=bearer).status_code == 403, path
    own = flow.token(flow.first_party, flow.code()).get_json()
    mine = {"Authorization": f"Bearer {own['access_token']}"}
    assert flow.http.get("/api/v1/users/me", headers=mine).status_code == 200


def test_prompt_none_when_consent_is_needed_is_consent_required(flow):
    flow.code()  # signed in through the first-party app
    got = query_of(flow.authorize(flow.third_party, prompt="none"))
    assert got["error"] == "consent_required"


# -- PAR (RFC 9126) --------------------------------------------------------------------------------


def _push(flow: Flow, client: ClientCreds, headers: Any = None, **extra: str) -> Any:
    data = {"response_type": "code", "redirect_uri": APP, "scope": "openid",
            "code_challenge": s256("v" * 43), "code_challenge_method": "S256", "state": "p-1",
            **extra}  # fmt: skip
    headers = dict(headers or {})
    if client.client_secret:
        headers |= client.auth_header()
    else:
        data["client_id"] = client.client_id
    return flow.http.post("/oauth/par", data=data, headers=headers)


def test_a_pushed_request_is_used_once(flow):
    pushed = _push(flow, flow.confidential)
    assert pushed.status_code == 201, pushed.get_json()
    uri = pushed.get_json()["request_uri"]
    assert uri.startswith("urn:ietf:params:oauth:request_uri:")
    assert pushed.get_json()["expires_in"] == 60
    url = "/oauth/authorize?" + urlencode(
        {"client_id": flow.confidential.client_id, "request_uri": uri}
    )
    got = query_of(flow.sign_in(flow.http.get(url)))
    assert got["state"] == "p-1"
    assert flow.token(flow.confidential, got["code"]).status_code == 200
    again = flow.http.get(url)
    assert again.status_code == 400 and "Location" not in again.headers


def test_a_pushed_request_is_checked_when_pushed(flow):
    bad = _push(flow, flow.confidential, redirect_uri="https://evil.example/cb")
    assert bad.status_code == 400 and bad.get_json()["error"] == "invalid_request"
    plain = _push(flow, flow.confidential, code_challenge_method="plain")
    assert plain.status_code == 400 and plain.get_json()["error"] == "invalid_request"
    wrong_secret = flow.http.post("/oauth/par", data={"redirect_uri": APP},
                                  headers=ClientCreds(flow.confidential.client_id, "nope", "").auth_header())  # fmt: skip
    assert wrong_secret.status_code == 401


def test_a_pushed_request_belongs_to_the_client_that_pushed_it(flow):
    uri = _push(flow, flow.first_party).get_json()["request_uri"]
    other = flow.http.get("/oauth/authorize?" + urlencode(
        {"client_id": flow.third_party.client_id, "request_uri": uri}))  # fmt: skip
    assert other.status_code == 400 and "Location" not in other.headers


def test_a_client_that_must_push_cannot_send_its_request_in_the_url(flow, world):
    strict = _client(world, flow.tenant, public=True, first_party=True, require_par=True)
    got = query_of(flow.authorize(strict))
    assert got["error"] == "invalid_request" and "pushed" in got["error_description"]
    uri = _push(flow, strict).get_json()["request_uri"]
    page = flow.http.get("/oauth/authorize?" + urlencode(
        {"client_id": strict.client_id, "request_uri": uri}))  # fmt: skip
    assert "code" in query_of(flow.sign_in(page))


# -- DPoP (RFC 9449 §10) ---------------------------------------------------------------------------


def test_dpop_jkt_binds_the_code_to_the_key(flow, settings, clock):
    key, other = DPoPKey(), DPoPKey()
    code = flow.code(dpop_jkt=key.jkt)
    url = f"{settings.issuer}/oauth/token"
    without = flow.token(flow.first_party, code)
    assert without.status_code == 400 and without.get_json()["error"] == "invalid_dpop_proof"
    wrong = flow.token(
        flow.first_party, code, headers={"DPoP": other.proof("POST", url, iat=clock())}
    )
    assert wrong.status_code == 400 and wrong.get_json()["error"] == "invalid_dpop_proof"
    ok = flow.token(flow.first_party, code, headers={"DPoP": key.proof("POST", url, iat=clock())})
    assert ok.status_code == 200, ok.get_json()
    assert ok.get_json()["token_type"] == "DPoP"
    assert jwt_claims(ok.get_json()["access_token"])["cnf"] == {"jkt": key.jkt}


def test_a_proof_at_the_pushed_request_binds_the_code(flow, settings, clock):
    key = DPoPKey()
    proof = key.proof("POST", f"{settings.issuer}/oauth/par", iat=clock())
    pushed = _push(flow, flow.first_party, headers={"DPoP": proof})
    assert pushed.status_code == 201, pushed.get_json()
    page = flow.http.get("/oauth/authorize?" + urlencode(
        {"client_id": flow.first_party.client_id, "request_uri": pushed.get_json()["request_uri"]}))  # fmt: skip
    code = query_of(flow.sign_in(page))["code"]
    assert flow.token(flow.first_party, code).get_json()["error"] == "invalid_dpop_proof"


def test_a_malformed_dpop_jkt_is_refused(flow):
    got = query_of(flow.authorize(flow.first_party, dpop_jkt="not-a-thumbprint"))
    assert got["error"] == "invalid_request"


# -- RP-initiated logout ---------------------------------------------------------------------------


def test_logout_with_the_id_token_returns_to_a_registered_uri_and_ends_the_session(flow):
    code = flow.code()
    id_token = flow.token(flow.first_party, code).get_json()["id_token"]
    resp = flow.http.get("/oauth/logout?" + urlencode({
        "id_token_hint": id_token, "post_logout_redirect_uri": "https://app.example.com/bye",
        "state": "bye-1"}))  # fmt: skip
    assert resp.status_code == 303, resp.get_data(as_text=True)
    assert resp.headers["Location"] == "https://app.example.com/bye?state=bye-1"
    assert query_of(flow.authorize(flow.first_party, prompt="none"))["error"] == "login_required"


@pytest.mark.parametrize("target", ["https://evil.example/", "https://app.example.com/bye/..", APP])
def test_logout_never_redirects_to_an_unregistered_uri(flow, target):
    code = flow.code()
    id_token = flow.token(flow.first_party, code).get_json()["id_token"]
    resp = flow.http.get("/oauth/logout?" + urlencode(
        {"id_token_hint": id_token, "post_logout_redirect_uri": target}))  # fmt: skip
    assert resp.status_code == 400 and "Location" not in resp.headers


def test_logout_without_a_hint_asks_first(flow):
    flow.code()
    page = flow.http.get("/oauth/logout")
    assert page.status_code == 200 and "Sign out" in page.get_data(as_text=True)
    # Nothing happened yet: still signed in.
    assert "code" in query_of(flow.authorize(flow.first_party, prompt="none"))
    handle = re.search(r'name="logout" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    done = flow.http.post("/oauth/logout", data={"csrf": csrf_of(page), "logout": handle})
    assert done.status_code == 200 and "signed out" in done.get_data(as_text=True)
    assert query_of(flow.authorize(flow.first_party, prompt="none"))["error"] == "login_required"


def test_a_forged_id_token_hint_is_refused(flow):
    code = flow.code()
    id_token = flow.token(flow.first_party, code).get_json()["id_token"]
    head, payload, sig = id_token.split(".")
    forged = f"{head}.{payload}.{sig[:-4]}AAAA"
    resp = flow.http.get("/oauth/logout?" + urlencode({"id_token_hint": forged}))
    assert resp.status_code == 400


# -- requests that are malformed -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": None}, "invalid_request"),
        ({"scope": "openid admin:everything"}, "invalid_scope"),
        ({"prompt": "none login"}, "invalid_request"),
        ({"prompt": "select_account"}, "invalid_request"),
        ({"max_age": "-1"}, "invalid_request"),
        ({"response_mode": "fragment"}, "invalid_request"),
        ({"request": "eyJ..."}, "request_not_supported"),
    ],
)
def test_a_malformed_request_goes_back_to_the_app_with_its_error(flow, extra, error):
    got = query_of(flow.authorize(flow.first_party, **extra))
    assert got["error"] == error and got["state"] == "st-1"


def test_a_repeated_parameter_is_invalid_request(flow):
    url = flow.authorize(flow.first_party).request.full_path + "&scope=openid"
    got = query_of(flow.http.get(url))
    assert got["error"] == "invalid_request"


def test_a_client_without_the_grant_is_unauthorized_client(flow, world):
    from authserver.models import Client, db

    with flow.app.app_context():
        db.session.get(Client, flow.first_party.client_id).grant_types = ["refresh_token"]
        db.session.commit()
    assert query_of(flow.authorize(flow.first_party))["error"] == "unauthorized_client"


def test_registration_refuses_unsafe_redirect_uris(app, world):
    from authserver.admin import AdminError, create_client
    from authserver.models import Tenant, db

    tenant = world.tenant()
    with app.app_context():
        for bad in ("http://app.example.com/cb", "https://app.example.com/cb#frag",
                    "javascript:alert(1)", "myapp:/cb", "http://localhost/cb", "/relative"):  # fmt: skip
            with pytest.raises(AdminError):
                create_client(db.session.get(Tenant, tenant), "x", ["authorization_code"],
                              "none", "openid", redirect_uris=[bad])  # fmt: skip
        with pytest.raises(AdminError):
            create_client(db.session.get(Tenant, tenant), "x", ["authorization_code"], "none", "")
        ok = create_client(db.session.get(Tenant, tenant), "x", ["authorization_code"], "none",
                           "", redirect_uris=["com.example.shop:/cb", "http://[::1]/cb"])  # fmt: skip
        assert ok.client.redirect_uris == ["com.example.shop:/cb", "http://[::1]/cb"]


def test_the_state_and_nonce_pass_through_unchanged(flow):
    state = secrets.token_urlsafe(40) + "+/ &=?"
    nonce = "nonce with spaces & symbols"
    got = query_of(flow.sign_in(flow.authorize(flow.first_party, state=state, nonce=nonce)))
    assert got["state"] == state
    body = flow.token(flow.first_party, got["code"]).get_json()
    assert jwt_claims(body["id_token"])["nonce"] == nonce


# -- kinds of people: staff apps and customer apps ------------------------------------------------


def test_an_app_admits_only_its_kind_of_person(flow, world):
    """A back office for staff refuses a customer's sign-in (and the other way round), on the
    page, without a code; a signed-in customer opening the staff app is asked for another
    account, and with prompt=none the app hears login_required."""
    world.user(flow.tenant, login="cara@example.com", password="correct horse", kind="customer")
    staff_app = _client(world, flow.tenant, public=True, first_party=True, user_kind="staff")
    shop_app = _client(world, flow.tenant, public=True, first_party=True, user_kind="customer")
    refused = flow.sign_in(flow.authorize(staff_app), login="cara@example.com")
    assert refused.status_code == 403 and "Location" not in refused.headers
    assert "This app is for staff" in refused.get_data(as_text=True)
    # The same page lets a staff member sign in instead.
    assert "code" in query_of(flow.sign_in(refused, login="alice"))
    refused = flow.sign_in(flow.authorize(shop_app), login="alice")
    assert refused.status_code == 403
    assert "This app is for customers" in refused.get_data(as_text=True)
    assert "code" in query_of(flow.sign_in(refused, login="cara@example.com"))
    # Cara is signed in now (SSO): the staff app does not take her session.
    page = flow.authorize(staff_app)
    assert page.status_code == 200 and "This app is for staff" in page.get_data(as_text=True)
    assert query_of(flow.authorize(staff_app, prompt="none"))["error"] == "login_required"
    assert "code" in query_of(flow.authorize(shop_app, prompt="none"))


def test_a_customers_token_never_carries_a_scope_that_manages_the_tenant(flow, world):
    """RFC 6749 §3.3: the server issues less than asked; the token response says what it gave."""
    world.user(flow.tenant, login="cara@example.com", password="correct horse", kind="customer")
    both = _client(world, flow.tenant, public=True, first_party=True)  # any kind
    page = flow.authorize(both, scope="openid profile devices:read")
    code = query_of(flow.sign_in(page, login="cara@example.com"))["code"]
    body = flow.token(both, code).get_json()
    assert body["scope"] == "openid profile"
    assert jwt_claims(body["access_token"])["scope"] == "openid profile"
    # Staff get what they asked for from the same app.
    page = flow.authorize(both, scope="openid profile devices:read", prompt="login")
    code = query_of(flow.sign_in(page))["code"]
    assert flow.token(both, code).get_json()["scope"] == "openid profile devices:read"
    # Nothing left for a customer: the app hears access_denied.
    page = flow.authorize(both, scope="devices:read", prompt="login")
    got = query_of(flow.sign_in(page, login="cara@example.com"))
    assert got["error"] == "access_denied" and "code" not in got


def test_a_client_that_changes_whom_it_admits_ends_its_tokens(flow, world, app):
    from authserver.admin import find_client, update_client

    body = flow.token(flow.first_party, flow.code()).get_json()
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    assert flow.http.get("/oauth/userinfo", headers=bearer).status_code == 200
    with app.app_context():
        update_client(find_client(flow.first_party.client_id), user_kind="customer")
    assert flow.http.get("/oauth/userinfo", headers=bearer).status_code == 401
    refreshed = flow.http.post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": body["refresh_token"],
        "client_id": flow.first_party.client_id,
    })  # fmt: skip
    assert refreshed.status_code == 400 and refreshed.get_json()["error"] == "invalid_grant"
