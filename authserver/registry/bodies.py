"""Strict JSON bodies for the registry: objects only, typed fields, bounded sizes."""

from __future__ import annotations

import json
from typing import Any

from flask import request

from authserver.problems import ValidationProblem
from authserver.text import is_clean, text_problem


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # RFC 8259 has no NaN or Infinity


def json_body() -> dict[str, Any]:
    if request.mimetype != "application/json":
        raise ValidationProblem("Content-Type must be application/json.")
    charset = request.mimetype_params.get("charset")
    if charset and charset.lower() not in ("utf-8", "utf8"):
        raise ValidationProblem("The body must be UTF-8 (RFC 8259 §8.1).")
    try:
        # RFC 8259 §8.1: JSON exchanged between systems is UTF-8. Decoded strictly here, since
        # json.loads on bytes would also take UTF-16 and UTF-32.
        text = request.get_data(cache=True).decode("utf-8")
        data = json.loads(text, parse_constant=_no_constants)
    except RecursionError as exc:
        raise ValidationProblem("The body is nested too deeply.") from exc
    except UnicodeDecodeError as exc:
        raise ValidationProblem("The body must be UTF-8 (RFC 8259 §8.1).") from exc
    except ValueError as exc:
        raise ValidationProblem("The body is not valid JSON.") from exc
    if not isinstance(data, dict):
        raise ValidationProblem("The body must be a JSON object.")
    _check_strings(data, 0)
    return data


def clean_text(value: str) -> bool:
    """Text a person may read (``authserver.text``); tabs and line breaks allowed."""
    return is_clean(value, single_line=False)


def _check_strings(value: Any, depth: int) -> None:
    if depth > 8:
        raise ValidationProblem("The body is nested too deeply.")
    if isinstance(value, str):
        problem = text_problem(value, single_line=False)
        if problem:
            raise ValidationProblem(f"The body {problem}.")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key, depth + 1)
            _check_strings(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item, depth + 1)


def optional_str(
    body: dict[str, Any], field: str, limit: int, *, single_line: bool = True
) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        raise ValidationProblem(f"{field} must be a string of 1-{limit} characters.")
    problem = text_problem(value, single_line=single_line)
    if problem:
        raise ValidationProblem(f"{field} {problem}.", field=field)
    return value


def required_name(body: dict[str, Any], field: str, limit: int) -> str:
    """A single-line name of 1-``limit`` characters after trimming, shown to people."""
    value = body.get(field)
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= limit:
        raise ValidationProblem(f"{field} must be 1-{limit} characters.", field=field)
    problem = text_problem(value, single_line=True)
    if problem:
        raise ValidationProblem(f"{field} {problem}.", field=field)
    return value.strip()


def string_list(body: dict[str, Any], field: str, limit: int, chars: int = 48) -> list[str]:
    value = body.get(field)
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > limit:
        raise ValidationProblem(f"{field} must be a list of at most {limit} strings.")
    if not all(isinstance(v, str) and 1 <= len(v) <= chars for v in value):
        raise ValidationProblem(f"{field} must contain ids.")
    return value
