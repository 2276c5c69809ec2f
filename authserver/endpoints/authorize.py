"""The authorization endpoint (RFC 6749 §3.1, §4.1.1-4.1.2; OIDC Core §3.1.2), pushed
authorization requests (RFC 9126) and RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).

Pages are the ``/device`` page's: server-rendered, no JavaScript, CSRF on every form, framing
forbidden, the same sign-in (``authserver.browser_session``: limits per address, network and
account, TOTP when the person has it) and the same signed-in session, so one sign-in serves the
tenant's apps and ``/device``. The rules (what a valid request is, which redirect URI may be
used, codes, consent) are ``authserver.authorization_code``'s.

While a person signs in and consents, the validated request is kept in the shared store under a
random interaction id, named in the session cookie and in each form; a form of another tab's or
another browser's interaction is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
import secrets
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, g, redirect, render_template, request, session

from authserver import authorization, browser_session, i18n, limits, totp, users
from authserver import authorization_code as codes
from authserver.authorization_code import AuthorizationRequest, NoRedirect, RedirectError
from authserver.endpoints.verification import SCOPE_WORDS, security_headers
from authserver.models import OAuthClient, User
from authserver.oauth2.server import AuthServer, form_endpoint_response, query_client
from authserver.security import now
from authserver.state import get_state
from keys.jwks import InvalidSignedToken

bp = Blueprint("authorize", __name__)
bp.after_request(security_headers)


@bp.context_processor
def _page_language() -> dict[str, Any]:
    """The page's language and its switcher: this same request in another language (GET pages
    only: a form's answer cannot be fetched again)."""
    links = []
    if request.method == "GET":
        args = [(k, v) for k, v in request.args.items(multi=True) if k != "lang"]
        links = [
            (code, name, request.path + "?" + urlencode([*args, ("lang", code)]))
            for code, name in i18n.LANGUAGES.items()
        ]
    return {"_": i18n.gettext, "lang": i18n.language(), "language_links": links}


_INTERACTION = "azx"
# What each scope lets an app do, in words for the person asked to consent.
APP_SCOPE_WORDS = {
    **SCOPE_WORDS,
    "openid": "Know who you are",
    "profile": "See your name",
    "email": "See your email address",
    "phone": "See your phone number",
}


def _render(template: str, client: OAuthClient | None, status: int = 200, **ctx: Any) -> Any:
    if ctx.get("error"):
        ctx["error"] = i18n.gettext(ctx["error"])
    if client is not None:
        ctx.setdefault("client_name", client.name)
        tenant = users.get_tenant(client.tenant_id)
        if tenant is not None:
            ctx["organisation"] = tenant.name
            ctx["accent"] = tenant.accent_colour
    return render_template(template, csrf=browser_session.csrf_token(), **ctx), status


_CSP_SOURCE = re.compile(r"[a-z][a-z0-9+.\-]*:(//[A-Za-z0-9.\-\[\]:]+)?")


def _allow_form_target(uri: str) -> None:
    """The page's forms may be answered with a redirect to ``uri``'s origin (a registered
    redirect URI): its CSP source, scheme and host and port, or the scheme alone for a
    private-use scheme (RFC 8252 §7.1)."""
    parts = urlsplit(uri)
    source = f"{parts.scheme}://{parts.netloc}" if parts.netloc else f"{parts.scheme}:"
    if _CSP_SOURCE.fullmatch(source):
        g.form_target = source


def _message(title: str, message: str, status: int, client: OAuthClient | None = None) -> Any:
    return _render("authorize/message.html", client, status, title=title, message=message)


def _issuer() -> str:
    return get_state().settings.issuer


def _redirect(uri: str, params: dict[str, str | None]) -> Any:
    # RFC 9207 §2: iss in every authorization response, success or error, so a client that
    # talks to several servers can tell which one answered (mix-up defence, RFC 9700 §4.4).
    resp = redirect(codes.redirect_with(uri, {**params, "iss": _issuer()}), 303)
    return resp


def _redirect_error(uri: str, state: str | None, error: str, description: str) -> Any:
    return _redirect(uri, {"error": error, "error_description": description, "state": state})


# -- the authorization request ---------------------------------------------------------------------


@bp.route("/oauth/authorize", methods=["GET", "POST"])
def authorize() -> Any:
    """OIDC Core §3.1.2.1: the request by GET (query) or POST (form)."""
    source = request.args if request.method == "GET" else request.form
    params: dict[str, list[str]] = {k: source.getlist(k) for k in source}
    pushed = False
    try:
        if "request_uri" in params:
            uris, client_ids = params["request_uri"], params.get("client_id") or []
            if len(uris) != 1 or len(client_ids) != 1:
                raise NoRedirect("The request needs one client_id and one request_uri.")
            params, pushed = codes.pushed(uris[0], client_ids[0]), True
        client, redirect_uri, state = codes.trusted_target(params, query_client)
    except NoRedirect as exc:
        return _message("This sign-in link cannot be used", exc.message, 400)
    try:
        if client.require_par and not pushed:
            # RFC 9126 §5: a client registered to push its requests must.
            raise RedirectError(
                "invalid_request", "This client must use pushed authorization requests."
            )
        req = codes.parse_request(params, client, redirect_uri)
    except RedirectError as exc:
        return _redirect_error(redirect_uri, state, exc.error, exc.description)
    return _proceed(client, req, {})


def _proceed(client: OAuthClient, req: AuthorizationRequest, done: dict[str, bool]) -> Any:
    """Sign-in, then consent, then the code: each step only when it is needed (``done``: the
    steps this interaction already went through)."""
    user = browser_session.signed_in()
    if user is not None and user.tenant_id != client.tenant_id:
        user = None  # signed in for another organisation: not an account of this app's
    refusal = None
    if user is not None and not authorization.admits(client, user):
        # Signed in as a customer at a staff app (or the other way round): another account.
        user, refusal = None, authorization.not_for_you(client)
    auth_time = browser_session.auth_time()
    must_sign_in = user is None or auth_time is None
    if not done.get("signed_in") and not must_sign_in:
        # OIDC Core §3.1.2.1: prompt=login asks for a new sign-in; max_age bounds how long ago
        # the last one may have been.
        if "login" in req.prompt:
            must_sign_in = True
        if req.max_age is not None and auth_time is not None and now() - auth_time > req.max_age:
            must_sign_in = True
    if must_sign_in:
        if "none" in req.prompt:
            # OIDC Core §3.1.2.6: no page may be shown, and a sign-in is needed.
            return _redirect_error(
                req.redirect_uri, req.state, "login_required", "Sign-in required."
            )
        try:
            handle = _stash(req, done)
        except limits.Throttled as exc:
            return _too_many(client, exc)
        return _render(
            "authorize/sign_in.html", client, interaction=handle, login_hint=req.login_hint,
            error=refusal,
        )  # fmt: skip
    assert user is not None
    try:
        scope = authorization.scope_for(user, req.scope)  # a customer's: no staff scopes
    except authorization.NotAllowed as exc:
        _forget_interaction()
        return _redirect_error(req.redirect_uri, req.state, "access_denied", exc.detail)
    req = dataclasses.replace(req, scope=scope)
    wants_consent = "consent" in req.prompt and not client.first_party and not done.get("consented")
    if not done.get("consented") and (
        wants_consent or codes.needs_consent(client, user, req.scope)
    ):
        if "none" in req.prompt:
            return _redirect_error(
                req.redirect_uri, req.state, "consent_required", "Consent required."
            )
        return _consent_page(client, req, user, done)
    return _issue(req, user)


def _consent_page(
    client: OAuthClient, req: AuthorizationRequest, user: User, done: dict[str, bool]
) -> Any:
    words = [APP_SCOPE_WORDS.get(s, s) for s in req.scope.split()]
    try:
        handle = _stash(req, done)
    except limits.Throttled as exc:
        return _too_many(client, exc)
    return _render(
        "authorize/consent.html", client, interaction=handle, user=user, scope_words=words
    )


def _too_many(client: OAuthClient, exc: limits.Throttled) -> Any:
    html, status = _message(
        "Please wait", "Too many sign-ins were started from here. Wait a minute.", 429, client
    )
    return html, status, {"Retry-After": str(exc.retry_after)}


def _issue(req: AuthorizationRequest, user: User) -> Any:
    code = codes.issue_code(
        req,
        user,
        browser_session.auth_time() or now(),
        browser_session.amr(),
        browser_session.session_id_hash(),
    )
    _forget_interaction()
    return _redirect(req.redirect_uri, {"code": code, "state": req.state})


# -- the interaction: sign-in and consent ----------------------------------------------------------


def _interaction_key(handle: str) -> str:
    return "azx:" + hashlib.sha256(handle.encode()).hexdigest()


def _stash(req: AuthorizationRequest, done: dict[str, bool]) -> str:
    """Keep the request while the person signs in or consents; ``limits.Throttled`` when this
    address or network has opened too many such pages."""
    store = get_state().store
    old = session.get(_INTERACTION)
    if isinstance(old, str):
        store.delete(_interaction_key(old))
    else:
        # Only a browser without one counts: each new interaction is state kept for minutes.
        limits.charge(store, limits.sign_in_page(get_state().settings, browser_session.client_ip()))
    handle = secrets.token_urlsafe(24)
    _allow_form_target(req.redirect_uri)
    value = json.dumps({"request": req.dumps(), "done": done})
    store.put(_interaction_key(handle), value, ttl=codes.INTERACTION_TTL)
    session[_INTERACTION] = handle
    return handle


def _forget_interaction() -> None:
    handle = session.pop(_INTERACTION, None)
    if isinstance(handle, str):
        get_state().store.delete(_interaction_key(handle))


def _resume() -> tuple[AuthorizationRequest, dict[str, bool]] | None:
    handle = session.get(_INTERACTION)
    given = request.form.get("interaction", "")
    if not isinstance(handle, str) or not hmac.compare_digest(given.encode(), handle.encode()):
        return None
    text = get_state().store.get(_interaction_key(handle))
    if text is None:
        return None
    data = json.loads(text)
    return AuthorizationRequest.loads(data["request"]), dict(data["done"])


@bp.post("/oauth/authorize/continue")
def proceed() -> Any:
    if not browser_session.from_this_site():
        return _message(
            "Please try again", "The form expired or was sent from another page. Start again.", 400
        )
    resumed = _resume()
    if resumed is None:
        return _message(
            "Please try again",
            "This sign-in has expired or was continued in another tab. Go back to the application "
            "and start again.",
            400,
        )
    req, done = resumed
    _allow_form_target(req.redirect_uri)  # this answer's page may post and be sent back there
    client = query_client(req.client_id)
    if client is None or not client.check_grant_type(codes.AUTHORIZATION_CODE):
        _forget_interaction()
        return _message(
            "This sign-in link cannot be used", "The application is not known here.", 400
        )
    action = request.form.get("action")
    if action == "cancel":
        _forget_interaction()
        return _redirect_error(req.redirect_uri, req.state, "access_denied", "Sign-in cancelled.")
    if action == "login":
        return _login(client, req, done)
    if action == "totp":
        return _second_factor(client, req, done)
    user = browser_session.signed_in()
    if user is None or user.tenant_id != client.tenant_id:
        return _proceed(client, req, done)  # signed out meanwhile: sign in again
    if action == "allow":
        codes.remember_consent(client, user, req.scope)
        return _proceed(client, req, {**done, "consented": True})
    if action == "deny":
        _forget_interaction()
        return _redirect_error(
            req.redirect_uri, req.state, "access_denied", "The user did not allow access."
        )
    return _message("Please try again", "Unknown action. Start again.", 400, client)


def _login(client: OAuthClient, req: AuthorizationRequest, done: dict[str, bool]) -> Any:
    handle = session.get(_INTERACTION)
    outcome = browser_session.check_password(
        "authorize", client.tenant_id, client.tenant_id, request.form
    )
    ctx = {"interaction": handle, "login_hint": request.form.get("login", "")[:200]}
    if outcome.throttled is not None:
        html, status = _render(
            "authorize/sign_in.html", client, 429,
            error="Too many failed sign-ins. Wait a few minutes.", **ctx,
        )  # fmt: skip
        return html, status, {"Retry-After": str(outcome.throttled)}
    if outcome.user is None:
        return _render(
            "authorize/sign_in.html", client, 401, error="The login or password is wrong.", **ctx
        )
    if not authorization.admits(client, outcome.user):
        # The right password, for an account this app is not for: not signed in here.
        return _render("authorize/sign_in.html", client, 403,
                       error=authorization.not_for_you(client), **ctx)  # fmt: skip
    if outcome.needs_totp:
        return _render("authorize/totp.html", client, interaction=handle)
    return _signed_in(client, req, done, outcome.user, "pwd")


def _second_factor(client: OAuthClient, req: AuthorizationRequest, done: dict[str, bool]) -> Any:
    handle = session.get(_INTERACTION)
    try:
        user, amr = browser_session.check_second_factor(request.form)
    except browser_session.SignInExpired:
        return _render("authorize/sign_in.html", client, 400, interaction=handle,
                       error="The sign-in took too long. Start again.")  # fmt: skip
    except limits.Throttled as exc:
        html, status = _render(
            "authorize/totp.html", client, 429, interaction=handle,
            error="Too many wrong codes. Wait a few minutes.",
        )  # fmt: skip
        return html, status, {"Retry-After": str(exc.retry_after)}
    except totp.TotpWrong:
        return _render(
            "authorize/totp.html", client, 401, interaction=handle,
            error="The code is wrong or was used already.",
        )  # fmt: skip
    return _signed_in(client, req, done, user, amr)


def _signed_in(
    client: OAuthClient, req: AuthorizationRequest, done: dict[str, bool], user: User, amr: str
) -> Any:
    browser_session.start(user, amr)
    return _proceed(client, req, {**done, "signed_in": True})


# -- pushed authorization requests ---------------------------------------------------------------


def _server() -> AuthServer:
    server = get_state().server
    assert isinstance(server, AuthServer)
    return server


@bp.post("/oauth/par")
def par() -> Any:
    server = _server()
    return form_endpoint_response(server, lambda: server.create_endpoint_response("par"))


# -- RP-initiated logout -------------------------------------------------------------------------


def _hinted(id_token_hint: str | None) -> dict[str, Any] | None:
    """The claims of an ID token we issued (expired ones too: OIDC RP-Initiated Logout §2 lets
    the hint be expired), or None."""
    if not id_token_hint or len(id_token_hint) > 8192:
        return None
    try:
        _, claims = get_state().keyring.verify(id_token_hint, "jwt")
    except InvalidSignedToken:
        return None
    if claims.get("iss") != _issuer() or not isinstance(claims.get("aud"), str):
        return None
    return claims


def _logout_key(handle: str) -> str:
    return "lgo:" + hashlib.sha256(handle.encode()).hexdigest()


@bp.route("/oauth/logout", methods=["GET", "POST"])
def logout() -> Any:
    """OpenID Connect RP-Initiated Logout 1.0 §2-3. The browser goes back only to a
    post_logout_redirect_uri registered for the client the ID token hint (or client_id) names;
    without a hint that names the signed-in person, the person is asked first (§6: a logout
    request from anywhere must not sign people out unseen)."""
    if request.method == "POST" and "logout" in request.form:
        return _confirmed_logout()
    source = request.args if request.method == "GET" else request.form
    if any(len(source.getlist(k)) > 1 for k in source):
        return _message("Sign-out failed", "A parameter is repeated.", 400)
    claims = _hinted(source.get("id_token_hint"))
    if source.get("id_token_hint") and claims is None:
        return _message("Sign-out failed", "The id_token_hint is not one this server issued.", 400)
    client_id = source.get("client_id")
    if claims is not None:
        if client_id is not None and client_id != claims["aud"]:
            return _message("Sign-out failed", "client_id differs from the ID token's.", 400)
        client_id = claims["aud"]
    target = None
    wanted = source.get("post_logout_redirect_uri")
    if wanted is not None:
        client = query_client(client_id) if client_id else None
        if client is None or wanted not in (client.post_logout_redirect_uris or ()):
            # Never an open redirect: an unregistered URI is not followed.
            return _message(
                "Sign-out failed",
                "The post_logout_redirect_uri is not registered for this application.",
                400,
            )
        target = codes.redirect_with(wanted, {"state": source.get("state")})
    user = browser_session.signed_in()
    if user is None or (claims is not None and claims.get("sub") == user.id):
        # Nothing to ask: nobody is signed in, or the hint proves the app knew who it was.
        browser_session.end()
        return _after_logout(target)
    handle = secrets.token_urlsafe(24)
    get_state().store.put(_logout_key(handle), json.dumps({"target": target}), ttl=600)
    if target is not None:
        _allow_form_target(target)
    return _render("authorize/logout.html", None, user=user, logout=handle)


def _confirmed_logout() -> Any:
    if not browser_session.from_this_site():
        return _message(
            "Please try again", "The form expired or was sent from another page. Start again.", 400
        )
    handle = request.form.get("logout", "")
    text = get_state().store.get(_logout_key(handle)) if 0 < len(handle) <= 64 else None
    target = json.loads(text)["target"] if text else None
    if text:
        get_state().store.delete(_logout_key(handle))
    browser_session.end()
    return _after_logout(target)


def _after_logout(target: str | None) -> Any:
    if target is not None:
        return redirect(target, 303)
    return _message("Signed out", "You are signed out.", 200)
