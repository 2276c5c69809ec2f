"""The device authorization request under a required DPoP nonce (RFC 9449 §8): refused without
one, with the nonce to use; accepted with it; and, like the token endpoint, its 200 carries the
next nonce when the client's is about to roll."""

from __future__ import annotations

import pytest

from tests.device_helpers import kiosk_world, start
from tests.dpop_client import DPoPKey


@pytest.mark.parametrize("overrides", [{"dpop_nonce": frozenset({"token"})}])
def test_the_device_authorization_request_follows_the_nonce(app, http, world, clock, overrides):
    settings = app.extensions["authserver"].settings
    url = settings.issuer + "/oauth/device_authorization"
    _, client = kiosk_world(world)
    key = DPoPKey()
    first = start(http, client.client_id, proof=key.proof("POST", url, iat=clock()))
    assert first.status_code == 400 and first.get_json()["error"] == "use_dpop_nonce"
    nonce = first.headers["DPoP-Nonce"]
    ok = start(http, client.client_id, proof=key.proof("POST", url, nonce=nonce, iat=clock()))
    assert ok.status_code == 200, ok.get_json()
    assert "DPoP-Nonce" not in ok.headers  # a fresh nonce: nothing to roll yet
    clock.advance(settings.dpop_nonce_lifetime)
    rolled = start(http, client.client_id, proof=key.proof("POST", url, nonce=nonce, iat=clock()))
    assert rolled.status_code == 200
    assert rolled.headers["DPoP-Nonce"] not in ("", nonce)
