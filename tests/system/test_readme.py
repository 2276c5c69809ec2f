"""The README's runnable examples work against the server its run command starts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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


@pytest.mark.parametrize("name", ["dpop", "pos", "dpop-helper", "people", "customer-devices"])
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
    elif name == "dpop-helper":
        assert result.stdout.strip() == "DPoP 200"
    else:
        assert result.stdout.startswith("DPoP ey")
