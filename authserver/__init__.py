"""authserver: an OAuth 2.0 / OpenID Connect authorization server for fleets of devices."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy.engine import make_url
from werkzeug.middleware.proxy_fix import ProxyFix

from authserver import http_errors, metrics, observability, retention, tokens
from authserver.config import Settings, load_settings
from authserver.direct import Direct
from authserver.ephemeral import EphemeralStore, RedisStore, SqlStore
from authserver.fastjson import OrjsonProvider
from authserver.models import db
from authserver.oauth2.introspection import Introspection, Revocation
from authserver.oauth2.server import AuthServer
from authserver.resource import add_dpop_nonce
from authserver.security import Hasher
from authserver.state import AppState
from grants.authorization_code import AuthorizationCodeGrant, PushedAuthorizationEndpoint
from grants.client_credentials import ClientCredentialsGrant
from grants.device_code import DeviceAuthorizationEndpoint, DeviceCodeGrant
from grants.dpop import DPoPVerifier, NonceIssuer
from grants.link_code import LinkCodeGrant
from grants.refresh_token import RefreshTokenGrant
from grants.staff_sign_in import StaffSignInGrant
from keys.encryption import KeyEncryptor
from keys.jwks import KeyRing

log = logging.getLogger("authserver")


def create_app(
    settings: Settings | None = None, *, clock: Callable[[], float] | None = None
) -> Flask:
    settings = settings or load_settings()
    settings.instance_path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if settings.embedded:
        _private_sqlite_file(settings.database_url)
    app = Flask(__name__, instance_path=str(settings.instance_path))
    if settings.trusted_proxies:
        # Behind N proxies the client's address is the Nth from the right in X-Forwarded-For;
        # every per-address limit keys on it. Without this setting the header is ignored, since
        # anyone can send it.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)  # type: ignore[method-assign]
    # hide_parameters: a statement's values (hashes, names) never reach an error message or log.
    # No ping per checkout (it doubled the round trips of every request): connections idle for a
    # while are pinged when checked out (``models.ping_if_idle``), and a connection that fails in
    # use is invalidated by SQLAlchemy, the whole pool with it when the server went away.
    engine_options: dict[str, object] = {"hide_parameters": True}
    if settings.embedded:
        engine_options["connect_args"] = {"check_same_thread": False, "timeout": 10}
    else:
        engine_options.update(pool_size=10, max_overflow=10, pool_recycle=1800)
        engine_options["connect_args"] = {"connect_timeout": 3}
    app.config.update(
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=engine_options,
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        SECRET_KEY=Hasher(settings.secret_key).hash("flask-session", "v1"),
        SESSION_COOKIE_NAME="authserver_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Secure everywhere but plain-http loopback (the issuer is https otherwise, see config).
        SESSION_COOKIE_SECURE=settings.issuer.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=900,
    )
    app.session_interface = _CookieSessions()
    # Every view and hook here is synchronous: skip Flask's per-call coroutine check.
    app.ensure_sync = _same  # type: ignore[method-assign]
    app.json = OrjsonProvider(app)
    db.init_app(app)
    with app.app_context():
        engine = db.engine

    state = AppState(
        settings=settings,
        hasher=Hasher(settings.secret_key),
        store=None,  # type: ignore[arg-type]  # set below: it needs the clock
        keyring=None,  # type: ignore[arg-type]
        dpop=None,  # type: ignore[arg-type]  # set below: it needs the store
        clock=clock,
    )

    def now() -> float:
        return state.clock() if state.clock is not None else time.time()

    store: EphemeralStore = (
        RedisStore(settings.redis_url, settings.redis_prefix, now)
        if settings.redis_url
        else SqlStore(engine, now)
    )
    state.store = store
    state.dpop = DPoPVerifier(
        issuer=settings.issuer,
        max_age=settings.dpop_max_age,
        max_future=settings.dpop_max_future,
        store=store,
        nonces=NonceIssuer(settings.secret_key, settings.dpop_nonce_lifetime),
        nonce_required_at=settings.dpop_nonce,
        on_reject=lambda check: metrics.DPOP_REJECTIONS.labels(check).inc(),
    )
    state.keyring = KeyRing(
        engine,
        KeyEncryptor(settings.key_encryption_key),
        settings.key_cache_seconds,
        now,
        alg=settings.signing_alg,
    )
    state.direct = Direct(engine)
    app.extensions["authserver"] = state

    server = AuthServer()
    server.init_app(app)
    server.register_grant(AuthorizationCodeGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_grant(DeviceCodeGrant)
    server.register_grant(RefreshTokenGrant)
    server.register_grant(LinkCodeGrant)
    server.register_grant(StaffSignInGrant)
    server.register_endpoint(DeviceAuthorizationEndpoint)
    server.register_endpoint(PushedAuthorizationEndpoint)
    server.register_endpoint(Introspection)
    server.register_endpoint(Revocation)
    state.server = server

    from authserver.endpoints.authorize import bp as authorize_bp
    from authserver.endpoints.oauth import bp as oauth_bp
    from authserver.endpoints.ops import bp as ops_bp
    from authserver.endpoints.verification import bp as verify_bp
    from authserver.registry.audit_events import bp as audit_bp
    from authserver.registry.clients import bp as clients_bp
    from authserver.registry.customer_devices import bp as customer_devices_bp
    from authserver.registry.device_authorizations import bp as device_authorizations_bp
    from authserver.registry.device_bulk import bp as device_bulk_bp
    from authserver.registry.devices import bp as devices_bp
    from authserver.registry.locations import bp as locations_bp
    from authserver.registry.module_bulk import bp as module_bulk_bp
    from authserver.registry.modules import bp as modules_bp
    from authserver.registry.people import bp as people_bp
    from authserver.registry.people_bulk import bp as people_bulk_bp
    from authserver.registry.tenant import bp as tenant_bp

    app.register_blueprint(oauth_bp)
    app.register_blueprint(ops_bp)
    app.register_blueprint(verify_bp)
    app.register_blueprint(authorize_bp)
    app.register_blueprint(device_authorizations_bp)
    app.register_blueprint(devices_bp)
    app.register_blueprint(device_bulk_bp)
    app.register_blueprint(people_bulk_bp)
    app.register_blueprint(module_bulk_bp)
    app.register_blueprint(locations_bp)
    app.register_blueprint(audit_bp)
    app.register_blueprint(people_bp)
    app.register_blueprint(tenant_bp)
    app.register_blueprint(modules_bp)
    app.register_blueprint(customer_devices_bp)
    app.register_blueprint(clients_bp)
    app.before_request(tokens.note_request_time)
    app.after_request(add_dpop_nonce)
    retention.install(app, engine, settings, store, now)
    observability.configure_logging(settings.log_level)
    observability.install(app)
    http_errors.install(app)
    return app


def _same(func: Callable[..., object]) -> Callable[..., object]:
    return func


class _CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions (only the /device page has one), without their cost on
    every other request: no cookie, no serializer built; the serializer built once per app."""

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        cached = app.extensions.get("authserver.session_serializer")
        if cached is None:
            cached = app.extensions["authserver.session_serializer"] = (
                super().get_signing_serializer(app)
            )
        return cached  # type: ignore[no-any-return]

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if "HTTP_COOKIE" not in request.environ or not request.cookies.get(
            self.get_cookie_name(app)
        ):
            return self.session_class()
        return super().open_session(app, request)


def _private_sqlite_file(database_url: str) -> None:
    """The embedded database holds hashes and encrypted keys: readable by its owner only, like
    the secret files beside it. SQLite gives its -wal and -shm files the database file's mode."""
    path = make_url(database_url).database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    for name in (path, f"{path}-wal", f"{path}-shm"):
        if name == path:
            os.close(os.open(name, os.O_CREAT | os.O_RDWR, 0o600))
        if os.path.exists(name):
            os.chmod(name, 0o600)
