"""The ``authserver`` console script: Flask's CLI, JSON on stdout."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from authserver import create_app
from authserver.admin import (
    AUTH_METHODS,
    AdminError,
    create_client,
    create_tenant,
    create_user,
    find_tenant,
    prepare_database,
)
from authserver.config import ConfigError, load_settings
from authserver.models import db
from authserver.security import now
from authserver.state import get_state
from grants import KNOWN_GRANT_TYPES
from keys.encryption import KeyDecryptionError, KeyEncryptor
from keys.rotation import RotationTooEarly, list_keys, rotate


def _emit(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(json.dumps({"error": message}), err=True)
    sys.exit(code)


@contextmanager
def _admin_errors() -> Iterator[None]:
    try:
        yield
    except KeyDecryptionError as exc:
        _fail(str(exc), 2)
    except AdminError as exc:
        _fail(str(exc))


def _prepare() -> None:
    with _admin_errors():
        prepare_database()


def _factory() -> Flask:
    try:
        return create_app()
    except ConfigError as exc:
        _fail(f"configuration: {exc}", 2)


@click.group(cls=FlaskGroup, create_app=_factory, add_default_commands=False, load_dotenv=False)
def main() -> None:
    """authserver: OAuth 2.0 / OpenID Connect for fleets of devices."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@with_appcontext
def serve(host: str, port: int) -> None:
    """Create or upgrade the schema and keys, then serve with gunicorn.

    Without AUTHSERVER_ISSUER the issuer is http://HOST:PORT, so tokens name the address served.
    """
    from authserver.serve import prepare_metrics_dir, run_gunicorn

    if not os.environ.get("AUTHSERVER_ISSUER"):
        shown = f"[{host}]" if ":" in host else host
        os.environ["AUTHSERVER_ISSUER"] = f"http://{shown}:{port}"
        try:
            load_settings()
        except ConfigError as exc:
            _fail(f"configuration: {exc}; set AUTHSERVER_ISSUER to the public https URL", 2)
    _prepare()
    settings = load_settings()
    prepare_metrics_dir(settings.instance_path)
    db.engine.dispose()  # no pooled connection crosses into the forked workers
    click.echo(
        json.dumps(
            {
                "serving": settings.issuer,
                "bind": f"{host}:{port}",
                "workers": settings.workers,
                "threads": settings.threads,
            }
        ),
        err=True,
    )
    run_gunicorn(host, port, settings.workers, settings.threads)


@main.command()
@with_appcontext
def demo() -> None:
    """Create (idempotently) the demo tenant, admin user and clients; print them."""
    from authserver.demo import run_demo

    _prepare()
    with _admin_errors():
        _emit(run_demo())


@main.group("db")
def db_group() -> None:
    """Database schema (Alembic migrations)."""


@db_group.command("upgrade")
@with_appcontext
def db_upgrade() -> None:
    """Apply every pending migration (``serve`` does this too)."""
    from authserver import migrate

    migrate.upgrade()
    _emit({"schema": "up to date"})


@db_group.command("purge")
@with_appcontext
def db_purge() -> None:
    """Delete expired device authorizations, token records and refresh families now.

    ``serve`` does this on its own every AUTHSERVER_PURGE_INTERVAL seconds; this is for a cron
    job when the periodic purge is off (AUTHSERVER_PURGE_INTERVAL=0), or after an import.
    """
    from authserver.retention import purge_expired

    state = get_state()
    _emit({"purged": purge_expired(db.engine, state.settings, now())})


@main.group()
def tenants() -> None:
    """Manage tenants."""


@tenants.command("create")
@click.argument("name")
@with_appcontext
def tenants_create(name: str) -> None:
    _prepare()
    with _admin_errors():
        t = create_tenant(name)
    _emit({"id": t.id, "name": t.name})


@main.group()
def users() -> None:
    """Manage users."""


@users.command("create")
@click.option("--tenant", "tenant_ref", required=True, help="tenant id or name")
@click.option("--login", required=True)
@click.option("--password", required=True)
@click.option(
    "--staff-code",
    "--user-code",  # seed 000's name, kept for scripts written against it
    "staff_code",
    default=None,
    help="short code staff type on a terminal (seed 000's 'user code')",
)
@click.option("--role", "roles", multiple=True)
@with_appcontext
def users_create(
    tenant_ref: str, login: str, password: str, staff_code: str | None, roles: tuple[str, ...]
) -> None:
    _prepare()
    with _admin_errors():
        user = create_user(find_tenant(tenant_ref), login, password, staff_code, list(roles))
    _emit(
        {
            "id": user.id,
            "tenant_id": user.tenant_id,
            "login": user.login,
            "roles": user.roles,
            "staff_code_set": user.staff_code_hash is not None,
        }
    )


@main.group()
def clients() -> None:
    """Manage OAuth clients."""


@clients.command("create")
@click.option("--tenant", "tenant_ref", required=True, help="tenant id or name")
@click.option("--name", required=True)
@click.option(
    "--grant-type",
    "grant_types",
    multiple=True,
    required=True,
    type=click.Choice(KNOWN_GRANT_TYPES),
)
@click.option("--public", is_flag=True, help="a public client (auth method none)")
@click.option("--auth-method", type=click.Choice(AUTH_METHODS), default=None)
@click.option("--scope", default="", help='space-separated, e.g. "devices:read devices:write"')
@click.option(
    "--dpop-bound",
    is_flag=True,
    help="dpop_bound_access_tokens (RFC 9449 §5.2): refuse token requests without a proof",
)
@click.option(
    "--dpop-refresh-only",
    is_flag=True,
    help="bind only refresh tokens to the DPoP key; access tokens stay Bearer",
)
@click.option(
    "--device-subject",
    type=click.Choice(["device", "user"]),
    default="device",
    show_default=True,
    help="device flow: the token's sub is the enrolled device or the approving user",
)
@with_appcontext
def clients_create(
    tenant_ref: str,
    name: str,
    grant_types: tuple[str, ...],
    public: bool,
    auth_method: str | None,
    scope: str,
    dpop_bound: bool,
    dpop_refresh_only: bool,
    device_subject: str,
) -> None:
    """Register a client; its secret is printed once and stored only as a hash."""
    if public and auth_method not in (None, "none"):
        _fail("--public and --auth-method are mutually exclusive", 2)
    method = "none" if public else (auth_method or "client_secret_basic")
    _prepare()
    with _admin_errors():
        created = create_client(
            find_tenant(tenant_ref),
            name,
            list(grant_types),
            method,
            scope,
            dpop_bound=dpop_bound,
            dpop_binding="refresh_only" if dpop_refresh_only else "all",
            device_subject=device_subject,
        )
    _emit(created.as_dict())


@main.group()
def keys() -> None:
    """Signing keys: list and rotate."""


@keys.command("list")
@with_appcontext
def keys_list() -> None:
    _prepare()
    _emit([k.as_dict() for k in list_keys(db.session, now())])


@keys.command("rotate")
@click.option(
    "--force",
    is_flag=True,
    help="promote the next key even if it has been published for less than "
    "AUTHSERVER_KEY_PREPUBLISH_SECONDS",
)
@with_appcontext
def keys_rotate(force: bool) -> None:
    _prepare()
    settings = get_state().settings
    try:
        result = rotate(
            db.session, settings, KeyEncryptor(settings.key_encryption_key), now(), force
        )
    except RotationTooEarly as exc:
        _fail(str(exc))
    from authserver import audit

    audit.record("key.rotated", None, "cli", **result)
    db.session.commit()
    current_app.extensions["authserver"].keyring.invalidate()
    _emit({**result, "keys": [k.as_dict() for k in list_keys(db.session, now())]})


@main.group()
def device() -> None:
    """Device authorization (RFC 8628) for operators."""


@device.command("approve")
@click.argument("user_code")
@click.option(
    "--user", "login", required=True, help="login of the approving user (of the code's tenant)"
)
@click.option("--deny", is_flag=True, help="deny instead of approve")
@click.option("--location", "location_id", default=None, help="location the device serves")
@click.option("--till", "till_id", default=None, help="till the device serves")
@with_appcontext
def device_approve(
    user_code: str, login: str, deny: bool, location_id: str | None, till_id: str | None
) -> None:
    """Approve (or deny) a pending device authorization as USER."""
    from authserver import device_flow, users
    from authserver.problems import DecisionError

    _prepare()
    record = device_flow.find_live(user_code)
    if record is None:
        _fail("no pending device authorization with that code (wrong, expired or decided)")
    user = users.find_by_login(record.tenant_id, login)
    if user is None or not user.active:
        _fail(f"no active user {login!r} in the code's tenant")
    try:
        done = device_flow.decide(record, user, not deny, location_id, till_id)
    except DecisionError as exc:
        _fail(exc.detail)
    _emit(
        {
            "decision": "denied" if deny else "approved",
            "client_id": done.client_id,
            "tenant_id": done.tenant_id,
            "user_id": user.id,
            "device_id": done.device_id,
            "scope": done.scope,
        }
    )


@main.command("device-login")
@click.option("--client", "client_id", required=True, help="client id of a device-flow client")
@click.option("--scope", default=None)
@click.option(
    "--server",
    default=None,
    help="issuer URL [default: AUTHSERVER_ISSUER or http://127.0.0.1:8000]",
)
@click.option("--name", "device_name", default=None, help="device name shown to the approver")
@click.option("--dpop", is_flag=True, help="bind the whole flow to a fresh DPoP key (ES256)")
def device_login(
    client_id: str, scope: str | None, server: str | None, device_name: str | None, dpop: bool
) -> None:
    """Behave like a kiosk: show a code and a QR code, poll, print the tokens."""
    from authserver.kiosk import run_device_login

    url = (server or os.environ.get("AUTHSERVER_ISSUER") or "http://127.0.0.1:8000").rstrip("/")
    code, result = run_device_login(url, client_id, scope, device_name, dpop)
    _emit(result)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
