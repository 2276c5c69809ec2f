"""The ``authserver`` command: serve, set up and operate the server.

Every command prints JSON on stdout (``--format table`` for people); errors are one line of JSON
on stderr with a non-zero exit: 1 for a refused request, 2 for configuration and start-up.
Passwords and secrets are prompted for (or read from standard input), never needed as arguments.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import click
from flask import Flask, current_app
from flask.cli import ScriptInfo, with_appcontext
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from authserver import admin, authorization, create_app
from authserver import users as users_service
from authserver.admin import AUTH_METHODS, AdminError
from authserver.config import SIGNING_ALGS, ConfigError, load_settings
from authserver.ephemeral import StoreUnavailable
from authserver.models import AppCode, DeviceStatus, Tenant, db
from authserver.problems import Problem
from authserver.security import now
from authserver.state import get_state
from grants import KNOWN_GRANT_TYPES
from keys.encryption import KeyDecryptionError, KeyEncryptor
from keys.rotation import NoKeysForAlgorithm, RotationTooEarly, list_keys, rotate

F = TypeVar("F", bound=Callable[..., Any])


# -- output ----------------------------------------------------------------------------------------


def _format() -> str:
    ctx = click.get_current_context(silent=True)
    return str(ctx.find_root().meta.get("authserver.format", "json")) if ctx else "json"


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(none)"
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(_cell(r.get(c))) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines.append("  ".join("-" * widths[c] for c in columns))
    lines += ["  ".join(_cell(r.get(c)).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _emit(data: Any) -> None:
    if _format() == "table":
        if isinstance(data, list):
            click.echo(_table(data))
        elif isinstance(data, dict):
            click.echo(_table([{"field": k, "value": _cell(v)} for k, v in data.items()]))
        else:
            click.echo(str(data))
        return
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(json.dumps({"error": message}), err=True)
    sys.exit(code)


# -- errors ----------------------------------------------------------------------------------------


@contextmanager
def _admin_errors() -> Iterator[None]:
    """A refused request: one line and exit code 1 (2 for a key that cannot be decrypted)."""
    try:
        yield
    except KeyDecryptionError as exc:
        _fail(str(exc), 2)
    except AdminError as exc:
        _fail(str(exc))
    except Problem as exc:
        db.session.rollback()
        _fail(exc.detail)


def _database_message(exc: Exception) -> str:
    lines = str(getattr(exc, "orig", exc)).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


@contextmanager
def _startup_errors() -> Iterator[None]:
    """Start-up mistakes: one clear line and exit code 2, never a traceback."""
    try:
        yield
    except ConfigError as exc:
        _fail(f"configuration: {exc}", 2)
    except (ArgumentError, NoSuchModuleError) as exc:
        _fail(f"configuration: DATABASE_URL cannot be used: {_database_message(exc)}", 2)
    except OperationalError as exc:
        _fail(f"the database cannot be reached: {_database_message(exc)}", 2)
    except StoreUnavailable as exc:
        _fail(f"the state store (REDIS_URL) cannot be reached: {exc}", 2)
    except KeyDecryptionError as exc:
        _fail(str(exc), 2)
    except OSError as exc:  # the instance folder: not writable, not a folder, disk full
        where = exc.filename or "the instance folder"
        _fail(f"cannot use {where}: {exc.strerror} (see AUTHSERVER_INSTANCE_PATH)", 2)


def _factory() -> Flask:
    with _startup_errors():
        return create_app()
    raise AssertionError  # pragma: no cover - _startup_errors exits


def _prepare() -> None:
    with _startup_errors(), _admin_errors():
        admin.prepare_database()


def needs_database(fn: F) -> F:
    """The command runs in the app, on a migrated database with signing keys."""

    @with_appcontext
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        _prepare()
        with _admin_errors():
            return fn(*args, **kwargs)

    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = fn.__doc__
    return wrapped  # type: ignore[return-value]


def _tenant(ref: str) -> Tenant:
    return admin.find_tenant(ref)


def _secret_input(prompt: str, given: str | None) -> str:
    """A password from the option (discouraged: shell history), or prompted for, or read from
    standard input when it is not a terminal."""
    if given is not None:
        return given
    if sys.stdin.isatty():
        return str(click.prompt(prompt, hide_input=True, confirmation_prompt=True))
    line = sys.stdin.readline().rstrip("\n")
    if not line:
        _fail(f"{prompt.lower()} expected on standard input")
    return line


# -- the command group -------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    package_name="authserver", prog_name="authserver", message="%(prog)s %(version)s"
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["json", "table"]),
    default="json",
    show_default=True,
    help="how results are printed",
)
@click.pass_context
def main(ctx: click.Context, output_format: str) -> None:
    """authserver: an OAuth 2.0 / OpenID Connect server for fleets of devices.

    Configuration comes from the environment (DATABASE_URL, REDIS_URL, AUTHSERVER_ISSUER, ...;
    see the README). Without any, it runs on SQLite under ./instance.
    """
    if not isinstance(ctx.obj, ScriptInfo):
        ctx.obj = ScriptInfo(create_app=_factory, set_debug_flag=False, load_dotenv_defaults=False)
    ctx.meta["authserver.format"] = output_format


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
def serve(host: str, port: int) -> None:
    """Create or upgrade the schema and keys, then serve (granian, AUTHSERVER_WORKERS processes).

    Without AUTHSERVER_ISSUER the issuer is http://HOST:PORT, so tokens name the address served.
    """
    from authserver.serve import prepare_metrics_dir, run

    if not os.environ.get("AUTHSERVER_ISSUER"):
        shown = f"[{host}]" if ":" in host else host
        os.environ["AUTHSERVER_ISSUER"] = f"http://{shown}:{port}"
        with _startup_errors():
            try:
                load_settings()
            except ConfigError as exc:
                about_issuer = "AUTHSERVER_ISSUER" in str(exc)
                hint = "; set AUTHSERVER_ISSUER to the public https URL" if about_issuer else ""
                _fail(f"configuration: {exc}{hint}", 2)
    _check_port_free(host, port)
    app = _factory()
    with app.app_context(), _startup_errors():
        _prepare()
        get_state().store.ping()  # REDIS_URL (or the database) reachable before anyone calls
        settings = get_state().settings
        prepare_metrics_dir(settings.instance_path)
        db.engine.dispose()  # no pooled connection crosses into the workers
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
    run(host, port, settings.workers, settings.threads)


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            _fail(f"cannot listen on {host}:{port}: {exc.strerror}; choose another with --port", 2)


@main.command()
@needs_database
def demo() -> None:
    """Create (idempotently) the demo tenant, admin user and clients; print them."""
    from authserver.demo import run_demo

    _emit(run_demo())


# -- db ----------------------------------------------------------------------------------------------


@main.group("db")
def db_group() -> None:
    """Database schema and housekeeping."""


@db_group.command("upgrade")
@with_appcontext
def db_upgrade() -> None:
    """Apply every pending migration (``serve`` does this too)."""
    from authserver import migrate

    with _startup_errors():
        migrate.upgrade()
    _emit({"schema": "up to date"})


@db_group.command("purge")
@needs_database
def db_purge() -> None:
    """Delete expired device authorizations, token records and refresh families now.

    ``serve`` does this on its own every AUTHSERVER_PURGE_INTERVAL seconds; this is for a cron
    job when the periodic purge is off (AUTHSERVER_PURGE_INTERVAL=0), or after an import.
    """
    from authserver.retention import purge_expired

    _emit({"purged": purge_expired(db.engine, get_state().settings, now())})


# -- tenants ---------------------------------------------------------------------------------------


@main.group()
def tenants() -> None:
    """Tenants: the organisations whose devices, users and clients this server keeps apart."""


@tenants.command("create")
@click.argument("name")
@needs_database
def tenants_create(name: str) -> None:
    """A new tenant named NAME."""
    _emit(admin.tenant_json(admin.create_tenant(name)))


@tenants.command("list")
@needs_database
def tenants_list() -> None:
    """Every tenant."""
    _emit([admin.tenant_json(t) for t in admin.list_tenants()])


@tenants.command("show")
@click.argument("tenant_ref")
@needs_database
def tenants_show(tenant_ref: str) -> None:
    """One tenant, by id or name."""
    _emit(admin.tenant_json(_tenant(tenant_ref)))


@tenants.command("update")
@click.argument("tenant_ref")
@click.option("--name", help="the new name")
@click.option(
    "--accent-colour",
    help="#rrggbb for the verification page's buttons (white text on it must be readable); "
    '"" clears it',
)
@click.option(
    "--logo-url", help='an https URL of the logo shown on the verification page; "" clears it'
)
@needs_database
def tenants_update(
    tenant_ref: str, name: str | None, accent_colour: str | None, logo_url: str | None
) -> None:
    """Rename a tenant, or set how its verification page looks."""
    if name is None and accent_colour is None and logo_url is None:
        _fail("nothing to change: give --name, --accent-colour or --logo-url")
    tenant = _tenant(tenant_ref)
    if name is not None:
        tenant = admin.rename_tenant(tenant, name)
    _emit(admin.tenant_json(admin.brand_tenant(tenant, accent_colour, logo_url)))


@tenants.command("disable")
@click.argument("tenant_ref")
@needs_database
def tenants_disable(tenant_ref: str) -> None:
    """Stop a tenant: its clients cannot authenticate, its users cannot sign in, its clients'
    tokens are revoked."""
    _emit(admin.tenant_json(admin.set_tenant_active(_tenant(tenant_ref), False)))


@tenants.command("enable")
@click.argument("tenant_ref")
@needs_database
def tenants_enable(tenant_ref: str) -> None:
    """Let a disabled tenant's clients and users back in."""
    _emit(admin.tenant_json(admin.set_tenant_active(_tenant(tenant_ref), True)))


@tenants.command("delete")
@click.argument("tenant_ref")
@needs_database
def tenants_delete(tenant_ref: str) -> None:
    """Delete an empty tenant (delete its users, clients, devices and locations first)."""
    tenant = _tenant(tenant_ref)
    admin.delete_tenant(tenant)
    _emit({"id": tenant.id, "deleted": True})


# -- users -----------------------------------------------------------------------------------------

ROLE_HELP = "; ".join(f"{r}: {what}" for r, what in authorization.ROLES.items())
USER_KINDS = list(authorization.USER_KINDS)


@main.group()
def users() -> None:
    """People of a tenant, with their roles."""


def _tenant_option(fn: F) -> F:
    return click.option("--tenant", "tenant_ref", required=True, help="tenant id or name")(fn)


@users.command("create")
@_tenant_option
@click.option("--login", required=True)
@click.option(
    "--password",
    default=None,
    help="better left out: it is then prompted for, or read from standard input",
)
@click.option(
    "--staff-code",
    "--user-code",  # the seed's older name, kept for scripts written against it
    "staff_code",
    default=None,
    help="the short code staff type on a terminal, 4-32 letters or digits",
)
@click.option("--role", "roles", multiple=True, help=f"repeatable. {ROLE_HELP}")
@click.option("--kind", type=click.Choice(USER_KINDS), default="staff", show_default=True,
              help="customer: no roles, no staff code, never a tenant-management scope")  # fmt: skip
@needs_database
def users_create(
    tenant_ref: str,
    login: str,
    password: str | None,
    staff_code: str | None,
    roles: tuple[str, ...],
    kind: str,
) -> None:
    """A new user; the password is stored as an argon2 hash, the staff code as a keyed hash."""
    tenant = _tenant(tenant_ref)
    secret = _secret_input("Password", password)
    _emit(admin.user_json(
        admin.create_user(tenant, login, secret, staff_code, list(roles), kind=kind)
    ))  # fmt: skip


@users.command("list")
@_tenant_option
@needs_database
def users_list(tenant_ref: str) -> None:
    """The tenant's users."""
    _emit([admin.user_json(u) for u in admin.list_users(_tenant(tenant_ref))])


@users.command("show")
@_tenant_option
@click.argument("user_ref")
@needs_database
def users_show(tenant_ref: str, user_ref: str) -> None:
    """One user, by id or login."""
    _emit(admin.user_json(admin.find_user(_tenant(tenant_ref), user_ref)))


@users.command("update")
@_tenant_option
@click.argument("user_ref")
@click.option("--login", default=None, help="a new login")
@click.option("--role", "roles", multiple=True, help=f"replaces every role. {ROLE_HELP}")
@click.option("--no-roles", is_flag=True, help="remove every role")
@click.option("--staff-code", default=None, help="a new staff code")
@click.option("--set-password", is_flag=True, help="prompt for (or read from stdin) a new password")
@click.option("--kind", type=click.Choice(USER_KINDS), default=None, help="staff or customer")
@needs_database
def users_update(
    tenant_ref: str,
    user_ref: str,
    login: str | None,
    roles: tuple[str, ...],
    no_roles: bool,
    staff_code: str | None,
    set_password: bool,
    kind: str | None,
) -> None:
    """Change a user's login, roles, staff code, password or kind."""
    user = admin.find_user(_tenant(tenant_ref), user_ref)
    new_roles = [] if no_roles else (list(roles) if roles else None)
    password = _secret_input("New password", None) if set_password else None
    updated = admin.update_user(
        user, login=login, roles=new_roles, staff_code=staff_code, password=password, kind=kind
    )
    _emit(admin.user_json(updated))


@users.command("disable")
@_tenant_option
@click.argument("user_ref")
@needs_database
def users_disable(tenant_ref: str, user_ref: str) -> None:
    """Stop a user signing in; every token issued to or for them is revoked."""
    user = admin.find_user(_tenant(tenant_ref), user_ref)
    _emit(admin.user_json(admin.set_user_active(user, False)))


@users.command("enable")
@_tenant_option
@click.argument("user_ref")
@needs_database
def users_enable(tenant_ref: str, user_ref: str) -> None:
    """Let a disabled user sign in again."""
    user = admin.find_user(_tenant(tenant_ref), user_ref)
    _emit(admin.user_json(admin.set_user_active(user, True)))


@users.command("delete")
@_tenant_option
@click.argument("user_ref")
@needs_database
def users_delete(tenant_ref: str, user_ref: str) -> None:
    """Delete a user; every token issued to or for them is revoked."""
    user = admin.find_user(_tenant(tenant_ref), user_ref)
    admin.delete_user(user)
    _emit({"id": user.id, "deleted": True})


@users.command("grant-role")
@_tenant_option
@click.option("--role", required=True, help=f"one role. {ROLE_HELP}")
@click.option("--location", "location_id", default=None, help="only at this location (loc_...)")
@click.argument("logins", nargs=-1, required=True)
@needs_database
def users_grant_role(
    tenant_ref: str, role: str, location_id: str | None, logins: tuple[str, ...]
) -> None:
    """Give a role to users by login (SU included: only the command line gives it)."""
    tenant = _tenant(tenant_ref)
    granted, unknown = users_service.grant_by_logins(
        tenant.id, role, location_id, list(logins), authorization.OPERATOR, "cli"
    )
    _emit({"role": role, "location": location_id, "user_ids": granted, "unknown_logins": unknown})
    if unknown:
        sys.exit(1)


@users.command("revoke-role")
@_tenant_option
@click.option("--role", "roles", multiple=True, required=True, help="repeatable, 1-5 roles")
@needs_database
def users_revoke_role(tenant_ref: str, roles: tuple[str, ...]) -> None:
    """Take roles from every user of the tenant, tenant-wide and at every location (never SU:
    remove that one with `users update`)."""
    tenant = _tenant(tenant_ref)
    wanted = sorted(set(roles))
    unknown = [r for r in wanted if r not in authorization.ROLES]
    if unknown or not 1 <= len(wanted) <= 5:
        _fail(f"give 1-5 roles of {', '.join(authorization.ROLES)}")
    changed = users_service.revoke_globally(tenant.id, wanted, authorization.OPERATOR, "cli")
    _emit({"roles": wanted, "users_changed": changed})


# -- clients ---------------------------------------------------------------------------------------


@main.group()
def clients() -> None:
    """OAuth clients: back-end services, kiosks, POS terminals."""


_id_token_alg_option = click.option(
    "--id-token-alg",
    type=click.Choice(SIGNING_ALGS),
    default=None,
    help="id_token_signed_response_alg (OIDC Registration §2); RS256 when not given",
)


@clients.command("create")
@_tenant_option
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
@click.option(
    "--redirect-uri",
    "redirect_uris",
    multiple=True,
    help="authorization code flow: a redirect URI, compared exactly (loopback: any port); repeatable",
)
@click.option(
    "--post-logout-redirect-uri",
    "post_logout_redirect_uris",
    multiple=True,
    help="where RP-initiated logout may send the browser back to; repeatable",
)
@click.option("--first-party", is_flag=True, help="the tenant's own app: no consent page")
@click.option(
    "--require-par",
    is_flag=True,
    help="refuse authorization requests that were not pushed first (RFC 9126)",
)
@_id_token_alg_option
@click.option(
    "--user-kind",
    type=click.Choice(["any", *USER_KINDS]),
    default="any",
    show_default=True,
    help="who may sign in to it: staff only (a back office), customers only, or any",
)
@needs_database
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
    redirect_uris: tuple[str, ...],
    post_logout_redirect_uris: tuple[str, ...],
    first_party: bool,
    require_par: bool,
    id_token_alg: str | None,
    user_kind: str,
) -> None:
    """Register a client; its secret is printed once and stored only as a hash."""
    if public and auth_method not in (None, "none"):
        _fail("--public and --auth-method are mutually exclusive", 2)
    method = "none" if public else (auth_method or "client_secret_basic")
    created = admin.create_client(
        _tenant(tenant_ref),
        name,
        list(grant_types),
        method,
        scope,
        dpop_bound=dpop_bound,
        dpop_binding="refresh_only" if dpop_refresh_only else "all",
        device_subject=device_subject,
        redirect_uris=list(redirect_uris),
        post_logout_redirect_uris=list(post_logout_redirect_uris),
        first_party=first_party,
        require_par=require_par,
        id_token_alg=id_token_alg,
        user_kind=user_kind,
    )
    _emit(created.as_dict())


@clients.command("list")
@_tenant_option
@needs_database
def clients_list(tenant_ref: str) -> None:
    """The tenant's clients."""
    _emit([admin.client_json(c) for c in admin.list_clients(_tenant(tenant_ref))])


@clients.command("show")
@click.argument("client_id")
@needs_database
def clients_show(client_id: str) -> None:
    """One client."""
    _emit(admin.client_json(admin.find_client(client_id)))


@clients.command("update")
@click.argument("client_id")
@click.option("--name", default=None)
@click.option("--scope", default=None, help="replaces the scope, space-separated")
@click.option(
    "--grant-type",
    "grant_types",
    multiple=True,
    type=click.Choice(KNOWN_GRANT_TYPES),
    help="replaces the grant types; repeatable",
)
@click.option("--dpop-bound/--no-dpop-bound", default=None)
@click.option(
    "--redirect-uri",
    "redirect_uris",
    multiple=True,
    help="replaces the redirect URIs; repeatable",
)
@click.option(
    "--post-logout-redirect-uri",
    "post_logout_redirect_uris",
    multiple=True,
    help='replaces the post-logout redirect URIs; repeatable ("" clears them)',
)
@click.option("--first-party/--third-party", default=None)
@click.option("--require-par/--no-require-par", default=None)
@_id_token_alg_option
@click.option(
    "--user-kind",
    type=click.Choice(["any", *USER_KINDS]),
    default=None,
    help="who may sign in to it; a change ends every token of the client",
)
@needs_database
def clients_update(
    client_id: str,
    name: str | None,
    scope: str | None,
    grant_types: tuple[str, ...],
    dpop_bound: bool | None,
    redirect_uris: tuple[str, ...],
    post_logout_redirect_uris: tuple[str, ...],
    first_party: bool | None,
    require_par: bool | None,
    id_token_alg: str | None,
    user_kind: str | None,
) -> None:
    """Change a client's name, scope, grant types, DPoP requirement or sign-in settings."""
    post_logout = [u for u in post_logout_redirect_uris if u]
    client = admin.update_client(
        admin.find_client(client_id),
        name=name,
        scope=scope,
        grant_types=list(grant_types) if grant_types else None,
        dpop_bound=dpop_bound,
        redirect_uris=list(redirect_uris) if redirect_uris else None,
        post_logout_redirect_uris=post_logout if post_logout_redirect_uris else None,
        first_party=first_party,
        require_par=require_par,
        id_token_alg=id_token_alg,
        user_kind=user_kind,
    )
    _emit(admin.client_json(client))


@clients.command("rotate-secret")
@click.argument("client_id")
@needs_database
def clients_rotate_secret(client_id: str) -> None:
    """A new secret for a confidential client, printed once; the old one stops working."""
    client = admin.find_client(client_id)
    secret = admin.rotate_client_secret(client)
    _emit({"client_id": client.client_id, "client_secret": secret})


@clients.command("disable")
@click.argument("client_id")
@needs_database
def clients_disable(client_id: str) -> None:
    """Stop a client authenticating; its tokens are revoked."""
    _emit(admin.client_json(admin.set_client_active(admin.find_client(client_id), False)))


@clients.command("enable")
@click.argument("client_id")
@needs_database
def clients_enable(client_id: str) -> None:
    """Let a disabled client authenticate again."""
    _emit(admin.client_json(admin.set_client_active(admin.find_client(client_id), True)))


@clients.command("delete")
@click.argument("client_id")
@needs_database
def clients_delete(client_id: str) -> None:
    """Delete a client; its tokens are revoked."""
    client = admin.find_client(client_id)
    admin.delete_client(client)
    _emit({"client_id": client_id, "deleted": True})


# -- locations and devices (the registry, as the API offers it) ------------------------------------


@main.group()
def locations() -> None:
    """A tenant's stores, venues and warehouses."""


@locations.command("create")
@_tenant_option
@click.option("--name", required=True)
@click.option(
    "--kind", type=click.Choice(["store", "venue", "warehouse", "other"]), default="store"
)
@needs_database
def locations_create(tenant_ref: str, name: str, kind: str) -> None:
    """A new location."""
    from authserver import devices
    from authserver.registry.serialize import location_json

    _emit(
        location_json(devices.create_location(_tenant(tenant_ref).id, {"name": name, "kind": kind}))
    )


@locations.command("list")
@_tenant_option
@needs_database
def locations_list(tenant_ref: str) -> None:
    """The tenant's locations, by name."""
    from authserver import devices
    from authserver.registry.serialize import location_json

    _emit([location_json(x) for x in devices.locations_for_picker(_tenant(tenant_ref).id)])


@locations.command("show")
@_tenant_option
@click.argument("location_id")
@needs_database
def locations_show(tenant_ref: str, location_id: str) -> None:
    """One location."""
    from authserver import devices
    from authserver.registry.serialize import location_json

    _emit(location_json(devices.get_location(_tenant(tenant_ref).id, location_id)))


@locations.command("update")
@_tenant_option
@click.argument("location_id")
@click.option("--name", default=None)
@click.option("--kind", type=click.Choice(["store", "venue", "warehouse", "other"]), default=None)
@needs_database
def locations_update(tenant_ref: str, location_id: str, name: str | None, kind: str | None) -> None:
    """Rename a location or change its kind."""
    from authserver import devices
    from authserver.registry.serialize import location_json

    loc = devices.get_location(_tenant(tenant_ref).id, location_id)
    changes = {k: v for k, v in (("name", name), ("kind", kind)) if v is not None}
    _emit(location_json(devices.update_location(loc, changes)))


@locations.command("delete")
@_tenant_option
@click.argument("location_id")
@needs_database
def locations_delete(tenant_ref: str, location_id: str) -> None:
    """Delete a location that serves no active device."""
    from authserver import devices

    devices.delete_location(devices.get_location(_tenant(tenant_ref).id, location_id))
    _emit({"id": location_id, "deleted": True})


@main.group("devices")
def devices_group() -> None:
    """A tenant's devices (the registry)."""


def _device_json(device: Any, link_code: str | None = None) -> dict[str, Any]:
    from authserver import devices
    from authserver.registry.serialize import device_json

    return device_json(device, devices.locations_of([device.id])[device.id], link_code)


@devices_group.command("create")
@_tenant_option
@click.option("--name", required=True)
@click.option("--to-link", is_flag=True, help="a terminal to link: prints its link code once")
@click.option("--app-code", type=click.Choice(list(AppCode)), default=None)
@click.option("--external-id", default=None)
@click.option("--till", "till_id", default=None)
@click.option("--location", "location_ids", multiple=True, help="location id; repeatable")
@needs_database
def devices_create(
    tenant_ref: str,
    name: str,
    to_link: bool,
    app_code: str | None,
    external_id: str | None,
    till_id: str | None,
    location_ids: tuple[str, ...],
) -> None:
    """A device: an audit device, or (with --to-link) a terminal waiting for its link code."""
    from authserver import devices

    data: dict[str, Any] = {"name": name, "locationIds": list(location_ids)}
    for key, value in (("appCode", app_code), ("externalId", external_id), ("tillId", till_id)):
        if value is not None:
            data[key] = value
    if to_link:
        data["status"] = DeviceStatus.READY_TO_LINK
    device, link_code = devices.create_device(_tenant(tenant_ref).id, "cli", data)
    _emit(_device_json(device, link_code))


@devices_group.command("list")
@_tenant_option
@click.option("--status", type=click.Choice(list(DeviceStatus)), default=None)
@click.option("--limit", type=click.IntRange(1, 200), default=200, show_default=True)
@needs_database
def devices_list(tenant_ref: str, status: str | None, limit: int) -> None:
    """The tenant's devices, oldest first (the API pages through the rest)."""
    from authserver import devices

    page = devices.search_devices(
        _tenant(tenant_ref).id, devices.DeviceQuery(status=status), None, limit
    )
    _emit([_device_json(d) for d in page.items])


@devices_group.command("show")
@_tenant_option
@click.argument("device_id")
@needs_database
def devices_show(tenant_ref: str, device_id: str) -> None:
    """One device."""
    from authserver import devices

    _emit(_device_json(devices.get_device(_tenant(tenant_ref).id, device_id)))


def _change_device(tenant_ref: str, device_id: str, data: dict[str, Any]) -> None:
    from authserver import devices

    device = devices.get_device(_tenant(tenant_ref).id, device_id)
    link_code = devices.update_device(device, "cli", data)
    _emit(_device_json(device, link_code))


@devices_group.command("update")
@_tenant_option
@click.argument("device_id")
@click.option("--name", default=None)
@click.option("--till", "till_id", default=None)
@click.option("--app-code", type=click.Choice(list(AppCode)), default=None)
@click.option("--external-id", default=None)
@needs_database
def devices_update(
    tenant_ref: str,
    device_id: str,
    name: str | None,
    till_id: str | None,
    app_code: str | None,
    external_id: str | None,
) -> None:
    """Change a device's name, till, app code or external id."""
    data = {
        k: v
        for k, v in (
            ("name", name),
            ("tillId", till_id),
            ("appCode", app_code),
            ("externalId", external_id),
        )
        if v is not None
    }
    _change_device(tenant_ref, device_id, data)


@devices_group.command("block")
@_tenant_option
@click.argument("device_id")
@needs_database
def devices_block(tenant_ref: str, device_id: str) -> None:
    """Block a device (its tokens are revoked at once)."""
    _change_device(tenant_ref, device_id, {"status": DeviceStatus.BLOCKED})


@devices_group.command("unblock")
@_tenant_option
@click.argument("device_id")
@needs_database
def devices_unblock(tenant_ref: str, device_id: str) -> None:
    """Make a blocked, linked device ACTIVE again (its old tokens stay revoked)."""
    _change_device(tenant_ref, device_id, {"status": DeviceStatus.ACTIVE})


@devices_group.command("unlink")
@_tenant_option
@click.argument("device_id")
@needs_database
def devices_unlink(tenant_ref: str, device_id: str) -> None:
    """Unlink a device: tokens revoked, a new link code printed once."""
    _change_device(tenant_ref, device_id, {"status": DeviceStatus.READY_TO_LINK})


@devices_group.command("delete")
@_tenant_option
@click.argument("device_id")
@needs_database
def devices_delete(tenant_ref: str, device_id: str) -> None:
    """Delete a device (soft: its tokens are revoked, its externalId is free again)."""
    from authserver import devices

    devices.delete_device(devices.get_device(_tenant(tenant_ref).id, device_id), "cli")
    _emit({"id": device_id, "deleted": True})


# -- keys ------------------------------------------------------------------------------------------


@main.group()
def keys() -> None:
    """Signing keys: list, show and rotate (keys retire by rotation, never by deletion)."""


@keys.command("list")
@needs_database
def keys_list() -> None:
    """Every key and its state (next, current, retired, removed)."""
    _emit([k.as_dict() for k in list_keys(db.session, now())])


@keys.command("show")
@click.argument("kid")
@needs_database
def keys_show(kid: str) -> None:
    """One key's state and its public JWK (write -- before a KID that begins with -)."""
    found = [k.as_dict() for k in list_keys(db.session, now()) if k.kid == kid]
    if not found:
        _fail(f"no key {kid!r}")
    public = [k for k in get_state().keyring.jwks()["keys"] if k.get("kid") == kid]
    _emit({**found[0], "public_jwk": public[0] if public else None})


@keys.command("rotate")
@click.option(
    "--force",
    is_flag=True,
    help="promote the next key even if it has been published for less than "
    "AUTHSERVER_KEY_PREPUBLISH_SECONDS",
)
@click.option(
    "--alg",
    type=click.Choice(SIGNING_ALGS),
    default=None,
    help="rotate only this algorithm's keys (default: every algorithm the server signs with)",
)
@needs_database
def keys_rotate(force: bool, alg: str | None) -> None:
    """next -> current, current -> retired, and a new next key, for each signing algorithm."""
    from authserver import audit

    settings = get_state().settings
    try:
        rotated = rotate(
            db.session, settings, KeyEncryptor(settings.key_encryption_key), now(), force, alg
        )
    except (RotationTooEarly, NoKeysForAlgorithm) as exc:
        _fail(str(exc))
    for one in rotated:
        audit.record("key.rotated", None, "cli", **one)
    db.session.commit()
    current_app.extensions["authserver"].keyring.invalidate()
    # "retired" and "current": the first rotated algorithm's (the access tokens' by default).
    first = {k: v for k, v in rotated[0].items() if k != "alg"}
    keys = [k.as_dict() for k in list_keys(db.session, now())]
    _emit({**first, "rotated": rotated, "keys": keys})


# -- the device flow, for operators and as a kiosk ------------------------------------------------


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
@click.option("--module", "module_id", default=None,
              help="module the kiosk runs as [default: the one it asked for]")  # fmt: skip
@needs_database
def device_approve(
    user_code: str,
    login: str,
    deny: bool,
    location_id: str | None,
    till_id: str | None,
    module_id: str | None,
) -> None:
    """Approve (or deny) the pending device authorization showing USER_CODE, as a user."""
    from authserver import device_flow, users

    record = device_flow.find_live(user_code)
    if record is None:
        _fail("no pending device authorization with that code (wrong, expired or decided)")
    user = users.find_by_login(record.tenant_id, login)
    if user is None or not user.active:
        _fail(f"no active user {login!r} in the code's tenant")
    done = device_flow.decide(record, user, not deny, location_id, till_id, module_id=module_id)
    _emit(
        {
            "decision": "denied" if deny else "approved",
            "client_id": done.client_id,
            "tenant_id": done.tenant_id,
            "user_id": user.id,
            "device_id": done.device_id,
            "module_id": done.module_id,
            "scope": done.scope,
        }
    )


@main.command("device-login")
@click.option("--client", "client_id", default=None, help="client id of a device-flow client")
@click.option("--scope", default=None)
@click.option(
    "--server",
    default=None,
    help="issuer URL [default: AUTHSERVER_ISSUER or http://127.0.0.1:8000]",
)
@click.option("--name", "device_name", default=None, help="device name shown to the approver")
@click.option("--module", "module", default=None, help="enrol as this module of the tenant")
@click.option("--dpop/--no-dpop", default=True, show_default=True,
              help="bind the whole flow, and the tokens, to a fresh DPoP key (ES256)")  # fmt: skip
@click.option(
    "--state",
    "state_file",
    default=None,
    type=click.Path(dir_okay=False),
    help="keep the DPoP key and the tokens in this file (0600); implies --dpop",
)
@click.option("--refresh", is_flag=True,
              help="rotate the tokens kept in --state instead of enrolling")  # fmt: skip
def device_login(
    client_id: str | None,
    scope: str | None,
    server: str | None,
    device_name: str | None,
    module: str | None,
    dpop: bool,
    state_file: str | None,
    refresh: bool,
) -> None:
    """Behave like a kiosk: show a code and a QR code, poll, print the tokens."""
    from pathlib import Path

    from authserver.kiosk import run_device_login, run_refresh

    if refresh:
        if state_file is None:
            _fail("--refresh needs --state FILE (the kiosk's kept key and tokens)")
        code, result = run_refresh(Path(state_file))
    else:
        if client_id is None:
            _fail("--client is required to enrol")
        url = (server or os.environ.get("AUTHSERVER_ISSUER") or "http://127.0.0.1:8000").rstrip("/")
        code, result = run_device_login(
            url, client_id, scope, device_name, dpop, module=module,
            state_file=Path(state_file) if state_file else None,
        )  # fmt: skip
    _emit(result)
    if code:
        sys.exit(code)


@main.command("device-call")
@click.argument("path")
@click.option("--state", "state_file", required=True, type=click.Path(dir_okay=False),
              help="the file device-login --state kept")  # fmt: skip
@click.option("--method", default="GET", type=click.Choice(["GET", "DELETE"]), show_default=True)
def device_call(path: str, state_file: str, method: str) -> None:
    """Call the server as the kiosk: PATH (e.g. /api/v1/modules/me/config) with its kept token
    and a DPoP proof, refreshing the tokens first when they are about to expire."""
    from pathlib import Path

    from authserver.kiosk import run_call

    code, result = run_call(Path(state_file), path, method)
    _emit(result)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
