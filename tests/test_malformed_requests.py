"""Invariant 5: bad input gets a clear 4xx with a machine-readable error, never a 500, no change."""

from __future__ import annotations

import base64

import pytest

from tests.conftest import table_counts


def basic(raw: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


FORM = "application/x-www-form-urlencoded"
CASES = [
    # (id, method, path, body, content_type, headers, expected statuses, expected error)
    ("get-token", "GET", "/oauth/token", None, None, {}, {405}, "invalid_request"),
    ("put-token", "PUT", "/oauth/token", b"grant_type=client_credentials", FORM, {}, {405}, None),
    ("delete-introspect", "DELETE", "/oauth/introspect", None, None, {}, {405}, None),
    (
        "json-body",
        "POST",
        "/oauth/token",
        b'{"grant_type":"client_credentials"}',
        "application/json",
        "AUTH",
        {400},
        "invalid_request",
    ),
    (
        "multipart",
        "POST",
        "/oauth/token",
        b"--x--",
        "multipart/form-data; boundary=x",
        "AUTH",
        {400},
        "invalid_request",
    ),
    (
        "no-content-type",
        "POST",
        "/oauth/token",
        b"grant_type=client_credentials",
        None,
        "AUTH",
        {400},
        "invalid_request",
    ),
    (
        "latin1-charset",
        "POST",
        "/oauth/token",
        b"grant_type=client_credentials",
        FORM + "; charset=iso-8859-1",
        "AUTH",
        {400},
        "invalid_request",
    ),
    (
        "missing-grant-type",
        "POST",
        "/oauth/token",
        b"scope=devices:read",
        FORM,
        "AUTH",
        {400},
        "invalid_request",
    ),
    (
        "repeated-grant-type",
        "POST",
        "/oauth/token",
        b"grant_type=client_credentials&grant_type=client_credentials",
        FORM,
        "AUTH",
        {400},
        "invalid_request",
    ),
    (
        "repeated-scope",
        "POST",
        "/oauth/token",
        b"grant_type=client_credentials&scope=devices:read&scope=devices:write",
        FORM,
        "AUTH",
        {400},
        "invalid_request",
    ),
    (
        "invalid-utf8-escape",
        "POST",
        "/oauth/token",
        b"grant_type=client_credentials&scope=%FF%FE",
        FORM,
        "AUTH",
        {400},
        "invalid_request",
    ),
    (
        "raw-non-ascii",
        "POST",
        "/oauth/token",
        "grant_type=client_credentials&scope=é".encode(),
        FORM,
        "AUTH",
        {400},
        "invalid_request",
    ),
    (
        "nul-byte",
        "POST",
        "/oauth/token",
        b"grant_type=client_credentials&scope=a%00b",
        FORM,
        "AUTH",
        {400},
        "invalid_request",
    ),
    (
        "oversized-value",
        "POST",
        "/oauth/token",
        b"grant_type=client_credentials&scope=" + b"a" * 5000,
        FORM,
        "AUTH",
        {400},
        "invalid_request",
    ),
    (
        "oversized-body",
        "POST",
        "/oauth/token",
        b"grant_type=client_credentials&x=" + b"a" * 20000,
        FORM,
        "AUTH",
        {413},
        "invalid_request",
    ),
    (
        "too-many-fields",
        "POST",
        "/oauth/token",
        b"grant_type=client_credentials&" + b"&".join(b"f%d=1" % i for i in range(40)),
        FORM,
        "AUTH",
        {400},
        "invalid_request",
    ),
    (
        "garbage-basic",
        "POST",
        "/oauth/token",
        b"grant_type=client_credentials",
        FORM,
        {"Authorization": "Basic !!!not-base64!!!"},
        {401},
        "invalid_client",
    ),
    (
        "basic-invalid-utf8",
        "POST",
        "/oauth/token",
        b"grant_type=client_credentials",
        FORM,
        basic(b"\xff\xfe:\xff"),
        {401},
        "invalid_client",
    ),
    (
        "basic-no-colon",
        "POST",
        "/oauth/token",
        b"grant_type=client_credentials",
        FORM,
        basic(b"justanid"),
        {401},
        "invalid_client",
    ),
    (
        "basic-huge-id",
        "POST",
        "/oauth/token",
        b"grant_type=client_credentials",
        FORM,
        basic(b"x" * 3000 + b":y"),
        {401},
        "invalid_client",
    ),
    (
        "two-auth-methods",
        "POST",
        "/oauth/token",
        b"grant_type=client_credentials&client_secret=abc",
        FORM,
        "AUTH",
        {400},
        "invalid_request",
    ),
    (
        "basic-and-other-client-id",
        "POST",
        "/oauth/token",
        b"grant_type=client_credentials&client_id=cli_other",
        FORM,
        "AUTH",
        {400},
        "invalid_request",
    ),
    (
        "unknown-grant",
        "POST",
        "/oauth/token",
        b"grant_type=urn:x:nope",
        FORM,
        "AUTH",
        {400},
        "unsupported_grant_type",
    ),
    (
        "no-auth-at-all",
        "POST",
        "/oauth/token",
        b"grant_type=client_credentials",
        FORM,
        {},
        {400, 401},
        "invalid_client",
    ),
    (
        "introspect-no-token",
        "POST",
        "/oauth/introspect",
        b"",
        FORM,
        "AUTH",
        {400},
        "invalid_request",
    ),
    (
        "introspect-json",
        "POST",
        "/oauth/introspect",
        b'{"token":"x"}',
        "application/json",
        "AUTH",
        {400},
        "invalid_request",
    ),
    (
        "revoke-repeated-token",
        "POST",
        "/oauth/revoke",
        b"token=a&token=b",
        FORM,
        "AUTH",
        {400},
        "invalid_request",
    ),
    (
        "revoke-invalid-utf8",
        "POST",
        "/oauth/revoke",
        b"token=%C3%28",
        FORM,
        "AUTH",
        {400},
        "invalid_request",
    ),
    ("unknown-path", "GET", "/oauth/nothing", None, None, {}, {404}, "not_found"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_invariant_5_a_malformed_request_gets_4xx_and_changes_nothing(http, world, app, case):
    _, method, path, body, ctype, headers, statuses, error = case
    creds = world.client()
    if headers == "AUTH":
        headers = creds.auth_header()
    before = table_counts(app)
    resp = http.open(path, method=method, data=body, content_type=ctype, headers=headers)
    assert resp.status_code in statuses, resp.get_data(as_text=True)
    assert resp.is_json
    if error:
        assert resp.get_json()["error"] == error
    assert table_counts(app) == before


def test_empty_parameter_counts_as_omitted(http, world):
    creds = world.client(scope="devices:read")
    resp = http.post(
        "/oauth/token",
        data=b"grant_type=client_credentials&scope=",
        content_type=FORM,
        headers=creds.auth_header(),
    )
    assert resp.status_code == 200
    assert resp.get_json()["scope"] == "devices:read"


def test_parameters_in_the_query_string_are_not_read(http, world):
    creds = world.client()
    resp = http.post(
        "/oauth/token?grant_type=client_credentials",
        data=b"",
        content_type=FORM,
        headers=creds.auth_header(),
    )
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_request"


# -- moved from the security review's regression file ------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/devices?limit=%C2%B2",
        "/api/v1/devices?q=a%00b",
        "/api/v1/devices/dev%00x",
        "/api/v1/locations?limit=%C2%B2",
    ],
)
def test_odd_query_values_are_400_or_404(http, world, path):
    from tests.conftest import cc_token

    token = cc_token(http, world.client()).get_json()["access_token"]
    resp = http.get(path, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code in (400, 404)


@pytest.mark.parametrize(
    "raw",
    ['{"name": "\\ud800"}', '{"name": "a\\u0000b"}', '{"name": ' + "[" * 2000 + "]" * 2000 + "}"],
)
def test_odd_json_bodies_are_400(http, world, raw):
    from tests.conftest import cc_token

    token = cc_token(http, world.client()).get_json()["access_token"]
    for path in ("/api/v1/devices", "/api/v1/locations"):
        resp = http.post(
            path,
            data=raw,
            content_type="application/json",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert resp.status_code == 400, (path, resp.get_data(as_text=True))


def test_an_unnamed_integrity_error_is_a_conflict_not_a_server_error(app):
    """The safety net under every named 409: a unique or foreign key that no service checked
    (two requests racing) answers as a conflict, with nothing half-written."""
    from sqlalchemy.exc import IntegrityError

    def boom():
        raise IntegrityError("INSERT ...", None, Exception("UNIQUE constraint failed"))

    app.add_url_rule("/api/v1/_race", "race_api", boom)
    app.add_url_rule("/oauth/_race", "race_oauth", boom)
    http = app.test_client()
    api = http.get("/api/v1/_race")
    assert api.status_code == 409
    assert api.headers["Content-Type"].startswith("application/problem+json")
    assert api.get_json()["type"] == "urn:authserver:problem:conflict"
    oauth = http.get("/oauth/_race")
    assert oauth.status_code == 400 and oauth.get_json()["error"] == "invalid_request"
    assert "UNIQUE" not in oauth.get_data(as_text=True)  # the database's words stay in the log
