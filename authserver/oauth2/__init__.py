"""Authlib integration: the authorization server, its requests, and the RFC 7662/7009/8414 endpoints."""
