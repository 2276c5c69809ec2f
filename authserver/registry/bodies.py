"""Strict JSON bodies for the registry: objects only, typed fields, bounded sizes."""

from __future__ import annotations

from typing import Any

from flask import request

from authserver.registry.problems import ValidationProblem


def json_body() -> dict[str, Any]:
    if request.mimetype != "application/json":
        raise ValidationProblem("Content-Type must be application/json.")
    try:
        data = request.get_json(silent=True)
    except RecursionError as exc:
        raise ValidationProblem("The body is nested too deeply.") from exc
    if not isinstance(data, dict):
        raise ValidationProblem("The body must be a JSON object.")
    _check_strings(data, 0)
    return data


def clean_text(value: str) -> bool:
    """UTF-8 text without NUL, other control characters (but tab and newlines), or lone
    surrogates (which JSON escapes can produce and no database stores)."""
    if any(ord(c) < 0x20 and c not in "\t\n\r" for c in value) or "\x7f" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_strings(value: Any, depth: int) -> None:
    if depth > 8:
        raise ValidationProblem("The body is nested too deeply.")
    if isinstance(value, str):
        if not clean_text(value):
            raise ValidationProblem("The body contains control characters or invalid text.")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key, depth + 1)
            _check_strings(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item, depth + 1)


def optional_str(body: dict[str, Any], field: str, limit: int) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        raise ValidationProblem(f"{field} must be a string of 1-{limit} characters.")
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
