"""Strict parsing of form-encoded OAuth requests.

Authlib reads ``request.values`` (query and body merged) and decodes with replacement characters.
We parse the body ourselves so that: parameters come from the body only (RFC 6749 §3.2); a
parameter sent twice is refused (§3.1, §3.2); empty parameters count as omitted (§3.1); invalid
UTF-8, control characters and oversized values are refused before anything is looked up or stored.
"""

from __future__ import annotations

import functools
import re
from typing import Any
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749 import OAuth2Payload, OAuth2Request
from authlib.oauth2.rfc6749.errors import InsecureTransportError
from flask import Request
from werkzeug.datastructures import MultiDict

from authserver.errors import InvalidRequestBody

MAX_FIELDS = 32
FORM_TYPE = "application/x-www-form-urlencoded"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _has_control_chars(value: str) -> bool:
    return _CONTROL.search(value) is not None


class Form(MultiDict[str, str]):
    """The parsed parameters: one value per name (a repeated one is refused), so ``get`` is one
    dictionary lookup. MultiDict's own ``get`` raises and catches a KeyError for every absent
    parameter, and a request asks for several of those."""

    def get(self, key: str, default: Any = None, type: Any = None) -> Any:  # type: ignore[override]  # noqa: A002
        values = dict.get(self, key)
        if not values:
            return default
        if type is None:
            return values[0]
        try:
            return type(values[0])
        except (ValueError, TypeError):
            return default


def parse_form(request: Request, max_value_chars: int) -> MultiDict[str, str]:
    if not request.mimetype and not request.content_length and not request.get_data(cache=True):
        return Form()  # an empty body carries no parameters, whatever its (absent) type
    if request.mimetype != FORM_TYPE:
        raise InvalidRequestBody(f"Content-Type must be {FORM_TYPE}.")
    charset = request.mimetype_params.get("charset")
    if charset and charset.lower() not in ("utf-8", "utf8"):
        raise InvalidRequestBody("The request body must be UTF-8.")
    raw = request.get_data(cache=True)
    try:
        text = raw.decode("ascii")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequestBody("The request body is not valid UTF-8 form encoding.") from exc
    form = Form()
    for name, value in pairs:
        if not value:
            continue  # RFC 6749 §3.1: a parameter without a value is treated as omitted.
        if name in form:
            raise InvalidRequestBody(f"Parameter '{_printable(name)}' is included more than once.")
        if len(value) > max_value_chars or len(name) > 64:
            raise InvalidRequestBody(f"Parameter '{_printable(name)}' is too long.")
        if _has_control_chars(value) or _has_control_chars(name):
            raise InvalidRequestBody(f"Parameter '{_printable(name)}' contains control characters.")
        form.add(name, value)
    return form


def _printable(name: str) -> str:
    """A parameter name safe to echo in an error_description (RFC 6749 §5.2 character set)."""
    cleaned = "".join(c for c in name if 0x20 <= ord(c) <= 0x7E and c not in '"\\')
    return cleaned[:64] or "?"


class _FormPayload(OAuth2Payload):
    def __init__(self, form: MultiDict[str, str]) -> None:
        self._form = form

    @property
    def data(self) -> MultiDict[str, str]:
        return self._form

    @property
    def datalist(self) -> dict[str, list[str]]:
        return {k: self._form.getlist(k) for k in self._form}


@functools.lru_cache(maxsize=64)
def _check_transport(url: str) -> None:
    """Authlib's check that OAuth runs over TLS (plain http on loopback only); a URL that
    passes is remembered (a failure raises, and is not)."""
    InsecureTransportError.check(url)


class FormRequest(OAuth2Request):
    """An Authlib request whose parameters are the strictly parsed body, at the public URL.

    The URL comes from the configured issuer, not from the Host header, so transport checks and
    (later) DPoP ``htu`` comparisons are right behind a TLS-terminating proxy.
    """

    def __init__(self, request: Request, form: MultiDict[str, str], public_url: str) -> None:
        # Authlib's __init__ without two costs paid on every request: its transport check parses
        # the URL, here always the issuer's plus a route (checked once per URL), and its
        # ``headers or {}`` counts every header. The same attributes are set
        # (tests/oauth2/test_requests.py compares them with Authlib's own, and setup.cfg keeps
        # Authlib to the minor version that test ran against).
        _check_transport(public_url)
        self.method = request.method
        self.uri = public_url
        self.headers = request.headers
        self._body = None
        self.client = None
        self.auth_method = None
        self.user = None
        self.authorization_code = None
        self.refresh_token = None
        self.credential = None
        self._scope = None
        self._request = request
        self._form = form
        self.payload = _FormPayload(form)
        # State-store keys a grant wants read with the client authentication's own round trip
        # (``AuthServer.authenticate_client``), and what that read found of them.
        self.prefetch: list[str] = []
        self.prefetched: dict[str, str] = {}

    @property
    def args(self) -> MultiDict[str, str]:
        return self._request.args  # type: ignore[return-value]

    @property
    def form(self) -> MultiDict[str, str]:
        return self._form

    @property
    def remote_addr(self) -> str | None:
        return self._request.remote_addr
