"""Text people will read: one rule for every channel (registry API, OAuth forms, /device, CLI).

A value is refused when it holds characters that hide or disguise what is shown: control
characters (NUL included, which PostgreSQL cannot store), Unicode format characters (the bidi
overrides U+202E and friends, which make "gnp.exe" read as "exe.png"; zero-width spaces; the
byte-order mark), lone surrogates (which JSON escapes can produce and no database stores), and
line or paragraph separators in single-line fields. The zero-width joiner and non-joiner stay
allowed: emoji sequences and several scripts need them.
"""

from __future__ import annotations

import unicodedata

_JOINERS = frozenset("\u200c\u200d")
_MULTILINE_CONTROLS = frozenset("\t\n\r")


def text_problem(value: str, *, single_line: bool = True) -> str | None:
    """Why ``value`` cannot be shown to a person, or None when it can."""
    allowed_controls = frozenset() if single_line else _MULTILINE_CONTROLS
    for ch in value:
        if ch.isprintable() or ch == " ":
            continue  # the common case: letters, digits, punctuation, symbols, spaces
        category = unicodedata.category(ch)
        if category == "Cc" and ch not in allowed_controls:
            return "contains control characters"
        if category == "Cf" and ch not in _JOINERS:
            return "contains invisible formatting characters (such as bidi overrides)"
        if category == "Cs":
            return "contains invalid text (a lone surrogate)"
        if category in ("Zl", "Zp") and single_line:
            return "contains line breaks"
    return None


def is_clean(value: str, *, single_line: bool = True) -> bool:
    return text_problem(value, single_line=single_line) is None
