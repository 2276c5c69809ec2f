"""RFC 9457 problem details: one named type per registry error."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify


class Problem(Exception):
    """A registry error rendered as ``application/problem+json``."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def response(self) -> Response:
        body = {
            "type": f"urn:authserver:problem:{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extra,
        }
        resp = jsonify(body)
        resp.status_code = self.status
        resp.content_type = "application/problem+json"
        resp.headers["Cache-Control"] = "no-store"
        return resp


class ValidationProblem(Problem):
    status, slug, title = 400, "validation-error", "Invalid request"


class ForbiddenProblem(Problem):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFoundProblem(Problem):
    status, slug, title = 404, "not-found", "Not found"


class ConflictProblem(Problem):
    status, slug, title = 409, "conflict", "Conflict"


class TooManyRequestsProblem(Problem):
    status, slug, title = 429, "too-many-requests", "Too many requests"

    def __init__(self, detail: str, retry_after: int, **extra: Any) -> None:
        super().__init__(detail, retryAfter=retry_after, **extra)
        self.retry_after = retry_after

    def response(self) -> Response:
        resp = super().response()
        resp.headers["Retry-After"] = str(self.retry_after)  # RFC 9110 §10.2.3
        return resp
