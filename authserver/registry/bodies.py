"""Strict JSON bodies for the registry: objects only, typed fields, bounded sizes."""

from __future__ import annotations

from typing import Any

from flask import request

from authserver.registry.problems import ValidationProblem


def json_body() -> dict[str, Any]:
    if request.mimetype != "application/json":
        raise ValidationProblem("Content-Type must be application/json.")
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationProblem("The body must be a JSON object.")
    return data


def optional_str(body: dict[str, Any], field: str, limit: int) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        raise ValidationProblem(f"{field} must be a string of 1-{limit} characters.")
    if any(ord(c) < 0x20 and c not in "\t\n\r" for c in value) or "\x00" in value:
        raise ValidationProblem(f"{field} contains control characters.")
    return value


def string_list(body: dict[str, Any], field: str, limit: int) -> list[str]:
    value = body.get(field)
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > limit:
        raise ValidationProblem(f"{field} must be a list of at most {limit} strings.")
    if not all(isinstance(v, str) and 1 <= len(v) <= 48 for v in value):
        raise ValidationProblem(f"{field} must contain ids.")
    return value
