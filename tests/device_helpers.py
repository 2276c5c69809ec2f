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
):
    """A tenant with an admin user (login "admin") and a public device-flow client."""
    tenant = world.tenant()
    world.user(tenant, login="admin", password="correct horse", roles=roles)
    grants = (DEVICE_GRANT, "refresh_token") if refresh else (DEVICE_GRANT,)
    client = world.client(tenant, grant_types=grants, auth_method="none", scope=scope)
    if device_subject != "device":
        from authserver.models import Client, db

        with world.app.app_context():
            db.session.get(Client, client.client_id).device_subject = device_subject
            db.session.commit()
    return tenant, client
