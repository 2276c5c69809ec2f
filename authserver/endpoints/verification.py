"""The verification page a person opens (RFC 8628 §3.3): enter or confirm the code, sign in,
review the request, approve or deny. Plain HTML forms, no JavaScript; framing forbidden.

What keeps it safe:
- every POST carries the CSRF token of this session (a session without one is refused) and, when
  the browser says where the form came from (``Origin``, ``Sec-Fetch-Site``), comes from us;
- the code is never evaluated on GET; every typed code is charged to limits first (§5.1,
  ``authserver.limits``): anonymous entries per address, per network and to a shared budget;
  entries by a signed-in person to their account and tenant, so staff can still connect devices
  while someone floods the anonymous budget (the page then asks them to sign in first);
- sign-in is limited per address and network before any password is checked, and per account;
- a sign-in is a session in the shared store: signing out ends it everywhere, and a replayed
  cookie is worth nothing;
- the code and a warning are shown on every step, and what the device says about itself is
  marked as such (§5.4, review F12); who may approve is ``authserver.authorization``'s rule.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from authserver import authorization, credentials, device_flow, i18n, limits, modules, totp, users
from authserver.devices import locations_for_picker
from authserver.models import AuthorizationStatus, DeviceAuthorization, Tenant, User
from authserver.oauth2.server import query_client
from authserver.problems import DecisionError
from authserver.security import now, verify_password
from authserver.state import get_state
from authserver.text import is_clean

bp = Blueprint("verify", __name__)

MAX_LOGIN = 200
MAX_PASSWORD = 1024


@bp.after_request
def security_headers(resp: Response) -> Response:
    resp.headers["X-Frame-Options"] = "DENY"
    # Images only from the tenant's logo origin, when the page shows one.
    images = f"; img-src {g.logo_origin}" if g.get("logo_origin") else ""
    resp.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'" + images
    )
    resp.headers["Cache-Control"] = "no-store"
    # The URL may carry a user code: no Referer to other sites. Not "no-referrer", under which
    # browsers send "Origin: null" with our own forms and the origin check below could not tell.
    resp.headers["Referrer-Policy"] = "same-origin"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Content-Language"] = i18n.language()
    chosen = request.args.get("lang")
    if chosen in i18n.LANGUAGES:  # the switcher: remembered for the next visits
        resp.set_cookie(
            i18n.COOKIE,
            chosen,
            max_age=365 * 86400,
            secure=current_app.config["SESSION_COOKIE_SECURE"],  # as the session cookie
            httponly=True,
            samesite="Lax",
        )
    return resp


def _csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(24)
    return str(token)


@bp.context_processor
def _page_language() -> dict[str, Any]:
    """The page's language, its text (``_``) and the switcher's links (this page, another
    language; the code being confirmed is kept)."""
    lang = i18n.language()
    args = {k: v for k, v in request.args.items() if k == "user_code"}
    links = [
        (code, name, "/device?" + urlencode({**args, "lang": code}))
        for code, name in i18n.LANGUAGES.items()
    ]
    return {"_": i18n.gettext, "lang": lang, "language_links": links}


def _render(template: str, status: int = 200, **ctx: Any) -> tuple[str, int]:
    ctx.setdefault("user_code", session.get("code"))
    if ctx.get("error"):
        ctx["error"] = i18n.gettext(ctx["error"])
    # Whose page this is: the organisation the device asks to join, or the signed-in person's.
    owner = ctx.get("record") or ctx.get("user")
    if owner is not None and "organisation" not in ctx:
        tenant = users.get_tenant(owner.tenant_id)
        if tenant is not None:
            ctx["organisation"] = tenant.name
            ctx["accent"] = tenant.accent_colour  # #rrggbb, checked when it was set
            ctx["logo_url"] = tenant.logo_url
            if tenant.logo_url:
                logo = urlsplit(tenant.logo_url)
                g.logo_origin = f"{logo.scheme}://{logo.netloc}"
    return render_template(template, csrf=_csrf_token(), **ctx), status


# What each scope lets the device do, in words for the person approving it; a scope an operator
# added without words here is shown by its name.
SCOPE_WORDS = {
    "openid": "Know which account approved it",
    "offline_access": "Stay connected without asking again, until it is disconnected",
    "devices:read": "See this organisation's devices and locations",
    "devices:write": "Add, change, block and remove devices and locations",
    "users:read": "See this organisation's people and their roles",
    "users:write": "Add, change and remove people and give or take their roles",
    "tenant:read": "See this organisation's settings",
    "tenant:write": "Change this organisation's settings",
}


def _message(title: str, message: str, status: int = 200) -> tuple[str, int]:
    return _render("device/message.html", status, title=title, message=message)


def _throttled(template: str, message: str, retry_after: int, **ctx: Any) -> Any:
    html, status = _render(template, 429, error=message, **ctx)
    return html, status, {"Retry-After": str(retry_after)}


# -- the signed-in session, kept in the shared store ---------------------------------------------


def _session_key(sid: str) -> str:
    return "vsess:" + hashlib.sha256(sid.encode()).hexdigest()


def _start_session(user: User, amr: str) -> None:
    sid = secrets.token_urlsafe(24)
    lifetime = current_app.permanent_session_lifetime.total_seconds()
    get_state().store.put(_session_key(sid), user.id, ttl=lifetime)
    session.permanent = True
    # A new sign-in gets a new CSRF token (no fixation across the privilege change).
    session["csrf"] = secrets.token_urlsafe(24)
    session["sid"] = sid
    session["uid"] = user.id
    session["auth_time"] = now()
    session["amr"] = amr  # how they signed in, for the tokens about them (RFC 8176)


def _end_session() -> None:
    sid = session.get("sid")
    if isinstance(sid, str):
        get_state().store.delete(_session_key(sid))
    session.clear()


def _signed_in() -> User | None:
    """The signed-in user, if the session is still open in the store (F11: a signed-out or
    replayed cookie is not)."""
    uid, sid = session.get("uid"), session.get("sid")
    if not uid or not isinstance(sid, str):
        return None
    if get_state().store.get(_session_key(sid)) != uid:
        for key in ("uid", "sid", "auth_time", "amr"):
            session.pop(key, None)
        return None
    user = users.get_active(uid)
    if user is None:
        _end_session()
        return None
    return user


def _current() -> tuple[DeviceAuthorization | None, User | None]:
    record = None
    if session.get("dva"):
        record = device_flow.get(session["dva"])
        if (
            record is None
            or record.status != AuthorizationStatus.PENDING
            or record.expires_at <= now()
        ):
            session.pop("dva", None)
            session.pop("code", None)
            record = None
    return record, _signed_in()


def _forget_code() -> None:
    session.pop("dva", None)
    session.pop("code", None)


# -- requests ------------------------------------------------------------------------------------


def _from_this_site() -> bool:
    """CSRF (review F3): the session's own token, and no sign that another site sent the form."""
    expected = session.get("csrf")
    given = request.form.get("csrf", "")
    if not isinstance(expected, str) or not expected:
        return False  # no token in the session: nothing was ever handed out to this browser
    if not hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode()):
        return False
    # Fetch metadata, where the browser sends it, says where the form came from; otherwise the
    # Origin header must be ours (a form posted from another site carries that site's origin).
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is not None:
        issuer = urlsplit(get_state().settings.issuer)
        return origin == f"{issuer.scheme}://{issuer.netloc}"
    return True


def _client_ip() -> str:
    return request.remote_addr or "-"


def _review(
    record: DeviceAuthorization, user: User, error: str | None = None, status: int = 200
) -> tuple[str, int]:
    client = query_client(record.client_id)
    assert client is not None
    enrolment = client.device_subject == "device"
    places = authorization.enrolment_locations(user)
    locations = locations_for_picker(user.tenant_id, places) if enrolment else []
    created = datetime.fromtimestamp(record.created_at, UTC)
    scopes = record.scope.split()
    return _render(
        "device/review.html",
        status,
        error=error,
        client=client,
        record=record,
        user=user,
        scopes=[(s, SCOPE_WORDS.get(s)) for s in scopes],
        requested=created.strftime("%Y-%m-%d %H:%M:%S UTC"),
        requested_iso=created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        enrolment=enrolment,
        locations=locations,
        location_required=enrolment and places is not None,
        modules=(
            modules.modules_for_picker(user.tenant_id, places, record.module_id)
            if enrolment
            else []
        ),
    )


# Times are written in UTC, which works without scripts; this shows them in the viewer's own
# time zone and language where scripts run. Served from here: the page loads nothing elsewhere.
_LOCAL_TIME_JS = """document.querySelectorAll("time[datetime]").forEach(function (t) {
  var d = new Date(t.getAttribute("datetime"));
  if (!isNaN(d)) { t.textContent = d.toLocaleString(document.documentElement.lang || undefined,
    {dateStyle: "medium", timeStyle: "medium"}); t.title = t.getAttribute("datetime"); }
});
"""


@bp.get("/device/local-time.js")
def local_time_js() -> Response:
    resp = Response(_LOCAL_TIME_JS, content_type="text/javascript; charset=utf-8")
    return resp


@bp.get("/device")
def page() -> Any:
    record, user = _current()
    typed = request.args.get("user_code", "")
    if typed:
        # From verification_uri_complete: show the code and ask the person to compare it with
        # the device's screen before anything is looked up (RFC 8628 §5.4).
        code = credentials.normalise_user_code(typed)
        shown = (
            credentials.format_user_code(code)
            if len(code) == credentials.USER_CODE_LENGTH
            else typed[:24]
        )
        return _render("device/confirm.html", user_code=shown)
    if record is None:
        return _render(
            "device/enter.html",
            user=user,
            tenant=_tenant_name(user),
            offer_sign_in=user is None and request.args.get("sign_in") == "1",
        )
    if user is None or user.tenant_id != record.tenant_id:
        return _render("device/login.html", record=record)
    return _review(record, user)


@bp.post("/device")
def act() -> Any:
    if not _from_this_site():
        return _message(
            "Please try again",
            "The form expired or was sent from another page. Start again.",
            400,
        )
    action = request.form.get("action")
    if action == "code":
        return _enter_code()
    if action == "login":
        return _login()
    if action == "totp":
        return _second_factor()
    if action in ("approve", "deny"):
        return _decide(action == "approve")
    if action == "logout":
        _end_session()
        return redirect(url_for("verify.page"), 303)
    return _message("Unknown action", "Start again.", 400)


def _tenant_name(user: User | None) -> str | None:
    return users.tenant_name(user.tenant_id) if user is not None else None


def _enter_code() -> Any:
    _, user = _current()
    s = get_state().settings
    typed = request.form.get("user_code", "")[:64]
    if user is not None:
        charges = limits.account_code_entry(s, user.tenant_id, user.id)
    else:
        charges = limits.anonymous_code_entry(s, _client_ip())
    try:
        record = device_flow.lookup(typed, charges, user.tenant_id if user else None)
    except limits.Throttled as exc:
        if user is not None:
            message = (
                "Too many wrong codes have been entered for your account or organisation. "
                "Wait a few minutes, or ask an administrator to approve the device."
            )
        else:
            message = (
                "Too many wrong codes have been entered from here. If you work here, sign in "
                "first: codes entered after signing in count against your account only."
            )
        return _throttled(
            "device/enter.html",
            message,
            exc.retry_after,
            user=user,
            tenant=_tenant_name(user),
            offer_sign_in=user is None,
        )
    if record is None:
        # The charges stay: this wrong code counts against its limits.
        html, status = _render(
            "device/enter.html",
            400,
            user=user,
            tenant=_tenant_name(user),
            error="That code is not valid or has expired. Check the device's screen.",
        )
        return html, status
    session.permanent = True
    session["dva"] = record.id
    session["code"] = credentials.format_user_code(credentials.normalise_user_code(typed))
    if user is not None:
        refused = _claim(record, user)
        if refused is not None:
            return refused
    return redirect(url_for("verify.page"), 303)


def _claim(record: DeviceAuthorization, user: User) -> Any:
    """Claim the code for ``user`` if they may decide it; a page explaining why not otherwise."""
    client = query_client(record.client_id)
    enrolment = client is not None and client.device_subject == "device"
    if enrolment and not authorization.may_enrol_somewhere(user):
        # Checked before claiming: a person who cannot decide must not lock the code for others.
        _forget_code()
        return _message(
            "Not allowed",
            "You are not allowed to add devices. Ask an administrator (TENANT.ADMIN or "
            "DEVICE.MANAGER) to approve this device.",
            403,
        )
    try:
        device_flow.claim(record, user)
    except DecisionError as exc:
        _forget_code()
        return _message("Code not available", exc.detail, exc.status)
    return None


def _find_tenant(ref: str) -> Tenant | None:
    if not ref or len(ref) > 200 or not is_clean(ref):
        return None
    return users.lookup_tenant(ref)


def _login() -> Any:
    record, _ = _current()
    s = get_state().settings
    login = request.form.get("login", "")[:MAX_LOGIN]
    password = request.form.get("password", "")[:MAX_PASSWORD]
    organisation = request.form.get("organisation", "").strip()[:200]
    tenant_id = record.tenant_id if record is not None else None
    if tenant_id is None:
        tenant = _find_tenant(organisation)
        tenant_id = tenant.id if tenant is not None else None
    template = "device/login.html"
    ctx: dict[str, Any] = {"record": record}
    if record is None:
        template, ctx = "device/enter.html", {"offer_sign_in": True}
    try:
        # Per address and network first, before any lookup or argon2 work (F5); per account as
        # typed, from any address (F4).
        attempt = limits.charge(
            get_state().store,
            limits.sign_in(s, "device", tenant_id or organisation, login, _client_ip()),
        )
    except limits.Throttled as exc:
        return _throttled(
            template, "Too many failed sign-ins. Wait a few minutes.", exc.retry_after, **ctx
        )
    user = None
    if tenant_id is not None and is_clean(login):
        user = users.find_by_login(tenant_id, login)
    # Always one argon2 verification, so timing does not tell an unknown login from a wrong
    # password.
    password_ok = verify_password(password, user.password_hash if user else None)
    if not (password_ok and user is not None and user.active):
        html, status = _render(
            template, 401, error="The organisation, login or password is wrong.", **ctx
        )
        return html, status
    # The store write waits until here: nothing in this request's session holds the database.
    attempt.succeeded()
    if totp.enabled(user):
        # A second factor: the password alone does not sign in. What the next step needs is
        # held in the shared store under a one-time key, not in the cookie.
        half = secrets.token_urlsafe(24)
        get_state().store.put(_half_key(half), user.id, ttl=HALF_SIGNED_IN_SECONDS)
        session["half"] = half
        return _render("device/totp.html", 200, record=record)
    return _signed_in_now(record, user, "pwd")


HALF_SIGNED_IN_SECONDS = 300


def _half_key(half: str) -> str:
    return "vhalf:" + hashlib.sha256(half.encode()).hexdigest()


def _second_factor() -> Any:
    """The code from the authenticator app of someone whose password was right (RFC 6238)."""
    record, _ = _current()
    half = session.get("half")
    store = get_state().store
    uid = store.get(_half_key(half)) if isinstance(half, str) else None
    user = users.get_active(uid) if uid else None
    if user is None or not totp.enabled(user):
        session.pop("half", None)
        return _message("Sign in again", "The sign-in took too long. Start again.", 400)
    code = "".join(request.form.get("code", "")[:16].split())
    try:
        totp.check_code(user, code, now())
    except limits.Throttled as exc:
        return _throttled(
            "device/totp.html", "Too many wrong codes. Wait a few minutes.", exc.retry_after,
            record=record,
        )  # fmt: skip
    except totp.TotpWrong:
        return _render(
            "device/totp.html", 401, error="The code is wrong or was used already.",
            record=record,
        )  # fmt: skip
    store.delete(_half_key(half))  # type: ignore[arg-type]  # a str: the key was found
    session.pop("half", None)
    return _signed_in_now(record, user, "pwd otp")


def _signed_in_now(record: DeviceAuthorization | None, user: User, amr: str) -> Any:
    _start_session(user, amr)
    if record is not None:
        refused = _claim(record, user)
        if refused is not None:
            return refused
    return redirect(url_for("verify.page"), 303)


def _decide(approve: bool) -> Any:
    record, user = _current()
    if record is None or user is None:
        return _message(
            "Nothing to approve",
            "The request has expired or was already handled. Start again.",
            400,
        )
    location = request.form.get("location_id") or None
    till = (request.form.get("till_id") or "").strip() or None
    name = (request.form.get("name") or "").strip() or None
    module = request.form.get("module_id") or None
    try:
        device_flow.decide(
            record, user, approve, location, till, name, auth_time=session.get("auth_time"),
            amr=session.get("amr"), module_id=module,
        )  # fmt: skip
    except DecisionError as exc:
        if exc.status == 400:
            # A field to correct: back to the form with the reason; nothing was stored (F9).
            return _review(record, user, error=exc.detail, status=400)
        return _message("Not possible", exc.detail, exc.status)
    _forget_code()
    if approve:
        return _message(
            "Device approved", "You can return to the device; it will continue by itself."
        )
    return _message("Request denied", "The device was not given access.")
