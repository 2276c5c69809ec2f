"""The README's runnable examples work against the server its run command starts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, make_env, reset_shared_database, start_server, stop_server

pytestmark = pytest.mark.processes


def snippet(name: str) -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- readme-test: {name} -->\n```python\n(.*?)```", text, re.S)
    assert match, f"README has no '{name}' example"
    return match.group(1)


@pytest.fixture
def demo_server(tmp_path: Path):
    env = make_env(tmp_path / "instance")
    reset_shared_database(env)
    full = {**os.environ, **env}
    subprocess.run(
        [sys.executable, "-m", "authserver.cli", "demo"],
        env=full,
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    server = start_server(env, reset=False)
    try:
        yield server, tmp_path
    finally:
        stop_server(server)


@pytest.mark.parametrize(
    "name", ["dpop", "pos", "dpop-helper", "people", "customer-devices", "register-app"]
)
def test_readme_example_runs(demo_server, name):
    server, cwd = demo_server
    code = snippet(name).replace("http://127.0.0.1:8000", server.url)
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **server.env},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    if name == "people":
        lines = result.stdout.splitlines()
        assert lines[0].startswith("201 [{'role': 'STAFF', 'locationId': 'loc_")
        assert lines[1:] == [
            "200 urn:ietf:params:oauth:token-type:access_token",
            "200 True",
            "400 totp_required",
            "200",
            "401",
        ]
    elif name == "pos":
        lines = result.stdout.splitlines()
        assert lines[0].startswith("201 dev_") and "READY_TO_LINK" in lines[0]
        assert lines[1].startswith("200 ACTIVE bound to ")
        assert lines[2] == "401"
        assert lines[3].startswith("401 ")
        assert lines[4] == "200 ACTIVE"
    elif name == "customer-devices":
        assert result.stdout.splitlines() == [
            "201 ACTIVE True",
            "200 ['fcm:eXaMpLe']",
            "202 []",
            "401",
        ]
    elif name == "register-app":
        assert result.stdout.splitlines() == ["201 True True", "200", "401"]
    elif name == "dpop-helper":
        assert result.stdout.strip() == "DPoP 200"
    else:
        assert result.stdout.startswith("DPoP ey")


def _browser_signs_in(browser: Any, page: Any, base: str, login: str, password: str) -> Any:
    """What a person does in their browser on the server's pages: sign in when asked, allow the
    app when asked; returns the answer of the app's redirect URI, where the server sends them."""

    def fields(resp: Any) -> dict[str, str]:
        return {n: re.search(rf'name="{n}" value="([^"]+)"', resp.text).group(1)
                for n in ("csrf", "interaction")}  # fmt: skip

    seen = []
    while page.status_code == 200:
        if 'name="password"' in page.text:
            form = {"action": "login", "login": login, "password": password}
        else:
            assert 'value="allow"' in page.text, page.text  # a third party's app
            form = {"action": "allow"}
        seen.append(form["action"])
        page = browser.post(f"{base}/oauth/authorize/continue", allow_redirects=False,
                            data={**fields(page), **form})  # fmt: skip
    assert page.status_code == 303, page.text
    answer = browser.get(page.headers["Location"])
    answer.pages = seen
    return answer


def test_readme_sign_in_for_a_web_app_and_a_native_app(demo_server):
    """The two sign-in examples, run as written, with a person signing in through them."""
    import json
    import socket
    import time

    import requests

    from tests.conftest import free_port

    server, cwd = demo_server
    admin = json.loads((cwd / "instance" / "demo-credentials.json").read_text())["admin"]
    env = {**os.environ, **server.env, "BROWSER": "true"}  # webbrowser.open: do nothing
    port = free_port()
    web_code = snippet("web-app").replace("http://127.0.0.1:8000", server.url)
    web = subprocess.Popen(
        [sys.executable, "-c", web_code.replace("port=5000", f"port={port}")],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    native = subprocess.Popen(
        [sys.executable, "-c", snippet("native-app").replace("http://127.0.0.1:8000", server.url)],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        browser = requests.Session()
        # The web app: its sign-in link leads to the server's page; back at the app, signed in.
        page = browser.get(f"http://127.0.0.1:{port}/login")
        done = _browser_signs_in(browser, page, server.url, "admin", admin["password"])
        assert done.pages == ["login"]  # first-party: no consent page
        assert done.status_code == 200 and done.text == "Hello admin, signed in with ['pwd']"
        # The native app, in the same browser: signed in at the server already (its session),
        # so only the consent page of this third party's app.
        url = native.stdout.readline().split("Sign in at ", 1)[1].strip()
        page = browser.get(url, allow_redirects=False)
        done = _browser_signs_in(browser, page, server.url, "admin", admin["password"])
        assert done.pages == ["allow"]
        assert done.text == "Signed in: you can close this tab."
        out, err = native.communicate(timeout=30)
        assert native.returncode == 0, out + err
        assert out.strip() == "admin Bearer"
    finally:
        for proc in (web, native):
            proc.kill()
            proc.wait()
