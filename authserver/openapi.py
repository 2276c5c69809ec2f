"""The OpenAPI 3.1 document of every HTTP endpoint, served at ``/openapi.json``.

Request bodies come from the schemas the views parse them with (``authserver.registry.schema``),
and list filters from the constants the views check them against, so the document says what the
code accepts. ``tests/test_openapi.py`` checks that every route the app serves is documented
and every documented operation is served.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask

from authserver.audit import TYPES as AUDIT_TYPES
from authserver.authorization import ROLES, USER_KINDS
from authserver.customer_devices import ISSUED_KINDS, ISSUED_STATUSES
from authserver.devices import APP_CODES, ORIGINS, SORT_KEYS, STATUSES
from authserver.registry import schema
from authserver.registry.pagination import DEFAULT_LIMIT, MAX_LIMIT
from grants import CLIENT_CREDENTIALS, DEVICE_CODE, LINK_CODE, REFRESH_TOKEN, STAFF_SIGN_IN

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _json(schema_: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema_}}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/problem+json": {"schema": _ref("Problem")}}}  # fmt: skip


def _oauth_error(description: str) -> dict[str, Any]:
    return _json(_ref("OAuthError"), description)


def _query(name: str, description: str, values: tuple[str, ...] | None = None,
           kind: str = "string") -> dict[str, Any]:  # fmt: skip
    found: dict[str, Any] = {"type": kind}
    if values is not None:
        found["enum"] = list(values)
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": found}  # fmt: skip


def _path(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "maxLength": 64}}  # fmt: skip


_PAGING = [
    _query("limit", f"Items per page, 1-{MAX_LIMIT} (default {DEFAULT_LIMIT}).", kind="integer"),
    _query("cursor", "The nextCursor of the previous page (opaque, signed)."),
]
_API_ERRORS = {
    "400": _problem("The request is not acceptable (validation-error)."),
    "401": {"description": "No valid access token (RFC 6750 / RFC 9449 WWW-Authenticate)."},
    "403": _problem("Not allowed for this token or user (forbidden), or insufficient scope."),
    "429": _problem("Too many requests (too-many-requests); Retry-After."),
    "503": _problem("A store is unreachable (service-unavailable); Retry-After."),
}
_READ = [{"bearer": ["devices:read"]}, {"dpop": ["devices:read"]}]
_WRITE = [{"bearer": ["devices:write"]}, {"dpop": ["devices:write"]}]
_DEVICE_ONLY = [{"dpop": ["devices:read"]}]
_USERS_READ = [{"bearer": ["users:read"]}, {"dpop": ["users:read"]}]
_USERS_WRITE = [{"bearer": ["users:write"]}, {"dpop": ["users:write"]}]
_ANY_USER: list[dict[str, list[str]]] = [{"bearer": []}, {"dpop": []}]
_TENANT_READ = [{"bearer": ["tenant:read"]}, {"dpop": ["tenant:read"]}]
_TENANT_WRITE = [{"bearer": ["tenant:write"]}, {"dpop": ["tenant:write"]}]
_MODULES_READ = [{"bearer": ["modules:read"]}, {"dpop": ["modules:read"]}]
_MODULES_WRITE = [{"bearer": ["modules:write"]}, {"dpop": ["modules:write"]}]
_CLIENTS_READ = [{"bearer": ["clients:read"]}, {"dpop": ["clients:read"]}]
_CLIENTS_WRITE = [{"bearer": ["clients:write"]}, {"dpop": ["clients:write"]}]
_MODULE_DEVICE: list[dict[str, list[str]]] = [{"bearer": []}, {"dpop": []}]
_CLIENT: list[dict[str, list[str]]] = [{"clientSecretBasic": []}, {"clientSecretPost": []}]


def _page(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "data": {"type": "array", "items": _ref(item)},
            "nextCursor": {"type": ["string", "null"]},
            "hasMore": {"type": "boolean"},
        },
        "required": ["data", "nextCursor", "hasMore"],
    }


def _one(item: str) -> dict[str, Any]:
    return {"type": "object", "properties": {"data": _ref(item)}, "required": ["data"]}


def _form(properties: dict[str, Any], required: list[str], description: str) -> dict[str, Any]:
    return {
        "required": True,
        "description": description,
        "content": {"application/x-www-form-urlencoded": {"schema": {
            "type": "object", "properties": properties, "required": required}}},
    }  # fmt: skip


def _body(body: schema.Body) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(body.name)}}}


_STR = {"type": "string"}
# The device list's sort and filters (the export's too).
_DEVICE_QUERY = [
    _query("sortBy", "Sort key.", tuple(SORT_KEYS)),
    _query("sortOrder", "asc (default) or desc.", ("asc", "desc")),
    _query("locationId", "Only devices at this location."),
    _query("name", "Name contains (case-insensitive)."),
    _query("origin", "Only this origin.", tuple(ORIGINS)),
    _query("status", "Only this status.", tuple(STATUSES)),
    _query("appCode", "Only this app.", tuple(APP_CODES)),
    _query("externalId", "Exactly this externalId."),
    _query("deviceIdentifier", "Exactly this identifier (seed 000)."),
    _query("q", "Name, externalId, identifier or tillId contains."),
]
_NOT_400 = {k: v for k, v in _API_ERRORS.items() if k != "400"}


def _export_format(ndjson: str) -> dict[str, Any]:
    return _query("format", f"csv (RFC 4180, a header line) or ndjson ({ndjson}).",
                  ("csv", "ndjson"))  # fmt: skip


def _bulk_create(tag: str, security: Any, body: schema.Body, csv_example: str, item: Any,
                 made: str, failing: str, conflict: str) -> dict[str, Any]:  # fmt: skip
    """A bulk creation: JSON (``body``) or CSV, all or none."""
    return {
        "tags": [tag],
        "summary": f"Create up to 10,000 {tag.lower()} at once (JSON or CSV), all or none",
        "security": security,
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": _ref(body.name)},
            "text/csv": {"schema": {"type": "string"}, "example": csv_example},
        }},
        "responses": {
            "201": _json({"type": "object", "properties": {"data": {
                "type": "array", "items": item}}}, made),
            "400": _json(_ref("BulkProblem"), "Nothing was created: errors lists each failing "
                         f"row ({failing})."),
            "409": _problem(f"{conflict} was taken meanwhile; nothing was created."),
            "413": _problem("The body is larger than AUTHSERVER_MAX_BULK_REQUEST_BYTES."),
            **_NOT_400,
        },
    }  # fmt: skip


def _bulk_changes(blueprint: str, tag: str, security: Any, body: schema.Body, description: str,
                  actions: tuple[tuple[str, str], ...],
                  refused: dict[str, Any] | None = None) -> dict[tuple[str, str], Any]:  # fmt: skip
    """The bulk changes of ``blueprint``: ``actions`` (name, summary), each by ids or filter."""
    errors = {"400": _json(_ref("BulkProblem"), "Nothing changed (unknown ids listed)."),
              **(refused or {})}  # fmt: skip
    return {
        (f"{blueprint}.bulk_{action}", "post"): {
            "tags": [tag],
            "summary": summary,
            "security": security,
            "requestBody": _body(body),
            "description": description,
            "responses": {
                "200": _json(_one("BulkOutcome"), "What was done."),
                **errors,
                **{k: v for k, v in _API_ERRORS.items() if k not in errors},
            },
        }
        for action, summary in actions
    }


# Every operation, by the endpoint (view) that serves it and its method.
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("oauth.token", "post"): {
        "tags": ["OAuth 2.0"],
        "summary": "Token endpoint (RFC 6749 §3.2): every grant",
        "description": "Grants: client_credentials, the device code (RFC 8628 §3.4), "
        "refresh_token (rotated), the link code. A DPoP header (RFC 9449) binds the tokens.",
        "security": [*_CLIENT, {}],
        "parameters": [
            {
                "name": "DPoP",
                "in": "header",
                "required": False,
                "schema": _STR,
                "description": "A DPoP proof (RFC 9449 §4).",
            }
        ],  # fmt: skip
        "requestBody": _form(
            {
                "grant_type": {
                    "type": "string",
                    "enum": [
                        CLIENT_CREDENTIALS,
                        DEVICE_CODE,
                        REFRESH_TOKEN,
                        LINK_CODE,
                        STAFF_SIGN_IN,
                    ],
                },  # fmt: skip
                "scope": _STR,
                "client_id": _STR,
                "device_code": _STR,
                "refresh_token": _STR,
                "link_code": _STR,
                "staff_code": _STR,
                "user_code": {"type": "string", "description": "staff_code by its older name"},
                "username": _STR,
                "password": _STR,
                "system_information": {"type": "string", "maxLength": 2000},
                "module": {
                    "type": "string",
                    "description": "device authorization: enrol as this module of the tenant",
                },
                "totp": {
                    "type": "string",
                    "description": "link code, staff sign-in: the user's current TOTP code, "
                    "when they have a second factor (else error totp_required)",
                },
                "actor_token": {
                    "type": "string",
                    "description": "staff sign-in: the terminal's own access token",
                },
                "actor_token_type": {
                    "type": "string",
                    "enum": ["urn:ietf:params:oauth:token-type:access_token"],
                },
            },
            ["grant_type"],
            "Form parameters, each at most once, no control characters.",
        ),
        "responses": {
            "200": _json(_ref("TokenResponse"), "Tokens."),
            "400": _oauth_error(
                "invalid_request, invalid_grant, authorization_pending, "
                "slow_down, expired_token, access_denied, invalid_dpop_proof, "
                "use_dpop_nonce, unsupported_grant_type, invalid_scope."
            ),  # fmt: skip
            "401": _oauth_error("invalid_client."),
            "429": _oauth_error("Too many failed attempts; Retry-After."),
            "503": _oauth_error("temporarily_unavailable; Retry-After."),
        },
    },
    ("oauth.device_authorization", "post"): {
        "tags": ["OAuth 2.0"],
        "summary": "Device authorization request (RFC 8628 §3.1)",
        "security": [*_CLIENT, {}],
        "requestBody": _form(
            {
                "client_id": _STR,
                "scope": _STR,
                "device_name": {"type": "string", "maxLength": 100},
                "system_information": {"type": "string", "maxLength": 2000},
            },
            [],
            "A public client sends client_id; a confidential one authenticates.",
        ),  # fmt: skip
        "responses": {
            "200": _json(_ref("DeviceAuthorizationResponse"), "A device code and user code."),
            "400": _oauth_error("invalid_request, invalid_scope, invalid_dpop_proof."),
            "401": _oauth_error("invalid_client."),
            "429": _oauth_error("Too many requests from this client or address; Retry-After."),
        },
    },
    ("oauth.introspect", "post"): {
        "tags": ["OAuth 2.0"],
        "summary": "Token introspection (RFC 7662)",
        "security": _CLIENT,
        "requestBody": _form(
            {"token": _STR, "token_type_hint": _STR}, ["token"], "The token to look at."
        ),  # fmt: skip
        "responses": {
            "200": _json(_ref("Introspection"), "active, and the token's claims."),
            "401": _oauth_error("invalid_client."),
        },  # fmt: skip
    },
    ("oauth.revoke", "post"): {
        "tags": ["OAuth 2.0"],
        "summary": "Token revocation (RFC 7009)",
        "security": _CLIENT,
        "requestBody": _form(
            {"token": _STR, "token_type_hint": _STR}, ["token"], "The token to revoke."
        ),  # fmt: skip
        "responses": {
            "200": {"description": "Revoked, or not a token (§2.2)."},
            "400": _oauth_error("invalid_request, invalid_grant (another client's)."),
            "401": _oauth_error("invalid_client."),
        },  # fmt: skip
    },
    ("oauth.jwks", "get"): {
        "tags": ["OAuth 2.0"],
        "summary": "The keys that verify the server's tokens (RFC 7517)",
        "responses": {
            "200": {
                "description": "A JWK set.",
                "content": {"application/jwk-set+json": {"schema": {"type": "object"}}},
            }
        },  # fmt: skip
    },
    ("oauth.metadata", "get"): {
        "tags": ["OAuth 2.0"],
        "summary": "Server metadata (RFC 8414, OpenID Connect Discovery)",
        "responses": {"200": _json({"type": "object"}, "The metadata document.")},
    },
    ("oauth.userinfo", "get"): {
        "tags": ["OpenID Connect"],
        "summary": "UserInfo (OpenID Connect Core §5.3)",
        "security": [{"bearer": ["openid"]}, {"dpop": ["openid"]}],
        "responses": {
            "200": _json({"type": "object"}, "Claims about the signed-in person."),
            "401": {"description": "No valid token."},
            "403": {"description": "Not a person's token, or no openid scope."},
        },
    },  # fmt: skip
    ("authorize.authorize", "get"): {
        "tags": ["Sign-in for apps"],
        "summary": "Authorization request: code flow with PKCE S256 (RFC 6749 §4.1, RFC 7636, "
        "OIDC Core §3.1.2)",
        "parameters": [
            _query("response_type", "code.", ("code",)),
            _query("client_id", "The client."),
            _query("redirect_uri", "One of the client's, exactly (loopback: any port)."),
            _query("scope", "Space-separated; openid for an ID token."),
            _query("state", "Returned unchanged."),
            _query("nonce", "Copied into the ID token."),
            _query("code_challenge", "BASE64URL(SHA-256(code_verifier)), 43 characters."),
            _query("code_challenge_method", "S256 only.", ("S256",)),
            _query("prompt", "none, login or consent."),
            _query("max_age", "Seconds since the last sign-in at most.", kind="integer"),
            _query("login_hint", "Pre-fills the login."),
            _query("dpop_jkt", "Binds the code to this DPoP key (RFC 9449 §10)."),
            _query("request_uri", "From the pushed authorization request endpoint (RFC 9126)."),
            _query("lang", "en or pl.", ("en", "pl")),
        ],
        "responses": {
            "200": {
                "description": "HTML: sign in, a second factor, or consent.",
                "content": {"text/html": {}},
            },
            "303": {
                "description": "To the redirect URI with code, state and iss (RFC 9207), "
                "or with error, error_description, state and iss."
            },
            "400": {
                "description": "HTML: no client or redirect URI that can be trusted; "
                "never redirected.",
                "content": {"text/html": {}},
            },
            "429": {
                "description": "HTML: too many sign-in pages opened from this address or "
                "network; Retry-After.",
                "content": {"text/html": {}},
            },
        },
    },  # fmt: skip
    ("authorize.proceed", "post"): {
        "tags": ["Sign-in for apps"],
        "summary": "The sign-in page's forms (password, TOTP code, consent, cancel)",
        "responses": {
            "200": {"description": "HTML: the next step.", "content": {"text/html": {}}},
            "303": {"description": "To the redirect URI with a code or an error."},
            "400": {"description": "HTML: a refused or expired form."},
            "401": {"description": "HTML: a wrong password or code."},
            "429": {"description": "HTML: wait; Retry-After."},
        },
    },  # fmt: skip
    ("authorize.par", "post"): {
        "tags": ["Sign-in for apps"],
        "summary": "Pushed authorization request (RFC 9126)",
        "security": [*_CLIENT, {}],
        "requestBody": _form(
            {
                "client_id": _STR,
                "response_type": _STR,
                "redirect_uri": _STR,
                "scope": _STR,
                "state": _STR,
                "nonce": _STR,
                "code_challenge": _STR,
                "code_challenge_method": {"enum": ["S256"]},
                "prompt": _STR,
                "max_age": _STR,
                "login_hint": _STR,
                "dpop_jkt": _STR,
            },
            [],
            "The authorization request's parameters; the client authenticates as at the token "
            "endpoint. A DPoP proof binds the code to its key (RFC 9449 §10.1).",
        ),
        "responses": {
            "201": _json(
                {
                    "type": "object",
                    "properties": {
                        "request_uri": {"type": "string"},
                        "expires_in": {"type": "integer"},
                    },
                },
                "request_uri for the authorization endpoint, usable once.",
            ),
            "400": _oauth_error(
                "invalid_request, invalid_scope, unauthorized_client, invalid_dpop_proof, ..."
            ),
            "401": _oauth_error("invalid_client."),
            "429": _oauth_error("Too many failed attempts; Retry-After."),
        },
    },  # fmt: skip
    ("authorize.logout", "get"): {
        "tags": ["Sign-in for apps"],
        "summary": "RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0)",
        "parameters": [
            _query("id_token_hint", "An ID token this server issued (expired ones too)."),
            _query("client_id", "The client, when there is no id_token_hint."),
            _query("post_logout_redirect_uri", "One the client registered, exactly."),
            _query("state", "Returned to the post-logout redirect URI."),
        ],
        "responses": {
            "200": {
                "description": "HTML: asks to confirm, or says the person is signed out.",
                "content": {"text/html": {}},
            },
            "303": {"description": "To the post-logout redirect URI, with state."},
            "400": {
                "description": "HTML: a hint or URI that cannot be used; never redirected.",
                "content": {"text/html": {}},
            },
        },
    },  # fmt: skip
    ("verify.page", "get"): {
        "tags": ["Verification page"],
        "summary": "The page where people enter a user code (RFC 8628 §3.3)",
        "parameters": [
            _query("user_code", "From verification_uri_complete: asks to confirm."),
            _query("lang", "en or pl; remembered in a cookie.", ("en", "pl")),
        ],
        "responses": {"200": {"description": "HTML.", "content": {"text/html": {}}}},
    },  # fmt: skip
    ("verify.act", "post"): {
        "tags": ["Verification page"],
        "summary": "The page's forms (enter a code, sign in, approve, deny, sign out)",
        "responses": {
            "200": {"description": "HTML.", "content": {"text/html": {}}},
            "303": {"description": "To the page's next step."},
            "400": {"description": "HTML: a form to correct, or a refused form."},
            "429": {"description": "HTML: wait; Retry-After."},
        },
    },  # fmt: skip
    ("verify.local_time_js", "get"): {
        "tags": ["Verification page"],
        "summary": "The page's script: times in the viewer's zone",
        "responses": {"200": {"description": "JavaScript.", "content": {"text/javascript": {}}}},
    },  # fmt: skip
    ("ops.healthz", "get"): {
        "tags": ["Operations"],
        "summary": "The process lives",
        "responses": {"200": _json({"type": "object"}, "ok")},
    },  # fmt: skip
    ("ops.readyz", "get"): {
        "tags": ["Operations"],
        "summary": "Database, state store and signing key are ready",
        "responses": {
            "200": _json({"type": "object"}, "ready"),
            "503": _json({"type": "object"}, "not ready; which check failed"),
        },
    },  # fmt: skip
    ("ops.openapi_json", "get"): {
        "tags": ["Operations"],
        "summary": "This document (OpenAPI 3.1)",
        "responses": {"200": _json({"type": "object"}, "The OpenAPI document.")},
    },  # fmt: skip
    ("ops.api_reference", "get"): {
        "tags": ["Operations"],
        "summary": "This document as a page to read (works offline)",
        "responses": {"200": {"description": "HTML.", "content": {"text/html": {}}}},
    },  # fmt: skip
    ("ops.prometheus", "get"): {
        "tags": ["Operations"],
        "summary": "Prometheus metrics (with AUTHSERVER_METRICS_TOKEN)",
        "security": [{"metricsToken": []}],
        "responses": {
            "200": {"description": "Prometheus text format.", "content": {"text/plain": {}}},
            "404": {"description": "Metrics are off or the token is wrong."},
        },
    },  # fmt: skip
    # -- the registry -------------------------------------------------------------------------
    ("devices.list_devices", "get"): {
        "tags": ["Devices"],
        "summary": "List devices",
        "security": _READ,
        "parameters": [
            *_PAGING,
            *_DEVICE_QUERY,
            _query("pageSize", "limit, by seed 000's name (not both)."),
            _query(
                "sortDirection",
                "sortOrder, by seed 000's name: ASC or DESC (not both).",
                ("ASC", "DESC", "asc", "desc"),
            ),
            _query("pageNumber", "Not supported: a 400 saying to follow nextCursor."),
            _query(
                "count",
                "true: the answer also has count (devices the filters select) "
                "and countExact (false: PostgreSQL's estimate, beyond 10,000).",
                ("true", "false"),
            ),
        ],
        "description": "Any other query parameter is a 400 naming it, never an unfiltered list.",
        "responses": {"200": _json(_page("Device"), "A page of devices."), **_API_ERRORS},
    },  # fmt: skip
    ("device_bulk.bulk_create", "post"): _bulk_create(
        "Devices",
        _WRITE,
        schema.DEVICE_BULK_CREATE,
        "name,externalId,status\r\nTill 1,store-12-till-1,READY_TO_LINK\r\n",
        _ref("Device"),
        "The devices in the order sent; each READY_TO_LINK one with its linkCode, shown this "
        "once (Cache-Control: no-store).",
        "index, field, detail; line for CSV",
        "An externalId",
    ),
    **_bulk_changes(
        "device_bulk",
        "Devices",
        _WRITE,
        schema.DEVICE_BULK_CHANGE,
        "In transactions of 500 devices, each audited as the single change is. By ids: an id "
        "that is not a device of the tenant fails the request before anything changes. By "
        "filter: up to 10,000 devices per request; hasMore says to send it again. Sending a "
        "request again is safe (what is done stays done).",
        (
            ("block", "Block many devices (their tokens are revoked)"),
            ("unblock", "Unblock many devices (their old tokens stay revoked)"),
            ("delete", "Delete many devices (their tokens are revoked)"),
        ),
    ),
    ("people_bulk.bulk_create", "post"): {
        **_bulk_create(
            "People",
            _USERS_WRITE,
            schema.USER_BULK_CREATE,
            "login,staffCode,roles\r\nanna@example.com,4711,STAFF@loc_main\r\n",
            _ref("User"),
            "The users in the order sent.",
            "index, field, detail; line for CSV",
            "A login, staff code or id",
        ),
        "summary": "Create up to 10,000 users at once (JSON or CSV), all or none",
        "description": "At most 100 rows with a password per request (each is an argon2 hash).",
    },
    **_bulk_changes(
        "people_bulk",
        "People",
        _USERS_WRITE,
        schema.USER_BULK_CHANGE,
        "In transactions of 500 users, each audited as the single change is. By ids: an id "
        "that is not a user of the tenant (400) or a user holding a role you may not manage "
        "(403) fails the request before anything changes. By filter: up to 10,000 users per "
        "request, never those you may not manage; hasMore says to send it again.",
        (
            ("disable", "Disable many users (their tokens are revoked)"),
            ("enable", "Enable many users"),
            ("delete", "Delete many users (their tokens are revoked)"),
        ),
        refused={
            "403": _json(
                _ref("BulkProblem"),
                "Nothing changed (users you may not "
                "manage listed), or the token may not manage people.",
            )
        },
    ),
    ("people_bulk.export", "get"): {
        "tags": ["People"],
        "summary": "Export the filtered users (CSV or NDJSON, streamed)",
        "security": _USERS_READ,
        "parameters": [
            _export_format("a user per line"),
            _query("login", "Login contains (case-insensitive)."),
            _query("name", "First or last name contains (case-insensitive)."),
            _query("role", "Holds this role.", tuple(ROLES)),
            _query("locationId", "Holds a role at this location."),
            _query("active", "true or false.", ("true", "false")),
            _query("kind", "staff or customer.", tuple(USER_KINDS)),
        ],
        "responses": {
            "200": {
                "description": "Every user the filters select, by login.",
                "content": {"text/csv": {}, "application/x-ndjson": {}},
            },
            **_API_ERRORS,
        },
    },
    ("module_bulk.bulk_create", "post"): _bulk_create(
        "Modules",
        _MODULES_WRITE,
        schema.MODULE_BULK_CREATE,
        'id,type,config\r\nkiosk-1,KIOSK,"{""menu"": 1}"\r\n',
        {"type": "object"},
        "The modules in the order sent.",
        "index, field, detail",
        "A module id",
    ),
    **_bulk_changes(
        "module_bulk",
        "Modules",
        _MODULES_WRITE,
        schema.MODULE_BULK_CHANGE,
        "In transactions of 500 modules, each audited as the single change is, every token of "
        "its enrolment revoked. By ids: an id that is not a module of the tenant fails the "
        "request before anything changes. By filter: up to 10,000 modules per request; with "
        "hasMore, send it again with after set to lastId.",
        (
            ("logout", "Log out many modules (their enrolments' tokens are revoked)"),
            ("delete", "Delete many modules (their tokens are revoked)"),
        ),
    ),
    ("module_bulk.export", "get"): {
        "tags": ["Modules"],
        "summary": "Export the filtered modules (CSV or NDJSON, streamed)",
        "security": _MODULES_READ,
        "parameters": [
            _query(
                "format",
                "csv (RFC 4180, a header line; config as JSON text) or ndjson.",
                ("csv", "ndjson"),
            ),
            _query("type", "Of this type.", schema.MODULE_TYPES),
            _query("locationId", "At this location."),
            _query("userId", "Of this user."),
            _query("production", "true or false.", ("true", "false")),
            _query("id", "Id contains."),
        ],
        "responses": {
            "200": {
                "description": "Every module the filters select, by id.",
                "content": {"text/csv": {}, "application/x-ndjson": {}},
            },
            **_API_ERRORS,
        },
    },  # fmt: skip
    ("device_bulk.export", "get"): {
        "tags": ["Devices"],
        "summary": "Export the filtered devices (CSV or NDJSON, streamed)",
        "security": _READ,
        "parameters": [
            _export_format("a device per line"),
            *_DEVICE_QUERY,
        ],
        "responses": {
            "200": {
                "description": "Every device the filters select.",
                "content": {"text/csv": {}, "application/x-ndjson": {}},
            },
            **_API_ERRORS,
        },
    },  # fmt: skip
    ("devices.create", "post"): {
        "tags": ["Devices"],
        "summary": "Create a device",
        "security": _WRITE,
        "requestBody": _body(schema.DEVICE_CREATE),
        "responses": {
            "201": _json(_one("Device"), "The device (with linkCode when READY_TO_LINK)."),
            "409": _problem("externalId taken."),
            **_API_ERRORS,
        },
    },  # fmt: skip
    ("devices.get", "get"): {
        "tags": ["Devices"],
        "summary": "One device",
        "security": _READ,
        "parameters": [_path("device_id", "The device's id.")],
        "responses": {
            "200": _json(_one("Device"), "The device."),
            "404": _problem("No such device."),
            **_API_ERRORS,
        },
    },  # fmt: skip
    ("devices.patch", "patch"): {
        "tags": ["Devices"],
        "summary": "Change a device (block, unlink, unblock, rename...)",
        "security": _WRITE,
        "parameters": [_path("device_id", "The device's id.")],
        "requestBody": _body(schema.DEVICE_UPDATE),
        "responses": {
            "200": _json(_one("Device"), "The device."),
            "404": _problem("No such device."),
            "409": _problem("Not possible now."),
            **_API_ERRORS,
        },
    },  # fmt: skip
    ("devices.remove", "delete"): {
        "tags": ["Devices"],
        "summary": "Delete a device (its tokens are revoked)",
        "security": _WRITE,
        "parameters": [_path("device_id", "The device's id.")],
        "responses": {
            "200": _json({"type": "object"}, "Deleted."),
            "404": _problem("No such device."),
            **_API_ERRORS,
        },
    },  # fmt: skip
    ("devices.link", "post"): {
        "tags": ["Devices"],
        "summary": "Link a terminal with its link code (older terminal API)",
        "parameters": [
            _path("link_code", "The link code."),
            {"name": "DPoP", "in": "header", "required": False, "schema": _STR},
        ],
        "requestBody": _body(schema.LINK),
        "responses": {
            "200": _json(_ref("LinkResponse"), "The terminal's tokens."),
            "400": _problem("Refused (error carries the OAuth code)."),
            "429": _problem("Too many failed attempts."),
            "503": _problem("A store is unreachable."),
        },
    },  # fmt: skip
    ("devices.me", "get"): {
        "tags": ["The calling device"],
        "summary": "The calling device",
        "security": _DEVICE_ONLY,
        "responses": {"200": _json(_one("Device"), "This device."), **_API_ERRORS},
    },  # fmt: skip
    ("devices.me_system_information", "put"): {
        "tags": ["The calling device"],
        "summary": "Report this device's system information",
        "security": [{"dpop": ["devices:write"]}],
        "requestBody": _body(schema.SYSTEM_INFORMATION),
        "responses": {"204": {"description": "Stored."}, **_API_ERRORS},
    },  # fmt: skip
    ("devices.patch_me", "patch"): {
        "tags": ["The calling device"],
        "summary": "Report this device's system information or its last order",
        "security": [{"dpop": ["devices:write"]}],
        "requestBody": _body(schema.DEVICE_SELF_UPDATE),
        "responses": {"200": _json(_one("Device"), "The device."), **_API_ERRORS},
    },  # fmt: skip
    ("devices.me_users", "get"): {
        "tags": ["The calling device"],
        "summary": "Users who may sign in on this device",
        "security": _DEVICE_ONLY,
        "parameters": _PAGING,
        "responses": {"200": _json(_page("DeviceUser"), "A page of users."), **_API_ERRORS},
    },  # fmt: skip
    ("locations.list_all", "get"): {
        "tags": ["Locations"],
        "summary": "List locations",
        "security": _READ,
        "parameters": _PAGING,
        "responses": {"200": _json(_page("Location"), "A page of locations."), **_API_ERRORS},
    },  # fmt: skip
    ("locations.create", "post"): {
        "tags": ["Locations"],
        "summary": "Create a location",
        "security": _WRITE,
        "requestBody": _body(schema.LOCATION_CREATE),
        "responses": {
            "201": _json(_one("Location"), "The location."),
            "409": _problem("Name taken."),
            **_API_ERRORS,
        },
    },  # fmt: skip
    ("locations.get_one", "get"): {
        "tags": ["Locations"],
        "summary": "One location",
        "security": _READ,
        "parameters": [_path("location_id", "The location's id.")],
        "responses": {
            "200": _json(_one("Location"), "The location."),
            "404": _problem("No such location."),
            **_API_ERRORS,
        },
    },  # fmt: skip
    ("locations.patch_location", "patch"): {
        "tags": ["Locations"],
        "summary": "Change a location",
        "security": _WRITE,
        "parameters": [_path("location_id", "The location's id.")],
        "requestBody": _body(schema.LOCATION_UPDATE),
        "responses": {
            "200": _json(_one("Location"), "The location."),
            "404": _problem("No such location."),
            **_API_ERRORS,
        },
    },  # fmt: skip
    ("locations.delete_one", "delete"): {
        "tags": ["Locations"],
        "summary": "Delete a location without active devices",
        "security": _WRITE,
        "parameters": [_path("location_id", "The location's id.")],
        "responses": {
            "200": _json({"type": "object"}, "Deleted."),
            "404": _problem("No such location."),
            "409": _problem("It still has active devices."),
            **_API_ERRORS,
        },
    },  # fmt: skip
    ("device_authorizations.decide", "post"): {
        "tags": ["Device authorizations"],
        "summary": "Approve or deny a device's request by its user code (RFC 8628)",
        "security": _WRITE,
        "parameters": [_path("user_code", "The code the device shows.")],
        "requestBody": _body(schema.DECISION),
        "responses": {
            "200": _json(_one("Decision"), "Decided."),
            "404": _problem("No pending authorization with this code."),
            "409": _problem("Cannot be decided (code says why)."),
            **_API_ERRORS,
        },
    },  # fmt: skip
    ("audit_events.list_all", "get"): {
        "tags": ["Audit events"],
        "summary": "The tenant's audit events (TENANT.ADMIN users)",
        "security": _READ,
        "parameters": [
            *_PAGING,
            _query("type", "Only this event type.", tuple(AUDIT_TYPES)),
            _query("deviceId", "Only events about this device."),
        ],
        "responses": {"200": _json(_page("AuditEvent"), "A page of events."), **_API_ERRORS},
    },  # fmt: skip
    ("people.list_all", "get"): {
        "tags": ["People"],
        "summary": "List the tenant's users, by login",
        "security": _USERS_READ,
        "parameters": [
            *_PAGING,
            _query("login", "A part of the login (any case)."),
            _query("name", "A part of the first or last name (any case)."),
            _query("role", "Holds this role, tenant-wide or at a location.", tuple(ROLES)),
            _query("locationId", "Holds a role at this location."),
            _query("active", "Only active (true) or inactive (false) users.", ("true", "false")),
            _query("kind", "Only staff or only customers.", USER_KINDS),
        ],
        "responses": {"200": _json(_page("User"), "A page of users."), **_API_ERRORS},
    },
    ("people.create", "post"): {
        "tags": ["People"],
        "summary": "Create a user",
        "security": _USERS_WRITE,
        "requestBody": _body(schema.USER_CREATE),
        "responses": {
            "201": _json(_one("User"), "The user."),
            "409": _problem("The id, login or staff code is taken."),
            **_API_ERRORS,
        },
    },
    ("people.get_one", "get"): {
        "tags": ["People"],
        "summary": "One user",
        "security": _USERS_READ,
        "parameters": [_path("user_id", "The user's id.")],
        "responses": {
            "200": _json(_one("User"), "The user."),
            "404": _problem("No such user."),
            **_API_ERRORS,
        },
    },
    ("people.upsert", "put"): {
        "tags": ["People"],
        "summary": "Create or replace a user by id",
        "security": _USERS_WRITE,
        "parameters": [_path("user_id", "The user's id (usr_...).")],
        "requestBody": _body(schema.USER_REPLACE),
        "responses": {
            "200": _json(_one("User"), "Replaced."),
            "201": _json(_one("User"), "Created."),
            "404": _problem("The id is another tenant's."),
            "409": _problem("The login or staff code is taken."),
            **_API_ERRORS,
        },
    },
    ("people.patch_user", "patch"): {
        "tags": ["People"],
        "summary": "Change a user (active false revokes their tokens)",
        "security": _USERS_WRITE,
        "parameters": [_path("user_id", "The user's id.")],
        "requestBody": _body(schema.USER_UPDATE),
        "responses": {
            "200": _json(_one("User"), "The user."),
            "404": _problem("No such user."),
            "409": _problem("The login or staff code is taken."),
            **_API_ERRORS,
        },
    },
    ("people.delete_one", "delete"): {
        "tags": ["People"],
        "summary": "Delete a user; every token issued to or for them is revoked",
        "security": _USERS_WRITE,
        "parameters": [_path("user_id", "The user's id.")],
        "responses": {
            "200": _json({"type": "object"}, "Deleted."),
            "404": _problem("No such user."),
            **_API_ERRORS,
        },
    },
    ("people.contact", "get"): {
        "tags": ["People"],
        "summary": "How to reach a user (names, phone, push id, consents)",
        "security": _USERS_READ,
        "parameters": [_path("user_id", "The user's id.")],
        "responses": {
            "200": _json(_one("Contact"), "The contact."),
            "404": _problem("No such user."),
            **_API_ERRORS,
        },
    },
    ("people.tenant", "get"): {
        "tags": ["People"],
        "summary": "The caller's tenant, as other services see it",
        "security": _USERS_READ,
        "responses": {"200": _json(_one("TenantCatalog"), "The tenant."), **_API_ERRORS},
    },
    ("people.strategies", "get"): {
        "tags": ["People"],
        "summary": "A user's linked external identities",
        "security": _USERS_READ,
        "parameters": [_path("user_id", "The user's id.")],
        "responses": {
            "200": _json(
                {
                    "type": "object",
                    "properties": {"data": {"type": "array", "items": _ref("AuthStrategyLink")}},
                },
                "The links.",
            ),
            "404": _problem("No such user."),
            **_API_ERRORS,
        },
    },  # fmt: skip
    ("people.upsert_strategy", "put"): {
        "tags": ["People"],
        "summary": "Link an external identity to a user, or change the link",
        "security": _USERS_WRITE,
        "parameters": [_path("user_id", "The user's id.")],
        "requestBody": _body(schema.AUTH_STRATEGY),
        "responses": {
            "200": _json(_one("AuthStrategyLink"), "Changed."),
            "201": _json(_one("AuthStrategyLink"), "Linked."),
            "404": _problem("No such user."),
            "409": _problem("The identity is linked to another user."),
            **_API_ERRORS,
        },
    },
    ("people.delete_strategy", "delete"): {
        "tags": ["People"],
        "summary": "Unlink an external identity",
        "security": _USERS_WRITE,
        "parameters": [
            _path("user_id", "The user's id."),
            _path("strategy", "The strategy."),
            {
                **_path("external_id", "The user's id in that system."),
                "schema": {"type": "string", "maxLength": 255},
            },
        ],  # fmt: skip
        "responses": {
            "200": _json({"type": "object"}, "Unlinked."),
            "404": _problem("No such user or link."),
            **_API_ERRORS,
        },
    },
    ("people.by_strategy", "get"): {
        "tags": ["People"],
        "summary": "The user an external identity is linked to",
        "security": _USERS_READ,
        "parameters": [
            {**_query("strategy", "The strategy (FB, GOOGLE, ...)."), "required": True},
            {**_query("id", "The user's id in that system."), "required": True},
            _query("email", "When given, must also be the user's login (it narrows)."),
        ],
        "responses": {
            "200": _json(_one("User"), "The user."),
            "404": _problem("No active link with this identity."),
            **_API_ERRORS,
        },
    },
    ("people.me", "get"): {
        "tags": ["Your account"],
        "summary": "Your own account (a user's token)",
        "security": _ANY_USER,
        "responses": {"200": _json(_one("User"), "You."), **_API_ERRORS},
    },
    ("people.patch_me", "patch"): {
        "tags": ["Your account"],
        "summary": "Change your own profile",
        "security": _ANY_USER,
        "requestBody": _body(schema.SELF_UPDATE),
        "responses": {"200": _json(_one("User"), "You."), **_API_ERRORS},
    },
    ("people.delete_me", "delete"): {
        "tags": ["Your account"],
        "summary": "Delete your own account (confirm with your login)",
        "security": _ANY_USER,
        "requestBody": _body(schema.SELF_DELETE),
        "responses": {"200": _json({"type": "object"}, "Deleted."), **_API_ERRORS},
    },
    ("people.consents", "post"): {
        "tags": ["Your account"],
        "summary": "Add and withdraw your consents",
        "security": _ANY_USER,
        "requestBody": _body(schema.CONSENTS),
        "responses": {"200": _json(_one("User"), "You."), **_API_ERRORS},
    },
    ("people.app_consents", "get"): {
        "tags": ["Your account"],
        "summary": "The apps you let sign you in, with the scopes you consented to",
        "security": _ANY_USER,
        "responses": {
            "200": _json(
                {
                    "type": "object",
                    "properties": {
                        "data": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "clientId": {"type": "string"},
                                    "clientName": {"type": ["string", "null"]},
                                    "scope": {"type": "array", "items": {"type": "string"}},
                                    "createdAt": {"type": "string"},
                                    "updatedAt": {"type": "string"},
                                },
                            },
                        }
                    },
                },
                "Your consents; a third-party app's token is refused (403).",
            ),
            **_API_ERRORS,
        },
    },  # fmt: skip
    ("people.withdraw_app_consent", "delete"): {
        "tags": ["Your account"],
        "summary": "Take an app's consent back: it asks again, its tokens for you end",
        "security": _ANY_USER,
        "parameters": [_path("client_id", "The app's client id.")],
        "responses": {
            "200": _json({"type": "object"}, "Withdrawn."),
            "404": _problem("No consent for that app."),
            **_API_ERRORS,
        },
    },
    ("people.totp_secret", "post"): {
        "tags": ["Your account"],
        "summary": "Generate a TOTP secret (RFC 6238) for an authenticator app, shown once",
        "security": _ANY_USER,
        "responses": {"201": _json(_one("TotpSecret"), "The pending secret."), **_API_ERRORS},
    },
    ("people.totp_configure", "put"): {
        "tags": ["Your account"],
        "summary": "Turn the second factor on with a current code",
        "security": _ANY_USER,
        "requestBody": _body(schema.TOTP_CONFIGURE),
        "responses": {
            "200": _json(_one("User"), "You, totpEnabled true."),
            "409": _problem("No pending secret: generate one first."),
            **_API_ERRORS,
        },
    },
    ("people.totp_remove_own", "delete"): {
        "tags": ["Your account"],
        "summary": "Turn your second factor off with a current code",
        "security": _ANY_USER,
        "requestBody": _body(schema.TOTP_REMOVE),
        "responses": {
            "200": _json(_one("User"), "You, totpEnabled false."),
            "409": _problem("No second factor configured."),
            **_API_ERRORS,
        },
    },
    ("people.totp_remove", "delete"): {
        "tags": ["People"],
        "summary": "Turn a user's second factor off (a lost phone)",
        "security": _USERS_WRITE,
        "parameters": [_path("user_id", "The user's id.")],
        "responses": {
            "200": _json(_one("User"), "The user."),
            "404": _problem("No such user."),
            **_API_ERRORS,
        },
    },
    ("tenant.list_properties", "get"): {
        "tags": ["Tenant"],
        "summary": "The tenant's properties, by name (obfuscated ones masked)",
        "security": _TENANT_READ,
        "parameters": [
            *_PAGING,
            _query("isPrivate", "Only private (true) or public (false) ones.", ("true", "false")),
            _query("property", "A part of the name."),
        ],
        "responses": {"200": _json(_page("TenantProperty"), "A page."), **_API_ERRORS},
    },
    ("tenant.properties_schema", "get"): {
        "tags": ["Tenant"],
        "summary": "The JSON Schema of a property change",
        "security": _TENANT_READ,
        "responses": {"200": _json({"type": "object"}, "The schema."), **_API_ERRORS},
    },
    ("tenant.put_property", "put"): {
        "tags": ["Tenant"],
        "summary": "Set a property",
        "security": _TENANT_WRITE,
        "parameters": [_path("name", "The property's name: [A-Za-z0-9_.-]{1,64}.")],
        "requestBody": _body(schema.PROPERTY),
        "responses": {
            "200": _json(_one("TenantProperty"), "Changed."),
            "201": _json(_one("TenantProperty"), "Created."),
            **_API_ERRORS,
        },
    },
    ("tenant.delete_property", "delete"): {
        "tags": ["Tenant"],
        "summary": "Delete a property",
        "security": _TENANT_WRITE,
        "parameters": [_path("name", "The property's name.")],
        "responses": {
            "200": _json({"type": "object"}, "Deleted."),
            "404": _problem("No such property."),
            **_API_ERRORS,
        },
    },
    ("tenant.patch_public_config", "patch"): {
        "tags": ["Tenant"],
        "summary": "Set several public properties at once",
        "security": _TENANT_WRITE,
        "requestBody": _body(schema.PUBLIC_CONFIG),
        "responses": {"200": _json(_one("PublicConfig"), "The public config."), **_API_ERRORS},
    },
    ("tenant.public_config", "get"): {
        "tags": ["Tenant"],
        "summary": "The public configuration, for front apps",
        "description": "With any access token of the tenant, or without one for the tenant "
        "named by `tenant`. Obfuscated values are masked.",
        "security": [{"bearer": []}, {"dpop": []}, {}],
        "parameters": [
            _query("filter", "Only names starting with this."),
            _query("tenant", "The tenant's id, when no token is sent."),
        ],
        "responses": {
            "200": _json(_one("PublicConfig"), "Name to value."),
            "404": _problem("No such tenant."),
            **_API_ERRORS,
        },
    },
    ("people.grant", "post"): {
        "tags": ["Roles"],
        "summary": "Give a role (tenant-wide or at a location) to users by login",
        "security": _USERS_WRITE,
        "requestBody": _body(schema.ROLE_GRANT),
        "responses": {
            "200": _json(_one("RoleGrantResult"), "Who has it now; logins not found."),
            **_API_ERRORS,
        },
    },
    ("people.revoke", "post"): {
        "tags": ["Roles"],
        "summary": "Take roles from every user of the tenant (never SU, never from yourself)",
        "security": _USERS_WRITE,
        "requestBody": _body(schema.ROLE_REVOCATION),
        "responses": {
            "200": _json(_one("RoleRevocationResult"), "How many users lost a role."),
            **_API_ERRORS,
        },
    },
}

_ID = _path("module_id", "The module's id (2-64 of A-Z a-z 0-9 _ -).")
_TYPE = {**_path("module_type", "The module type."),
         "schema": {"type": "string", "enum": list(schema.MODULE_TYPES)}}  # fmt: skip
_ETAG = {
    "304": {"description": "Not modified: the If-None-Match ETag is still current."},
}
_IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "required": False,
                  "schema": {"type": "string"},
                  "description": "The ETag of the answer you have (RFC 9110 §13.1.2)."}  # fmt: skip
OPERATIONS.update(
    {
        ("modules.list_all", "get"): {
            "tags": ["Modules"],
            "summary": "List and find modules (with their configs)",
            "description": "Unknown query parameters are a 400, never an unfiltered list.",
            "security": _MODULES_READ,
            "parameters": [
                *_PAGING,
                _query("type", "Only this type.", schema.MODULE_TYPES),
                _query("locationId", "Only modules at this location."),
                _query("userId", "Only modules of this user."),
                _query("production", "Only production (true) or not (false).", ("true", "false")),
                _query("id", "A part of the id."),
                _query(
                    "configName",
                    "config.<member>: with configValue, only modules whose own "
                    "config has this member with this value.",
                ),
                _query("configValue", "The value configName must have."),
                _query(
                    "effective",
                    "true: each module with its effectiveConfig too.",
                    ("true", "false"),
                ),
            ],  # fmt: skip
            "responses": {"200": _json(_page("Module"), "A page."), **_API_ERRORS},
        },
        ("modules.create", "post"): {
            "tags": ["Modules"],
            "summary": "Create a module (only if none has its id)",
            "security": _MODULES_WRITE,
            "requestBody": _body(schema.MODULE_CREATE),
            "responses": {
                "201": _json(_one("Module"), "Created."),
                "409": _problem("A module with this id exists."),
                **_API_ERRORS,
            },
        },
        ("modules.get_one", "get"): {
            "tags": ["Modules"],
            "summary": "A module",
            "security": _MODULES_READ,
            "parameters": [_ID],
            "responses": {
                "200": _json(_one("Module"), "The module."),
                "404": _problem("No such module."),
                **_API_ERRORS,
            },
        },
        ("modules.replace", "put"): {
            "tags": ["Modules"],
            "summary": "Replace a module's fields",
            "security": _MODULES_WRITE,
            "parameters": [_ID],
            "requestBody": _body(schema.MODULE_REPLACE),
            "responses": {
                "200": _json(_one("Module"), "The module."),
                "404": _problem("No such module."),
                **_API_ERRORS,
            },
        },
        ("modules.patch", "patch"): {
            "tags": ["Modules"],
            "summary": "Change a module (config, when sent, replaces its own config)",
            "security": _MODULES_WRITE,
            "parameters": [_ID],
            "requestBody": _body(schema.MODULE_UPDATE),
            "responses": {
                "200": _json(_one("Module"), "The module."),
                "404": _problem("No such module."),
                **_API_ERRORS,
            },
        },
        ("modules.delete_one", "delete"): {
            "tags": ["Modules"],
            "summary": "Delete a module; the device enrolled as it loses its tokens",
            "security": _MODULES_WRITE,
            "parameters": [_ID],
            "responses": {
                "200": _json({"type": "object"}, "Deleted."),
                "404": _problem("No such module."),
                **_API_ERRORS,
            },
        },
        ("modules.logout", "post"): {
            "tags": ["Modules"],
            "summary": "Log a module out: the device enrolled as it loses its tokens",
            "security": _MODULES_WRITE,
            "parameters": [_ID],
            "responses": {
                "200": _json({"type": "object"}, "Logged out."),
                "404": _problem("No such module."),
                **_API_ERRORS,
            },
        },
        ("modules.effective_config", "get"): {
            "tags": ["Modules"],
            "summary": "A module's effective config (its type's common config, its own laid over)",
            "security": _MODULES_READ,
            "parameters": [_ID, _IF_NONE_MATCH],
            "responses": {
                "200": _json(_one("Config"), "The effective config (with an ETag)."),
                **_ETAG,
                "404": _problem("No such module."),
                **_API_ERRORS,
            },
        },
        ("modules.get_common_config", "get"): {
            "tags": ["Modules"],
            "summary": "The common config of a module type",
            "security": _MODULES_READ,
            "parameters": [_TYPE, _IF_NONE_MATCH],
            "responses": {
                "200": _json(_one("Config"), "The common config (with an ETag)."),
                **_ETAG,
                **_API_ERRORS,
            },
        },
        ("modules.set_common_config", "put"): {
            "tags": ["Modules"],
            "summary": "Set the common config of a module type",
            "security": _MODULES_WRITE,
            "parameters": [_TYPE],
            "requestBody": _body(schema.MODULE_COMMON_CONFIG),
            "responses": {"200": _json(_one("Config"), "The common config."), **_API_ERRORS},
        },
        ("modules.me", "get"): {
            "tags": ["Your module"],
            "summary": "The module this device enrolled as (a device-flow token carrying module)",
            "security": _MODULE_DEVICE,
            "parameters": [_IF_NONE_MATCH],
            "responses": {
                "200": _json(_one("Module"), "Your module (with an ETag)."),
                **_ETAG,
                **_API_ERRORS,
            },
        },
        ("modules.my_config", "get"): {
            "tags": ["Your module"],
            "summary": "Your module's effective config; poll with If-None-Match",
            "security": _MODULE_DEVICE,
            "parameters": [_IF_NONE_MATCH],
            "responses": {
                "200": _json(_one("Config"), "The effective config (with an ETag)."),
                **_ETAG,
                **_API_ERRORS,
            },
        },
        ("modules.my_common_config", "get"): {
            "tags": ["Your module"],
            "summary": "The common config of your module's type",
            "security": _MODULE_DEVICE,
            "parameters": [_IF_NONE_MATCH],
            "responses": {
                "200": _json(_one("Config"), "The common config (with an ETag)."),
                **_ETAG,
                **_API_ERRORS,
            },
        },
    }
)

_CD_READ = [{"bearer": ["customer-devices:read"]}, {"dpop": ["customer-devices:read"]}]
_CD_WRITE = [{"bearer": ["customer-devices:write"]}, {"dpop": ["customer-devices:write"]}]
_USER = _path("user_id", "The customer's user id.")
_OWNED = _path("device_id", "The owned device's id (own_...).")
_ISSUED = _path("device_id", "The issued device's id (isd_...).")
_OWNED_STATUS = _query("status", "Only ACTIVE (registered) or UNREGISTERED ones.",
                       ("ACTIVE", "UNREGISTERED"))  # fmt: skip
_ISSUED_STATUS = _query("status", "Only this status.",
                        ISSUED_STATUSES)  # fmt: skip
OPERATIONS.update({
    ("customer_devices.register", "post"): {
        "tags": ["Your devices"],
        "summary": "Register a device you own (a phone, a watch, a tablet)",
        "description": "With a DPoP-bound token the device is bound to its key: unregistering "
        "it revokes every token bound to that key.",
        "security": _ANY_USER,
        "requestBody": _body(schema.OWNED_REGISTER),
        "responses": {"201": _json(_one("OwnedDevice"), "Registered."),
                      "409": _problem("One of your registered devices has this identifier."),
                      **_API_ERRORS},
    },
    ("customer_devices.my_owned", "get"): {
        "tags": ["Your devices"], "summary": "Your devices", "security": _ANY_USER,
        "parameters": [*_PAGING, _OWNED_STATUS],
        "responses": {"200": _json(_page("OwnedDevice"), "A page."), **_API_ERRORS},
    },
    ("customer_devices.my_owned_one", "get"): {
        "tags": ["Your devices"], "summary": "One of your devices", "security": _ANY_USER,
        "parameters": [_OWNED],
        "responses": {"200": _json(_one("OwnedDevice"), "The device."),
                      "404": _problem("No such device of yours."), **_API_ERRORS},
    },
    ("customer_devices.my_owned_patch", "patch"): {
        "tags": ["Your devices"], "summary": "Change your device (nickname, push id, ...)",
        "security": _ANY_USER, "parameters": [_OWNED],
        "requestBody": _body(schema.OWNED_UPDATE),
        "responses": {"200": _json(_one("OwnedDevice"), "The device."),
                      "404": _problem("No such device of yours."),
                      "409": _problem("The device is unregistered."), **_API_ERRORS},
    },
    ("customer_devices.my_owned_unregister", "post"): {
        "tags": ["Your devices"],
        "summary": "Unregister your device: no more pushes, its tokens revoked",
        "security": _ANY_USER, "parameters": [_OWNED],
        "responses": {"202": _json(_one("OwnedDevice"), "Unregistered."),
                      "404": _problem("No such device of yours."), **_API_ERRORS},
    },
    ("customer_devices.my_issued", "get"): {
        "tags": ["Your devices"], "summary": "Devices issued to you (cards, tokens)",
        "security": _ANY_USER, "parameters": [*_PAGING, _ISSUED_STATUS],
        "responses": {"200": _json(_page("IssuedDevice"), "A page."), **_API_ERRORS},
    },
    ("customer_devices.my_issued_one", "get"): {
        "tags": ["Your devices"], "summary": "A device issued to you, with its statuses",
        "security": _ANY_USER, "parameters": [_ISSUED],
        "responses": {"200": _json(_one("IssuedDevice"), "The device."),
                      "404": _problem("No such issued device of yours."), **_API_ERRORS},
    },
    ("customer_devices.owned_of", "get"): {
        "tags": ["Customers' devices"], "summary": "A customer's own devices",
        "security": _CD_READ, "parameters": [_USER, *_PAGING, _OWNED_STATUS],
        "responses": {"200": _json(_page("OwnedDevice"), "A page."),
                      "404": _problem("No such user."), **_API_ERRORS},
    },
    ("customer_devices.push_targets", "get"): {
        "tags": ["Customers' devices"],
        "summary": "Where to push to a customer: registered devices with a live push id",
        "security": _CD_READ, "parameters": [_USER],
        "responses": {"200": _json({"type": "object", "properties": {"data": {
            "type": "array", "items": _ref("PushTarget")}}}, "The targets."),
            "404": _problem("No such user."), **_API_ERRORS},
    },
    ("customer_devices.owned_unregister", "post"): {
        "tags": ["Customers' devices"], "summary": "Unregister a customer's device",
        "security": _CD_WRITE, "parameters": [_USER, _OWNED],
        "responses": {"202": _json(_one("OwnedDevice"), "Unregistered."),
                      "404": _problem("No such user or device."), **_API_ERRORS},
    },
    ("customer_devices.issue", "post"): {
        "tags": ["Customers' devices"], "summary": "Issue a device to a customer",
        "security": _CD_WRITE, "parameters": [_USER],
        "requestBody": _body(schema.ISSUED_CREATE),
        "responses": {"201": _json(_one("IssuedDevice"), "Issued."),
                      "404": _problem("No such user."), **_API_ERRORS},
    },
    ("customer_devices.issued_of", "get"): {
        "tags": ["Customers' devices"], "summary": "Devices issued to a customer",
        "security": _CD_READ, "parameters": [_USER, *_PAGING, _ISSUED_STATUS],
        "responses": {"200": _json(_page("IssuedDevice"), "A page."),
                      "404": _problem("No such user."), **_API_ERRORS},
    },
    ("customer_devices.issued_one", "get"): {
        "tags": ["Customers' devices"], "summary": "An issued device with its statuses",
        "security": _CD_READ, "parameters": [_USER, _ISSUED],
        "responses": {"200": _json(_one("IssuedDevice"), "The device."),
                      "404": _problem("No such user or device."), **_API_ERRORS},
    },
    ("customer_devices.issued_status", "post"): {
        "tags": ["Customers' devices"], "summary": "Move an issued device to its next status",
        "security": _CD_WRITE, "parameters": [_USER, _ISSUED],
        "requestBody": _body(schema.ISSUED_STATUS),
        "responses": {"200": _json(_one("IssuedDevice"), "The device, with its statuses."),
                      "404": _problem("No such user or device."),
                      "409": _problem("Not a next status of the current one "
                                      "(code illegal_transition)."), **_API_ERRORS},
    },
})  # fmt: skip

_CLIENT_ID = _path("client_id", "The client's id.")
_BEYOND = _problem(
    "Not allowed for this token or user, or the client has (or would get) a scope that manages "
    "the tenant which the calling token does not hold (forbidden)."
)
OPERATIONS.update({
    ("clients.list_all", "get"): {
        "tags": ["Clients"], "summary": "The tenant's clients, by name (never their secrets)",
        "security": _CLIENTS_READ, "parameters": _PAGING,
        "responses": {"200": _json(_page("Client"), "A page."), **_API_ERRORS},
    },
    ("clients.create", "post"): {
        "tags": ["Clients"],
        "summary": "Register a client; a confidential client's secret is in this answer, once",
        "security": _CLIENTS_WRITE, "requestBody": _body(schema.CLIENT_CREATE),
        "responses": {"201": _json(_one("Client"), "Registered (Cache-Control: no-store)."),
                      **_API_ERRORS, "403": _BEYOND},
    },
    ("clients.get_one", "get"): {
        "tags": ["Clients"], "summary": "A client", "security": _CLIENTS_READ,
        "parameters": [_CLIENT_ID],
        "responses": {"200": _json(_one("Client"), "The client."),
                      "404": _problem("No such client in this tenant."), **_API_ERRORS},
    },
    ("clients.patch", "patch"): {
        "tags": ["Clients"],
        "summary": "Change a client; disabling it (active false) ends its tokens",
        "security": _CLIENTS_WRITE, "parameters": [_CLIENT_ID],
        "requestBody": _body(schema.CLIENT_UPDATE),
        "responses": {"200": _json(_one("Client"), "The client."),
                      "404": _problem("No such client in this tenant."), **_API_ERRORS,
                      "403": _BEYOND},
    },
    ("clients.delete_one", "delete"): {
        "tags": ["Clients"], "summary": "Delete a client; its tokens end at once",
        "security": _CLIENTS_WRITE, "parameters": [_CLIENT_ID],
        "responses": {"200": _json({"type": "object"}, "Deleted."),
                      "204": {"description": "Deleted (Prefer: return=minimal)."},
                      "404": _problem("No such client in this tenant."), **_API_ERRORS,
                      "403": _BEYOND},
    },
    ("clients.new_secret", "post"): {
        "tags": ["Clients"],
        "summary": "A new secret for a confidential client (the old one stops at once); once",
        "security": _CLIENTS_WRITE, "parameters": [_CLIENT_ID],
        "responses": {"200": _json({"type": "object", "properties": {"data": {
            "type": "object", "properties": {"clientId": _STR, "clientSecret": _STR},
            "required": ["clientId", "clientSecret"]}}}, "The new secret (no-store)."),
            "400": _problem("A public client has no secret (validation-error)."),
            "404": _problem("No such client in this tenant."),
            **{k: v for k, v in _API_ERRORS.items() if k != "400"}, "403": _BEYOND},
    },
})  # fmt: skip

_TIME = {"type": ["string", "null"], "format": "date-time"}
_COMPONENTS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details.",
        "properties": {
            "type": _STR,
            "title": _STR,
            "status": {"type": "integer"},
            "detail": _STR,
            "code": _STR,
            "error": _STR,
            "retryAfter": {"type": "integer"},
        },
        "required": ["type", "title", "status", "detail"],
    },  # fmt: skip
    "OAuthError": {
        "type": "object",
        "description": "RFC 6749 §5.2.",
        "properties": {"error": _STR, "error_description": _STR},
        "required": ["error"],
    },
    "TokenResponse": {
        "type": "object",
        "properties": {
            "access_token": _STR,
            "token_type": {"enum": ["Bearer", "DPoP"]},
            "expires_in": {"type": "integer"},
            "scope": _STR,
            "refresh_token": _STR,
            "id_token": _STR,
        },
        "required": ["access_token", "token_type", "expires_in"],
    },  # fmt: skip
    "DeviceAuthorizationResponse": {
        "type": "object",
        "properties": {
            "device_code": _STR,
            "user_code": _STR,
            "verification_uri": _STR,
            "verification_uri_complete": _STR,
            "expires_in": {"type": "integer"},
            "interval": {"type": "integer"},
        },
        "required": ["device_code", "user_code", "verification_uri", "expires_in"],
    },  # fmt: skip
    "Introspection": {
        "type": "object",
        "properties": {"active": {"type": "boolean"}},
        "required": ["active"],
        "additionalProperties": True,
    },
    "BulkOutcome": {
        "type": "object",
        "properties": {
            "matched": {"type": "integer", "description": "Items the request selected."},
            "changed": {"type": "integer"},
            "skipped": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": _STR,
                        "reason": {
                            "enum": [
                                "already_blocked",
                                "not_blocked",
                                "not_linked",
                                "deleted",
                                "already_active",
                                "already_disabled",
                                "not_permitted",
                            ]
                        },
                    },
                },
            },
            "hasMore": {
                "type": "boolean",
                "description": "More items match the filter: send it again.",
            },
            "lastId": {
                "type": ["string", "null"],
                "description": "By filter: the last id selected; send it as after to go on "
                "from there.",
            },
        },
        "required": ["matched", "changed", "skipped", "hasMore", "lastId"],
    },
    "BulkProblem": {
        "type": "object",
        "description": "A Problem with every failing row or id.",
        "properties": {
            "detail": _STR,
            "errorCount": {"type": "integer"},
            "errors": {
                "type": "array",
                "maxItems": 1000,
                "items": {
                    "type": "object",
                    "properties": {
                        "index": {"type": "integer"},
                        "field": _STR,
                        "line": {"type": "integer"},
                        "detail": _STR,
                    },
                    "required": ["index", "detail"],
                },
            },
        },
    },  # fmt: skip
    "Device": {
        "type": "object",
        "properties": {
            "id": _STR,
            "name": _STR,
            "status": {"enum": list(STATUSES)},
            "origin": {"enum": list(ORIGINS)},
            "appCode": {"enum": list(APP_CODES)},
            "externalId": {"type": ["string", "null"]},
            "locationIds": {"type": "array", "items": _STR},
            "tillId": {"type": ["string", "null"]},
            "identifier": {"type": ["string", "null"]},
            "systemInformation": {"type": ["string", "null"]},
            "dpopJkt": {"type": ["string", "null"]},
            "lastActivityAt": _TIME,
            "lastTenantUserId": {"type": ["string", "null"]},
            "printerUids": {"type": "array", "items": _STR},
            "lastOrderUid": {"type": ["string", "null"]},
            "createdAt": _TIME,
            "createdBy": {"type": ["string", "null"]},
            "updatedAt": _TIME,
            "updatedBy": {"type": ["string", "null"]},
            "linkCode": {"type": "string", "description": "Only when just issued."},
            "linkCodeExpiresAt": _TIME,
        },
        "required": ["id", "name", "status", "origin", "appCode", "locationIds", "createdAt"],
    },  # fmt: skip
    "OwnedDevice": {
        "type": "object",
        "description": "A device a customer owns (seed 003).",
        "properties": {
            "id": _STR,
            "customerId": _STR,
            "externalDeviceIdentifier": _STR,
            "status": {"enum": ["ACTIVE", "UNREGISTERED"]},
            "nickname": {"type": ["string", "null"]},
            "operatingSystem": {"type": ["string", "null"]},
            "brandName": {"type": ["string", "null"]},
            "modelName": {"type": ["string", "null"]},
            "installationId": {"type": ["string", "null"]},
            "pushId": {"type": ["string", "null"]},
            "pushExpiresAt": _TIME,
            "dpopBound": {"type": "boolean"},
            "createdAt": _TIME,
            "updatedAt": _TIME,
            "unregisteredAt": _TIME,
        },
        "required": ["id", "customerId", "externalDeviceIdentifier", "status"],
    },
    "PushTarget": {
        "type": "object",
        "properties": {
            "ownedDeviceId": _STR,
            "pushId": _STR,
            "pushExpiresAt": _TIME,
            "operatingSystem": {"type": ["string", "null"]},
            "installationId": {"type": ["string", "null"]},
        },
        "required": ["ownedDeviceId", "pushId"],
    },
    "IssuedDevice": {
        "type": "object",
        "description": "A device issued to a customer (seed 003): masked identifier only.",
        "properties": {
            "id": _STR,
            "customerId": _STR,
            "kind": {"enum": list(ISSUED_KINDS)},
            "maskedIdentifier": _STR,
            "label": {"type": ["string", "null"]},
            "status": {"enum": list(ISSUED_STATUSES)},
            "createdAt": _TIME,
            "createdBy": {"type": ["string", "null"]},
            "updatedAt": _TIME,
            "statuses": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "status": _STR,
                        "changedBy": _STR,
                        "changedAt": _TIME,
                        "reason": {"type": ["string", "null"]},
                    },
                },
            },
        },
        "required": ["id", "customerId", "kind", "maskedIdentifier", "status"],
    },  # fmt: skip
    "Module": {
        "type": "object",
        "description": "A configured piece of software at the tenant (seed 002).",
        "properties": {
            "id": _STR,
            "type": {"enum": list(schema.MODULE_TYPES)},
            "production": {"type": "boolean"},
            "userId": {"type": ["string", "null"]},
            "locationId": {"type": ["string", "null"]},
            "config": {"type": "object"},
            "effectiveConfig": {
                "type": "object",
                "description": "With effective=true: the config it runs with.",
            },
            "createdAt": _TIME,
            "createdBy": {"type": ["string", "null"]},
            "updatedAt": _TIME,
            "updatedBy": {"type": ["string", "null"]},
        },
        "required": ["id", "type", "production", "config"],
    },  # fmt: skip
    "Client": {
        "type": "object",
        "description": "An OAuth client of the tenant: an app, a device's software or a service "
        "(most names are RFC 7591 §2's and OIDC Registration §2's metadata, in camelCase).",
        "properties": {
            "clientId": _STR,
            "name": _STR,
            "tokenEndpointAuthMethod": {"enum": list(schema.AUTH_METHODS)},
            "grantTypes": {"type": "array", "items": {"type": "string"}},
            "scope": {"type": "string"},
            "dpopBoundAccessTokens": {"type": "boolean"},
            "dpopBinding": {"enum": list(schema.DPOP_BINDINGS)},
            "deviceSubject": {"enum": list(schema.DEVICE_SUBJECTS)},
            "redirectUris": {"type": "array", "items": {"type": "string"}},
            "postLogoutRedirectUris": {"type": "array", "items": {"type": "string"}},
            "firstParty": {"type": "boolean"},
            "requirePushedAuthorizationRequests": {"type": "boolean"},
            "idTokenSignedResponseAlg": _STR,
            "userKind": {"enum": list(schema.CLIENT_USER_KINDS)},
            "active": {"type": "boolean"},
            "createdAt": _TIME,
            "clientSecret": {"type": "string", "description": "Only in the answer that made it."},
        },
        "required": [
            "clientId",
            "name",
            "tokenEndpointAuthMethod",
            "grantTypes",
            "scope",
            "active",
        ],
    },  # fmt: skip
    "Config": {"type": "object", "description": "A JSON object."},
    "Location": {
        "type": "object",
        "properties": {
            "id": _STR,
            "name": _STR,
            "kind": {"enum": list(schema.LOCATION_KINDS)},
            "createdAt": _TIME,
            "updatedAt": _TIME,
        },
        "required": ["id", "name", "kind"],
    },  # fmt: skip
    "User": {
        "type": "object",
        "description": "A person of the tenant. Passwords and staff codes are never returned.",
        "properties": {
            "id": _STR,
            "login": _STR,
            "kind": {"type": "string", "enum": list(USER_KINDS)},
            "firstName": {"type": ["string", "null"]},
            "lastName": {"type": ["string", "null"]},
            "phone": {"type": ["string", "null"]},
            "pushId": {"type": ["string", "null"]},
            "consents": {"type": "array", "items": _STR},
            "properties": {"type": "object"},
            "trusted": {"type": "boolean"},
            "active": {"type": "boolean"},
            "roles": {"type": "array", "items": schema.ROLE_SCHEMA},
            "passwordSet": {"type": "boolean"},
            "staffCodeSet": {"type": "boolean"},
            "totpEnabled": {"type": "boolean"},
            "createdAt": _TIME,
            "updatedAt": _TIME,
        },
        "required": ["id", "login", "roles", "active"],
    },
    "Contact": {
        "type": "object",
        "properties": {
            "id": _STR,
            "login": _STR,
            "firstName": {"type": ["string", "null"]},
            "lastName": {"type": ["string", "null"]},
            "phone": {"type": ["string", "null"]},
            "pushId": {"type": ["string", "null"]},
            "consents": {"type": "array", "items": _STR},
            "active": {"type": "boolean"},
        },
        "required": ["id", "login"],
    },
    "TenantCatalog": {
        "type": "object",
        "properties": {
            "id": _STR,
            "name": _STR,
            "active": {"type": "boolean"},
            "accentColour": {"type": ["string", "null"]},
            "logoUrl": {"type": ["string", "null"]},
            "createdAt": _TIME,
        },
        "required": ["id", "name"],
    },
    "AuthStrategyLink": {
        "type": "object",
        "properties": {
            "strategy": _STR,
            "id": _STR,
            "userId": _STR,
            "active": {"type": "boolean"},
            "passwordSet": {"type": "boolean"},
            "createdAt": _TIME,
            "updatedAt": _TIME,
        },
        "required": ["strategy", "id", "userId", "active"],
    },
    "TotpSecret": {
        "type": "object",
        "properties": {
            "secret": {**_STR, "description": "Base32, for typing into an app."},
            "otpauthUri": {**_STR, "description": "otpauth://totp/... for authenticator apps."},
            "qrCodeSvg": {**_STR, "description": "The URI as a QR code (an SVG document)."},
            "expiresIn": {"type": "integer", "description": "Seconds to configure it in."},
        },
        "required": ["secret", "otpauthUri", "qrCodeSvg", "expiresIn"],
    },
    "TenantProperty": {
        "type": "object",
        "properties": {
            "property": _STR,
            "value": {"type": ["string", "null"], "description": "******** when obfuscated."},
            "isPrivate": {"type": "boolean"},
            "isObfuscate": {"type": "boolean"},
            "createdAt": _TIME,
            "updatedAt": _TIME,
        },
        "required": ["property", "value", "isPrivate", "isObfuscate"],
    },
    "PublicConfig": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
    "RoleGrantResult": {
        "type": "object",
        "properties": {
            "userIds": {"type": "array", "items": _STR},
            "unknownLogins": {"type": "array", "items": _STR},
        },
        "required": ["userIds", "unknownLogins"],
    },
    "RoleRevocationResult": {
        "type": "object",
        "properties": {
            "roles": {"type": "array", "items": _STR},
            "usersChanged": {"type": "integer"},
        },
        "required": ["roles", "usersChanged"],
    },
    "DeviceUser": {
        "type": "object",
        "properties": {"id": _STR, "login": _STR, "roles": {"type": "array", "items": _STR}},
        "required": ["id", "login", "roles"],
    },
    "AuditEvent": {
        "type": "object",
        "properties": {
            "id": _STR,
            "type": {"enum": list(AUDIT_TYPES)},
            "deviceId": {"type": ["string", "null"]},
            "actor": _STR,
            "data": {"type": ["object", "null"]},
            "createdAt": _TIME,
        },
        "required": ["id", "type", "actor", "createdAt"],
    },  # fmt: skip
    "Decision": {
        "type": "object",
        "properties": {
            "decision": {"enum": ["approved", "denied"]},
            "clientId": _STR,
            "deviceId": {"type": ["string", "null"]},
            "moduleId": {"type": ["string", "null"]},
            "scope": _STR,
            "decidedBy": _STR,
        },
        "required": ["decision", "clientId", "scope", "decidedBy"],
    },  # fmt: skip
    "LinkResponse": {
        "type": "object",
        "properties": {
            "token": _STR,
            "refreshToken": {"type": ["string", "null"]},
            "expires": {"type": "integer"},
            "tokenType": {"enum": ["Bearer", "DPoP"]},
        },
        "required": ["token", "expires", "tokenType"],
    },  # fmt: skip
}
_SECURITY_SCHEMES = {
    "clientSecretBasic": {"type": "http", "scheme": "basic",
                          "description": "client_secret_basic (RFC 6749 §2.3.1)."},
    "clientSecretPost": {"type": "apiKey", "in": "query", "name": "client_secret",
                         "description": "client_secret_post: client_id and client_secret in "
                         "the form body (RFC 6749 §2.3.1); OpenAPI has no form-body scheme."},
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT (RFC 9068)"},
    "dpop": {"type": "http", "scheme": "DPoP",
             "description": "A DPoP-bound access token with a DPoP proof header (RFC 9449 §7)."},
    "metricsToken": {"type": "http", "scheme": "bearer",
                     "description": "AUTHSERVER_METRICS_TOKEN."},
}  # fmt: skip


def _openapi_path(rule: str) -> str:
    """Flask's ``/a/<b>`` and ``/a/<path:b>`` as OpenAPI's ``/a/{b}``."""
    out, i = [], 0
    while i < len(rule):
        if rule[i] == "<":
            end = rule.index(">", i)
            out.append("{" + rule[i + 1 : end].split(":")[-1] + "}")
            i = end + 1
        else:
            out.append(rule[i])
            i += 1
    return "".join(out)


_SAME_BY_POST = ("oauth.userinfo", "authorize.authorize", "authorize.logout")


def document(app: Flask) -> dict[str, Any]:
    """The document for the routes ``app`` serves (static files aside)."""
    issuer = app.extensions["authserver"].settings.issuer
    paths: dict[str, dict[str, Any]] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted(m.lower() for m in rule.methods or () if m not in ("HEAD", "OPTIONS")):
            op = OPERATIONS.get((rule.endpoint, method))
            if op is None and method == "post" and rule.endpoint in _SAME_BY_POST:
                # The same request in a form body (OIDC Core §3.1.2.1, §5.3.1; RP-Initiated
                # Logout §2).
                op = OPERATIONS[(rule.endpoint, "get")]
            if op is None:
                raise KeyError(f"undocumented operation: {method.upper()} {rule.rule}")
            path = _openapi_path(rule.rule)
            operation_id = method + "_" + re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_")
            paths.setdefault(path, {})[method] = {"operationId": operation_id, **op}
    components = dict(_COMPONENTS)
    components.update({body.name: body.json_schema() for body in schema.BODIES})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "authserver",
            "version": _version(),
            "description": "OAuth 2.0 / OpenID Connect for fleets of devices, and the device "
            "registry. Every endpoint, its parameters and errors; see also docs/reference.md.",
        },
        "servers": [{"url": issuer}],
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": components, "securitySchemes": _SECURITY_SCHEMES},
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("authserver")
    except PackageNotFoundError:  # pragma: no cover - running from a tree without metadata
        return "0"
