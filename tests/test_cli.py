"""The ``authserver`` CLI: each command prints JSON; secrets are shown once and stored hashed."""

from __future__ import annotations

import json
import os
import stat

import pytest

from authserver.cli import main
from tests.conftest import cc_token


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()

    def run(*args, ok=True):
        result = runner.invoke(main, list(args))
        if ok:
            assert result.exit_code == 0, (result.output, result.exception)
            return json.loads(result.stdout)
        return result

    return run


def test_tenants_users_clients_create(cli, http):
    tenant = cli("tenants", "create", "Acme Retail")
    assert tenant["id"].startswith("ten_")
    user = cli(
        "users",
        "create",
        "--tenant",
        "Acme Retail",
        "--login",
        "ops",
        "--password",
        "long enough pw",
        "--staff-code",
        "1234",
        "--role",
        "TENANT.ADMIN",
    )
    assert user["id"].startswith("usr_") and user["roles"] == ["TENANT.ADMIN"]
    assert user["staff_code_set"] is True
    client = cli(
        "clients",
        "create",
        "--tenant",
        tenant["id"],
        "--name",
        "svc",
        "--grant-type",
        "client_credentials",
        "--scope",
        "devices:read",
    )
    assert client["client_id"].startswith("cli_")
    assert client["token_endpoint_auth_method"] == "client_secret_basic"
    resp = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert resp.status_code == 200


def test_public_client_has_no_secret(cli):
    cli("tenants", "create", "T")
    client = cli(
        "clients",
        "create",
        "--tenant",
        "T",
        "--name",
        "kiosk",
        "--public",
        "--grant-type",
        "urn:ietf:params:oauth:grant-type:device_code",
    )
    assert client["token_endpoint_auth_method"] == "none"
    assert "client_secret" not in client


def test_errors_are_json_and_nonzero(cli):
    result = cli("tenants", "create", "Dup")
    result = cli("tenants", "create", "Dup", ok=False)
    assert result.exit_code != 0
    assert "already exists" in json.loads(result.stderr)["error"]
    result = cli(
        "clients",
        "create",
        "--tenant",
        "nope",
        "--name",
        "x",
        "--grant-type",
        "client_credentials",
        ok=False,
    )
    assert result.exit_code != 0
    result = cli(
        "clients",
        "create",
        "--tenant",
        "Dup",
        "--name",
        "x",
        "--public",
        "--grant-type",
        "client_credentials",
        ok=False,
    )
    assert "public client" in json.loads(result.stderr)["error"]
    result = cli(
        "clients",
        "create",
        "--tenant",
        "Dup",
        "--name",
        "x",
        "--scope",
        "root",
        "--grant-type",
        "client_credentials",
        ok=False,
    )
    assert "unknown scope" in json.loads(result.stderr)["error"]


def test_keys_list_and_rotate(cli, clock, settings):
    keys = cli("keys", "list")
    assert sorted(k["state"] for k in keys) == ["current", "next"]
    too_early = cli("keys", "rotate", ok=False)
    assert too_early.exit_code != 0
    assert "pre-publication" in json.loads(too_early.stderr)["error"]
    clock.advance(settings.key_prepublish_seconds)
    rotated = cli("keys", "rotate")
    states = {k["kid"]: k["state"] for k in rotated["keys"]}
    assert states[rotated["retired"]] == "retired"
    assert states[rotated["current"]] == "current"
    assert sorted(states.values()) == ["current", "next", "retired"]


def test_demo_is_idempotent_and_prints_working_credentials(cli, http, settings):
    first = cli("demo")
    second = cli("demo")
    assert first == second
    service = next(c for c in first["clients"] if c["client_id"] == "cli_demo_service")
    resp = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(service["client_id"], service["client_secret"]),
    )
    assert resp.status_code == 200
    assert {c["client_id"] for c in first["clients"]} == {
        "cli_demo_service",
        "cli_demo_kiosk",
        "cli_demo_pos",
    }
    saved = settings.instance_path / "demo-credentials.json"
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600


def test_demo_reissues_secrets_when_its_file_is_lost(cli, http, settings):
    first = cli("demo")
    (settings.instance_path / "demo-credentials.json").unlink()
    second = cli("demo")
    old = next(c for c in first["clients"] if c["client_id"] == "cli_demo_service")
    new = next(c for c in second["clients"] if c["client_id"] == "cli_demo_service")
    assert old["client_secret"] != new["client_secret"]
    from tests.conftest import ClientCreds

    assert (
        cc_token(http, ClientCreds(new["client_id"], new["client_secret"], "")).status_code == 200
    )
    assert (
        cc_token(http, ClientCreds(old["client_id"], old["client_secret"], "")).status_code == 401
    )
