"""Tenant properties and the public configuration (seed 002 "tenant") over HTTP."""

from __future__ import annotations

import pytest

from tests.conftest import cc_token

PROPS = "/api/v1/tenant/properties"


@pytest.fixture
def t(reg):
    return reg.tenant()


@pytest.fixture
def admin(reg, world, t):
    creds = world.client(t.id, scope="tenant:read tenant:write")
    return cc_token(reg.http, creds).get_json()["access_token"]


def put(reg, token, name, status=None, **body):
    resp = reg.call("PUT", f"{PROPS}/{name}", token, json=body)
    if status is not None:
        assert resp.status_code == status, resp.get_json()
    return resp


def test_properties_are_set_listed_and_deleted(reg, admin):
    created = put(reg, admin, "theme.colour", 201, value="#0a5")
    assert created.get_json()["data"] == {
        **created.get_json()["data"], "property": "theme.colour", "value": "#0a5",
        "isPrivate": False, "isObfuscate": False,
    }  # fmt: skip
    assert put(reg, admin, "theme.colour", 200, value="#0b6").get_json()["data"]["value"] == "#0b6"
    put(reg, admin, "erp.url", 201, value="https://erp.example", isPrivate=True)
    names = [p["property"] for p in reg.call("GET", PROPS, admin).get_json()["data"]]
    assert names == ["erp.url", "theme.colour"]
    private = reg.call("GET", f"{PROPS}?isPrivate=true", admin).get_json()["data"]
    assert [p["property"] for p in private] == ["erp.url"]
    assert [p["property"] for p in reg.call("GET", f"{PROPS}?property=theme", admin)
            .get_json()["data"]] == ["theme.colour"]  # fmt: skip
    page = reg.call("GET", f"{PROPS}?limit=1", admin).get_json()
    rest = reg.call("GET", f"{PROPS}?limit=1&cursor={page['nextCursor']}", admin).get_json()
    assert [p["property"] for p in page["data"] + rest["data"]] == names
    assert reg.call("DELETE", f"{PROPS}/erp.url", admin).status_code == 200
    assert reg.call("DELETE", f"{PROPS}/erp.url", admin).status_code == 404
    for bad in ("bad name", "x" * 65):
        assert put(reg, admin, bad, value="v").status_code in (400, 404)
    assert put(reg, admin, "ok", value=1).status_code == 400
    # The schema's own path is not a property name (it could never be read back on its own).
    reserved = put(reg, admin, "schema", value="v")
    assert reserved.status_code == 400 and reserved.get_json()["field"] == "property"
    assert reg.call("PATCH", "/api/v1/tenant/config", admin,
                    json={"schema": "v"}).status_code == 400  # fmt: skip
    assert put(reg, admin, "ok", value="v" * 4001).status_code == 400
    schema = reg.call("GET", f"{PROPS}/schema", admin).get_json()["data"]
    assert set(schema["properties"]) == {"value", "isPrivate", "isObfuscate"}


def test_an_obfuscated_value_is_never_shown_again_and_is_encrypted(reg, admin, app, t):
    put(reg, admin, "psp.apiKey", 201, value="sk_live_51Hsecret", isObfuscate=True, isPrivate=True)
    listed = reg.call("GET", PROPS, admin).get_json()["data"]
    assert listed[0]["value"] == "********" and listed[0]["isObfuscate"] is True
    # Setting it again without the flag keeps it a secret.
    again = put(reg, admin, "psp.apiKey", 200, value="sk_live_new", isObfuscate=False)
    assert again.get_json()["data"]["value"] == "********"
    assert "sk_live" not in str(reg.call("GET", PROPS, admin).get_json())
    with app.app_context():
        from authserver import tenant_config
        from authserver.models import TenantProperty, db

        prop = db.session.get(TenantProperty, (t.id, "psp.apiKey"))
        assert prop.value is None and b"sk_live" not in prop.value_enc
        assert tenant_config.secret_value(prop) == "sk_live_new"  # the server can use it


def test_the_public_config_is_for_front_apps_and_never_shows_private_ones(reg, admin, t, world):
    put(reg, admin, "theme.colour", 201, value="#0a5")
    put(reg, admin, "theme.logo", 201, value="https://cdn.example/logo.svg")
    put(reg, admin, "erp.url", 201, value="https://erp.internal", isPrivate=True)
    put(reg, admin, "maps.key", 201, value="AIza-secret", isObfuscate=True)
    expected = {"maps.key": "********", "theme.colour": "#0a5",
                "theme.logo": "https://cdn.example/logo.svg"}  # fmt: skip
    # Without a token, by the tenant's id; with any token of the tenant (a device's too).
    anonymous = reg.http.get(f"/api/v1/tenant/config?tenant={t.id}")
    assert anonymous.status_code == 200 and anonymous.get_json()["data"] == expected
    _, tokens, key = reg.linked_device(t)
    by_device = reg.call("GET", "/api/v1/tenant/config?filter=theme.", tokens["access_token"],
                         key=key)  # fmt: skip
    assert by_device.get_json()["data"] == {k: v for k, v in expected.items() if "theme" in k}
    assert reg.http.get("/api/v1/tenant/config").status_code == 400
    assert reg.http.get("/api/v1/tenant/config?tenant=ten_nobody").status_code == 404
    assert reg.http.get(f"/api/v1/tenant/config?tenant={t.id}&filter=a%20b").status_code == 400
    # Another tenant's token reads its own (empty) config, never this one's.
    other = reg.tenant()
    theirs = reg.service_token(other)
    assert reg.call("GET", f"/api/v1/tenant/config?tenant={t.id}", theirs).get_json()["data"] == {}
    # Many public ones at once, in one transaction: a bad name changes nothing.
    bad = reg.call("PATCH", "/api/v1/tenant/config", admin,
                   json={"theme.colour": "#111", "bad name": "x"})  # fmt: skip
    assert bad.status_code == 400
    assert reg.http.get(f"/api/v1/tenant/config?tenant={t.id}").get_json()["data"] == expected
    ok = reg.call("PATCH", "/api/v1/tenant/config", admin,
                  json={"theme.colour": "#111", "orders.open": "true"})  # fmt: skip
    assert ok.get_json()["data"]["theme.colour"] == "#111"
    assert ok.get_json()["data"]["orders.open"] == "true"
    del world


@pytest.mark.parametrize(
    ("caller", "read", "write"),
    [
        ("service tenant:write", 200, 201),
        ("service tenant:read", 200, 403),
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
def test_who_may_read_and_change_properties(reg, t, world, caller, read, write):
    key = None
    if caller.startswith("service"):
        scope = {"tenant:write": "tenant:read tenant:write", "tenant:read": "tenant:read",
                 "users:write": "users:read users:write"}[caller.split(" ")[1]]  # fmt: skip
        token = cc_token(reg.http, world.client(t.id, scope=scope)).get_json()["access_token"]
    elif caller == "device":
        _, tokens, key = reg.linked_device(t)
        token = tokens["access_token"]
    elif caller == "none":
        token = None
    else:
        token = reg.user_token(t, "caller", (caller,),
                               scope="devices:read tenant:read tenant:write")  # fmt: skip
    assert reg.call("GET", PROPS, token, key=key).status_code == read
    assert reg.call("PUT", f"{PROPS}/x", token, key=key, json={"value": "v"}).status_code == write
