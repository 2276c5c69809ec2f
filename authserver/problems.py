"""Named errors of the API and the services, as RFC 9457 problem details.

Flask-free: services raise these, ``authserver.http_errors`` renders every one the same way
(``application/problem+json``: type, title, status, detail, and the extra members). Each kind of
refusal has its own class, so callers (the verification page, the CLI) branch on the type and
read the status from it, never from a table kept beside the code.
"""

from __future__ import annotations

from typing import Any


class Problem(Exception):
    """An error a client can act on: ``status`` and a ``detail`` for people; ``code`` (when
    set) names it for programs."""

    status = 400
    slug = "bad-request"
    title = "Bad request"
    code: str | None = None

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"urn:authserver:problem:{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.code is not None:
            body["code"] = self.code
        body.update(self.extra)
        return body

    def headers(self) -> dict[str, str]:
        return {}


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

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}  # RFC 9110 §10.2.3


# -- deciding a device-flow code (authserver.device_flow) -----------------------------------------


class DecisionError(Problem):
    """A device authorization that cannot be decided; the subclass says why."""


class WrongTenant(DecisionError, NotFoundProblem):
    code = "wrong_tenant"  # another tenant's code is as unknown as a made-up one


class ClientGone(DecisionError, ConflictProblem):
    code = "invalid_client"


class UserRequired(DecisionError, ConflictProblem):
    code = "user_required"


class NotAllowed(DecisionError, ForbiddenProblem):
    code = "forbidden"


class InvalidLocation(DecisionError, ValidationProblem):
    code = "invalid_location"


class InvalidModule(DecisionError, ValidationProblem):
    code = "invalid_module"


class InvalidName(DecisionError, ValidationProblem):
    code = "invalid_name"


class InvalidTill(DecisionError, ValidationProblem):
    code = "invalid_till"


class CodeClaimed(DecisionError, ConflictProblem):
    code = "claimed"


class CodeExpired(DecisionError, ConflictProblem):
    code = "expired"


class CodeDecided(DecisionError, ConflictProblem):
    code = "decided"


class DeviceBlocked(DecisionError, ConflictProblem):
    code = "blocked"


class IdentifierTaken(DecisionError, ConflictProblem):
    code = "identifier_taken"
