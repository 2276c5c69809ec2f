"""The verification page in English and Polish: chosen from ``Accept-Language``, switched with
``?lang=`` and remembered; every text the page can show has its Polish translation."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from authserver import i18n
from authserver.endpoints.authorize import APP_SCOPE_WORDS
from authserver.endpoints.verification import SCOPE_WORDS
from tests.device_helpers import approve, kiosk_world, poll, start
from tests.endpoints.test_verification_page import decide, enter, login

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "authserver" / "templates" / "device"
# The sign-in pages of the authorization endpoint speak the same languages.
AUTHORIZE_TEMPLATES = ROOT / "authserver" / "templates" / "authorize"


def page(http, **headers) -> str:
    return http.get("/device", headers=headers).get_data(as_text=True)


@pytest.mark.parametrize(
    ("accept", "lang"),
    [
        ("pl", "pl"),
        ("pl-PL,pl;q=0.9,en;q=0.8", "pl"),
        ("de, pl;q=0.5", "pl"),
        ("de", "en"),
        ("en-GB", "en"),
        ("", "en"),
    ],  # fmt: skip
)
def test_the_language_follows_the_browser(http, accept, lang):
    resp = http.get("/device", headers={"Accept-Language": accept} if accept else {})
    html = resp.get_data(as_text=True)
    assert f'<html lang="{lang}">' in html and resp.headers["Content-Language"] == lang
    heading = {"en": "Connect a device", "pl": "Połącz urządzenie"}[lang]
    assert f"<h1>{heading}</h1>" in html


def test_the_switcher_wins_and_is_remembered(http):
    resp = http.get("/device?lang=pl", headers={"Accept-Language": "en"})
    assert "<h1>Połącz urządzenie</h1>" in resp.get_data(as_text=True)
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith("lang=pl;") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "<h1>Połącz urządzenie</h1>" in page(http, **{"Accept-Language": "en"})
    http.get("/device?lang=en")
    assert "<h1>Connect a device</h1>" in page(http, **{"Accept-Language": "pl"})


def test_an_unknown_language_is_ignored(http):
    resp = http.get("/device?lang=xx")
    assert "lang=" not in resp.headers.get("Set-Cookie", "")
    assert '<html lang="en">' in resp.get_data(as_text=True)


def test_the_switcher_keeps_the_code_being_confirmed(http):
    html = http.get("/device?user_code=BBBBB-BBBBB").get_data(as_text=True)
    assert (
        'href="/device?user_code=BBBBB-BBBBB&amp;lang=pl" lang="pl" hreflang="pl">Polski<' in html
    )
    assert '<span aria-current="true" lang="en">English</span>' in html


def test_a_whole_approval_in_polish(app, http, world):
    _, client = kiosk_world(world)
    http.get("/device?lang=pl")
    wrong = enter(http, "BBBBB-BBBBB")
    assert "Ten kod jest nieprawidłowy albo wygasł." in wrong.get_data(as_text=True)
    body = start(http, client.client_id, device_name="Kasa 2").get_json()
    assert enter(http, body["user_code"]).status_code == 303
    assert "Zaloguj się kontem swojej organizacji" not in page(http)  # the code's own sign-in
    assert "Zaloguj się, aby sprawdzić prośbę urządzenia." in page(http)
    bad = login(http, "admin", password="wrong")
    assert "Organizacja, login lub hasło są nieprawidłowe." in bad.get_data(as_text=True)
    assert login(http, "admin").status_code == 303
    review = page(http)
    for text in ("Zezwolić temu urządzeniu?", "Widzieć urządzenia i lokalizacje tej organizacji",
                 "Zatwierdź", "Odrzuć", "To nie admin? Wyloguj się"):  # fmt: skip
        assert text in review, text
    done = decide(http, "approve")
    assert "<h1>Urządzenie zatwierdzone</h1>" in done.get_data(as_text=True)
    assert poll(http, client.client_id, body["device_code"]).status_code == 200


def test_a_refusal_from_the_decision_is_shown_in_polish(app, http, world):
    _, client = kiosk_world(world)
    body = start(http, client.client_id).get_json()
    approve(app, body["user_code"], "admin")  # decided elsewhere, while the page is open
    http.get("/device?lang=pl")
    html = enter(http, body["user_code"]).get_data(as_text=True)
    assert "Ten kod jest nieprawidłowy albo wygasł." in html  # a decided code is not offered


# -- completeness ----------------------------------------------------------------------------


def _template_texts() -> set[str]:
    found = set()
    for path in [*TEMPLATES.glob("*.html"), *AUTHORIZE_TEMPLATES.glob("*.html")]:
        found |= set(re.findall(r'_\("((?:[^"\\]|\\.)*)"', path.read_text()))
    return found


def _code_texts() -> set[str]:
    """The literal texts the page's code hands to its templates: titles and messages, errors,
    and the refusals of the decision (``DecisionError`` subclasses raised with a literal)."""
    found: set[str] = set()

    def literal(node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.JoinedStr):
            return None
        return None

    for rel in (
        "authserver/endpoints/verification.py",
        "authserver/endpoints/authorize.py",
        "authserver/http_errors.py",
    ):
        tree = ast.parse((ROOT / rel).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(
                getattr(t, "id", None) == "message" for t in node.targets
            ):
                if text := literal(node.value):
                    found.add(text)
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name in ("_message", "_throttled"):
                args = node.args if name == "_message" else node.args[1:2]
                found |= {t for t in map(literal, args) if t}
            for kw in node.keywords:
                if kw.arg in ("error", "title", "message") and (t := literal(kw.value)):
                    found.add(t)
    refusals = {"WrongTenant", "ClientGone", "UserRequired", "NotAllowed", "InvalidLocation",
                "CodeClaimed", "CodeExpired", "CodeDecided", "DeviceBlocked"}  # fmt: skip
    refusals.add("NoRedirect")  # an authorization request that cannot go back: shown on the page
    for rel in (
        "authserver/device_flow.py",
        "authserver/authorization.py",
        "authserver/authorization_code.py",
        "authserver/endpoints/authorize.py",
    ):
        for node in ast.walk(ast.parse((ROOT / rel).read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                if getattr(node.exc.func, "id", None) in refusals and node.exc.args:
                    text = literal(node.exc.args[0])
                    if text:
                        found.add(text)
    return found


def test_every_text_the_page_can_show_is_translated_to_polish():
    texts = (
        _template_texts()
        | _code_texts()
        | set(SCOPE_WORDS.values())
        | set(APP_SCOPE_WORDS.values())
    )
    assert len(texts) > 60  # the scan found the page's texts, not nothing
    missing = sorted(t for t in texts if t not in i18n.PL)
    assert not missing, missing


@pytest.mark.parametrize("value", ["x" * 101, "a\x07b", "a\u202eb", "a\nb", "a\ud800b"])
@pytest.mark.parametrize("what", ["A till id", "A device name"])
def test_the_refusals_built_from_parts_are_translated(what, value):
    from authserver.device_flow import check_label
    from authserver.problems import InvalidName

    with pytest.raises(InvalidName) as refused:
        check_label(InvalidName, what, value, 100)
    assert refused.value.detail in i18n.PL


def test_no_translation_is_left_in_english_or_loses_a_placeholder():
    for source, polish in i18n.PL.items():
        assert polish.strip(), source
        assert re.findall(r"%\(\w+\)s", source) == re.findall(r"%\(\w+\)s", polish), source
