"""The verification page in a real browser (Chromium, driven by Playwright), on a desktop and a
phone viewport: enter the code, sign in, approve; arrive from ``verification_uri_complete``,
confirm, deny. Every page passes axe-core's accessibility rules with no serious or critical
violation, and the device gets the answer the person gave.

Needs Debian's ``chromium``. Without one the module is skipped and says so, except where
``AUTHSERVER_TEST_REQUIRE_BROWSER`` is set (``.ci/run`` installs chromium and sets it).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import requests

from tests.conftest import make_env, start_server, stop_server

pytestmark = pytest.mark.processes
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    if os.environ.get("AUTHSERVER_TEST_REQUIRE_BROWSER"):  # CI: a missing browser is a failure
        raise RuntimeError("AUTHSERVER_TEST_REQUIRE_BROWSER is set but chromium is not installed")
    pytest.skip("needs Debian's chromium (apt-get install chromium)", allow_module_level=True)

from axe_playwright_python.sync_playwright import Axe  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402

# Every check waits for the page it expects (a sign-in hashes a password; a busy CI machine with
# one test process per core is slow to answer): generous, since a pass returns as soon as it holds.
expect.set_options(timeout=20_000)

VIEWPORTS = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 3,
        "is_mobile": True,
        "has_touch": True,
    },
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(make_env(tmp_path_factory.mktemp("browser") / "instance"))
    try:
        tenant = srv.cli("tenants", "create", "Corner Shop")
        srv.cli("tenants", "update", tenant["id"], "--accent-colour", "#1a5e20")
        srv.cli("users", "create", "--tenant", tenant["id"], "--login", "admin",
                "--password", "correct horse", "--role", "TENANT.ADMIN")  # fmt: skip
        srv.kiosk = srv.cli("clients", "create", "--tenant", tenant["id"], "--name", "Till app",
                            "--public", "--grant-type", DEVICE_GRANT,
                            "--scope", "devices:read")  # fmt: skip
        yield srv
    finally:
        stop_server(srv)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(params=list(VIEWPORTS))
def page(request, browser):
    context = browser.new_context(**VIEWPORTS[request.param])
    page = context.new_page()
    page.viewport_name = request.param
    try:
        yield page
    finally:
        context.close()


def begin(server) -> dict:
    resp = requests.post(
        f"{server.url}/oauth/device_authorization",
        data={"client_id": server.kiosk["client_id"], "device_name": "Till 3"},
        timeout=10,
    )
    assert resp.status_code == 200
    return resp.json()


def poll(server, device_code: str) -> dict:
    return requests.post(
        f"{server.url}/oauth/token",
        data={
            "grant_type": DEVICE_GRANT,
            "device_code": device_code,
            "client_id": server.kiosk["client_id"],
        },  # fmt: skip
        timeout=10,
    ).json()


def accessible(page, shots: Path, name: str) -> None:
    """No serious or critical axe-core violation on the page as it is now; a screenshot kept."""
    page.screenshot(path=str(shots / f"{page.viewport_name}-{name}.png"), full_page=True)
    results = Axe().run(page)
    bad = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, f"{name}: " + results.generate_report()


def sign_in(page) -> None:
    page.get_by_label("Login").fill("admin")
    page.get_by_label("Password").fill("correct horse")
    page.get_by_role("button", name="Sign in").click()


def test_enter_the_code_sign_in_and_approve(server, page, tmp_path):
    start = begin(server)
    page.goto(f"{server.url}/device")
    accessible(page, tmp_path, "enter")
    page.get_by_label("Code").fill(start["user_code"].lower().replace("-", " "))  # as typed
    page.get_by_role("button", name="Continue").click()

    expect(page.get_by_text(start["user_code"]).first).to_be_visible()  # the code, on every step
    expect(page.get_by_role("banner")).to_have_text("Connecting a device to Corner Shop")
    accessible(page, tmp_path, "sign-in")
    sign_in(page)

    expect(page.get_by_role("heading", name="Allow this device?")).to_be_visible()
    expect(page.get_by_text("Till 3").first).to_be_visible()  # what the device says about itself
    expect(page.get_by_role("banner")).to_have_text("Connecting a device to Corner Shop")
    # The access in words, and the time in the viewer's zone (the script ran), not raw UTC.
    expect(page.get_by_text("See this organisation's devices and locations")).to_be_visible()
    requested = page.locator("time").first
    assert requested.get_attribute("datetime").endswith("Z")
    # The script rewrites it after the page loads: wait for it (a busy machine is slow to).
    expect(requested).not_to_contain_text("UTC")
    assert requested.inner_text().strip()
    approve = page.get_by_role("button", name="Approve")
    assert approve.get_attribute("class") == "primary"
    assert approve.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(26, 94, 32)"
    accessible(page, tmp_path, "review")
    page.get_by_role("button", name="Approve").click()

    expect(page.get_by_role("heading", name="Device approved")).to_be_visible()
    accessible(page, tmp_path, "approved")
    assert poll(server, start["device_code"])["token_type"] == "Bearer"


def test_arrive_from_the_complete_uri_confirm_and_deny(server, page, tmp_path):
    start = begin(server)
    page.goto(start["verification_uri_complete"])
    expect(page.get_by_role("heading", name="Is this the code on your device?")).to_be_visible()
    accessible(page, tmp_path, "confirm")
    page.get_by_role("button", name="Yes, the codes match").click()
    sign_in(page)
    page.get_by_role("button", name="Deny").click()

    expect(page.get_by_role("heading", name="Request denied")).to_be_visible()
    assert poll(server, start["device_code"])["error"] == "access_denied"


def test_a_wrong_code_is_said_plainly_and_the_page_stays_usable(server, page, tmp_path):
    page.goto(f"{server.url}/device")
    page.get_by_label("Code").fill("BBBBB-BBBBB")
    page.get_by_role("button", name="Continue").click()
    alert = page.get_by_role("alert")
    expect(alert).to_be_visible()
    assert alert.inner_text().strip()
    accessible(page, tmp_path, "wrong-code")
    expect(page.get_by_label("Code")).to_be_visible()  # another try, on the same page


def test_a_polish_browser_gets_the_page_in_polish_and_can_switch(server, browser, tmp_path):
    context = browser.new_context(locale="pl-PL", **VIEWPORTS["phone"])
    try:
        page = context.new_page()
        page.viewport_name = "phone-pl"
        start = begin(server)
        page.goto(f"{server.url}/device")
        expect(page.get_by_role("heading", name="Połącz urządzenie")).to_be_visible()
        accessible(page, tmp_path, "enter")
        page.get_by_label("Kod").fill(start["user_code"])
        page.get_by_role("button", name="Dalej").click()
        expect(page.get_by_role("heading", name="Zaloguj się")).to_be_visible()
        accessible(page, tmp_path, "sign-in")
        page.get_by_role("link", name="English").click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        assert page.locator("html").get_attribute("lang") == "en"
    finally:
        context.close()


def test_an_app_signs_a_person_in_with_consent_then_single_sign_on(server, page, tmp_path):
    """The authorization code flow as a person sees it: the app's sign-in page, consent for a
    third party's app, back in the app with a code; the next app request needs no sign-in."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    tenant = server.cli("tenants", "list")[0]["id"]
    app = server.cli("clients", "create", "--tenant", tenant, "--name", "Loyalty app",
                     "--public", "--grant-type", "authorization_code", "--scope", "openid profile",
                     "--redirect-uri", "http://127.0.0.1/callback")  # fmt: skip
    back_in_app: list[str] = []

    class TheApp(BaseHTTPRequestHandler):  # the app's own page, where the browser comes back
        def do_GET(self):  # noqa: N802 - http.server's name
            if self.path.startswith("/callback"):  # not the browser's /favicon.ico
                back_in_app.append(self.path)
            body = b"<!doctype html><html lang=en><title>App</title><p>Back in the app"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    web = ThreadingHTTPServer(("127.0.0.1", 0), TheApp)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        _sign_in_to_the_app(server, page, tmp_path, app, web, back_in_app)
    finally:
        web.shutdown()
        web.server_close()


def _sign_in_to_the_app(server, page, tmp_path, app, web, back_in_app) -> None:
    import base64
    import hashlib
    from urllib.parse import parse_qs, urlencode, urlsplit

    redirect = f"http://127.0.0.1:{web.server_address[1]}/callback"
    verifier = "browser-" + "v" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    query = {"response_type": "code", "client_id": app["client_id"], "redirect_uri": redirect,
             "scope": "openid profile", "state": "s1", "code_challenge_method": "S256",
             "code_challenge": challenge.rstrip(b"=").decode(), "nonce": "n1"}  # fmt: skip
    page.goto(f"{server.url}/oauth/authorize?{urlencode(query)}")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("banner")).to_have_text("Signing in to Corner Shop")
    expect(page.get_by_text("Loyalty app")).to_be_visible()
    accessible(page, tmp_path, "app-sign-in")
    sign_in(page)

    expect(page.get_by_role("heading", name="Allow access?")).to_be_visible()
    expect(page.get_by_text("Know who you are")).to_be_visible()  # the scopes, in words
    expect(page.get_by_text("See your name")).to_be_visible()
    accessible(page, tmp_path, "app-consent")
    page.get_by_role("button", name="Allow").click()

    expect(page.get_by_text("Back in the app")).to_be_visible()
    answer = {k: v[0] for k, v in parse_qs(urlsplit(back_in_app[-1]).query).items()}
    assert answer["state"] == "s1" and answer["iss"] == server.url
    token = requests.post(f"{server.url}/oauth/token", timeout=10, data={
        "grant_type": "authorization_code", "code": answer["code"], "redirect_uri": redirect,
        "code_verifier": verifier, "client_id": app["client_id"]})  # fmt: skip
    assert token.status_code == 200 and "id_token" in token.json()

    # Single sign-on: the same browser, the app asks again, and is answered at once.
    page.goto(f"{server.url}/oauth/authorize?{urlencode({**query, 'state': 's2'})}")
    expect(page.get_by_text("Back in the app")).to_be_visible()
    assert "state=s2" in back_in_app[-1] and "code=" in back_in_app[-1]
