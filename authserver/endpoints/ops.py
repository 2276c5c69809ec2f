"""Operations endpoints: liveness, readiness, metrics, and the API's description."""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, Response, current_app, jsonify, render_template, request
from sqlalchemy.exc import SQLAlchemyError

from authserver import metrics
from authserver.ephemeral import StoreUnavailable
from authserver.models import database_reachable
from authserver.state import get_state
from keys.encryption import KeyDecryptionError
from keys.jwks import NoSigningKey

bp = Blueprint("ops", __name__)
log = logging.getLogger("authserver.ops")


def _api_document() -> dict:
    """The OpenAPI document, built once per app (the routes do not change while it runs)."""
    from authserver import openapi

    doc = current_app.extensions.get("authserver.openapi")
    if doc is None:
        doc = current_app.extensions["authserver.openapi"] = openapi.document(current_app)
    return doc  # type: ignore[no-any-return]


@bp.get("/openapi.json")
def openapi_json() -> Response:
    """The OpenAPI 3.1 document of every endpoint."""
    return jsonify(_api_document())


@bp.get("/docs/api")
def api_reference() -> Response:
    """The same document as a page: no script, nothing loaded from elsewhere."""
    html = render_template("api_reference.html", doc=_api_document())
    resp = Response(html, content_type="text/html; charset=utf-8")
    resp.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    )
    return resp


@bp.get("/healthz")
def healthz() -> Response:
    """The process lives and answers."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Response:
    """Ready to serve: database and state store reachable, a signing key loaded."""
    state = get_state()
    checks: dict[str, str] = {}
    checks["database"] = "ok" if database_reachable() else "unreachable"
    try:
        state.store.ping()
        checks["store"] = "ok"
    except StoreUnavailable:
        checks["store"] = "unreachable"
    try:
        state.keyring.snapshot()
        checks["signing_key"] = "ok"
    except (NoSigningKey, KeyDecryptionError, SQLAlchemyError):
        checks["signing_key"] = "unavailable"
    ready = all(v == "ok" for v in checks.values())
    resp = jsonify(status="ready" if ready else "unavailable", checks=checks)
    resp.status_code = 200 if ready else 503
    if not ready:
        resp.headers["Retry-After"] = str(state.settings.retry_after_seconds)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/metrics")
def prometheus() -> Response:
    """Prometheus metrics; only with ``Authorization: Bearer $AUTHSERVER_METRICS_TOKEN``."""
    expected = get_state().settings.metrics_token
    given = request.headers.get("Authorization", "")
    if not expected or not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
        resp = jsonify(error="not_found", error_description="No such endpoint.")
        resp.status_code = 404
        return resp
    body, content_type = metrics.render()
    return Response(body, content_type=content_type, headers={"Cache-Control": "no-store"})
