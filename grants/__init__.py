"""Authlib grant classes and grant extensions, one module per grant.

Each grant overrides Authlib's ``validate_token_request`` and ``create_token_response`` whole:
Authlib has no seam for single redemption with revocation on reuse, ``slow_down`` held across
processes, or DPoP checked before anything single-use is consumed (docs/architecture.md). The
grants decide; ``authserver.tokens``, ``authserver.device_flow`` and ``authserver.devices`` do the
work. Grant-type identifiers live here so that the CLI, discovery and the grants agree on them.
"""

AUTHORIZATION_CODE = "authorization_code"
CLIENT_CREDENTIALS = "client_credentials"
REFRESH_TOKEN = "refresh_token"
DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
LINK_CODE = "urn:authserver:params:oauth:grant-type:link-code"
STAFF_SIGN_IN = "urn:authserver:params:oauth:grant-type:staff-sign-in"

KNOWN_GRANT_TYPES = (
    AUTHORIZATION_CODE,
    CLIENT_CREDENTIALS,
    DEVICE_CODE,
    REFRESH_TOKEN,
    LINK_CODE,
    STAFF_SIGN_IN,
)
