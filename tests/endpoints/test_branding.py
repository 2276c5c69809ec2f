"""The verification page in the tenant's colours: an accent colour that white text can be read on,
a logo from an https URL allowed by the page's CSP and by nothing else, both set with
``authserver tenants update``."""

from __future__ import annotations

import pytest

from authserver.admin import contrast_with_white
from tests.device_helpers import cli, kiosk_world, start
from tests.endpoints.test_verification_page import enter


def csp(resp) -> list[str]:
    return [d.strip() for d in resp.headers["Content-Security-Policy"].split(";")]


def test_a_branded_tenants_page_shows_its_logo_and_colour(app, http, world):
    tenant, client = kiosk_world(world)
    out = cli(app, "tenants", "update", tenant, "--accent-colour", "#1A5E20",
              "--logo-url", "https://cdn.example.com/shop/logo.png")  # fmt: skip
    assert (out["accent_colour"], out["logo_url"]) == (
        "#1a5e20",
        "https://cdn.example.com/shop/logo.png",
    )
    body = start(http, client.client_id).get_json()
    assert enter(http, body["user_code"]).status_code == 303
    resp = http.get("/device")
    html = resp.get_data(as_text=True)
    assert '<img class="logo" src="https://cdn.example.com/shop/logo.png"' in html
    assert "<style>:root { --accent: #1a5e20; }</style>" in html
    # The logo's origin, exactly (other pages allow no image: the tests below).
    assert "img-src https://cdn.example.com" in csp(resp)


def test_an_unbranded_page_loads_no_image_and_keeps_the_default_colour(app, http, world):
    _, client = kiosk_world(world)
    body = start(http, client.client_id).get_json()
    enter(http, body["user_code"])
    resp = http.get("/device")
    html = resp.get_data(as_text=True)
    assert "<img" not in html and "--accent: #" not in html.split("</style>", 1)[1]
    assert not [d for d in csp(resp) if d.startswith("img-src")]  # default-src 'none' holds


def test_a_page_without_a_tenant_allows_no_image(app, http, world):
    tenant, _ = kiosk_world(world)
    cli(app, "tenants", "update", tenant, "--logo-url", "https://cdn.example.com/logo.png")
    resp = http.get("/device")  # nobody signed in, no code yet: no tenant is known
    assert "<img" not in resp.get_data(as_text=True)
    assert not [d for d in csp(resp) if d.startswith("img-src")]


@pytest.mark.parametrize(
    ("colour", "why"),
    [
        ("#ffcc00", "too light"),
        ("#777777", "too light"),
        ("red", "#rrggbb"),
        ("#12345", "#rrggbb"),
        ("#1a5e20;}", "#rrggbb"),
    ],  # fmt: skip
)
def test_colours_white_text_cannot_be_read_on_are_refused(app, world, colour, why):
    tenant = world.tenant()
    out = cli(app, "tenants", "update", tenant, "--accent-colour", colour)
    assert out["exit_code"] != 0 and why in out["error"]


@pytest.mark.parametrize(
    "url",
    ["http://cdn.example.com/logo.png", "javascript:alert(1)", "https://user@cdn.example.com/l.png",
     "https:///nohost.png", 'https://cdn.example.com/a"onload=x.png', "https://e.com/" + "a" * 500],
)  # fmt: skip
def test_logo_urls_that_are_not_plain_https_are_refused(app, world, url):
    tenant = world.tenant()
    out = cli(app, "tenants", "update", tenant, "--logo-url", url)
    assert out["exit_code"] != 0 and "https URL" in out["error"]


def test_an_empty_value_clears_and_a_missing_option_keeps(app, world):
    tenant = world.tenant()
    cli(app, "tenants", "update", tenant, "--accent-colour", "#0b57d0", "--logo-url",
        "https://cdn.example.com/logo.png")  # fmt: skip
    kept = cli(app, "tenants", "update", tenant, "--name", "Renamed shop")
    assert (kept["name"], kept["accent_colour"]) == ("Renamed shop", "#0b57d0")
    cleared = cli(app, "tenants", "update", tenant, "--accent-colour", "", "--logo-url", "")
    assert (cleared["accent_colour"], cleared["logo_url"]) == (None, None)
    assert cli(app, "tenants", "update", tenant)["exit_code"] != 0  # nothing to change


def test_the_contrast_follows_wcag():
    assert contrast_with_white("#000000") == pytest.approx(21.0)
    assert contrast_with_white("#ffffff") == pytest.approx(1.0)
    assert contrast_with_white("#0b57d0") == pytest.approx(6.39, abs=0.01)  # the default accent
    assert contrast_with_white("#767676") == pytest.approx(4.54, abs=0.01)  # the AA boundary
