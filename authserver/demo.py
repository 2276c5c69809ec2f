"""``authserver demo``: a demo tenant, an admin user and three clients, created idempotently.

Secrets are shown to the operator, so they are kept in ``instance/demo-credentials.json`` (mode
0600, beside the generated key-encryption key) to be printed again on the next run. The database
holds only their hashes. If that file is lost, the next run issues new secrets.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from authserver.admin import (
    create_client,
    create_tenant,
    create_user,
    reset_client_secret,
    update_client,
)
from authserver.credentials import staff_code_hash
from authserver.models import Client, Tenant, User, db
from authserver.security import hash_password
from authserver.state import get_state
from grants import (
    AUTHORIZATION_CODE,
    CLIENT_CREDENTIALS,
    DEVICE_CODE,
    LINK_CODE,
    REFRESH_TOKEN,
    STAFF_SIGN_IN,
)

TENANT_ID = "ten_demo"
ADMIN_ID = "usr_demo_admin"
CLIENTS: list[dict[str, Any]] = [
    {
        "client_id": "cli_demo_service",
        "name": "Demo back-office service",
        "grant_types": [CLIENT_CREDENTIALS],
        "auth_method": "client_secret_basic",
        "scope": "devices:read devices:write users:read users:write tenant:read tenant:write "
        "modules:read modules:write customer-devices:read customer-devices:write clients:read "
        "clients:write",
    },
    {
        "client_id": "cli_demo_kiosk",
        "name": "Demo kiosk",
        "grant_types": [DEVICE_CODE, REFRESH_TOKEN],
        "auth_method": "none",
        "scope": "devices:read",
        # Its tokens are bound to the kiosk's key (RFC 9449 §5.2), as device endpoints want.
        "dpop_bound": True,
    },
    {
        "client_id": "cli_demo_pos",
        "name": "Demo POS terminal",
        "grant_types": [LINK_CODE, REFRESH_TOKEN, STAFF_SIGN_IN],
        "auth_method": "none",
        # devices:write lets a terminal update its own system information; device tokens never
        # manage the registry, whatever their scope.
        "scope": "devices:read devices:write",
    },
    {
        "client_id": "cli_demo_app",
        "name": "Demo customer app",
        "grant_types": [DEVICE_CODE, REFRESH_TOKEN],
        "auth_method": "none",
        # A person signs in (the device flow's subject is the approving user), on a phone whose
        # key the tokens are bound to.
        "scope": "openid",
        "device_subject": "user",
        "dpop_bound": True,
        "user_kind": "customer",  # the tenant's customers' app: staff accounts are refused
    },
    {
        "client_id": "cli_demo_web",
        "name": "Demo back-office web app",
        "grant_types": [AUTHORIZATION_CODE, REFRESH_TOKEN],
        "auth_method": "client_secret_basic",
        # The tenant's own app: people sign in, no consent page. A loopback redirect URI takes
        # any port (RFC 8252 §7.3), so it runs wherever you start it on this machine.
        "scope": "openid profile devices:read devices:write",
        "redirect_uris": ["http://127.0.0.1/callback"],
        "post_logout_redirect_uris": ["http://127.0.0.1/"],
        "first_party": True,
        "user_kind": "staff",  # a back office: customers are refused
    },
    {
        "client_id": "cli_demo_native",
        "name": "Demo native app",
        "grant_types": [AUTHORIZATION_CODE, REFRESH_TOKEN],
        "auth_method": "none",
        # A third party's app: the person is asked to consent once.
        "scope": "openid profile",
        "redirect_uris": ["http://127.0.0.1/callback", "com.example.demo:/callback"],
    },
]


def _save(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, path)


def run_demo() -> dict[str, Any]:
    settings = get_state().settings
    path = settings.instance_path / "demo-credentials.json"
    saved: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}

    tenant = db.session.get(Tenant, TENANT_ID) or create_tenant("Demo tenant", TENANT_ID)

    admin = db.session.get(User, ADMIN_ID)
    if "admin" in saved and "user_code" in saved["admin"]:  # written before the rename
        saved["admin"]["staff_code"] = saved["admin"].pop("user_code")
    if admin is None or "admin" not in saved:
        password = secrets.token_urlsafe(12)
        staff_code = "".join(secrets.choice("0123456789") for _ in range(6))
        if admin is None:
            create_user(tenant, "admin", password, staff_code, ["TENANT.ADMIN"], ADMIN_ID)
        else:
            admin.password_hash = hash_password(password)
            admin.staff_code_hash = staff_code_hash(tenant.id, staff_code)
            db.session.commit()
        saved["admin"] = {"login": "admin", "password": password, "staff_code": staff_code}

    secrets_by_id: dict[str, str] = saved.setdefault("client_secrets", {})
    out_clients = []
    for spec in CLIENTS:
        client = db.session.get(Client, spec["client_id"])
        if client is None:
            created = create_client(tenant, **spec)
            client = created.client
            if created.client_secret:
                secrets_by_id[client.client_id] = created.client_secret
        else:
            # A demo made by an older version gets what the demo clients have now.
            dpop_bound = spec.get("dpop_bound", False)
            if client.scope != spec["scope"] or client.dpop_bound != dpop_bound:
                update_client(client, scope=spec["scope"], dpop_bound=dpop_bound, actor="demo")
            if (client.user_kind or "any") != spec.get("user_kind", "any"):
                update_client(client, user_kind=spec.get("user_kind", "any"), actor="demo")
            if client.auth_method != "none" and client.client_id not in secrets_by_id:
                secrets_by_id[client.client_id] = reset_client_secret(client)
        entry = {
            "client_id": client.client_id,
            "name": client.name,
            "token_endpoint_auth_method": client.auth_method,
            "grant_types": client.grant_types,
            "scope": client.scope,
        }
        if client.redirect_uris:
            entry["redirect_uris"] = list(client.redirect_uris)
        if client.client_id in secrets_by_id:
            entry["client_secret"] = secrets_by_id[client.client_id]
        out_clients.append(entry)
    _save(path, saved)
    return {
        "issuer": settings.issuer,
        "tenant": {"id": tenant.id, "name": tenant.name},
        "admin": {"id": ADMIN_ID, **saved["admin"], "roles": ["TENANT.ADMIN"]},
        "clients": out_clients,
    }
