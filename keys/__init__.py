"""Signing-key lifecycle: generate, encrypt at rest, rotate, retire, publish the JWKS."""
