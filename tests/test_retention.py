"""Review F8: the device authorization endpoint is limited, and expired state is removed, so a
stream of abandoned flows (or old tokens) cannot grow the database without bound."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from authserver.models import DeviceAuthorization, RefreshFamily, RefreshToken, db
from tests.conftest import cc_token
from tests.device_helpers import DEVICE_GRANT, approve, cli, kiosk_world, poll, start
from tests.oauth2.refresh_factory import make_refresh_token


def rows(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def start_from(http, client_id, ip):
    return http.post(
        "/oauth/device_authorization",
        data={"client_id": client_id},
        environ_overrides={"REMOTE_ADDR": ip},
    )


@pytest.mark.parametrize("overrides", [{"device_authorizations_per_ip": 3}])
def test_device_authorization_requests_are_limited_per_address(http, world, clock):
    _, client = kiosk_world(world)
    for _ in range(3):
        assert start_from(http, client.client_id, "198.51.100.1").status_code == 200
    clock.advance(20)
    over = start_from(http, client.client_id, "198.51.100.1")
    assert over.status_code == 429
    assert over.get_json()["error"] == "slow_down"
    assert int(over.headers["Retry-After"]) == 40  # the true end of the window
    assert start_from(http, client.client_id, "198.51.100.2").status_code == 200


@pytest.mark.parametrize(
    "overrides", [{"device_authorizations_per_client": 5, "device_authorizations_per_ip": 100}]
)
def test_device_authorization_requests_are_limited_per_client(http, world):
    tenant, client = kiosk_world(world)
    for i in range(5):
        assert start_from(http, client.client_id, f"198.51.{i}.1").status_code == 200
    assert start_from(http, client.client_id, "198.51.99.1").status_code == 429
    other = world.client(tenant, grant_types=(DEVICE_GRANT,), auth_method="none")
    assert start_from(http, other.client_id, "198.51.99.1").status_code == 200


@pytest.mark.parametrize(
    "overrides",
    [{"device_authorizations_per_ip": 10_000, "device_authorizations_per_client": 10_000}],
)
def test_a_stream_of_abandoned_flows_stays_bounded(http, world, app, settings, clock):
    _, client = kiosk_world(world)
    peak = 0
    for _ in range(6):
        for _ in range(25):
            assert start(http, client.client_id).status_code == 200
        peak = max(peak, rows(app, DeviceAuthorization))
        # Past expiry and the grace period, then any request lets the periodic purge run.
        clock.advance(settings.device_code_ttl + settings.purge_grace + settings.purge_interval)
        http.get("/healthz", buffered=True)  # closing the response runs the purge
    assert peak <= 50  # at most the flows of the current and the previous round
    assert rows(app, DeviceAuthorization) == 0


def test_a_late_poll_within_the_grace_still_gets_expired_token(http, world, settings, clock):
    _, client = kiosk_world(world)
    body = start(http, client.client_id).get_json()
    clock.advance(settings.device_code_ttl + settings.purge_interval)
    http.get("/healthz", buffered=True)
    resp = poll(http, client.client_id, body["device_code"])
    assert resp.get_json()["error"] == "expired_token"


def test_expired_tokens_and_families_are_purged_and_live_ones_kept(
    http, world, app, settings, clock
):
    creds = world.client(grant_types=("client_credentials", "refresh_token"))
    old_access = cc_token(http, creds).get_json()["access_token"]
    make_refresh_token(app, creds)
    assert rows(app, RefreshFamily) == 1
    clock.advance(settings.refresh_token_ttl + settings.max_token_lifetime + 1)
    live = cc_token(http, creds).get_json()["access_token"]
    result = cli(app, "db", "purge")
    assert result["purged"]["refresh_tokens"] == 1
    assert result["purged"]["refresh_families"] == 1
    assert rows(app, RefreshToken) == 0 and rows(app, RefreshFamily) == 0
    intro = lambda t: http.post(  # noqa: E731
        "/oauth/introspect", data={"token": t}, headers=creds.auth_header()
    ).get_json()["active"]
    assert (intro(old_access), intro(live)) == (False, True)
    assert cli(app, "db", "purge")["purged"] == {
        "device_authorizations": 0,
        "authorization_codes": 0,
        "revocations": 0,
        "refresh_tokens": 0,
        "refresh_families": 0,
    }


def test_a_redeemed_device_grant_keeps_working_after_a_purge(http, world, app, settings, clock):
    _, client = kiosk_world(world)
    body = start(http, client.client_id).get_json()
    approve(app, body["user_code"], "admin")
    tokens = poll(http, client.client_id, body["device_code"]).get_json()
    clock.advance(settings.device_code_ttl + settings.purge_grace + 1)
    cli(app, "db", "purge")
    refreshed = http.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": client.client_id,
        },
    )
    assert refreshed.status_code == 200, refreshed.get_json()


@pytest.mark.parametrize("overrides", [{"device_authorizations_per_ip": 2}])
def test_requests_without_a_client_address_are_served_and_share_one_limit(http, world):
    """A server that gives no client address (a Unix socket) still serves device authorization
    requests; they are limited together, apart from requests that have an address."""
    _, client = kiosk_world(world)
    for _ in range(2):
        assert start_from(http, client.client_id, None).status_code == 200
    over = start_from(http, client.client_id, None)
    assert over.status_code == 429 and over.get_json()["error"] == "slow_down"
    assert start_from(http, client.client_id, "198.51.100.1").status_code == 200
