"""RFC 8414 / OIDC Discovery metadata: every endpoint and capability served, nothing else."""

from __future__ import annotations

import pytest

PATHS = ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]


@pytest.mark.parametrize("path", PATHS)
def test_metadata_lists_what_is_served(http, settings, path):
    resp = http.get(path)
    assert resp.status_code == 200
    doc = resp.get_json()
    iss = settings.issuer
    assert doc["issuer"] == iss
    endpoints = {
        "token_endpoint": "/oauth/token",
        "jwks_uri": "/oauth/jwks",
        "introspection_endpoint": "/oauth/introspect",
        "revocation_endpoint": "/oauth/revoke",
        "device_authorization_endpoint": "/oauth/device_authorization",
        "userinfo_endpoint": "/oauth/userinfo",
        "authorization_endpoint": "/oauth/authorize",
        "pushed_authorization_request_endpoint": "/oauth/par",
        "end_session_endpoint": "/oauth/logout",
    }
    for name, suffix in endpoints.items():
        assert doc[name] == iss + suffix
    assert doc["grant_types_supported"] == [
        "authorization_code",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:device_code",
        "refresh_token",
        "urn:authserver:params:oauth:grant-type:link-code",
        "urn:authserver:params:oauth:grant-type:staff-sign-in",
    ]
    assert doc["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "none",
    ]
    assert doc["scopes_supported"] == list(settings.scopes)
    assert {"openid", "offline_access"} <= set(doc["scopes_supported"])
    assert doc["response_types_supported"] == ["code"]
    assert doc["response_modes_supported"] == ["query"]
    assert doc["code_challenge_methods_supported"] == ["S256"]  # RFC 9700 §2.1.1: no plain
    assert doc["authorization_response_iss_parameter_supported"] is True  # RFC 9207 §3
    assert doc["prompt_values_supported"] == ["none", "login", "consent"]
    # OIDC Discovery §3 REQUIRED members for an OP that issues ID tokens.
    assert doc["subject_types_supported"] == ["public"]
    # OIDC Discovery §3: RS256 MUST be included; the access tokens' algorithm comes first.
    assert doc["id_token_signing_alg_values_supported"] == [settings.signing_alg, "RS256"]
    assert doc["acr_values_supported"] == ["urn:authserver:acr:pwd", "urn:authserver:acr:mfa"]
    assert {"acr", "amr", "auth_time", "nonce", "at_hash"} <= set(doc["claims_supported"])


@pytest.mark.parametrize("path", PATHS)
def test_metadata_passes_authlibs_validators(http, path):
    """A client library's own checks accept both documents (RFC 8414 §2, OIDC Discovery §3)."""
    from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
    from authlib.oidc.discovery import OpenIDProviderMetadata

    doc = http.get(path).get_json()
    AuthorizationServerMetadata(doc).validate()
    OpenIDProviderMetadata(doc).validate()


def test_every_advertised_endpoint_answers(http, settings):
    doc = http.get(PATHS[0]).get_json()
    for name in (
        "token_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
        "device_authorization_endpoint",
    ):
        path = doc[name][len(settings.issuer) :]
        assert http.post(path, data={}).status_code in (400, 401)
    assert http.get(doc["jwks_uri"][len(settings.issuer) :]).status_code == 200
    assert http.get(doc["userinfo_endpoint"][len(settings.issuer) :]).status_code == 401
    assert http.post(doc["pushed_authorization_request_endpoint"][len(settings.issuer) :],
                     data={}).status_code in (400, 401)  # fmt: skip
    # Without a client and redirect URI the request is answered on the page (never redirected).
    assert http.get(doc["authorization_endpoint"][len(settings.issuer) :]).status_code == 400
    assert http.get(doc["end_session_endpoint"][len(settings.issuer) :]).status_code == 200
