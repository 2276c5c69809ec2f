"""Helpers for device-flow tests: start, poll, approve through the CLI."""

from __future__ import annotations

import json
from typing import Any

from authserver.cli import main

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def start(
    http,
    client_id: str,
    *,
    scope: str | None = None,
    proof: str | None = None,
    headers: dict[str, str] | None = None,
    **form: str,
):
    data = {"client_id": client_id, **form}
    if scope:
        data["scope"] = scope
    h = dict(headers or {})
    if proof:
        h["DPoP"] = proof
    return http.post("/oauth/device_authorization", data=data, headers=h)


def poll(
    http,
    client_id: str,
    device_code: str,
    *,
    proof: str | None = None,
    headers: dict[str, str] | None = None,
):
    h = dict(headers or {})
    if proof:
        h["DPoP"] = proof
    return http.post(
        "/oauth/token",
        data={"grant_type": DEVICE_GRANT, "device_code": device_code, "client_id": client_id},
        headers=h,
    )


def cli(app, *args: str) -> Any:
    result = app.test_cli_runner().invoke(main, list(args))
    if result.exit_code != 0:
        return {"exit_code": result.exit_code, "error": json.loads(result.stderr)["error"]}
    return json.loads(result.stdout)


def approve(app, user_code: str, login: str, *extra: str) -> Any:
    return cli(app, "device", "approve", user_code, "--user", login, *extra)


def kiosk_world(
    world,
    *,
    device_subject: str = "device",
    refresh: bool = True,
    scope: str = "devices:read",
    roles: tuple[str, ...] = ("TENANT.ADMIN",),
    id_token_alg: str | None = None,
):
    """A tenant with an admin user (login "admin") and a public device-flow client."""
    tenant = world.tenant()
    world.user(tenant, login="admin", password="correct horse", roles=roles)
    grants = (DEVICE_GRANT, "refresh_token") if refresh else (DEVICE_GRANT,)
    client = world.client(tenant, grant_types=grants, auth_method="none", scope=scope)
    if device_subject != "device" or id_token_alg:
        from authserver.models import Client, db

        with world.app.app_context():
            row = db.session.get(Client, client.client_id)
            row.device_subject = device_subject
            row.id_token_alg = id_token_alg
            db.session.commit()
    return tenant, client


def kiosk_login(
    server: Any, name: str, approve_code: Any, **options: Any
) -> tuple[int, dict[str, Any], str]:
    """Run ``authserver device-login --dpop`` (``run_device_login``) against a live server in a
    thread, read the code it shows, let ``approve_code(code)`` decide it, and return its exit
    code, its JSON result and everything it wrote for the person at the kiosk."""
    import io
    import threading
    import time

    from authserver.kiosk import run_device_login

    err = io.StringIO()
    result: dict[str, Any] = {}

    def kiosk() -> None:
        result["out"] = run_device_login(
            server.url, server.kiosk["client_id"], None, name, dpop=True, err=err, **options
        )

    thread = threading.Thread(target=kiosk)
    thread.start()
    deadline = time.monotonic() + 20
    code = None
    while code is None and time.monotonic() < deadline:
        for line in err.getvalue().splitlines():
            if "enter the code" in line:
                code = line.split()[-1]
        time.sleep(0.1)
    assert code, err.getvalue()
    approve_code(code)
    thread.join(timeout=30)
    status, body = result["out"]
    return status, body, err.getvalue()
