"""``/api/v1/clients``: a tenant registers its apps and services over HTTP, never gaining through
a client what its own token does not hold."""

from __future__ import annotations

import pytest

from tests.conftest import ClientCreds, cc_token
from tests.grants.test_authorization_code import APP, Flow, jwt_claims

CLIENTS = "/api/v1/clients"
MANAGE = "clients:read clients:write"
WEB_APP = {
    "name": "Back-office web app",
    "grantTypes": ["authorization_code", "refresh_token"],
    "scope": "openid profile devices:read",
    "redirectUris": [APP],
    "postLogoutRedirectUris": ["https://app.example.com/bye"],
    "firstParty": True,
    "userKind": "staff",
}


@pytest.fixture
def t(reg):
    return reg.tenant()


def manager(reg, world, t, scope: str = MANAGE) -> str:
    creds = world.client(t.id, scope=scope)
    return cc_token(reg.http, creds).get_json()["access_token"]


@pytest.fixture
def admin(reg, world, t):
    """A service token that manages clients and holds the registry and people scopes too."""
    return manager(reg, world, t, f"{MANAGE} devices:read devices:write users:write")


def create(reg, token, status=201, **body):
    resp = reg.call("POST", CLIENTS, token, json=body)
    assert resp.status_code == status, resp.get_json()
    return resp


def events(app, tenant_id: str) -> list[tuple[str, str, str]]:
    with app.app_context():
        from sqlalchemy import select

        from authserver.models import AuditEvent, db

        rows = db.session.scalars(
            select(AuditEvent).where(AuditEvent.tenant_id == tenant_id,
                                     AuditEvent.type.like("client.%"))
            .order_by(AuditEvent.id)
        )  # fmt: skip
        return [(e.type, e.actor, (e.data or {}).get("client_id")) for e in rows]


def test_a_web_app_registered_over_the_api_signs_a_person_in(reg, world, t, admin, app):
    made = create(reg, admin, **WEB_APP)
    assert made.headers["Cache-Control"] == "no-store"
    data = made.get_json()["data"]
    secret = data.pop("clientSecret")
    assert len(secret) >= 32 and data["clientId"].startswith("cli_")
    assert data == {
        **data, "name": "Back-office web app", "tokenEndpointAuthMethod": "client_secret_basic",
        "grantTypes": ["authorization_code", "refresh_token"], "scope": "openid profile devices:read",
        "redirectUris": [APP], "postLogoutRedirectUris": ["https://app.example.com/bye"],
        "firstParty": True, "requirePushedAuthorizationRequests": False,
        "idTokenSignedResponseAlg": "RS256", "userKind": "staff", "active": True,
        "dpopBoundAccessTokens": False,
    }  # fmt: skip
    # The secret is never shown again, nor kept readable.
    shown = reg.call("GET", f"{CLIENTS}/{data['clientId']}", admin)
    assert shown.status_code == 200 and shown.get_json()["data"] == data
    listed = reg.call("GET", CLIENTS, admin).get_json()
    assert secret not in str(listed) and data in listed["data"]
    with app.app_context():
        from authserver.models import Client, db

        assert secret not in str(db.session.get(Client, data["clientId"]).secret_hash)
    # The app works: a person signs in through the code flow and it redeems the code.
    world.user(t.id, login="alice", password="correct horse")
    web = ClientCreds(data["clientId"], secret, t.id)
    flow = Flow(reg.http, app, t.id, web, web, web)
    tokens = flow.token(web, flow.code(web))
    assert tokens.status_code == 200, tokens.get_json()
    assert tokens.get_json()["id_token"] and tokens.get_json()["scope"] == "openid profile"
    # A redirect URI it does not have is never redirected to.
    wrong = flow.authorize(web, redirect_uri="https://app.example.com/other")
    assert wrong.status_code == 400 and "Location" not in wrong.headers


def test_a_service_is_registered_and_its_secret_reset_over_the_api(reg, t, admin, app):
    made = create(reg, admin, name="ERP sync", grantTypes=["client_credentials"],
                  scope="devices:read").get_json()["data"]  # fmt: skip
    creds = ClientCreds(made["clientId"], made["clientSecret"], t.id)
    assert cc_token(reg.http, creds).status_code == 200
    reset = reg.call("POST", f"{CLIENTS}/{made['clientId']}/secret", admin)
    assert reset.status_code == 200 and reset.headers["Cache-Control"] == "no-store"
    fresh = reset.get_json()["data"]
    assert fresh["clientId"] == made["clientId"] and fresh["clientSecret"] != made["clientSecret"]
    assert cc_token(reg.http, creds).status_code == 401  # the old secret stops at once
    assert cc_token(reg.http, ClientCreds(made["clientId"], fresh["clientSecret"], t.id)
                    ).status_code == 200  # fmt: skip
    public = create(reg, admin, name="Kiosk", grantTypes=["urn:ietf:params:oauth:grant-type:"
                    "device_code"], tokenEndpointAuthMethod="none").get_json()["data"]  # fmt: skip
    assert "clientSecret" not in public
    assert reg.call("POST", f"{CLIENTS}/{public['clientId']}/secret", admin).status_code == 400


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"grantTypes": ["authorization_code"]}, None),  # no redirect URI
        ({"grantTypes": ["password"]}, "grantTypes"),
        ({"grantTypes": []}, "grantTypes"),
        ({"grantTypes": ["authorization_code"], "redirectUris": ["http://app.example/cb"]}, None),
        ({"grantTypes": ["authorization_code"], "redirectUris": ["https://a.example/#x"]}, None),
        ({"grantTypes": ["client_credentials"], "scope": "no-such-scope"}, None),
        ({"grantTypes": ["client_credentials"], "scope": "a  b"}, "scope"),
        ({"grantTypes": ["client_credentials"], "tokenEndpointAuthMethod": "none"}, None),
        (
            {"grantTypes": ["client_credentials"], "tokenEndpointAuthMethod": "private_key_jwt"},
            "tokenEndpointAuthMethod",
        ),  # fmt: skip
        ({"grantTypes": ["client_credentials"], "idTokenSignedResponseAlg": "HS256"}, None),
        ({"grantTypes": ["client_credentials"], "userKind": "robot"}, "userKind"),
        ({"grantTypes": ["client_credentials"], "redirectUris": ["x"] * 21}, "redirectUris"),
        ({"grantTypes": ["client_credentials"], "clientId": "cli_mine"}, None),  # ids are made
        ({"grantTypes": ["client_credentials"], "name": ""}, "name"),
    ],
)
def test_a_client_that_cannot_work_is_refused_with_the_reason(reg, admin, body, field):
    before = reg.call("GET", CLIENTS, admin).get_json()["data"]
    resp = reg.call("POST", CLIENTS, admin, json={"name": "App", **body})
    assert resp.status_code == 400, resp.get_json()
    assert resp.get_json()["type"].endswith("validation-error")
    if field:
        assert resp.get_json()["field"] == field
    assert reg.call("GET", CLIENTS, admin).get_json()["data"] == before  # nothing was made


def test_no_token_gains_through_a_client_what_it_does_not_hold(reg, world, t, admin):
    """A clients:write token cannot make, widen, redirect, re-secret or delete a client that
    has (or would get) a managing scope the token lacks; person scopes are free to give."""
    narrow = manager(reg, world, t)  # clients:read clients:write only
    refused = reg.call(
        "POST",
        CLIENTS,
        narrow,
        json={"name": "Escalate", "grantTypes": ["client_credentials"], "scope": "users:write"},
    )
    assert refused.status_code == 403 and "users:write" in refused.get_json()["detail"]
    person_scopes = {**WEB_APP, "scope": "openid profile offline_access"}
    # A first-party app skips consent and reaches people's accounts: it needs users:write.
    first = reg.call("POST", CLIENTS, narrow, json=person_scopes)
    assert first.status_code == 403 and "users:write" in first.get_json()["detail"]
    app_ = create(reg, narrow, **{**person_scopes, "firstParty": False})
    own = app_.get_json()["data"]["clientId"]
    to_first = reg.call("PATCH", f"{CLIENTS}/{own}", narrow, json={"firstParty": True})
    assert to_first.status_code == 403
    widen = reg.call("PATCH", f"{CLIENTS}/{own}", narrow, json={"scope": "openid devices:read"})
    assert widen.status_code == 403
    # A client made by a stronger token is out of the narrow token's reach entirely.
    strong = create(reg, admin, **WEB_APP).get_json()["data"]["clientId"]
    for method, path, body in [
        ("PATCH", f"{CLIENTS}/{strong}", {"redirectUris": ["https://evil.example/cb"]}),
        ("PATCH", f"{CLIENTS}/{strong}", {"name": "Renamed"}),
        ("PATCH", f"{CLIENTS}/{strong}", {"active": False}),
        ("POST", f"{CLIENTS}/{strong}/secret", None),
        ("DELETE", f"{CLIENTS}/{strong}", None),
    ]:
        resp = reg.call(method, path, narrow, json=body)
        assert resp.status_code == 403, (method, path, resp.get_json())
    got = reg.call("GET", f"{CLIENTS}/{strong}", narrow).get_json()["data"]
    assert got["redirectUris"] == [APP] and got["name"] == WEB_APP["name"]
    # Taking the managing scope and first-party trust away brings it within reach.
    narrowed = reg.call("PATCH", f"{CLIENTS}/{strong}", admin,
                        json={"scope": "openid", "firstParty": False})  # fmt: skip
    assert narrowed.status_code == 200
    assert reg.call("PATCH", f"{CLIENTS}/{strong}", narrow,
                    json={"name": "Renamed"}).status_code == 200  # fmt: skip


def test_a_client_of_another_tenant_is_not_found(reg, world, t, admin):
    other = reg.tenant()
    theirs = create(reg, manager(reg, world, other), name="Theirs",
                    grantTypes=["client_credentials"]).get_json()["data"]["clientId"]  # fmt: skip
    for method, path in [("GET", f"{CLIENTS}/{theirs}"), ("PATCH", f"{CLIENTS}/{theirs}"),
                         ("DELETE", f"{CLIENTS}/{theirs}"),
                         ("POST", f"{CLIENTS}/{theirs}/secret")]:  # fmt: skip
        resp = reg.call(method, path, admin, json={"name": "Mine"} if method == "PATCH" else None)
        assert resp.status_code == 404, (method, resp.get_json())
    assert theirs not in str(reg.call("GET", CLIENTS, admin).get_json())


def test_disabling_or_deleting_a_client_ends_its_tokens_and_is_audited(reg, t, admin, app):
    made = create(reg, admin, name="ERP sync", grantTypes=["client_credentials"],
                  scope="devices:read").get_json()["data"]  # fmt: skip
    cid = made["clientId"]
    creds = ClientCreds(cid, made["clientSecret"], t.id)
    token = cc_token(reg.http, creds).get_json()["access_token"]
    assert reg.call("GET", "/api/v1/devices", token).status_code == 200
    off = reg.call("PATCH", f"{CLIENTS}/{cid}", admin, json={"active": False, "name": "ERP"})
    assert off.status_code == 200 and off.get_json()["data"]["active"] is False
    assert off.get_json()["data"]["name"] == "ERP"
    assert reg.call("GET", "/api/v1/devices", token).status_code == 401
    assert cc_token(reg.http, creds).status_code == 401
    on = reg.call("PATCH", f"{CLIENTS}/{cid}", admin, json={"active": True})
    assert on.get_json()["data"]["active"] is True
    token = cc_token(reg.http, creds).get_json()["access_token"]
    reg.call("POST", f"{CLIENTS}/{cid}/secret", admin)
    gone = reg.call("DELETE", f"{CLIENTS}/{cid}", admin)
    assert gone.status_code == 200 and gone.get_json()["data"] == {"clientId": cid, "deleted": True}
    assert reg.call("GET", "/api/v1/devices", token).status_code == 401
    assert reg.call("GET", f"{CLIENTS}/{cid}", admin).status_code == 404
    assert reg.call("DELETE", f"{CLIENTS}/{cid}", admin).status_code == 404
    caller = [e for e in events(app, t.id) if e[2] == cid]
    assert [e[0] for e in caller] == ["client.created", "client.updated", "client.disabled",
                                      "client.enabled", "client.secret_rotated",
                                      "client.deleted"]  # fmt: skip
    assert {e[1] for e in caller} == {jwt_client(admin)}  # the acting service


def jwt_client(token: str) -> str:
    return str(jwt_claims(token)["client_id"])


def test_a_narrower_scope_reaches_the_next_refresh(reg, t, admin):
    """A scope taken from a client is not given again by refreshing an older grant; a grant
    left with nothing the client may have is refused (invalid_scope)."""
    _, tokens, key = reg.linked_device(t)
    url = reg.settings.issuer + "/oauth/token"

    def refresh(refresh_token: str):
        return reg.http.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh_token,
                  "client_id": t.pos.client_id},
            headers={"DPoP": key.proof("POST", url, iat=reg.now())},
        )  # fmt: skip

    assert tokens["scope"] == "devices:read devices:write"
    cut = reg.call("PATCH", f"{CLIENTS}/{t.pos.client_id}", admin, json={"scope": "devices:read"})
    assert cut.status_code == 200, cut.get_json()
    again = refresh(tokens["refresh_token"])
    assert again.status_code == 200, again.get_json()
    assert again.get_json()["scope"] == "devices:read"
    reg.call("PATCH", f"{CLIENTS}/{t.pos.client_id}", admin, json={"scope": None})
    none = refresh(again.get_json()["refresh_token"])
    assert none.status_code == 400 and none.get_json()["error"] == "invalid_scope"


def test_lists_page_by_name_and_refuse_unknown_filters(reg, admin):
    for name in ("Charlie", "alpha", "Bravo"):
        create(reg, admin, name=name, grantTypes=["client_credentials"])
    whole = reg.call("GET", CLIENTS, admin).get_json()["data"]
    assert len(whole) == 7  # the world's four (services, the POS app, this caller) and three
    # By name in the database's collation (case-insensitive ones put alpha first).
    assert {"Charlie", "alpha", "Bravo"} <= {c["name"] for c in whole}
    walked, cursor = [], ""
    while True:
        page = reg.call("GET", f"{CLIENTS}?limit=2{cursor}", admin).get_json()
        walked += page["data"]
        if not page["hasMore"]:
            break
        cursor = f"&cursor={page['nextCursor']}"
    assert walked == whole
    assert reg.call("GET", f"{CLIENTS}?grantType=x", admin).status_code == 400


@pytest.mark.parametrize(
    ("caller", "read", "write"),
    [
        ("service clients:write", 200, 201),
        ("service clients:read", 200, 403),
        ("service tenant:write", 403, 403),
        ("service users:write", 403, 403),
        ("TENANT.ADMIN", 200, 201),
        ("SU", 200, 201),
        ("USER.MANAGER", 403, 403),
        ("DEVICE.MANAGER", 403, 403),
        ("STAFF", 403, 403),
        ("device", 403, 403),
        ("none", 401, 401),
    ],
)
def test_who_may_read_and_register_clients(reg, t, world, caller, read, write):
    key = None
    if caller.startswith("service"):
        scope = {"clients:write": MANAGE, "clients:read": "clients:read",
                 "tenant:write": "tenant:read tenant:write",
                 "users:write": "users:read users:write"}[caller.split(" ")[1]]  # fmt: skip
        token = manager(reg, world, t, scope)
    elif caller == "device":
        # A terminal whose client has the scopes: refused for being a device, not for scope.
        with reg.app.app_context():
            from authserver.models import Client, db

            db.session.get(Client, t.pos.client_id).scope = f"devices:read {MANAGE}"
            db.session.commit()
        _, tokens, key = reg.linked_device(t)
        token = tokens["access_token"]
        assert "clients:write" in tokens["scope"]
    elif caller == "none":
        token = None
    else:
        token = reg.user_token(t, "caller", (caller,), scope=f"devices:read {MANAGE}")
    assert reg.call("GET", CLIENTS, token, key=key).status_code == read
    body = {"name": "App", "grantTypes": ["client_credentials"]}
    made = reg.call("POST", CLIENTS, token, key=key, json=body)
    assert made.status_code == write, made.get_json()


def test_a_customer_never_gets_a_scope_that_manages_clients(reg, world, t):
    world.user(t.id, login="cust", password="correct horse", kind="customer")
    token = reg.user_token(t, "cust", scope=f"openid {MANAGE}", create=False)
    assert reg.call("GET", CLIENTS, token).status_code == 403
    claims = jwt_claims(token)
    assert claims["scope"] == "openid"  # what a customer may have of what the app asked for


def test_a_change_is_whole_or_nothing(reg, admin):
    made = create(reg, admin, **WEB_APP).get_json()["data"]
    path = f"{CLIENTS}/{made['clientId']}"
    bad = reg.call(
        "PATCH",
        path,
        admin,
        json={"name": "Renamed", "active": False, "redirectUris": ["http://evil.example/cb"]},
    )
    assert bad.status_code == 400
    assert reg.call("GET", path, admin).get_json()["data"] == {
        k: v for k, v in made.items() if k != "clientSecret"
    }
    public = create(
        reg,
        admin,
        name="Phone app",
        grantTypes=["authorization_code"],
        tokenEndpointAuthMethod="none",
        redirectUris=["com.example.app:/cb"],
    )
    wider = reg.call(
        "PATCH",
        f"{CLIENTS}/{public.get_json()['data']['clientId']}",
        admin,
        json={"grantTypes": ["authorization_code", "client_credentials"]},
    )
    assert wider.status_code == 400  # RFC 6749 §4.4: client credentials are confidential's
    # A repeated grant type is one choice; null sets the ID tokens' algorithm back to RS256.
    again = reg.call(
        "PATCH",
        path,
        admin,
        json={"grantTypes": ["authorization_code"] * 7, "idTokenSignedResponseAlg": "ES256"},
    )
    assert again.get_json()["data"]["grantTypes"] == ["authorization_code"]
    assert again.get_json()["data"]["idTokenSignedResponseAlg"] == "ES256"
    back = reg.call("PATCH", path, admin, json={"idTokenSignedResponseAlg": None})
    assert back.get_json()["data"]["idTokenSignedResponseAlg"] == "RS256"


def test_a_narrower_scope_reaches_a_device_code_approved_before(reg, world, t, admin):
    """What a client lost between the device authorization and the redemption is not issued."""
    from authserver.models import Client, db
    from tests.device_helpers import DEVICE_GRANT, approve, poll, start

    signin = world.client(t.id, grant_types=(DEVICE_GRANT,), auth_method="none",
                          scope="openid devices:read devices:write")  # fmt: skip
    with reg.app.app_context():
        db.session.get(Client, signin.client_id).device_subject = "user"
        db.session.commit()
    body = start(reg.http, signin.client_id).get_json()
    approve(reg.app, body["user_code"], "admin")
    cut = reg.call("PATCH", f"{CLIENTS}/{signin.client_id}", admin,
                   json={"scope": "openid devices:read"})  # fmt: skip
    assert cut.status_code == 200
    got = poll(reg.http, signin.client_id, body["device_code"])
    assert got.status_code == 200 and got.get_json()["scope"] == "openid devices:read"
