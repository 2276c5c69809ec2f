"""Every modules endpoint x every kind of caller: the status each gets, and no reach into another
tenant (DESIGN invariant 4)."""

from __future__ import annotations

import pytest

from tests.conftest import cc_token
from tests.device_helpers import DEVICE_GRANT, approve, poll, start
from tests.dpop_client import DPoPKey

READ, WRITE, MODULE = "modules:read", "modules:write", "module"
ENDPOINTS = [
    # (name, method, path, body, kind, success status)
    ("list", "GET", "/api/v1/modules", None, READ, 200),
    ("create", "POST", "/api/v1/modules", {"id": "new-1", "type": "KDS"}, WRITE, 201),
    ("get", "GET", "/api/v1/modules/target", None, READ, 200),
    ("replace", "PUT", "/api/v1/modules/target", {"type": "KDS"}, WRITE, 200),
    ("patch", "PATCH", "/api/v1/modules/target", {"production": True}, WRITE, 200),
    ("delete", "DELETE", "/api/v1/modules/target", None, WRITE, 200),
    ("logout", "POST", "/api/v1/modules/target/logout", None, WRITE, 200),
    ("effective config", "GET", "/api/v1/modules/target/config", None, READ, 200),
    ("common config", "GET", "/api/v1/module-types/KIOSK/config", None, READ, 200),
    ("set common config", "PUT", "/api/v1/module-types/KIOSK/config", {"a": 1}, WRITE, 200),
    ("my module", "GET", "/api/v1/modules/me", None, MODULE, 200),
    ("my config", "GET", "/api/v1/modules/me/config", None, MODULE, 200),
    ("my common config", "GET", "/api/v1/modules/me/common-config", None, MODULE, 200),
]

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
    "device_manager",
    "user_manager",
    "staff",
    "device",
    "module_kiosk",
    "kiosk_without_module",
    "dpop_bound_as_bearer",
]
ALL_SCOPES = "modules:read modules:write devices:read devices:write users:read users:write"


def expected(kind: str, endpoint: str, success: int, path: str) -> int:
    if kind in ("none", "expired", "revoked", "dpop_bound_as_bearer"):
        return 401
    if endpoint == MODULE:
        return success if kind == "module_kiosk" else 403
    if kind in ("device", "module_kiosk", "kiosk_without_module", "staff", "user_manager",
                "service_devices_only"):  # fmt: skip
        return 403
    if kind == "service_read_only":
        return success if endpoint == READ else 403
    if kind == "foreign":
        # Its own tenant's collections answer; our module is not found there.
        return 404 if "/target" in path else success
    return success


class World:
    def __init__(self, reg, world, clock):
        self.reg, self.world, self.clock = reg, world, clock
        self.t = reg.tenant()
        self.key: DPoPKey | None = None

    def service(self, scope: str, tenant=None) -> str:
        creds = self.world.client((tenant or self.t).id, scope=scope)
        return cc_token(self.reg.http, creds).get_json()["access_token"]

    def kiosk(self, module: str | None) -> str:
        """A kiosk of this tenant enrolled through the device flow (as ``module`` if given)."""
        reg = self.reg
        client = self.world.client(self.t.id, grant_types=(DEVICE_GRANT,), auth_method="none",
                                   scope="devices:read")  # fmt: skip
        body = start(reg.http, client.client_id, **({"module": module} if module else {}))
        body = body.get_json()
        assert approve(reg.app, body["user_code"], "admin")["decision"] == "approved"
        return poll(reg.http, client.client_id, body["device_code"]).get_json()["access_token"]

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
            return self.service("modules:read")
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
        if kind in ("admin", "device_manager", "user_manager", "staff"):
            role = {"admin": "TENANT.ADMIN", "device_manager": "DEVICE.MANAGER",
                    "user_manager": "USER.MANAGER", "staff": "STAFF"}[kind]  # fmt: skip
            return reg.user_token(self.t, f"caller-{kind}", (role,), scope=ALL_SCOPES)
        if kind == "device":
            _, tokens, key = reg.linked_device(self.t)
            self.key = key
            return tokens["access_token"]
        if kind == "module_kiosk":
            svc = self.service(ALL_SCOPES)
            reg.call("POST", "/api/v1/modules", svc, json={"id": "own", "type": "KIOSK"})
            return self.kiosk("own")
        if kind == "kiosk_without_module":
            return self.kiosk(None)
        raise AssertionError(kind)

    def target(self) -> None:
        """A fresh module ``target`` of this tenant (made with an all-scopes service token)."""
        svc = self.service(ALL_SCOPES)
        made = self.reg.call("POST", "/api/v1/modules", svc,
                             json={"id": "target", "type": "KIOSK", "config": {"x": 1}})  # fmt: skip
        assert made.status_code == 201, made.get_json()


@pytest.mark.parametrize("kind", KINDS)
def test_modules_endpoints_by_caller(reg, world, clock, kind):
    w = World(reg, world, clock)
    token = w.token(kind)
    svc = w.service(ALL_SCOPES)
    failures = []
    for name, method, path, body, endpoint, success in ENDPOINTS:
        w.target()
        resp = reg.call(method, path, token, json=body, key=w.key)
        want = expected(kind, endpoint, success, path)
        if resp.status_code != want:
            failures.append(f"{name}: {resp.status_code} (want {want}) {resp.get_data()[:200]!r}")
        if want != success:
            # A refused call changed nothing: the target is as it was made.
            after = reg.call("GET", "/api/v1/modules/target", svc).get_json()["data"]
            assert (after["type"], after["production"], after["config"]) == (
                "KIOSK",
                False,
                {"x": 1},
            ), name
            common = reg.call("GET", "/api/v1/module-types/KIOSK/config", svc).get_json()
            assert common["data"] == {}, name
        reg.call("DELETE", "/api/v1/modules/target", svc)
        reg.call("DELETE", "/api/v1/modules/new-1", svc)
        reg.call("PUT", "/api/v1/module-types/KIOSK/config", svc, json={})
    assert not failures, "\n".join(failures)
