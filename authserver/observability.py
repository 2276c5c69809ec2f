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

import orjson
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
    # Our lines carry none of these: not computing them saves a stack walk (the caller's file
    # and line) and several lookups on every record (the standard library's switches for this).
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
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

    # The labelled children of the request metrics, looked up once per label set (bounded:
    # endpoints are the app's rules, methods and statuses a handful).
    counters: dict[tuple[str, str, int], Any] = {}
    latencies: dict[str, Any] = {}

    @app.after_request
    def finish(resp: Response) -> Response:
        # Proxies resolved once: this runs on every request.
        req = request._get_current_object()  # type: ignore[attr-defined]
        ctx = g._get_current_object()  # type: ignore[attr-defined]
        ctx_get = ctx.__dict__.get
        elapsed = time.perf_counter() - ctx_get("started", time.perf_counter())
        rule = req.url_rule
        endpoint = rule.rule if rule is not None else "unmatched"
        method, status = req.method, resp.status_code
        labels = (endpoint, method, status)
        counter = counters.get(labels)
        if counter is None:
            counter = counters[labels] = metrics.REQUESTS.labels(endpoint, method, str(status))
        counter.inc()
        latency = latencies.get(endpoint)
        if latency is None:
            latency = latencies[endpoint] = metrics.LATENCY.labels(endpoint)
        latency.observe(elapsed)
        request_id = ctx_get("request_id", "")
        resp.headers["X-Request-ID"] = request_id
        if not access_log.isEnabledFor(logging.INFO):
            return resp
        outcome = "ok"
        if status >= 400:
            outcome = ctx_get("log_outcome") or "error"
            if (
                outcome == "error"
                and resp.is_json
                and resp.content_length
                and resp.content_length < 4096
            ):
                body = resp.get_json(silent=True)
                if isinstance(body, dict) and isinstance(body.get("error"), str):
                    outcome = body["error"]
        token = ctx_get("access_token")
        fields = ctx_get("log_fields") or {}
        line = {
            "ts": round(time.time(), 3),
            "level": "info",
            "logger": "authserver.access",
            "request_id": request_id,
            "method": method,
            "path": loggable_path(),
            "status": status,
            "duration_ms": round(elapsed * 1000, 2),
            "client_id": fields.get("client_id") or (token.client_id if token else None),
            "tenant": fields.get("tenant") or (token.tenant_id if token else None),
            "grant": ctx_get("log_grant"),
            "outcome": outcome,
            "remote": req.remote_addr,
        }
        access_log.info(orjson.dumps(line).decode())
        return resp
