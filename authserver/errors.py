"""Named errors: one class per OAuth error the server adds to Authlib's, rendered per RFC 6749 §5.2."""

from __future__ import annotations

from authlib.oauth2.rfc6749.errors import InvalidClientError, OAuth2Error


class RetryAfter(OAuth2Error):
    """An error that tells the client when to try again (RFC 9110 §10.2.3 ``Retry-After``)."""

    retry_after = 1

    def get_headers(self) -> list[tuple[str, str]]:
        return [*super().get_headers(), ("Retry-After", str(self.retry_after))]


class ClientAuthThrottledError(RetryAfter, InvalidClientError):
    """Too many failed client authentications for one client from one address."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            status_code=429,
            description="Too many failed client authentications; retry later.",
        )
        self.retry_after = retry_after


class TooManyAttemptsError(RetryAfter):
    """Too many failed attempts at a grant (link code, staff code, password): 429."""

    error = "invalid_grant"
    status_code = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(description="Too many failed attempts; retry later.")
        self.retry_after = retry_after


class InvalidRequestBody(OAuth2Error):
    """The request itself is malformed (RFC 6749 §5.2 invalid_request), before any grant runs."""

    error = "invalid_request"

    def __init__(self, description: str, status_code: int = 400) -> None:
        super().__init__(description=description, status_code=status_code)


class TooManyRequestsError(RetryAfter):
    """RFC 8628 §3.5's ``slow_down``, answered 429 with ``Retry-After``: a client (or address)
    asks faster than the server allows, here at the device authorization endpoint."""

    error = "slow_down"
    status_code = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(description="Too many requests; retry later.")
        self.retry_after = retry_after


class TotpRequiredError(OAuth2Error):
    """The user signs in with a second factor (RFC 6238) and no code came with the password: ask
    the person for the code from their authenticator app and send it as ``totp``. An extension
    error (RFC 6749 §8.5), so that a client can tell it from a wrong password."""

    error = "totp_required"

    def __init__(self) -> None:
        super().__init__(
            description="This user signs in with a code from their authenticator app: send "
            "it as totp."
        )
