"""Our Authlib ``AuthorizationServer``: strict requests, registered-method client auth, throttling."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any
from urllib.parse import unquote_plus

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749.errors import InvalidClientError, OAuth2Error
from flask import Response, g, request
from werkzeug.datastructures import MultiDict

from authserver import clients, fastjson
from authserver.clients import ClientView
from authserver.errors import ClientAuthThrottledError, InvalidRequestBody
from authserver.limits import Limit, Lockout, Throttled
from authserver.oauth2.requests import FormRequest, parse_form
from authserver.observability import note
from authserver.security import now_float
from authserver.state import get_state

MAX_CLIENT_ID_CHARS = 128
MAX_SECRET_CHARS = 512
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def query_client(client_id: str) -> ClientView | None:
    """The client of an active tenant, as a cached view (``authserver.clients``)."""
    return clients.find(client_id)


def parse_basic_credentials(header: str | None) -> tuple[str, str] | None:
    """RFC 6749 §2.3.1 / RFC 7617: base64 of form-urlencoded ``client_id:client_secret``."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    client_id, secret = unquote_plus(client_id), unquote_plus(secret)
    if not client_id or not secret:
        return None
    if _CONTROL.search(client_id) or _CONTROL.search(secret):
        return None
    if len(client_id) > MAX_CLIENT_ID_CHARS or len(secret) > MAX_SECRET_CHARS:
        return None
    return client_id, secret


def _authenticate_basic(query: Any, req: Any) -> ClientView | None:
    creds = g.get("basic_credentials") or parse_basic_credentials(req.headers.get("Authorization"))
    if creds is None:
        return None
    client = query(creds[0])
    if client is not None and client.check_client_secret(creds[1]):
        return client  # type: ignore[no-any-return]
    return None


def _authenticate_post(query: Any, req: Any) -> ClientView | None:
    client_id = req.form.get("client_id")
    secret = req.form.get("client_secret")
    if not client_id or not secret or len(secret) > MAX_SECRET_CHARS:
        return None
    client = query(client_id)
    if client is not None and client.check_client_secret(secret):
        return client  # type: ignore[no-any-return]
    return None


def _authenticate_none(query: Any, req: Any) -> ClientView | None:
    client_id = req.form.get("client_id")
    if not client_id or req.form.get("client_secret") or req.headers.get("Authorization"):
        return None
    return query(client_id)  # type: ignore[no-any-return]


class AuthServer(AuthorizationServer):
    """Authlib's server with our request parsing and client authentication rules."""

    def __init__(self) -> None:
        super().__init__(query_client=query_client, save_token=self._no_save)
        # The token grants we serve, in registration order (discovery, logs, metrics read this,
        # not Authlib's private list).
        self.grant_classes: list[Any] = []
        self.register_client_auth_method("client_secret_basic", _authenticate_basic)
        self.register_client_auth_method("client_secret_post", _authenticate_post)
        self.register_client_auth_method("none", _authenticate_none)

    def register_grant(self, grant_cls: Any, extensions: Any = None) -> None:
        super().register_grant(grant_cls, extensions)
        self.grant_classes.append(grant_cls)

    @staticmethod
    def _no_save(token: dict[str, Any], req: Any) -> None:
        # Our grants record tokens as they issue them (authserver.tokens); nothing goes through
        # Authlib's save_token.
        raise RuntimeError("tokens are recorded by authserver.tokens, not save_token")

    def handle_response(self, status_code: int, payload: Any, headers: Any) -> Response:
        if isinstance(payload, dict):
            payload = fastjson.dumps(payload)
        return Response(payload, status=status_code, headers=headers)

    def handle_error_response(self, request: Any, error: OAuth2Error) -> Any:
        g.log_outcome = error.error  # the access log's outcome, without parsing the body again
        return super().handle_error_response(request, error)

    def create_oauth2_request(self, req: Any) -> FormRequest:
        form: MultiDict[str, str] = g.oauth_form
        settings = get_state().settings
        return FormRequest(request, form, settings.issuer + request.path)

    def authenticate_client(
        self, req: Any, methods: list[str], endpoint: str = "token"
    ) -> ClientView:
        has_basic = (req.headers.get("Authorization") or "").lower().startswith("basic ")
        if has_basic and req.form.get("client_secret"):
            # RFC 6749 §2.3: a client MUST NOT use more than one authentication method.
            raise InvalidRequestBody("Use one client authentication method, not two.")
        basic = g.basic_credentials = parse_basic_credentials(req.headers.get("Authorization"))
        if basic and req.form.get("client_id") and req.form["client_id"] != basic[0]:
            raise InvalidRequestBody("client_id in the body differs from the authenticated one.")
        # Failed authentications are limited per client and address; while locked out, even the
        # right secret is refused (review F10), so 429 versus 200 tells a guesser nothing.
        state = get_state()
        s = state.settings
        lockout = Lockout(
            Limit("cauth", s.client_auth_failure_limit, s.client_auth_failure_window, "client")
        )
        ident = f"{(basic[0] if basic else req.form.get('client_id')) or '-'}|{request.remote_addr}"
        try:
            # One store round trip: this client's lockout, the client configuration's version
            # that tells whether this process's cached client is current, and whatever the
            # grant asked to read with them (``FormRequest.prefetch``: reads only, so nothing
            # is spent or changed before the client has authenticated).
            lock_key = lockout.key(ident)
            prefetch = getattr(req, "prefetch", None)
            found = state.store.get_many([lock_key, clients.VERSION_KEY, *(prefetch or ())])
            if prefetch:
                req.prefetched = {key: found[key] for key in prefetch if key in found}
            g.clients_version = found.get(clients.VERSION_KEY)
            lockout.refuse_while_locked(found.get(lock_key), now_float())
            try:
                client = super().authenticate_client(req, methods, endpoint)
            except InvalidClientError as error:
                lockout.failed(state.store, ident, now_float())
                # One message whatever failed: unknown client, wrong secret or wrong method.
                error.description = "Client authentication failed."
                raise
        except Throttled as exc:
            raise ClientAuthThrottledError(exc.retry_after) from exc
        note(client_id=client.client_id, tenant=client.tenant_id)
        return client  # type: ignore[no-any-return]


def form_endpoint_response(server: AuthServer, run: Any, token_endpoint: bool = False) -> Any:
    """Parse the body strictly, then let Authlib run; malformed requests never reach a grant."""
    try:
        g.oauth_form = parse_form(request, get_state().settings.max_param_chars)
        if token_endpoint:
            grant = g.oauth_form.get("grant_type")
            if grant is None:
                # RFC 6749 §5.2: a missing required parameter is invalid_request.
                raise InvalidRequestBody("Missing 'grant_type' parameter.")
            # For logs and metrics: registered grant types only, so labels stay bounded.
            known = {cls.GRANT_TYPE for cls in server.grant_classes}
            g.log_grant = grant if grant in known else "other"
    except OAuth2Error as error:
        return server.handle_error_response(None, error)
    return run()
