"""Every registry endpoint x every kind of caller: the status each gets, and no cross-tenant reach.

DESIGN invariant 4: no request reaches another tenant's data, including through ids, cursors
and filters.
"""

from __future__ import annotations

import pytest

from tests.device_helpers import DEVICE_GRANT, start
from tests.dpop_client import DPoPKey

READ, WRITE, ME = "read", "write", "me"
ENDPOINTS = [
    # (name, method, path, body, kind of endpoint, success status)
    ("list devices", "GET", "/api/v1/devices", None, READ, 200),
    ("create device", "POST", "/api/v1/devices", {"name": "new"}, WRITE, 201),
    ("get device", "GET", "/api/v1/devices/{dev}", None, READ, 200),
    ("patch device", "PATCH", "/api/v1/devices/{dev}", {"name": "renamed"}, WRITE, 200),
    ("delete device", "DELETE", "/api/v1/devices/{dev}", None, WRITE, 200),
    ("list locations", "GET", "/api/v1/locations", None, READ, 200),
    ("create location", "POST", "/api/v1/locations", {"name": "new"}, WRITE, 201),
    ("get location", "GET", "/api/v1/locations/{loc}", None, READ, 200),
    ("patch location", "PATCH", "/api/v1/locations/{loc}", {"name": "renamed"}, WRITE, 200),
    ("delete location", "DELETE", "/api/v1/locations/{loc}", None, WRITE, 200),
    (
        "decide device authorization",
        "POST",
        "/api/v1/device-authorizations/{code}",
        {"decision": "deny"},
        WRITE,
        200,
    ),
    ("me", "GET", "/api/v1/devices/me", None, ME, 200),
    (
        "me system information",
        "PUT",
        "/api/v1/devices/me/system-information",
        {"systemInformation": "x"},
        ME,
        204,
    ),
    ("me users", "GET", "/api/v1/devices/me/users", None, ME, 200),
]

KINDS = [
    "none",
    "expired",
    "revoked",
    "foreign",
    "wrong_scope",
    "no_devices_scope",
    "service",
    "service_dpop",
    "user_with_role",
    "user_without_role",
    "device",
    "dpop_bound_as_bearer",
]


def expected(kind: str, endpoint_kind: str, success: int, path: str) -> int:
    if kind in ("none", "expired", "revoked", "dpop_bound_as_bearer"):
        return 401
    if endpoint_kind == ME:
        # A device's own endpoints: any other valid token is a 403 (seed 001), not a 401.
        return success if kind == "device" else 403
    if kind == "device" or kind == "user_without_role":
        return 403
    if kind == "wrong_scope":  # devices:read only
        return 403 if endpoint_kind == WRITE else success
    if kind == "no_devices_scope":
        return 403
    if kind == "foreign":
        # Its own tenant's collections work; our ids and codes do not exist for it.
        return success if "{" not in path else 404
    return success


class Caller:
    """Builds one tenant's world and a token of the requested kind."""

    def __init__(self, reg, world, app, clock):
        self.reg, self.world, self.app, self.clock = reg, world, app, clock
        self.t = reg.tenant()
        self.key: DPoPKey | None = None
        self.bystander: str | None = None

    def user_token(self, roles: tuple[str, ...]) -> str:
        login = "u" + str(len(roles)) + str(id(roles))[-5:]
        return self.reg.user_token(self.t, login, roles, scope="devices:read devices:write")

    def token(self, kind: str) -> str | None:
        reg = self.reg
        if kind == "none":
            return None
        if kind == "expired":
            token = reg.service_token(self.t)
            self.clock.advance(reg.settings.access_token_ttl + 1)
            return token
        if kind == "revoked":
            token = reg.service_token(self.t)
            # Issued before the revocation: another tenant's token, which must outlive it.
            self.bystander = reg.service_token(reg.tenant())
            reg.http.post(
                "/oauth/revoke", data={"token": token}, headers=self.t.service.auth_header()
            )
            return token
        if kind == "foreign":
            return reg.service_token(reg.tenant())
        if kind == "wrong_scope":
            return reg.service_token(self.t, write=False)  # devices:read only
        if kind == "no_devices_scope":
            creds = self.world.client(self.t.id, scope="openid")
            from tests.conftest import cc_token

            return cc_token(reg.http, creds).get_json()["access_token"]
        if kind == "service":
            return reg.service_token(self.t)
        if kind in ("service_dpop", "dpop_bound_as_bearer"):
            key = DPoPKey()
            token = reg.http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                headers={
                    **self.t.service.auth_header(),
                    "DPoP": key.proof(
                        "POST", reg.settings.issuer + "/oauth/token", iat=self.clock()
                    ),
                },
            ).get_json()["access_token"]
            self.key = key if kind == "service_dpop" else None
            return token
        if kind == "user_with_role":
            return self.user_token(("TENANT.ADMIN",))
        if kind == "user_without_role":
            return self.user_token(("CASHIER",))
        if kind == "device":
            _, tokens, key = reg.linked_device(self.t)
            self.key = key
            return tokens["access_token"]
        raise AssertionError(kind)

    def targets(self) -> dict[str, str]:
        """Fresh objects of this tenant for one request (created with a fresh admin token)."""
        reg = self.reg
        admin = reg.service_token(self.t)
        dev = reg.create_device(self.t, name="target")["id"]
        loc = reg.call("POST", "/api/v1/locations", admin, json={"name": "target"}).get_json()[
            "data"
        ]["id"]
        kiosk = self.world.client(
            self.t.id, grant_types=(DEVICE_GRANT,), auth_method="none", scope="devices:read"
        )
        code = start(reg.http, kiosk.client_id).get_json()["user_code"]
        return {"dev": dev, "loc": loc, "code": code}


@pytest.mark.parametrize("kind", KINDS)
def test_invariant_4_authorization_matrix(reg, world, app, clock, kind):
    caller = Caller(reg, world, app, clock)
    token = caller.token(kind)
    results = []
    for name, method, path, body, endpoint_kind, success in ENDPOINTS:
        ids = caller.targets()
        url = path.format(**ids)
        resp = reg.call(method, url, token, json=body, key=caller.key)
        want = expected(kind, endpoint_kind, success, path)
        results.append((name, resp.status_code, want))
        if resp.status_code >= 400:
            assert resp.content_type == "application/problem+json", (name, resp.content_type)
        if kind == "foreign" and method == "GET" and endpoint_kind == READ and "{" not in path:
            returned = {x["id"] for x in resp.get_json()["data"]}
            assert not returned & set(ids.values()), f"{name} leaked another tenant's data"
    wrong = [r for r in results if r[1] != r[2]]
    assert not wrong, f"{kind}: (endpoint, got, expected) {wrong}"
    if kind == "revoked":
        assert reg.call("GET", "/api/v1/devices", caller.bystander).status_code == 200


def test_invariant_4_a_foreign_tenant_cannot_reach_data_through_filters_or_cursors(reg):
    mine, theirs = reg.tenant(), reg.tenant()
    token_mine, token_theirs = reg.service_token(mine), reg.service_token(theirs)
    loc = reg.call("POST", "/api/v1/locations", token_mine, json={"name": "Mine"}).get_json()[
        "data"
    ]["id"]
    for i in range(3):
        reg.create_device(mine, name=f"secret {i}", externalId=f"S-{i}", locationIds=[loc])
    for query in (f"locationId={loc}", "externalId=S-1", "q=secret", "name=secret"):
        assert reg.call("GET", f"/api/v1/devices?{query}", token_theirs).get_json()["data"] == []
    cursor = reg.call("GET", "/api/v1/devices?limit=1", token_mine).get_json()["nextCursor"]
    page = reg.call("GET", f"/api/v1/devices?limit=1&cursor={cursor}", token_theirs).get_json()
    assert page["data"] == []
    # Creating a device with the other tenant's location is refused like an unknown id.
    resp = reg.call(
        "POST", "/api/v1/devices", token_theirs, json={"name": "x", "locationIds": [loc]}
    )
    assert resp.status_code == 400
