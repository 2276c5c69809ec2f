"""A device created active (an audit device, origin ``api``), then unlinked and linked by a
terminal, is a linked terminal from then on: its key binds its refresh tokens whatever its client,
as for a device created to be linked."""

from __future__ import annotations

from tests.dpop_client import DPoPKey
from tests.registry.conftest import LINK_GRANT


def test_a_device_linked_after_an_unlink_stays_bound_to_the_terminals_key(reg, world):
    t = reg.tenant()
    confidential = world.client(
        t.id, grant_types=(LINK_GRANT, "refresh_token"), scope="devices:read devices:write"
    )
    service = reg.service_token(t)
    device = reg.create_device(t, service)  # ACTIVE, origin api
    assert (device["status"], device["origin"]) == ("ACTIVE", "api")
    unlinked = reg.call(
        "PATCH", f"/api/v1/devices/{device['id']}", service, json={"status": "READY_TO_LINK"}
    )
    assert unlinked.status_code == 200, unlinked.get_json()
    link_code = unlinked.get_json()["data"]["linkCode"]

    key = DPoPKey()
    url = reg.settings.issuer + "/oauth/token"
    form = {"grant_type": LINK_GRANT, "link_code": link_code, "staff_code": "1234",
            "password": "correct horse"}  # fmt: skip
    linked = reg.http.post(
        "/oauth/token",
        data=form,
        headers={**confidential.auth_header(), "DPoP": key.proof("POST", url)},
    )
    assert linked.status_code == 200, linked.get_json()
    shown = reg.call("GET", f"/api/v1/devices/{device['id']}", service).get_json()["data"]
    assert (shown["status"], shown["origin"]) == ("ACTIVE", "link")

    def refresh(proof=None):
        headers = {**confidential.auth_header(), **({"DPoP": proof} if proof else {})}
        data = {"grant_type": "refresh_token", "refresh_token": linked.get_json()["refresh_token"]}
        return reg.http.post("/oauth/token", data=data, headers=headers)

    for bad in (None, DPoPKey().proof("POST", url)):
        assert refresh(bad).get_json()["error"] == "invalid_dpop_proof"
    assert refresh(key.proof("POST", url)).status_code == 200
