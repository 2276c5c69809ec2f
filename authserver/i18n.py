"""The verification page's languages: English (the source text) and Polish.

Text is looked up by its English wording, as gettext does, from a catalogue kept here in Python
(no compiled files to build or ship). The language is chosen per request: ``?lang=`` (the page's
switcher, remembered in a cookie), then that cookie, then the browser's ``Accept-Language``, then
English. Text without a translation is shown in English; ``tests/endpoints/test_i18n.py`` checks
that every text the page can show has its Polish translation.
"""

from __future__ import annotations

from typing import Any

from flask import g, request

LANGUAGES = {"en": "English", "pl": "Polski"}
DEFAULT = "en"
COOKIE = "lang"

_PROBLEMS = {
    "contains control characters": "zawiera znaki sterujące",
    "contains invisible formatting characters (such as bidi overrides)": (
        "zawiera niewidoczne znaki formatujące (np. zmieniające kierunek tekstu)"
    ),
    "contains invalid text (a lone surrogate)": "zawiera nieprawidłowy tekst",
    "contains line breaks": "zawiera podziały wierszy",
}
_LABELS = {"A till id": ("Numer stanowiska", 100), "A device name": ("Nazwa urządzenia", 100)}

PL: dict[str, str] = {
    # base.html and the switcher
    "Connect a device": "Połącz urządzenie",
    "Connecting a device to": "Łączenie urządzenia z organizacją",
    "Language": "Język",
    # enter.html
    "Signed in as": "Zalogowano jako",
    "Enter the code shown on the device's screen.": "Wpisz kod widoczny na ekranie urządzenia.",
    "Code": "Kod",
    "Continue": "Dalej",
    "Sign out": "Wyloguj się",
    "Staff: sign in first": "Personel: najpierw się zaloguj",
    "Sign in with your organisation's account, then enter the code.": (
        "Zaloguj się kontem swojej organizacji, a potem wpisz kod."
    ),
    "Staff can also": "Personel może też",
    "sign in first": "najpierw się zalogować",
    # _sign_in.html, login.html
    "Organisation": "Organizacja",
    "its name, as your administrator set it up": "jej nazwa, taka jak ustawił administrator",
    "Login": "Login",
    "Password": "Hasło",
    "Sign in": "Zaloguj się",
    "Sign in with your account to review the device's request.": (
        "Zaloguj się, aby sprawdzić prośbę urządzenia."
    ),
    # totp.html: the second factor
    "Enter your code": "Wpisz kod",
    "Open your authenticator app and enter the 6-digit code it shows for this account.": (
        "Otwórz aplikację uwierzytelniającą i wpisz 6-cyfrowy kod, który pokazuje dla tego konta."
    ),
    "Too many wrong codes. Wait a few minutes.": "Zbyt wiele błędnych kodów. Odczekaj kilka minut.",
    "The code is wrong or was used already.": "Kod jest błędny albo został już użyty.",
    "Sign in again": "Zaloguj się ponownie",
    "The request conflicts with what is stored (a name or id already taken).": (
        "Żądanie koliduje z zapisanymi danymi (nazwa lub identyfikator są już zajęte)."
    ),
    "The sign-in took too long. Start again.": "Logowanie trwało zbyt długo. Zacznij od nowa.",
    # _code.html, confirm.html
    "The code you are handling": "Kod, którym się zajmujesz",
    "Approve only if you started this on a device in front of you and it shows exactly this "
    "code.": (
        "Zatwierdzaj tylko wtedy, gdy zaczęto to na urządzeniu, które masz przed sobą, "
        "i pokazuje ono dokładnie ten kod."
    ),
    "If someone sent you a link or a code, stop here.": (
        "Jeśli ktoś przysłał ci link lub kod, przerwij."
    ),
    "Is this the code on your device?": "Czy to kod z twojego urządzenia?",
    "Only continue if the device in front of you shows exactly this code. If someone sent you "
    "this link and you do not have the device with you, close this page.": (
        "Kontynuuj tylko wtedy, gdy urządzenie przed tobą pokazuje dokładnie ten kod. Jeśli ktoś "
        "przysłał ci ten link, a nie masz urządzenia przy sobie, zamknij tę stronę."
    ),
    "Yes, the codes match": "Tak, kody są takie same",
    "The code is different: enter it myself": "Kod jest inny: wpiszę go sam",
    # review.html
    "Allow this device?": "Zezwolić temu urządzeniu?",
    "You are signed in as": "Zalogowano jako",
    "Application": "Aplikacja",
    "as registered by the organisation": "tak, jak zarejestrowała ją organizacja",
    "The device calls itself": "Urządzenie przedstawia się jako",
    "chosen by the device, not checked": "wybrane przez urządzenie, niesprawdzone",
    "no name given": "nie podano nazwy",
    "Requested": "Poproszono",
    "It will be able to": "Urządzenie będzie mogło",
    "Use the access named": "Korzystać z uprawnienia o nazwie",
    "Nothing beyond being connected": "Nic poza samym połączeniem",
    "Device name": "Nazwa urządzenia",
    "Location": "Lokalizacja",
    "(none)": "(brak)",
    "Till": "Stanowisko",
    "Runs as module": "Działa jako moduł",
    "You may not enrol a device as this module.": (
        "Nie możesz zarejestrować urządzenia jako tego modułu."
    ),
    "Its identifier": "Jego identyfikator",
    "It says about itself": "Co mówi o sobie",
    "Another device of this organisation has this identifier.": (
        "Inne urządzenie tej organizacji ma ten identyfikator."
    ),
    "Approve": "Zatwierdź",
    "Deny": "Odrzuć",
    "Not %(login)s? Sign out": "To nie %(login)s? Wyloguj się",
    # what scopes allow (endpoints/verification.py SCOPE_WORDS)
    "Know which account approved it": "Wiedzieć, które konto je zatwierdziło",
    "Stay connected without asking again, until it is disconnected": (
        "Pozostać połączonym bez ponownego pytania, dopóki nie zostanie odłączone"
    ),
    "See this organisation's devices and locations": (
        "Widzieć urządzenia i lokalizacje tej organizacji"
    ),
    "Add, change, block and remove devices and locations": (
        "Dodawać, zmieniać, blokować i usuwać urządzenia oraz lokalizacje"
    ),
    "See this organisation's people and their roles": "Widzieć osoby tej organizacji i ich role",
    "Add, change and remove people and give or take their roles": (
        "Dodawać, zmieniać i usuwać osoby oraz nadawać i odbierać im role"
    ),
    "See this organisation's settings": "Widzieć ustawienia tej organizacji",
    "Change this organisation's settings": "Zmieniać ustawienia tej organizacji",
    "See the apps and services registered for this organisation": (
        "Widzieć aplikacje i usługi zarejestrowane dla tej organizacji"
    ),
    "Register, change and remove apps and services, and reset their secrets": (
        "Rejestrować, zmieniać i usuwać aplikacje oraz usługi i odnawiać ich sekrety"
    ),
    # message.html and the page's answers
    "Connect another device": "Połącz inne urządzenie",
    "Device approved": "Urządzenie zatwierdzone",
    "You can return to the device; it will continue by itself.": (
        "Możesz wrócić do urządzenia; samo przejdzie dalej."
    ),
    "Request denied": "Prośba odrzucona",
    "The device was not given access.": "Urządzenie nie otrzymało dostępu.",
    "Please try again": "Spróbuj ponownie",
    "The form expired or was sent from another page. Start again.": (
        "Formularz wygasł albo został wysłany z innej strony. Zacznij od nowa."
    ),
    "Unknown action": "Nieznana czynność",
    "Start again.": "Zacznij od nowa.",
    "Too many wrong codes have been entered for your account or organisation. Wait a few "
    "minutes, or ask an administrator to approve the device.": (
        "Dla twojego konta lub organizacji wpisano zbyt wiele błędnych kodów. Odczekaj kilka "
        "minut albo poproś administratora o zatwierdzenie urządzenia."
    ),
    "Too many wrong codes have been entered from here. If you work here, sign in first: codes "
    "entered after signing in count against your account only.": (
        "Z tego miejsca wpisano zbyt wiele błędnych kodów. Jeśli tu pracujesz, najpierw się "
        "zaloguj: kody wpisane po zalogowaniu liczą się tylko dla twojego konta."
    ),
    "That code is not valid or has expired. Check the device's screen.": (
        "Ten kod jest nieprawidłowy albo wygasł. Sprawdź ekran urządzenia."
    ),
    "Not allowed": "Brak uprawnień",
    "Code not available": "Kod niedostępny",
    "Too many failed sign-ins. Wait a few minutes.": (
        "Zbyt wiele nieudanych logowań. Odczekaj kilka minut."
    ),
    "The organisation, login or password is wrong.": (
        "Organizacja, login lub hasło są nieprawidłowe."
    ),
    "Nothing to approve": "Nie ma czego zatwierdzać",
    "The request has expired or was already handled. Start again.": (
        "Prośba wygasła albo została już obsłużona. Zacznij od nowa."
    ),
    "Not possible": "Niemożliwe",
    "Please check what you entered": "Sprawdź, co wpisano",
    "Something you entered cannot be stored. Go back and correct it.": (
        "Części wpisanych danych nie da się zapisać. Wróć i popraw je."
    ),
    # what the decision can refuse (device_flow, authorization)
    "This code belongs to another organisation.": "Ten kod należy do innej organizacji.",
    "Another person is already handling this code.": "Tym kodem zajmuje się już ktoś inny.",
    "This code has expired.": "Ten kod wygasł.",
    "This code has already been used.": "Ten kod został już użyty.",
    "The client is no longer registered.": "Aplikacja nie jest już zarejestrowana.",
    "You are not allowed to decide device requests.": ("Nie możesz rozstrzygać próśb urządzeń."),
    "This app is for customers; sign in with a customer account.": (
        "Ta aplikacja jest dla klientów; zaloguj się kontem klienta."
    ),
    "This app is for staff; sign in with a staff account.": (
        "Ta aplikacja jest dla personelu; zaloguj się kontem pracownika."
    ),
    "This app asks for nothing a customer may have.": (
        "Ta aplikacja prosi tylko o dostęp, którego klient nie może mieć."
    ),
    "You are not allowed to add devices. Ask an administrator (TENANT.ADMIN or DEVICE.MANAGER) "
    "to approve it.": (
        "Nie możesz dodawać urządzeń. Poproś administratora (TENANT.ADMIN lub DEVICE.MANAGER) "
        "o zatwierdzenie."
    ),
    "You are not allowed to add devices. Ask an administrator (TENANT.ADMIN or DEVICE.MANAGER) "
    "to approve this device.": (
        "Nie możesz dodawać urządzeń. Poproś administratora (TENANT.ADMIN lub DEVICE.MANAGER) "
        "o zatwierdzenie tego urządzenia."
    ),
    "The request contains a value that cannot be stored.": (
        "Prośba zawiera wartość, której nie da się zapisać."
    ),
    "A person must approve a sign-in; use a user token.": (
        "Logowanie musi zatwierdzić osoba; użyj tokenu użytkownika."
    ),
    "Choose a location where you manage devices.": (
        "Wybierz lokalizację, w której zarządzasz urządzeniami."
    ),
    "No such location.": "Nie ma takiej lokalizacji.",
    "No such module in this tenant.": "W tej organizacji nie ma takiego modułu.",
    "module must be a module id: 2-64 of A-Z a-z 0-9 _ -.": (
        "Moduł to identyfikator modułu: 2-64 znaki A-Z a-z 0-9 _ -."
    ),
    "Only a device enrolment can be a module's.": "Modułem może być tylko rejestrowane urządzenie.",
    "This device is blocked; an administrator must unblock it.": (
        "To urządzenie jest zablokowane; musi je odblokować administrator."
    ),
    **{
        f"{what} is 1-{limit} characters.": f"{pl} ma od 1 do {limit} znaków."
        for what, (pl, limit) in _LABELS.items()
    },
    **{
        f"{what} {problem}.": f"{pl} {pl_problem}."
        for what, (pl, _limit) in _LABELS.items()
        for problem, pl_problem in _PROBLEMS.items()
    },
    # the authorization endpoint's pages (authserver/endpoints/authorize.py)
    "Signing in to": "Logowanie do organizacji",
    "Sign in with your account to continue to the application.": (
        "Zaloguj się swoim kontem, aby przejść do aplikacji."
    ),
    "Cancel": "Anuluj",
    "Allow access?": "Zezwolić na dostęp?",
    "The application asks to:": "Aplikacja prosi o:",
    "Allow it only if you trust this application. You can take this back later.": (
        "Zezwól tylko wtedy, gdy ufasz tej aplikacji. Możesz to później cofnąć."
    ),
    "Allow": "Zezwól",
    "Sign out?": "Wylogować się?",
    "Signing out here signs you out of every application of this organisation in this browser.": (
        "Wylogowanie tutaj wylogowuje ze wszystkich aplikacji tej organizacji w tej przeglądarce."
    ),
    "Signed out": "Wylogowano",
    "You are signed out.": "Wylogowano cię.",
    "Sign-out failed": "Nie udało się wylogować",
    "A parameter is repeated.": "Parametr powtarza się.",
    "The id_token_hint is not one this server issued.": (
        "Parametr id_token_hint nie pochodzi z tego serwera."
    ),
    "client_id differs from the ID token's.": "client_id różni się od podanego w tokenie ID.",
    "The post_logout_redirect_uri is not registered for this application.": (
        "Adres post_logout_redirect_uri nie jest zarejestrowany dla tej aplikacji."
    ),
    "This sign-in link cannot be used": "Tego linku logowania nie można użyć",
    "The request needs one client_id and one request_uri.": (
        "Żądanie wymaga jednego client_id i jednego request_uri."
    ),
    "The application is not known here.": "Ta aplikacja nie jest tu znana.",
    "The request has no client_id, or more than one.": (
        "Żądanie nie ma client_id albo ma ich więcej niż jeden."
    ),
    "The request's redirect_uri is not one registered for this application.": (
        "Adres redirect_uri żądania nie jest zarejestrowany dla tej aplikacji."
    ),
    "The request_uri is not one this server issued.": (
        "Parametr request_uri nie pochodzi z tego serwera."
    ),
    "The request_uri has expired or was used already.": (
        "Parametr request_uri wygasł albo został już użyty."
    ),
    "The request_uri belongs to another application.": (
        "Parametr request_uri należy do innej aplikacji."
    ),
    "This sign-in has expired or was continued in another tab. Go back to the application "
    "and start again.": (
        "To logowanie wygasło albo było kontynuowane w innej karcie. Wróć do aplikacji i zacznij "
        "od nowa."
    ),
    "Unknown action. Start again.": "Nieznana czynność. Zacznij od nowa.",
    "Please wait": "Proszę czekać",
    "Know who you are": "Wiedzieć, kim jesteś",
    "See your name": "Widzieć twoje imię i nazwisko",
    "See your email address": "Widzieć twój adres e-mail",
    "See your phone number": "Widzieć twój numer telefonu",
    "Too many sign-ins were started from here. Wait a minute.": (
        "Stąd rozpoczęto zbyt wiele logowań. Odczekaj minutę."
    ),
    "The login or password is wrong.": "Login lub hasło są nieprawidłowe.",
}
CATALOGUES = {"en": {}, "pl": PL}


def negotiate() -> str:
    """This request's language: ``?lang=``, the cookie, ``Accept-Language``, English."""
    for asked in (request.args.get("lang"), request.cookies.get(COOKIE)):
        if asked in LANGUAGES:
            return asked
    return request.accept_languages.best_match(list(LANGUAGES), default=DEFAULT) or DEFAULT


def language() -> str:
    lang = g.get("lang")
    if lang is None:
        lang = g.lang = negotiate()
    return str(lang)


def gettext(text: str, **values: Any) -> str:
    """``text`` in this request's language (English when it has no translation)."""
    found = CATALOGUES[language()].get(text, text)
    return found % values if values else found
