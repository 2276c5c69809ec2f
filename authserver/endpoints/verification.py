"""The verification page a person opens (RFC 8628 §3.3): enter or confirm the code, sign in,
review the request, approve or deny. Plain HTML forms, no JavaScript; framing forbidden.

What keeps it safe:
- every POST carries the CSRF token of this session (a session without one is refused) and, when
  the browser says where the form came from (``Origin``, ``Sec-Fetch-Site``), comes from us;
- the code is never evaluated on GET; every typed code is charged to limits first (§5.1,
  ``authserver.limits``): anonymous entries per address, per network and to a shared budget;
  entries by a signed-in person to their account and tenant, so staff can still connect devices
  while someone floods the anonymous budget (the page then asks them to sign in first);
- sign-in (``authserver.browser_session``, shared with ``/oauth/authorize``) is limited per
  address and network before any password is checked, and per account; it is a session in the
  shared store: signing out ends it everywhere, and a replayed cookie is worth nothing;
- the code and a warning are shown on every step, and what the device says about itself is
  marked as such (§5.4, review F12); who may approve is ``authserver.authorization``'s rule.
"""

from __future__ import annotations

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

from authserver import (
    authorization,
    browser_session,
    credentials,
    device_flow,
    i18n,
    limits,
    modules,
    totp,
    users,
)
from authserver.devices import locations_for_picker
from authserver.models import AuthorizationStatus, DeviceAuthorization, Tenant, User
from authserver.oauth2.server import query_client
from authserver.problems import DecisionError
from authserver.security import now
from authserver.state import get_state
from authserver.text import is_clean

bp = Blueprint("verify", __name__)


@bp.after_request
def security_headers(resp: Response) -> Response:
    resp.headers["X-Frame-Options"] = "DENY"
    # Images only from the tenant's logo origin, when the page shows one.
    images = f"; img-src {g.logo_origin}" if g.get("logo_origin") else ""
    # A sign-in form for an app answers with a redirect to the app: form-action covers where a
    # form's answer redirects to (CSP 3), so that one origin is allowed too.
    forms = " ".join(["'self'", *([g.form_target] if g.get("form_target") else [])])
    resp.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        f"form-action {forms}; frame-ancestors 'none'; base-uri 'none'" + images
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
    return render_template(template, csrf=browser_session.csrf_token(), **ctx), status


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
    "clients:read": "See the apps and services registered for this organisation",
    "clients:write": "Register, change and remove apps and services, and reset their secrets",
}


def _message(title: str, message: str, status: int = 200) -> tuple[str, int]:
    return _render("device/message.html", status, title=title, message=message)


def _throttled(template: str, message: str, retry_after: int, **ctx: Any) -> Any:
    html, status = _render(template, 429, error=message, **ctx)
    return html, status, {"Retry-After": str(retry_after)}


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
    return record, browser_session.signed_in()


def _forget_code() -> None:
    session.pop("dva", None)
    session.pop("code", None)


# -- requests ------------------------------------------------------------------------------------


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
    if not browser_session.from_this_site():
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
        browser_session.end()
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
        charges = limits.anonymous_code_entry(s, browser_session.client_ip())
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
    organisation = request.form.get("organisation", "").strip()[:200]
    tenant_id = record.tenant_id if record is not None else None
    if tenant_id is None:
        tenant = _find_tenant(organisation)
        tenant_id = tenant.id if tenant is not None else None
    template = "device/login.html"
    ctx: dict[str, Any] = {"record": record}
    if record is None:
        template, ctx = "device/enter.html", {"offer_sign_in": True}
    outcome = browser_session.check_password("device", tenant_id, organisation, request.form)
    if outcome.throttled is not None:
        return _throttled(
            template, "Too many failed sign-ins. Wait a few minutes.", outcome.throttled, **ctx
        )
    if outcome.user is None:
        html, status = _render(
            template, 401, error="The organisation, login or password is wrong.", **ctx
        )
        return html, status
    if outcome.needs_totp:
        # A second factor: the password alone does not sign in.
        return _render("device/totp.html", 200, record=record)
    return _signed_in_now(record, outcome.user, "pwd")


def _second_factor() -> Any:
    """The code from the authenticator app of someone whose password was right (RFC 6238)."""
    record, _ = _current()
    try:
        user, amr = browser_session.check_second_factor(request.form)
    except browser_session.SignInExpired:
        return _message("Sign in again", "The sign-in took too long. Start again.", 400)
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
    return _signed_in_now(record, user, amr)


def _signed_in_now(record: DeviceAuthorization | None, user: User, amr: str) -> Any:
    browser_session.start(user, amr)
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
