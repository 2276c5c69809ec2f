"""JSON built by the database (authserver.sqljson) gives what the Python wire format gives, on
the backend the suite runs on (SQLite, or PostgreSQL with DATABASE_URL)."""

from __future__ import annotations

import json
import random

import pytest
from sqlalchemy import BigInteger, Text, literal, select

from authserver.models import db
from authserver.registry.serialize import iso_ms
from authserver.sqljson import IsoMs, JsonList, JsonObject


def test_times_in_milliseconds_come_back_exactly_as_python_writes_them(app):
    rng = random.Random(14)
    values = [0, 1, 999, 1000, 1001, 86_399_999, 951_782_400_000, 1_764_547_200_123,
              4_102_444_799_999, 253_402_300_799_999]  # fmt: skip
    values += [rng.randrange(0, 4_102_444_800_000) for _ in range(2000)]
    with app.app_context():
        for start in range(0, len(values), 250):
            chunk = values[start : start + 250]
            row = db.session.execute(select(*[IsoMs(literal(v, BigInteger)) for v in chunk]))
            assert list(row.one()) == [iso_ms(v) for v in chunk]
        assert db.session.execute(select(IsoMs(literal(None, BigInteger)))).scalar() is None


@pytest.mark.parametrize(
    ("stored", "shown"),
    [(None, []), ("null", []), ("[]", []), ('["a","b"]', ["a", "b"])],
)
def test_a_stored_list_reads_as_a_list(app, stored, shown):
    with app.app_context():
        text = db.session.execute(
            select(JsonObject(("xs", JsonList(literal(stored, Text)))))
        ).scalar()
    assert json.loads(text) == {"xs": shown}


def test_text_is_escaped_and_keys_keep_their_order(app):
    nasty = 'a "quoted" \\ back/slash ☕ Zażółć \u2028 \n\t\x01\x7f'
    with app.app_context():
        text = db.session.execute(
            select(JsonObject(("z", literal(nasty, Text)), ("a", literal(None, Text))))
        ).scalar()
    assert json.loads(text) == {"z": nasty, "a": None}
    assert list(json.loads(text)) == ["z", "a"]


def test_keys_are_our_own_names_only():
    with pytest.raises(ValueError, match="not a JSON key"):
        JsonObject(("a', 'b", literal(1)))
