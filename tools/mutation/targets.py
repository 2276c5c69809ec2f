"""The security modules under mutation testing, each with the tests that focus on it.

Every test file listed runs once with coverage; each mutant then runs only the tests of these
files that executed its line. A module's own unit tests come first, the HTTP tests after.
"""

from __future__ import annotations

TARGETS: dict[str, list[str]] = {
    "grants/dpop.py": [
        "tests/grants/test_dpop_proof.py",
        "tests/grants/test_dpop_binding.py",
        "tests/test_resource.py",
    ],
    "keys/jwks.py": [
        "tests/keys/test_keyring.py",
        "tests/keys/test_token_verification.py",
        "tests/keys/test_rotation.py",
        "tests/test_resource.py",
        "tests/oauth2/test_introspection.py",
    ],
    "authserver/tokens.py": [
        "tests/test_tokens.py",
        "tests/grants/test_device_code.py",
        "tests/grants/test_dpop_binding.py",
        "tests/oauth2/test_introspection.py",
        "tests/oauth2/test_revocation.py",
        "tests/test_resource.py",
        "tests/grants/test_refresh_token.py",
        "tests/grants/test_client_credentials.py",
        "tests/registry/test_totp.py",
        "tests/registry/test_staff_sign_in.py",
        "tests/registry/test_modules.py",
        "tests/registry/test_customer_devices.py",
        "tests/registry/test_seed_fields.py",
    ],
    "grants/refresh_token.py": [
        "tests/grants/test_refresh_token.py",
        "tests/oauth2/test_revocation.py",
        "tests/grants/test_dpop_binding.py",
        "tests/registry/test_link.py",
        "tests/registry/test_modules.py",
    ],
    "authserver/device_flow.py": [
        "tests/test_device_flow.py",
        "tests/grants/test_device_code.py",
        "tests/endpoints/test_verification_page.py",
        "tests/endpoints/test_verification_security.py",
        "tests/registry/test_device_authorizations.py",
        "tests/registry/test_modules.py",
        "tests/registry/test_seed_fields.py",
        "tests/registry/test_totp.py",
    ],
    "grants/device_code.py": [
        "tests/grants/test_device_code.py",
        "tests/test_device_flow.py",
        "tests/test_retention.py",
        "tests/registry/test_modules.py",
        "tests/registry/test_seed_fields.py",
    ],
    "grants/link_code.py": [
        "tests/registry/test_link.py",
        "tests/registry/test_api_errors.py",
        "tests/registry/test_totp.py",
    ],
    "authserver/resource.py": [
        "tests/test_resource.py",
        "tests/registry/test_authorization_matrix.py",
        "tests/registry/test_me.py",
    ],
    "authserver/authorization.py": [
        "tests/test_authorization.py",
        "tests/endpoints/test_verification_security.py",
        "tests/registry/test_authorization_matrix.py",
        "tests/registry/test_people.py",
        "tests/registry/test_people_matrix.py",
        "tests/registry/test_staff_sign_in.py",
        "tests/registry/test_me.py",
    ],
    "authserver/totp.py": [
        "tests/registry/test_totp.py",
        "tests/registry/test_staff_sign_in.py",
    ],
    "grants/staff_sign_in.py": [
        "tests/registry/test_staff_sign_in.py",
    ],
    "authserver/users.py": [
        "tests/registry/test_people.py",
        "tests/registry/test_people_edges.py",
        "tests/registry/test_people_matrix.py",
        "tests/registry/test_totp.py",
        "tests/registry/test_staff_sign_in.py",
        "tests/endpoints/test_verification_page.py",
        "tests/test_cli.py",
        "tests/test_resource.py",
        "tests/registry/test_me.py",
        "tests/registry/test_tenant_properties.py",
        "tests/test_clients.py",
        "tests/test_device_flow.py",
    ],
    "grants/common.py": [
        "tests/grants/test_client_credentials.py",
        "tests/registry/test_totp.py",
        "tests/registry/test_staff_sign_in.py",
        "tests/registry/test_link.py",
        "tests/grants/test_dpop_binding.py",
    ],
    "authserver/modules.py": [
        "tests/registry/test_modules.py",
        "tests/registry/test_modules_matrix.py",
        "tests/endpoints/test_verification_page.py",
    ],
    "authserver/customer_devices.py": [
        "tests/registry/test_customer_devices.py",
        "tests/registry/test_customer_devices_matrix.py",
    ],
    "authserver/revocation.py": [
        "tests/test_tokens.py",
        "tests/oauth2/test_revocation.py",
        "tests/registry/test_devices.py",
        "tests/test_cli.py",
        "tests/registry/test_modules.py",
        "tests/registry/test_customer_devices.py",
        "tests/registry/test_seed_fields.py",
    ],
    "authserver/credentials.py": [
        "tests/test_credentials.py",
        "tests/test_secrets_at_rest.py",
        "tests/registry/test_link.py",
        "tests/grants/test_device_code.py",
    ],
    "authserver/limits.py": [
        "tests/test_limits.py",
        "tests/endpoints/test_verification_security.py",
        "tests/grants/test_client_credentials.py",
    ],
}
