"""Every customer-devices endpoint x every kind of caller: customer A vs customer B, device vs
service vs back office, tenant vs tenant (DESIGN invariant 4)."""

from __future__ import annotations

import pytest

from tests.conftest import cc_token

SELF, READ, WRITE = "self", "customer-devices:read", "customer-devices:write"
PHONE = {"externalDeviceIdentifier": "imei-new", "pushId": "fcm:new"}
ENDPOINTS = [
    # (name, method, path, body, kind, success status); {own}/{isd}: Ana's; {usr}: Ana's id
    ("register", "POST", "/api/v1/users/me/owned-devices", PHONE, SELF, 201),
    ("my devices", "GET", "/api/v1/users/me/owned-devices", None, SELF, 200),
    ("my device", "GET", "/api/v1/users/me/owned-devices/{own}", None, SELF, 200),
    ("change my device", "PATCH", "/api/v1/users/me/owned-devices/{own}", {"nickname": "x"},
     SELF, 200),
    ("unregister mine", "POST", "/api/v1/users/me/owned-devices/{own}/unregister", None, SELF,
     202),
    ("my issued", "GET", "/api/v1/users/me/issued-devices", None, SELF, 200),
    ("my issued one", "GET", "/api/v1/users/me/issued-devices/{isd}", None, SELF, 200),
    ("customer's devices", "GET", "/api/v1/users/{usr}/owned-devices", None, READ, 200),
    ("push targets", "GET", "/api/v1/users/{usr}/push-targets", None, READ, 200),
    ("unregister theirs", "POST", "/api/v1/users/{usr}/owned-devices/{own}/unregister", None,
     WRITE, 202),
    ("issue", "POST", "/api/v1/users/{usr}/issued-devices",
     {"kind": "HARDWARE_TOKEN", "maskedIdentifier": "****7"}, WRITE, 201),
    ("issued list", "GET", "/api/v1/users/{usr}/issued-devices", None, READ, 200),
    ("issued one", "GET", "/api/v1/users/{usr}/issued-devices/{isd}", None, READ, 200),
    ("move issued", "POST", "/api/v1/users/{usr}/issued-devices/{isd}/status",
     {"status": "ACTIVE"}, WRITE, 200),
]  # fmt: skip

KINDS = ["none", "revoked", "foreign", "service_all", "service_read_only",
         "service_devices_only", "admin", "user_manager", "device_manager", "customer",
         "other_customer", "device"]  # fmt: skip
ALL = "customer-devices:read customer-devices:write users:read users:write devices:read"
PEOPLE = ("admin", "user_manager", "device_manager", "customer", "other_customer")


def expected(kind: str, endpoint: str, success: int, path: str) -> int:
    if kind in ("none", "revoked"):
        return 401
    if endpoint == SELF:
        if kind not in PEOPLE:
            return 403  # a service's or a device's token is nobody's account
        if kind == "customer" or "{" not in path:
            return success  # their own list, their own registration
        return 404  # Ana's device is not theirs
    if kind in ("service_devices_only", "device_manager", "customer", "other_customer", "device"):
        return 403
    if kind == "service_read_only":
        return success if endpoint == READ else 403
    if kind == "foreign":
        return 404  # Ana is not a user of their tenant
    return success


class World:
    def __init__(self, reg, world):
        self.reg, self.world = reg, world
        self.t = reg.tenant()
        self.key = None
        office = self.service(ALL)
        self.ana = reg.user_token(self.t, "ana", (), scope="devices:read")
        self.ana_id = reg.call("GET", "/api/v1/users/me", self.ana).get_json()["data"]["id"]
        self.office = office

    def service(self, scope: str, tenant=None) -> str:
        creds = self.world.client((tenant or self.t).id, scope=scope)
        return cc_token(self.reg.http, creds).get_json()["access_token"]

    def token(self, kind: str) -> str | None:
        reg = self.reg
        if kind == "none":
            return None
        if kind == "revoked":
            creds = self.world.client(self.t.id, scope=ALL)
            token = cc_token(reg.http, creds).get_json()["access_token"]
            reg.http.post("/oauth/revoke", data={"token": token}, headers=creds.auth_header())
            return token
        if kind == "foreign":
            return self.service(ALL, reg.tenant())
        if kind == "service_all":
            return self.service(ALL)
        if kind == "service_read_only":
            return self.service("customer-devices:read")
        if kind == "service_devices_only":
            return self.service("devices:read devices:write users:read")
        if kind == "customer":
            return self.ana
        if kind == "other_customer":
            return reg.user_token(self.t, "bob", (), scope="devices:read")
        if kind in ("admin", "user_manager", "device_manager"):
            role = {"admin": "TENANT.ADMIN", "user_manager": "USER.MANAGER",
                    "device_manager": "DEVICE.MANAGER"}[kind]  # fmt: skip
            return reg.user_token(self.t, f"caller-{kind}", (role,), scope=ALL)
        if kind == "device":
            _, tokens, key = reg.linked_device(self.t)
            self.key = key
            return tokens["access_token"]
        raise AssertionError(kind)

    def targets(self, n: int) -> dict[str, str]:
        """Fresh devices of Ana's: an owned phone and an issued card."""
        reg = self.reg
        own = reg.call(
            "POST",
            "/api/v1/users/me/owned-devices",
            self.ana,
            json={"externalDeviceIdentifier": f"imei-{n}", "pushId": "fcm:x"},
        )
        isd = reg.call(
            "POST",
            f"/api/v1/users/{self.ana_id}/issued-devices",
            self.office,
            json={"kind": "PAYMENT_CARD", "maskedIdentifier": "**** 4242"},
        )
        return {"own": own.get_json()["data"]["id"], "isd": isd.get_json()["data"]["id"],
                "usr": self.ana_id}  # fmt: skip

    def state(self, ids: dict[str, str]) -> tuple:
        reg = self.reg
        own = reg.call("GET", f"/api/v1/users/me/owned-devices/{ids['own']}", self.ana)
        isd = reg.call("GET", f"/api/v1/users/me/issued-devices/{ids['isd']}", self.ana)
        mine = reg.call("GET", "/api/v1/users/me/owned-devices?limit=200", self.ana)
        cards = reg.call("GET", "/api/v1/users/me/issued-devices?limit=200", self.ana)
        o = own.get_json()["data"]
        return (o["status"], o["nickname"], isd.get_json()["data"]["status"],
                len(mine.get_json()["data"]), len(cards.get_json()["data"]))  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_customer_devices_endpoints_by_caller(reg, world, kind):
    w = World(reg, world)
    token = w.token(kind)
    failures = []
    for n, (name, method, path, body, endpoint, success) in enumerate(ENDPOINTS):
        ids = w.targets(n)
        before = w.state(ids)
        resp = reg.call(method, path.format(**ids), token, json=body, key=w.key)
        want = expected(kind, endpoint, success, path)
        if resp.status_code != want:
            failures.append(f"{name}: {resp.status_code} (want {want}) {resp.get_data()[:200]!r}")
        if want >= 400:
            assert w.state(ids) == before, f"{name}: a refused call changed Ana's devices"
        if kind == "other_customer" and method == "GET" and "{" not in path:
            owners = {d["customerId"] for d in resp.get_json()["data"]}
            assert w.ana_id not in owners, f"{name}: Bob sees Ana's devices"
    assert not failures, "\n".join(failures)
