"""How errors become HTTP answers: one RFC 9457 renderer for the API, OAuth error bodies
(RFC 6749 §5.2) for the OAuth endpoints, pages for people, 503 for unreachable stores."""

from __future__ import annotations

import logging
from typing import Any

from authlib.oauth2.rfc6749.errors import OAuth2Error
from flask import Flask, Response, jsonify, render_template, request
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException

from authserver.ephemeral import StoreUnavailable
from authserver.models import db
from authserver.observability import loggable_path
from authserver.problems import ConflictProblem, Problem, ValidationProblem
from authserver.state import get_state

log = logging.getLogger("authserver")


def problem_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response:
    """The one RFC 9457 rendering: ``application/problem+json``, never cached."""
    resp = jsonify(body)
    resp.status_code = status
    resp.content_type = "application/problem+json"
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    resp.headers["Cache-Control"] = "no-store"
    return resp


def render_problem(problem: Problem) -> Response:
    return problem_response(problem.status, problem.body(), problem.headers())


# The problem type of each status an API route can answer without a Problem of its own.
_STATUS_PROBLEMS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("payload-too-large", "Payload too large"),
    429: ("too-many-requests", "Too many requests"),
    503: ("service-unavailable", "Service unavailable"),
}


def status_problem(status: int, detail: str, **extra: Any) -> dict[str, Any]:
    slug, title = _STATUS_PROBLEMS.get(
        status,
        ("server-error", "Server error") if status >= 500 else ("bad-request", "Bad request"),
    )
    return {
        "type": f"urn:authserver:problem:{slug}",
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }


def _api() -> bool:
    """The registry API answers in problem details (RFC 9457), whatever went wrong."""
    return request.path.startswith("/api/")


def oauth_error_as_problem(exc: OAuth2Error) -> Response:
    """An OAuth error raised on an API route (the link URL): the same error code and status, as
    a problem of that status, with the headers that tell the client what to do next."""
    headers = {k: v for k, v in exc.get_headers() if k in ("Retry-After", "DPoP-Nonce")}
    extra: dict[str, Any] = {"error": exc.error}
    if "Retry-After" in headers:
        extra["retryAfter"] = int(headers["Retry-After"])
    body = status_problem(exc.status_code, exc.description or exc.error, **extra)
    return problem_response(exc.status_code, body, headers)


def oauth_error(status: int, error: str, description: str) -> Response:
    """RFC 6749 §5.2 for the OAuth endpoints."""
    resp = jsonify(error=error, error_description=description)
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _first_line(exc: DBAPIError) -> str:
    lines = str(exc.orig).splitlines()
    return lines[0] if lines else type(exc.orig).__name__


def _rollback() -> None:
    try:
        db.session.rollback()
    except (OperationalError, DBAPIError):
        log.warning("rollback failed while the database is unreachable")


def _unavailable(what: str) -> Response:
    retry = get_state().settings.retry_after_seconds
    detail = f"The {what} is unreachable; retry later."
    if _api():
        body = status_problem(503, detail, retryAfter=retry)
        return problem_response(503, body, {"Retry-After": str(retry)})
    resp = oauth_error(503, "temporarily_unavailable", detail)
    resp.headers["Retry-After"] = str(retry)
    return resp


def install(app: Flask) -> None:
    @app.errorhandler(StoreUnavailable)
    def store_unavailable(exc: StoreUnavailable) -> Response:
        # Fail closed: a check we cannot make is a request we cannot serve.
        log.error("ephemeral store unavailable on %s: %s", loggable_path(), exc)
        _rollback()
        return _unavailable("state store")

    @app.errorhandler(OperationalError)
    def database_unavailable(exc: OperationalError) -> Response:
        # The driver's message, never the statement's parameters (they may hold secrets).
        log.error("database unavailable on %s: %s", loggable_path(), _first_line(exc))
        _rollback()
        return _unavailable("database")

    @app.errorhandler(DataError)
    def bad_data(exc: DataError) -> Response:
        # The database refused a value (PostgreSQL: NUL bytes, out-of-range numbers): the
        # request was malformed, not the server.
        log.warning("database refused a value on %s: %s", loggable_path(), _first_line(exc))
        _rollback()
        message = "The request contains a value that cannot be stored."
        if request.path.startswith("/api/"):
            return render_problem(ValidationProblem(message))
        if request.blueprint == "verify":
            # A person's browser gets a page, not JSON (review F9).
            html = render_template(
                "device/message.html",
                title="Please check what you entered",
                message="Something you entered cannot be stored. Go back and correct it.",
                csrf="",
            )
            return Response(html, status=400, content_type="text/html; charset=utf-8")
        return oauth_error(400, "invalid_request", message)

    @app.errorhandler(IntegrityError)
    def conflict(exc: IntegrityError) -> Response:
        # A unique or foreign key the code did not name (two requests racing for one login):
        # the request conflicts with what is stored, the server did not fail (invariant 5).
        log.warning("integrity error on %s: %s", loggable_path(), _first_line(exc))
        _rollback()
        message = "The request conflicts with what is stored (a name or id already taken)."
        if _api():
            return render_problem(ConflictProblem(message))
        if request.blueprint == "verify":
            html = render_template("device/message.html", title="Please try again",
                                   message=message, csrf="")  # fmt: skip
            return Response(html, status=409, content_type="text/html; charset=utf-8")
        return oauth_error(400, "invalid_request", message)

    @app.errorhandler(Problem)
    def problem(exc: Problem) -> Response:
        _rollback()
        return render_problem(exc)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        names = {400: "invalid_request", 404: "not_found", 405: "invalid_request"}
        error = names.get(code, "server_error" if code >= 500 else "invalid_request")
        description = {
            404: "No such endpoint.",
            405: f"Method {request.method} is not allowed here.",
            413: "The request body is too large.",
        }.get(code, exc.description or exc.name)
        headers = {
            name: value
            for name, value in exc.get_headers()
            if name.lower() in ("allow", "retry-after")
        }
        if _api():
            return problem_response(code, status_problem(code, description), headers)
        resp = oauth_error(code, error, description)
        resp.headers.update(headers)
        return resp
