"""The credentials module: how codes are drawn, typed, shown and hashed (invariant 6's owner).

The HTTP tests (link, device flow, secrets at rest) use these functions end to end; these pin
each rule on its own, so that a wrong alphabet, length, normalisation or hash domain fails here.
"""

from __future__ import annotations

import base64
import re

import pytest

from authserver import credentials as c

LETTERS = set(c.CODE_ALPHABET)


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


def test_the_alphabet_is_rfc_8628_base_20_without_vowels_or_look_alikes():
    assert len(LETTERS) == len(c.CODE_ALPHABET) == 20
    assert not LETTERS & set("AEIOUY0123456789")


def test_drawn_codes_have_the_length_and_the_alphabet():
    for length in (1, 10, 12):
        codes = {c.draw_code(length) for _ in range(200)}
        assert all(len(code) == length and set(code) <= LETTERS for code in codes)
    many = "".join(c.draw_code(10) for _ in range(300))
    assert set(many) == LETTERS  # every letter is used, none favoured away
    assert len({c.new_user_code() for _ in range(200)}) == 200
    assert all(len(c.new_user_code()) == c.USER_CODE_LENGTH == 10 for _ in range(20))


def test_codes_are_drawn_without_bias(monkeypatch):
    """Bytes at or above 240 are dropped (256 is not a multiple of 20: keeping them would favour
    the first 16 letters); the rest map evenly, and more bytes are drawn when too many drop."""
    batches = iter([bytes([255, 240, 0, 19, 239]), bytes([20, 250, 1, 2, 3])])
    monkeypatch.setattr(c.secrets, "token_bytes", lambda n: next(batches))
    assert c.draw_code(4) == "BZZB"  # 0 -> B, 19 -> Z, 239 -> Z, then 20 -> B from the next draw
    monkeypatch.undo()
    counts = {letter: 0 for letter in LETTERS}
    for letter in "".join(c.draw_code(10) for _ in range(4000)):
        counts[letter] += 1
    expected = 40000 / 20
    # Uniform: each count within 6 standard deviations (sd ~ 43.6) of 2,000.
    assert all(abs(n - expected) < 6 * 43.6 for n in counts.values()), counts


def test_typed_codes_are_normalised_case_and_separators_ignored():
    assert c.normalise_user_code("bcdfg-hjklm") == "BCDFGHJKLM"
    assert c.normalise_user_code(" Bc dF g–HJ.KL M ") == "BCDFGHJKLM"
    assert c.normalise_user_code("AEIOU0123") == ""  # outside the alphabet: dropped
    # At most twice the length is kept: a pasted novel costs nothing.
    assert c.normalise_code("B" * 1000, 10) == "B" * 20
    assert c.normalise_code("B" * 21, 10) == "B" * 20
    assert c.normalise_code("B" * 19, 10) == "B" * 19


def test_codes_are_shown_in_groups():
    assert c.format_user_code("BCDFGHJKLM") == "BCDFG-HJKLM"
    assert c.format_code("BCDFGHJKLMNP", 4) == "BCDF-GHJK-LMNP"
    assert c.format_code("BCDFGH", 4) == "BCDF-GH"
    assert c.format_code("", 4) == ""


def test_link_codes_are_shown_grouped_and_hashed_as_typed_any_way(ctx):
    shown, stored = c.new_link_code()
    assert re.fullmatch(r"[A-Z]{4}-[A-Z]{4}-[A-Z]{4}", shown)
    assert set(shown.replace("-", "")) <= LETTERS
    assert c.link_code_hash(shown) == stored
    assert c.link_code_hash(shown.lower().replace("-", " ")) == stored
    assert c.link_code_hash(shown[:-1]) != stored


def test_staff_codes_are_4_to_32_letters_or_digits():
    assert c.staff_code_ok("4829")
    assert c.staff_code_ok("a" * 32)
    assert not c.staff_code_ok("482")
    assert not c.staff_code_ok("a" * 33)
    assert not c.staff_code_ok("48 29")
    assert not c.staff_code_ok("48-29")
    assert not c.staff_code_ok("")


def test_staff_codes_are_hashed_per_tenant(ctx):
    assert c.staff_code_hash("t1", "4829") == c.staff_code_hash("t1", "4829")
    assert c.staff_code_hash("t1", "4829") != c.staff_code_hash("t2", "4829")
    assert c.staff_code_hash("t1", "4829") != c.staff_code_hash("t1", "4830")


def test_every_purpose_is_its_own_hash_domain(ctx):
    value = "BCDFGHJKLMNP"
    hashes = {
        c.device_code_hash(value),
        c.user_code_hash(value),
        c.link_code_hash(value),
        c.refresh_token_hash(value),
        c.jti_hash(value),
        c.staff_code_hash("", value),
        c.new_client_secret()[1],
    }
    assert len(hashes) == 7
    purposes = [c.CLIENT_SECRET, c.REFRESH_TOKEN, c.ACCESS_TOKEN_JTI, c.DEVICE_CODE,
                c.USER_CODE, c.LINK_CODE, c.STAFF_CODE]  # fmt: skip
    assert len(set(purposes)) == 7
    # The purposes are stored data: values hashed by earlier releases must still match.
    assert purposes == ["client-secret", "refresh-token", "access-token-jti", "device-code",
                        "device-user-code", "link-code", "user-code"]  # fmt: skip


def test_high_entropy_values_are_long_and_their_hashes_match(ctx):
    secret, stored = c.new_client_secret()
    assert len(base64.urlsafe_b64decode(secret + "=")) == 32
    assert c.client_secret_matches(secret, stored)
    assert not c.client_secret_matches(secret + "x", stored)
    assert not c.client_secret_matches(secret, c.refresh_token_hash(secret))

    code, code_hash = c.new_device_code()
    assert len(base64.urlsafe_b64decode(code + "=")) == 32 and code_hash == c.device_code_hash(code)
    token, token_hash = c.new_refresh_token()
    assert len(base64.urlsafe_b64decode(token + "=")) == 32
    assert token_hash == c.refresh_token_hash(token)
    assert len({c.new_refresh_token()[0] for _ in range(50)}) == 50
    assert re.fullmatch(r"[0-9a-f]{32}", c.new_device_identifier())
    assert c.new_device_identifier() != c.new_device_identifier()


def test_a_jti_carries_its_issue_time_to_the_millisecond():
    for ms in (0, 1, 1_764_500_000_123, 2**48 - 1):
        jti = c.new_jti(ms)
        assert len(jti) == 24 and c.jti_issued_ms(jti) == ms
    assert c.new_jti(5) != c.new_jti(5)  # 96 random bits after the time
    assert len(base64.urlsafe_b64decode(c.new_jti(5))) == 18


def test_a_jti_not_ours_has_no_issue_time():
    good = c.new_jti(1_764_500_000_123)
    assert c.jti_issued_ms(good[:-1]) is None
    assert c.jti_issued_ms(good + "A") is None
    assert c.jti_issued_ms("*" * 24) is None  # not base64url
    assert c.jti_issued_ms("") is None
    # 24 characters of padded base64 that decode to fewer than 18 bytes.
    short = base64.urlsafe_b64encode(b"x" * 16).decode()
    assert len(short) == 24 and c.jti_issued_ms(short) is None


def test_every_hash_is_a_keyed_hash_of_its_value(ctx):
    """Each ``*_hash`` is the keyed hash under its own purpose: stable, never the value itself,
    and it is what ``security.verify_keyed_hash`` checks against."""
    from authserver.security import verify_keyed_hash

    value = "BCDFGHJKLMNP"
    for purpose, hash_of in [
        (c.ACCESS_TOKEN_JTI, c.jti_hash),
        (c.REFRESH_TOKEN, c.refresh_token_hash),
        (c.DEVICE_CODE, c.device_code_hash),
        (c.USER_CODE, c.user_code_hash),
        (c.LINK_CODE, c.link_code_hash),
    ]:
        stored = hash_of(value)
        assert isinstance(stored, str) and stored and value not in stored
        assert stored == hash_of(value) != hash_of(value[:-1])
        assert verify_keyed_hash(purpose, value, stored)


def test_the_password_functions_are_exported_as_credentials():
    """``__all__`` names what the module re-exports: every name in it exists."""
    import authserver.security as security

    assert c.__all__ == ["hash_password", "verify_password"]
    for name in c.__all__:
        assert getattr(c, name) is getattr(security, name)
