"""One structured JSON log line per request, and the request metrics.

Logged: request id, method, path (never the query string: it may carry a user code), status,
duration, client_id, tenant, grant and outcome (the OAuth error code when there is one). Never
a token, code, secret or password: those live only in bodies and headers, which are not logged.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import time
from typing import Any

from flask import Flask, Response, g, request

from authserver import metrics

access_log = logging.getLogger("authserver.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if record.name == "authserver.access":
            return record.getMessage()
        line: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(g, "request_id", None) if _in_request() else None,
        }
        if record.exc_info and record.exc_info[0] is not None:
            # An operator debugging a 500 needs what failed and where (review F13). SQL
            # parameters never appear: the engine is created with hide_parameters.
            line["exc_type"] = record.exc_info[0].__name__
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line)


def _in_request() -> bool:
    from flask import has_request_context

    return has_request_context()


def configure_logging(level: str = "INFO") -> None:
    logger = logging.getLogger("authserver")
    if not any(getattr(h, "_authserver", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._authserver = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level)


SECRET_PATH_ARGS = frozenset({"link_code", "user_code"})


def loggable_path() -> str:
    """The path, except that codes carried in it (seed 000's link URL, the device-authorization
    API) are replaced by the route's placeholder."""
    rule = request.url_rule
    if rule is None:
        return "<unmatched>"  # a wrong method or path may still carry a code: log nothing of it
    if SECRET_PATH_ARGS & set(rule.arguments):
        return rule.rule
    return request.path


def note(**fields: Any) -> None:
    """Add fields to this request's log line (client_id, tenant, grant)."""
    g.log_fields = {**g.get("log_fields", {}), **fields}


def install(app: Flask) -> None:
    def log_exception(exc_info: Any) -> None:
        # Flask's own message names request.path, which may carry a link or user code.
        app.logger.error("Exception on %s [%s]", loggable_path(), request.method, exc_info=exc_info)

    app.log_exception = log_exception  # type: ignore[method-assign]

    @app.before_request
    def start() -> None:
        g.started = time.perf_counter()
        rid = request.headers.get("X-Request-ID", "")
        g.request_id = rid if _REQUEST_ID.match(rid) else secrets.token_hex(8)

    @app.after_request
    def finish(resp: Response) -> Response:
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.REQUESTS.labels(endpoint, request.method, str(resp.status_code)).inc()
        metrics.LATENCY.labels(endpoint).observe(elapsed)
        outcome = "ok"
        if resp.status_code >= 400:
            outcome = "error"
            if resp.is_json and resp.content_length and resp.content_length < 4096:
                body = resp.get_json(silent=True)
                if isinstance(body, dict) and isinstance(body.get("error"), str):
                    outcome = body["error"]
        token = g.get("access_token")
        fields = g.get("log_fields", {})
        line = {
            "ts": round(time.time(), 3),
            "level": "info",
            "logger": "authserver.access",
            "request_id": g.get("request_id"),
            "method": request.method,
            "path": loggable_path(),
            "status": resp.status_code,
            "duration_ms": round(elapsed * 1000, 2),
            "client_id": fields.get("client_id") or (token.client_id if token else None),
            "tenant": fields.get("tenant") or (token.tenant_id if token else None),
            "grant": g.get("log_grant"),
            "outcome": outcome,
            "remote": request.remote_addr,
        }
        access_log.info(json.dumps(line))
        resp.headers["X-Request-ID"] = g.get("request_id", "")
        return resp
