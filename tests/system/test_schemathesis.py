"""Schemathesis against a live server, from the server's own OpenAPI document: generated requests
to every operation it can call (a service token for the registry, client credentials for the
OAuth endpoints) get no 5xx, and every answer matches its documented schema.

The calling-device routes (``/api/v1/devices/me...``: a fresh DPoP proof per request, which a
generator cannot make) are left to their own tests. The seed is fixed so that a failure here is reproducible with the command it
prints.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import make_env, start_server, stop_server

pytestmark = pytest.mark.processes
SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(make_env(tmp_path_factory.mktemp("fuzz") / "instance"))
    try:
        srv.service = srv.service_client(
            "Fuzzed",
            "devices:read devices:write users:read users:write tenant:read tenant:write "
            "modules:read modules:write customer-devices:read customer-devices:write",
        )
        yield srv
    finally:
        stop_server(srv)


def run(server, tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCHEMATHESIS, "run", f"{server.url}/openapi.json", "--checks",
         "not_a_server_error,response_schema_conformance", "--max-examples", "15",
         "--seed", "20261130", "--no-color", "--report-dir", str(tmp_path), *args],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )  # fmt: skip


def test_the_registry_answers_every_generated_request_as_documented(server, tmp_path):
    svc = server.service
    token = requests.post(
        f"{server.url}/oauth/token",
        auth=(svc["client_id"], svc["client_secret"]),
        data={"grant_type": "client_credentials"},  # every scope: people and settings too
        timeout=10,
    ).json()["access_token"]
    result = run(server, tmp_path, "-H", f"Authorization: Bearer {token}",
                 "--include-path-regex", "^/api/v1/",
                 "--exclude-path-regex", "/devices/me|/link$")  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout


def test_the_oauth_endpoints_link_url_and_page_answer_every_generated_request_as_documented(
    server, tmp_path
):
    svc = server.service
    result = run(server, tmp_path, "--auth", f"{svc['client_id']}:{svc['client_secret']}",
                 "--include-path-regex", "^/oauth/|^/\\.well-known/|^/healthz|^/readyz|"
                 "^/openapi\\.json|^/docs/|^/device|/link$")  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
