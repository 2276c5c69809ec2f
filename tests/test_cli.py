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


def introspect(http, creds, token):
    return http.post(
        "/oauth/introspect", data={"token": token}, headers=creds.auth_header()
    ).get_json()


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
    assert sorted((k["state"], k["alg"]) for k in keys) == [
        ("current", "ES256"), ("current", "RS256"), ("next", "ES256"), ("next", "RS256"),
    ]  # fmt: skip
    too_early = cli("keys", "rotate", ok=False)
    assert too_early.exit_code != 0
    assert "pre-publication" in json.loads(too_early.stderr)["error"]
    clock.advance(settings.key_prepublish_seconds)
    rotated = cli("keys", "rotate")  # every algorithm
    states = {k["kid"]: k["state"] for k in rotated["keys"]}
    assert states[rotated["retired"]] == "retired"
    assert states[rotated["current"]] == "current"
    assert [r["alg"] for r in rotated["rotated"]] == ["ES256", "RS256"]
    assert sorted(states.values()) == ["current"] * 2 + ["next"] * 2 + ["retired"] * 2
    clock.advance(settings.key_prepublish_seconds)
    one = cli("keys", "rotate", "--alg", "RS256")  # only the ID tokens' keys
    assert [r["alg"] for r in one["rotated"]] == ["RS256"]
    assert one["retired"] == rotated["rotated"][1]["current"]
    after = {k["kid"]: k for k in one["keys"]}
    assert after[one["retired"]]["state"] == "retired"
    assert after[one["current"]]["state"] == "current"
    # The ES256 keys were left alone: the same current key before and after.
    assert after[rotated["rotated"][0]["current"]]["state"] == "current"
    unknown = cli("keys", "rotate", "--alg", "Ed25519", "--force", ok=False)
    assert "no Ed25519 keys" in json.loads(unknown.stderr)["error"]


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
        "cli_demo_app",
        "cli_demo_web",
        "cli_demo_native",
    }
    web = next(c for c in first["clients"] if c["client_id"] == "cli_demo_web")
    assert web["redirect_uris"] == ["http://127.0.0.1/callback"] and web["client_secret"]
    kinds = {c["client_id"]: c["user_kind"] for c in cli("clients", "list", "--tenant", "ten_demo")}
    assert kinds["cli_demo_web"] == "staff" and kinds["cli_demo_app"] == "customer"
    assert kinds["cli_demo_native"] == "any"
    saved = settings.instance_path / "demo-credentials.json"
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600


def test_clients_for_the_code_flow_are_registered_with_their_redirect_uris(cli):
    tenant = cli("tenants", "create", "Shop")["id"]
    made = cli("clients", "create", "--tenant", tenant, "--name", "Shop web",
               "--grant-type", "authorization_code", "--grant-type", "refresh_token",
               "--scope", "openid profile", "--redirect-uri", "https://shop.example/cb",
               "--redirect-uri", "http://127.0.0.1/cb", "--first-party",
               "--post-logout-redirect-uri", "https://shop.example/")  # fmt: skip
    assert made["redirect_uris"] == ["https://shop.example/cb", "http://127.0.0.1/cb"]
    assert made["post_logout_redirect_uris"] == ["https://shop.example/"]
    assert made["first_party"] is True
    assert made["require_pushed_authorization_requests"] is False
    assert made["id_token_signed_response_alg"] == "RS256"  # OIDC's default
    es = cli("clients", "update", made["client_id"], "--id-token-alg", "ES256")
    assert es["id_token_signed_response_alg"] == "ES256"
    # Only an algorithm the server holds keys for: Ed25519 is not one of them by default.
    refused = cli("clients", "update", made["client_id"], "--id-token-alg", "Ed25519", ok=False)
    assert refused.exit_code == 1 and "ES256, RS256" in refused.stderr
    updated = cli("clients", "update", made["client_id"], "--require-par", "--third-party",
                  "--redirect-uri", "com.example.shop:/cb")  # fmt: skip
    assert updated["redirect_uris"] == ["com.example.shop:/cb"]
    assert updated["require_pushed_authorization_requests"] is True
    assert updated["first_party"] is False
    assert cli("clients", "show", made["client_id"]) == updated
    # Refused: a code-flow client with no redirect URI, an unsafe URI.
    refused = cli("clients", "create", "--tenant", tenant, "--name", "x",
                  "--grant-type", "authorization_code", ok=False)  # fmt: skip
    assert refused.exit_code == 1 and "redirect-uri" in refused.stderr
    refused = cli("clients", "update", made["client_id"], "--redirect-uri",
                  "http://shop.example/cb", ok=False)  # fmt: skip
    assert refused.exit_code == 1 and "must be https" in refused.stderr


def test_people_are_staff_or_customers_and_apps_admit_one_kind(cli):
    tenant = cli("tenants", "create", "Shop")["id"]
    cara = cli("users", "create", "--tenant", tenant, "--login", "cara@example.com",
               "--password", "correct horse b", "--kind", "customer")  # fmt: skip
    assert cara["kind"] == "customer"
    staff = cli("users", "create", "--tenant", tenant, "--login", "bo", "--password",
                "correct horse b")  # fmt: skip
    assert staff["kind"] == "staff"
    refused = cli("users", "create", "--tenant", tenant, "--login", "dy", "--password",
                  "correct horse b", "--kind", "customer", "--role", "STAFF", ok=False)  # fmt: skip
    assert refused.exit_code == 1 and "no roles" in refused.stderr
    assert "dy" not in {u["login"] for u in cli("users", "list", "--tenant", tenant)}
    refused = cli("users", "update", "--tenant", tenant, "cara@example.com", "--role", "STAFF",
                  ok=False)  # fmt: skip
    assert refused.exit_code == 1 and "no roles" in refused.stderr
    assert cli("users", "update", "--tenant", tenant, "cara@example.com", "--kind", "staff",
               "--role", "STAFF")["kind"] == "staff"  # fmt: skip
    app = cli("clients", "create", "--tenant", tenant, "--name", "Back office",
              "--grant-type", "authorization_code", "--redirect-uri", "https://bo.example/cb",
              "--user-kind", "staff")  # fmt: skip
    assert app["user_kind"] == "staff"
    changed = cli("clients", "update", app["client_id"], "--user-kind", "any")
    assert changed["user_kind"] == "any"
    refused = cli("clients", "update", app["client_id"], "--user-kind", "robots", ok=False)
    assert refused.exit_code == 2


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


# -- the operator's CLI (issue: interfaces) -----------------------------------------------------------


def test_help_and_version_are_authservers_own(cli, app):
    runner = app.test_cli_runner()
    version = runner.invoke(main, ["--version"])
    assert version.exit_code == 0 and version.output.strip() == "authserver 0.1.0"
    helped = runner.invoke(main, ["--help"]).output
    assert "fleets of devices" in helped
    for flask_noise in ("--env-file", "--app", "--debug", "python-dotenv"):
        assert flask_noise not in helped
    for command in ("tenants", "users", "clients", "locations", "devices", "keys", "serve"):
        assert command in helped


def test_passwords_are_prompted_or_read_from_stdin_not_required(app):
    runner = app.test_cli_runner()
    runner.invoke(main, ["tenants", "create", "Stdin"])
    result = runner.invoke(
        main, ["users", "create", "--tenant", "Stdin", "--login", "ops"], input="long enough pw\n"
    )
    assert result.exit_code == 0, result.output
    user = json.loads(result.stdout)
    assert "password" not in json.dumps(user)
    # The password read from stdin is the one that signs in.
    from authserver.models import User, db
    from authserver.security import verify_password

    with app.app_context():
        assert verify_password("long enough pw", db.session.get(User, user["id"]).password_hash)


def test_roles_are_validated_and_listed(cli):
    cli("tenants", "create", "Roles")
    refused = cli(
        "users", "create", "--tenant", "Roles", "--login", "x", "--password", "long enough",
        "--role", "FOO", ok=False,
    )  # fmt: skip
    assert refused.exit_code == 1
    message = json.loads(refused.stderr)["error"]
    assert "FOO" in message and "TENANT.ADMIN" in message and "DEVICE.MANAGER" in message
    ok = cli(
        "users", "create", "--tenant", "Roles", "--login", "y", "--password", "long enough",
        "--role", "DEVICE.MANAGER@loc_north",
    )  # fmt: skip
    assert ok["roles"] == ["DEVICE.MANAGER@loc_north"]


def test_roles_are_granted_by_login_and_revoked_tenant_wide(cli):
    cli("tenants", "create", "Grants")
    for login, roles in (("ann", ()), ("bob", ("STAFF", "DEVICE.MANAGER")), ("cy", ("SU",))):
        cli("users", "create", "--tenant", "Grants", "--login", login, "--password",
            "long enough", *[x for r in roles for x in ("--role", r)])  # fmt: skip
    loc = cli("locations", "create", "--tenant", "Grants", "--name", "North")["id"]
    # The command line alone gives SU.
    su = cli("users", "grant-role", "--tenant", "Grants", "--role", "SU", "ann")
    assert su["user_ids"] and su["unknown_logins"] == []
    at = cli("users", "grant-role", "--tenant", "Grants", "--role", "STAFF", "--location", loc,
             "ann", "nobody", ok=False)  # fmt: skip
    assert at.exit_code == 1 and json.loads(at.stdout)["unknown_logins"] == ["nobody"]
    shown = cli("users", "show", "--tenant", "Grants", "ann")
    assert shown["roles"] == sorted(["SU", f"STAFF@{loc}"])
    bad = cli("users", "grant-role", "--tenant", "Grants", "--role", "STAFF", "--location",
              "loc_elsewhere", "ann", ok=False)  # fmt: skip
    assert bad.exit_code == 1 and "No such location" in json.loads(bad.stderr)["error"]
    revoked = cli("users", "revoke-role", "--tenant", "Grants", "--role", "STAFF")
    assert revoked == {"roles": ["STAFF"], "users_changed": 2}
    roles = {u["login"]: u["roles"] for u in cli("users", "list", "--tenant", "Grants")}
    assert roles == {"ann": ["SU"], "bob": ["DEVICE.MANAGER"], "cy": ["SU"]}
    never_su = cli("users", "revoke-role", "--tenant", "Grants", "--role", "SU", ok=False)
    assert never_su.exit_code == 1
    assert cli("users", "revoke-role", "--tenant", "Grants", "--role", "FOO", ok=False).exit_code


def test_tenant_lifecycle(cli, http, world):
    tenant = cli("tenants", "create", "Life")
    assert [t["name"] for t in cli("tenants", "list")].count("Life") == 1
    assert cli("tenants", "show", "Life")["id"] == tenant["id"]
    assert cli("tenants", "update", tenant["id"], "--name", "Life 2")["name"] == "Life 2"
    svc = cli(
        "clients", "create", "--tenant", "Life 2", "--name", "svc", "--grant-type",
        "client_credentials", "--scope", "devices:read",
    )  # fmt: skip
    from tests.conftest import ClientCreds

    creds = ClientCreds(svc["client_id"], svc["client_secret"], tenant["id"])
    token = cc_token(http, creds).get_json()["access_token"]
    bystander = world.client()  # another tenant
    theirs = cc_token(http, bystander).get_json()["access_token"]
    assert cli("tenants", "disable", "Life 2")["active"] is False
    # Its clients cannot authenticate and their tokens are revoked.
    assert cc_token(http, creds).status_code == 401
    intro = http.post(
        "/oauth/introspect", data={"token": token}, headers=world.client().auth_header()
    )
    assert intro.get_json() == {"active": False}
    # Another tenant's token and client are untouched.
    assert introspect(http, bystander, theirs)["active"] is True
    assert cc_token(http, bystander).status_code == 200
    assert cli("tenants", "enable", "Life 2")["active"] is True
    assert cc_token(http, creds).status_code == 200
    refused = cli("tenants", "delete", "Life 2", ok=False)
    assert refused.exit_code == 1 and "clients" in json.loads(refused.stderr)["error"]
    cli("clients", "delete", svc["client_id"])
    assert cli("tenants", "delete", "Life 2") == {"id": tenant["id"], "deleted": True}
    assert "Life 2" not in [t["name"] for t in cli("tenants", "list")]
    assert introspect(http, bystander, theirs)["active"] is True


def test_user_lifecycle_and_token_revocation(cli, app, http, world):
    from tests.device_helpers import DEVICE_GRANT, approve, poll, start

    tenant = cli("tenants", "create", "People")
    cli(
        "users", "create", "--tenant", "People", "--login", "ana", "--password", "long enough",
        "--role", "TENANT.ADMIN",
    )  # fmt: skip
    signin = world.client(tenant["id"], grant_types=(DEVICE_GRANT,), auth_method="none")
    from authserver.models import Client, db

    with app.app_context():
        db.session.get(Client, signin.client_id).device_subject = "user"
        db.session.commit()
    body = start(http, signin.client_id).get_json()
    approve(app, body["user_code"], "ana")
    token = poll(http, signin.client_id, body["device_code"]).get_json()["access_token"]
    rs = world.client(tenant["id"])

    def active(t):
        return http.post(
            "/oauth/introspect", data={"token": t}, headers=rs.auth_header()
        ).get_json()["active"]

    assert active(token)
    assert [u["login"] for u in cli("users", "list", "--tenant", "People")] == ["ana"]
    # A bystander: another user of the same tenant, signed in on the same client.
    cli(
        "users", "create", "--tenant", "People", "--login", "bea", "--password", "long enough",
        "--role", "CASHIER",
    )  # fmt: skip
    body = start(http, signin.client_id).get_json()
    approve(app, body["user_code"], "bea")
    theirs = poll(http, signin.client_id, body["device_code"]).get_json()["access_token"]
    updated = cli(
        "users", "update", "--tenant", "People", "ana", "--login", "ana2", "--role", "CASHIER"
    )  # fmt: skip
    assert updated["login"] == "ana2" and updated["roles"] == ["CASHIER"]
    assert cli("users", "disable", "--tenant", "People", "ana2")["active"] is False
    assert not active(token)
    assert active(theirs)
    assert cli("users", "enable", "--tenant", "People", "ana2")["active"] is True
    assert not active(token)  # what was revoked stays revoked
    gone = cli("users", "delete", "--tenant", "People", "ana2")
    assert gone["deleted"] is True
    assert active(theirs)
    missing = cli("users", "show", "--tenant", "People", "ana2", ok=False)
    assert missing.exit_code == 1 and "no user" in json.loads(missing.stderr)["error"]


def test_client_lifecycle(cli, http):
    tenant = cli("tenants", "create", "Clients")
    svc = cli(
        "clients", "create", "--tenant", "Clients", "--name", "svc", "--grant-type",
        "client_credentials", "--scope", "devices:read",
    )  # fmt: skip
    from tests.conftest import ClientCreds

    creds = ClientCreds(svc["client_id"], svc["client_secret"], tenant["id"])
    token = cc_token(http, creds).get_json()["access_token"]
    assert cli("clients", "show", svc["client_id"])["name"] == "svc"
    assert [c["client_id"] for c in cli("clients", "list", "--tenant", "Clients")] == [
        svc["client_id"]
    ]
    # A bystander: another client of the same tenant, with a token of its own.
    rs = cli(
        "clients", "create", "--tenant", "Clients", "--name", "rs", "--grant-type",
        "client_credentials", "--scope", "devices:read",
    )  # fmt: skip
    neighbour = ClientCreds(rs["client_id"], rs["client_secret"], tenant["id"])
    theirs = cc_token(http, neighbour).get_json()["access_token"]
    changed = cli("clients", "update", svc["client_id"], "--scope", "devices:read devices:write")
    assert changed["scope"] == "devices:read devices:write"
    rotated = cli("clients", "rotate-secret", svc["client_id"])
    assert cc_token(http, creds).status_code == 401  # the old secret
    creds.client_secret = rotated["client_secret"]
    assert cc_token(http, creds).status_code == 200
    assert cli("clients", "disable", svc["client_id"])["active"] is False
    assert cc_token(http, creds).status_code == 401
    intro = http.post("/oauth/introspect", data={"token": token}, headers=creds.auth_header())
    assert intro.status_code == 401  # a disabled client cannot even introspect
    assert introspect(http, neighbour, token)["active"] is False  # its tokens are revoked
    assert introspect(http, neighbour, theirs)["active"] is True
    assert cli("clients", "enable", svc["client_id"])["active"] is True
    assert cc_token(http, creds).status_code == 200
    assert cli("clients", "delete", svc["client_id"])["deleted"] is True
    assert cc_token(http, creds).status_code == 401
    assert introspect(http, neighbour, theirs)["active"] is True
    assert cc_token(http, neighbour).status_code == 200


def test_locations_and_devices(cli):
    cli("tenants", "create", "Shop")
    loc = cli("locations", "create", "--tenant", "Shop", "--name", "North")
    assert cli("locations", "update", "--tenant", "Shop", loc["id"], "--name", "N")["name"] == "N"
    assert [x["id"] for x in cli("locations", "list", "--tenant", "Shop")] == [loc["id"]]
    till = cli(
        "devices", "create", "--tenant", "Shop", "--name", "Till 1", "--to-link",
        "--location", loc["id"],
    )  # fmt: skip
    assert till["status"] == "READY_TO_LINK" and till["linkCode"]
    assert cli("devices", "show", "--tenant", "Shop", till["id"])["locationIds"] == [loc["id"]]
    assert (
        cli("devices", "update", "--tenant", "Shop", till["id"], "--till", "T1")["tillId"] == "T1"
    )
    audit = cli("devices", "create", "--tenant", "Shop", "--name", "Audit")
    assert cli("devices", "block", "--tenant", "Shop", audit["id"])["status"] == "BLOCKED"
    assert cli("devices", "show", "--tenant", "Shop", till["id"])["status"] == "READY_TO_LINK"
    assert cli("devices", "unblock", "--tenant", "Shop", audit["id"])["status"] == "ACTIVE"
    again = cli("devices", "unlink", "--tenant", "Shop", till["id"])
    assert again["linkCode"] and again["linkCode"] != till["linkCode"]
    assert len(cli("devices", "list", "--tenant", "Shop")) == 2
    refused = cli("locations", "delete", "--tenant", "Shop", loc["id"], ok=False)
    assert refused.exit_code == 1 and "active devices" in json.loads(refused.stderr)["error"]
    cli("devices", "delete", "--tenant", "Shop", till["id"])
    assert cli("devices", "show", "--tenant", "Shop", audit["id"])["status"] == "ACTIVE"
    assert cli("locations", "delete", "--tenant", "Shop", loc["id"])["deleted"] is True
    wrong = cli("devices", "show", "--tenant", "Shop", till["id"], ok=False)
    assert wrong.exit_code == 1 and "No such device" in json.loads(wrong.stderr)["error"]


def test_keys_show_and_table_format(cli, app):
    keys = cli("keys", "list")
    shown = cli("keys", "show", "--", keys[0]["kid"])  # kids may begin with "-"
    assert shown["kid"] == keys[0]["kid"] and shown["public_jwk"]["kid"] == keys[0]["kid"]
    result = app.test_cli_runner().invoke(main, ["--format", "table", "keys", "list"])
    lines = result.stdout.splitlines()
    assert lines[0].split()[0] == "kid" and set(lines[1]) <= {"-", " "}
    assert len(lines) == 2 + len(keys)


@pytest.mark.parametrize(
    "env,args,expected",
    [
        ({"DATABASE_URL": "mysql://u@h/db"}, ["tenants", "list"], "SQLite and PostgreSQL"),
        ({"DATABASE_URL": "notaurl"}, ["tenants", "list"], "DATABASE_URL must be"),
        (
            {"DATABASE_URL": "postgresql://u@127.0.0.1:1/x", "AUTHSERVER_KEY_ENCRYPTION_KEY": "K",
             "AUTHSERVER_SECRET_KEY": "K"},
            ["tenants", "list"],
            "cannot be reached",
        ),
        ({"REDIS_URL": "redis://127.0.0.1:1/0"}, ["serve", "--port", "PORT"], "REDIS_URL"),
        ({}, ["serve", "--port", "99999"], "99999"),
        ({"AUTHSERVER_INSTANCE_PATH": "/etc/passwd/instance"}, ["tenants", "list"], "Not a directory"),
    ],
    ids=["unsupported scheme", "malformed url", "unreachable db", "unreachable redis",
         "port out of range", "instance not a folder"],
)  # fmt: skip
def test_start_up_mistakes_are_one_line_not_a_traceback(tmp_path, env, args, expected):
    import subprocess
    import sys

    from tests.conftest import ROOT, b64key, free_port

    full = {**os.environ, "AUTHSERVER_INSTANCE_PATH": str(tmp_path / "instance")}
    for name in ("DATABASE_URL", "REDIS_URL", "AUTHSERVER_ISSUER"):
        full.pop(name, None)
    full.update({k: (b64key() if v == "K" else v) for k, v in env.items()})
    args = [str(free_port()) if a == "PORT" else a for a in args]
    proc = subprocess.run(
        [sys.executable, "-m", "authserver.cli", *args],
        env=full, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert expected in proc.stderr
    if not args[0] == "serve" or "99999" not in args:
        assert len(lines) == 1 and json.loads(lines[0])["error"]


def test_a_port_in_use_says_to_choose_another(tmp_path):
    import socket
    import subprocess
    import sys

    from tests.conftest import ROOT

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "AUTHSERVER_INSTANCE_PATH": str(tmp_path / "i")}
        for name in ("DATABASE_URL", "REDIS_URL", "AUTHSERVER_ISSUER"):
            env.pop(name, None)
        proc = subprocess.run(
            [sys.executable, "-m", "authserver.cli", "serve", "--port", str(port)],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert proc.returncode == 2
    error = json.loads(proc.stderr.strip().splitlines()[-1])["error"]
    assert "already in use" in error and "--port" in error


def test_the_kiosk_commands_say_what_they_need(cli, tmp_path):
    refresh = cli("device-login", "--refresh", ok=False)
    assert refresh.exit_code == 1 and "--refresh needs --state" in refresh.stderr
    enrol = cli("device-login", ok=False)
    assert enrol.exit_code == 1 and "--client is required" in enrol.stderr
    missing = cli("device-call", "/api/v1/modules/me", "--state", str(tmp_path / "none.json"),
                  ok=False)  # fmt: skip
    assert missing.exit_code == 2
    assert json.loads(missing.stdout)["error"] == "state_file"
    (tmp_path / "bad.json").write_text("{}")
    broken = cli("device-login", "--refresh", "--state", str(tmp_path / "bad.json"), ok=False)
    assert broken.exit_code == 2 and json.loads(broken.stdout)["error"] == "state_file"


def test_demo_kiosk_is_dpop_bound_and_the_service_manages_modules(cli, app):
    demo = cli("demo")
    clients = {c["client_id"]: c for c in demo["clients"]}
    assert "modules:write" in clients["cli_demo_service"]["scope"].split()
    from authserver.models import Client, db

    with app.app_context():
        assert db.session.get(Client, "cli_demo_kiosk").dpop_bound is True
        # A demo made before modules existed gets the scopes when demo runs again.
        db.session.get(Client, "cli_demo_service").scope = "devices:read"
        db.session.commit()
    again = {c["client_id"]: c for c in cli("demo")["clients"]}
    assert "modules:read" in again["cli_demo_service"]["scope"].split()


def test_a_state_file_others_can_read_is_refused(cli, tmp_path):
    state = tmp_path / "kiosk.json"
    state.write_text('{"dpop_private_key_pem": "x"}')
    os.chmod(state, 0o644)
    refused = cli("device-call", "/api/v1/modules/me", "--state", str(state), ok=False)
    assert refused.exit_code == 2
    assert "readable by you only" in json.loads(refused.stdout)["error_description"]
