"""Every people, roles and tenant-settings endpoint x every kind of caller: the status each gets,
and no reach into another tenant (DESIGN invariant 4)."""

from __future__ import annotations

import pytest

from tests.conftest import cc_token
from tests.dpop_client import DPoPKey

USERS_READ, USERS_WRITE, SELF, TENANT_READ, TENANT_WRITE = (
    "users:read", "users:write", "self", "tenant:read", "tenant:write",
)  # fmt: skip
ENDPOINTS = [
    # (name, method, path, body, kind, success status)
    ("list users", "GET", "/api/v1/users", None, USERS_READ, 200),
    ("create user", "POST", "/api/v1/users", {"login": "new"}, USERS_WRITE, 201),
    ("get user", "GET", "/api/v1/users/{usr}", None, USERS_READ, 200),
    ("replace user", "PUT", "/api/v1/users/{usr}", {"login": "target"}, USERS_WRITE, 200),
    ("patch user", "PATCH", "/api/v1/users/{usr}", {"trusted": True}, USERS_WRITE, 200),
    ("delete user", "DELETE", "/api/v1/users/{usr}", None, USERS_WRITE, 200),
    ("contact", "GET", "/api/v1/users/{usr}/contact", None, USERS_READ, 200),
    ("tenant", "GET", "/api/v1/tenant", None, USERS_READ, 200),
    ("strategies", "GET", "/api/v1/users/{usr}/auth-strategies", None, USERS_READ, 200),
    ("link strategy", "PUT", "/api/v1/users/{usr}/auth-strategies",
     {"strategy": "FB", "id": "new"}, USERS_WRITE, 201),
    ("unlink strategy", "DELETE", "/api/v1/users/{usr}/auth-strategies/FB/1", None,
     USERS_WRITE, 200),
    ("by strategy", "GET", "/api/v1/users/by-auth-strategy?strategy=FB&id=1", None,
     USERS_READ, 200),
    ("remove totp", "DELETE", "/api/v1/users/{usr}/totp", None, USERS_WRITE, 200),
    ("grant role", "POST", "/api/v1/roles/grants", {"role": "STAFF", "logins": ["target"]},
     USERS_WRITE, 200),
    ("revoke roles", "POST", "/api/v1/roles/revocations", {"roles": ["CASHIER"]},
     USERS_WRITE, 200),
    ("me", "GET", "/api/v1/users/me", None, SELF, 200),
    ("patch me", "PATCH", "/api/v1/users/me", {"phone": "600100200"}, SELF, 200),
    ("consents", "POST", "/api/v1/users/me/consents", {"set": ["a"]}, SELF, 200),
    ("totp secret", "POST", "/api/v1/users/me/totp/secret", None, SELF, 201),
    # Past authorization, these answer what the state calls for: a wrong code for the secret
    # just drawn (400), no factor configured (409), a login that is not the caller's (400).
    ("totp configure", "PUT", "/api/v1/users/me/totp", {"code": "123456"}, SELF, 400),
    ("totp remove own", "DELETE", "/api/v1/users/me/totp", {"code": "123456"}, SELF, 409),
    ("delete me", "DELETE", "/api/v1/users/me", {"login": "someone else"}, SELF, 400),
    ("list properties", "GET", "/api/v1/tenant/properties", None, TENANT_READ, 200),
    ("property schema", "GET", "/api/v1/tenant/properties/schema", None, TENANT_READ, 200),
    ("put property", "PUT", "/api/v1/tenant/properties/x", {"value": "v"}, TENANT_WRITE, 201),
    ("delete property", "DELETE", "/api/v1/tenant/properties/p", None, TENANT_WRITE, 200),
    ("public config change", "PATCH", "/api/v1/tenant/config", {"a": "b"}, TENANT_WRITE, 200),
]  # fmt: skip

KINDS = [
    "none",
    "expired",
    "revoked",
    "foreign",
    "service_all",
    "service_read_only",
    "service_devices_only",
    "service_dpop",
    "admin",
    "user_manager",
    "staff",
    "device",
    "dpop_bound_as_bearer",
]
ALL_SCOPES = "users:read users:write tenant:read tenant:write devices:read devices:write"


def expected(kind: str, endpoint: str, success: int, path: str) -> int:
    if kind in ("none", "expired", "revoked", "dpop_bound_as_bearer"):
        return 401
    if endpoint == SELF:
        return success if kind in ("admin", "user_manager", "staff") else 403
    if kind in ("device", "staff", "service_devices_only"):
        return 403
    if kind == "service_read_only":
        return success if endpoint in (USERS_READ, TENANT_READ) else 403
    if kind == "user_manager":
        return success if endpoint in (USERS_READ, USERS_WRITE) else 403
    if kind == "foreign":
        # Its own tenant's collections answer; our ids are not found there.
        if "{usr}" in path or "by-auth-strategy" in path or path.endswith("/p"):
            return 404
        if "grants" in path:
            return 200  # "target" is an unknown login there: reported, nothing changed
        return success
    return success


class World:
    def __init__(self, reg, world, clock):
        self.reg, self.world, self.clock = reg, world, clock
        self.t = reg.tenant()
        self.key: DPoPKey | None = None

    def service(self, scope: str, tenant=None) -> str:
        creds = self.world.client((tenant or self.t).id, scope=scope)
        return cc_token(self.reg.http, creds).get_json()["access_token"]

    def token(self, kind: str) -> str | None:
        reg = self.reg
        if kind == "none":
            return None
        if kind == "expired":
            token = self.service(ALL_SCOPES)
            self.clock.advance(reg.settings.access_token_ttl + 1)
            return token
        if kind == "revoked":
            creds = self.world.client(self.t.id, scope=ALL_SCOPES)
            token = cc_token(reg.http, creds).get_json()["access_token"]
            reg.http.post("/oauth/revoke", data={"token": token}, headers=creds.auth_header())
            return token
        if kind == "foreign":
            return self.service(ALL_SCOPES, reg.tenant())
        if kind == "service_all":
            return self.service(ALL_SCOPES)
        if kind == "service_read_only":
            return self.service("users:read tenant:read")
        if kind == "service_devices_only":
            return self.service("devices:read devices:write")
        if kind in ("service_dpop", "dpop_bound_as_bearer"):
            key = DPoPKey()
            creds = self.world.client(self.t.id, scope=ALL_SCOPES)
            token = reg.http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                headers={**creds.auth_header(), "DPoP": key.proof(
                    "POST", reg.settings.issuer + "/oauth/token", iat=self.clock())},
            ).get_json()["access_token"]  # fmt: skip
            self.key = key if kind == "service_dpop" else None
            return token
        if kind in ("admin", "user_manager", "staff"):
            role = {"admin": "TENANT.ADMIN", "user_manager": "USER.MANAGER", "staff": "STAFF"}
            return reg.user_token(self.t, f"caller-{kind}", (role[kind],), scope=ALL_SCOPES)
        if kind == "device":
            _, tokens, key = reg.linked_device(self.t)
            self.key = key
            return tokens["access_token"]
        raise AssertionError(kind)

    def targets(self) -> dict[str, str]:
        """Fresh objects of this tenant (made with an all-scopes service token)."""
        svc = self.service(ALL_SCOPES)
        made = self.reg.call("POST", "/api/v1/users", svc,
                             json={"login": "target", "roles": [{"role": "CASHIER"}]})  # fmt: skip
        usr = made.get_json()["data"]["id"]
        self.reg.call("PUT", f"/api/v1/users/{usr}/auth-strategies", svc,
                      json={"strategy": "FB", "id": "1"})  # fmt: skip
        self.reg.call("PUT", "/api/v1/tenant/properties/p", svc, json={"value": "v"})
        return {"usr": usr}


@pytest.mark.parametrize("kind", KINDS)
def test_people_endpoints_by_caller(reg, world, clock, kind):
    w = World(reg, world, clock)
    token = w.token(kind)
    failures = []
    for name, method, path, body, endpoint, success in ENDPOINTS:
        ids = w.targets()
        url = path.format(**ids)
        key = w.key
        resp = reg.call(method, url, token, json=body, key=key)
        want = expected(kind, endpoint, success, path)
        if resp.status_code != want:
            failures.append(f"{name}: {resp.status_code} (want {want}) {resp.get_data()[:200]!r}")
        # Whatever the answer, the other tenant's objects are untouched (checked for foreign).
        if kind == "foreign" and "{usr}" in path:
            svc = w.service(ALL_SCOPES)
            assert reg.call("GET", f"/api/v1/users/{ids['usr']}", svc).status_code == 200
        # Self-service calls may change the caller; fresh targets per endpoint keep them apart.
        reg.call("DELETE", f"/api/v1/users/{ids['usr']}", w.service(ALL_SCOPES))
    assert not failures, "\n".join(failures)
