"""RFC 8414 / OIDC Discovery metadata: every endpoint and capability served, nothing else."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    "path", ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]
)
def test_metadata_lists_what_is_served(http, settings, path):
    resp = http.get(path)
    assert resp.status_code == 200
    doc = resp.get_json()
    iss = settings.issuer
    assert doc["issuer"] == iss
    # RFC 8414 §3.3: the issuer in the document is the one it was fetched for.
    assert path.startswith("/.well-known/")
    for name, path_ in [
        ("token_endpoint", "/oauth/token"),
        ("jwks_uri", "/oauth/jwks"),
        ("introspection_endpoint", "/oauth/introspect"),
        ("revocation_endpoint", "/oauth/revoke"),
    ]:
        assert doc[name] == iss + path_
    assert doc["grant_types_supported"] == ["client_credentials"]
    assert doc["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
    ]
    assert doc["scopes_supported"] == list(settings.scopes)
    assert doc["response_types_supported"] == []
    assert "authorization_endpoint" not in doc
    assert "none" not in doc["token_endpoint_auth_methods_supported"]


def test_every_advertised_endpoint_answers(http, settings):
    doc = http.get("/.well-known/oauth-authorization-server").get_json()
    for name in ("token_endpoint", "introspection_endpoint", "revocation_endpoint"):
        path = doc[name][len(settings.issuer) :]
        assert http.post(path, data={}).status_code in (400, 401)
    assert http.get(doc["jwks_uri"][len(settings.issuer) :]).status_code == 200
