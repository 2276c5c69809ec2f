"""authserver: an OAuth 2.0 / OpenID Connect authorization server for fleets of devices."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from flask import Flask, Response, jsonify, render_template, request
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from authserver import metrics, observability, retention
from authserver.config import Settings, load_settings
from authserver.ephemeral import EphemeralStore, RedisStore, SqlStore, StoreUnavailable
from authserver.models import db
from authserver.oauth2.introspection import Introspection, Revocation
from authserver.oauth2.server import AuthServer
from authserver.observability import loggable_path
from authserver.registry.problems import (
    ConflictProblem,
    NotFoundProblem,
    Problem,
    ValidationProblem,
)
from authserver.registry.service import RegistryError
from authserver.resource import add_dpop_nonce
from authserver.security import Hasher
from authserver.state import AppState
from grants import dpop
from grants.client_credentials import ClientCredentialsGrant
from grants.device_code import DeviceAuthorizationEndpoint, DeviceCodeGrant
from grants.dpop import NonceIssuer
from grants.link_code import LinkCodeGrant
from grants.refresh_token import RefreshTokenGrant
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
    engine_options: dict[str, object] = {"pool_pre_ping": True, "hide_parameters": True}
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
    db.init_app(app)
    with app.app_context():
        engine = db.engine

    state = AppState(
        settings=settings,
        hasher=Hasher(settings.secret_key),
        store=None,  # type: ignore[arg-type]  # set below: it needs the clock
        keyring=None,  # type: ignore[arg-type]
        nonces=NonceIssuer(settings.secret_key, settings.dpop_nonce_lifetime),
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
    state.keyring = KeyRing(
        engine, KeyEncryptor(settings.key_encryption_key), settings.key_cache_seconds, now
    )
    app.extensions["authserver"] = state

    server = AuthServer()
    server.init_app(app)
    server.register_grant(ClientCredentialsGrant)
    server.register_grant(DeviceCodeGrant)
    server.register_grant(RefreshTokenGrant)
    server.register_grant(LinkCodeGrant)
    server.register_endpoint(DeviceAuthorizationEndpoint)
    server.register_endpoint(Introspection)
    server.register_endpoint(Revocation)
    state.server = server

    from authserver.endpoints.oauth import bp as oauth_bp
    from authserver.endpoints.ops import bp as ops_bp
    from authserver.endpoints.verification import bp as verify_bp
    from authserver.registry.audit_events import bp as audit_bp
    from authserver.registry.device_authorizations import bp as device_authorizations_bp
    from authserver.registry.devices import bp as devices_bp
    from authserver.registry.locations import bp as locations_bp

    app.register_blueprint(oauth_bp)
    app.register_blueprint(ops_bp)
    app.register_blueprint(verify_bp)
    app.register_blueprint(device_authorizations_bp)
    app.register_blueprint(devices_bp)
    app.register_blueprint(locations_bp)
    app.register_blueprint(audit_bp)
    app.after_request(add_dpop_nonce)
    retention.install(app, engine, settings, store, now)
    observability.configure_logging(settings.log_level)
    observability.install(app)
    dpop.on_reject = lambda check: metrics.DPOP_REJECTIONS.labels(check).inc()
    _register_error_handlers(app)
    return app


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


def _first_line(exc: DBAPIError) -> str:
    lines = str(exc.orig).splitlines()
    return lines[0] if lines else type(exc.orig).__name__


def _unavailable(what: str, retry_after: int) -> Response:
    resp = jsonify(
        error="temporarily_unavailable",
        error_description=f"The {what} is unreachable; retry later.",
    )
    resp.status_code = 503
    resp.headers["Retry-After"] = str(retry_after)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _register_error_handlers(app: Flask) -> None:
    settings: Settings = app.extensions["authserver"].settings

    def rollback() -> None:
        try:
            db.session.rollback()
        except (OperationalError, DBAPIError):
            log.warning("rollback failed while the database is unreachable")

    @app.errorhandler(StoreUnavailable)
    def store_unavailable(exc: StoreUnavailable) -> Response:
        # Fail closed: a check we cannot make is a request we cannot serve.
        log.error("ephemeral store unavailable on %s: %s", loggable_path(), exc)
        rollback()
        return _unavailable("state store", settings.retry_after_seconds)

    @app.errorhandler(OperationalError)
    def database_unavailable(exc: OperationalError) -> Response:
        # The driver's message, never the statement's parameters (they may hold secrets).
        log.error("database unavailable on %s: %s", loggable_path(), _first_line(exc))
        rollback()
        return _unavailable("database", settings.retry_after_seconds)

    @app.errorhandler(DataError)
    def bad_data(exc: DataError) -> Response:
        # The database refused a value (PostgreSQL: NUL bytes, out-of-range numbers): the
        # request was malformed, not the server.
        log.warning("database refused a value on %s: %s", loggable_path(), _first_line(exc))
        rollback()
        if request.path.startswith("/api/"):
            return ValidationProblem(
                "The request contains a value that cannot be stored."
            ).response()
        if request.blueprint == "verify":
            # A person's browser gets a page, not JSON (review F9).
            html = render_template(
                "device/message.html",
                title="Please check what you entered",
                message="Something you entered cannot be stored. Go back and correct it.",
                csrf="",
            )
            return Response(html, status=400, content_type="text/html; charset=utf-8")
        resp = jsonify(
            error="invalid_request",
            error_description="The request contains a value that cannot be stored.",
        )
        resp.status_code = 400
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.errorhandler(Problem)
    def problem(exc: Problem) -> Response:
        rollback()
        return exc.response()

    @app.errorhandler(RegistryError)
    def registry_error(exc: RegistryError) -> Response:
        rollback()
        cls = {"not_found": NotFoundProblem, "conflict": ConflictProblem}.get(
            exc.kind, ValidationProblem
        )
        return cls(str(exc)).response()

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        names = {
            400: "invalid_request",
            404: "not_found",
            405: "invalid_request",
            413: "invalid_request",
            415: "invalid_request",
        }
        error = names.get(code, "server_error" if code >= 500 else "invalid_request")
        description = {
            404: "No such endpoint.",
            405: f"Method {request.method} is not allowed here.",
            413: "The request body is too large.",
        }.get(code, exc.description or exc.name)
        resp = jsonify(error=error, error_description=description)
        resp.status_code = code
        for name, value in exc.get_headers():
            if name.lower() in ("allow", "retry-after"):
                resp.headers[name] = value
        resp.headers["Cache-Control"] = "no-store"
        return resp
