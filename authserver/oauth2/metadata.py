"""RFC 8414 / OIDC Discovery metadata: what this server actually does, and nothing else."""

from __future__ import annotations

from typing import Any

from authserver.state import AppState
from authserver.tokens import ACR_VALUES
from grants.dpop import SUPPORTED_ALGS


def server_metadata(state: AppState, grant_classes: list[Any]) -> dict[str, Any]:
    """Built from the registered grants, so a grant is advertised exactly when it is served."""
    s = state.settings
    iss = s.issuer
    secret_methods = ["client_secret_basic", "client_secret_post"]
    token_methods: list[str] = []
    for grant in grant_classes:
        token_methods += [m for m in grant.TOKEN_ENDPOINT_AUTH_METHODS if m not in token_methods]
    return {
        "issuer": iss,
        "token_endpoint": f"{iss}/oauth/token",
        "device_authorization_endpoint": f"{iss}/oauth/device_authorization",
        "userinfo_endpoint": f"{iss}/oauth/userinfo",
        "jwks_uri": f"{iss}/oauth/jwks",
        "introspection_endpoint": f"{iss}/oauth/introspect",
        "revocation_endpoint": f"{iss}/oauth/revoke",
        "scopes_supported": list(s.scopes),
        "authorization_endpoint": f"{iss}/oauth/authorize",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        # RFC 7636 / RFC 9700 §2.1.1: PKCE for every client, S256 only.
        "code_challenge_methods_supported": ["S256"],
        # RFC 9207 §3: iss is in every authorization response.
        "authorization_response_iss_parameter_supported": True,
        # RFC 9126 §5: pushed requests are accepted from every client, required of some.
        "pushed_authorization_request_endpoint": f"{iss}/oauth/par",
        "require_pushed_authorization_requests": False,
        # OpenID Connect RP-Initiated Logout 1.0 §2.1.
        "end_session_endpoint": f"{iss}/oauth/logout",
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "grant_types_supported": [g.GRANT_TYPE for g in grant_classes],
        "token_endpoint_auth_methods_supported": token_methods,
        "introspection_endpoint_auth_methods_supported": secret_methods,
        "revocation_endpoint_auth_methods_supported": [*secret_methods, "none"],
        "dpop_signing_alg_values_supported": list(SUPPORTED_ALGS),
        # OIDC Discovery §3 (REQUIRED members): ID tokens for users signing in on shared screens.
        "subject_types_supported": ["public"],
        # OIDC Core §15.1 / Discovery §3: RS256 is among them; a client picks one at registration.
        "id_token_signing_alg_values_supported": list(state.settings.signing_algs),
        "acr_values_supported": list(ACR_VALUES),
        "claims_supported": [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "amr",
            "acr",
            "at_hash",
            "nonce",
            "tenant",
            "preferred_username",
            "name",
            "given_name",
            "family_name",
            "updated_at",
            "email",
            "email_verified",
            "phone_number",
        ],
    }
