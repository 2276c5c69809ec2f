"""The verification page a person opens (RFC 8628 §3.3): enter or confirm the code, sign in,
review the request, approve or deny. Plain HTML forms, no JavaScript; CSRF tokens on every form;
framing forbidden; the code is never evaluated on GET, and every evaluation goes through the
brute-force gate (§5.1)."""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, session, url_for
from sqlalchemy import select

from authserver import device_flow
from authserver.limits import SlotLimiter
from authserver.models import Client, DeviceAuthorization, Location, User, db
from authserver.registry.bodies import clean_text
from authserver.security import now, verify_password
from authserver.state import get_state

bp = Blueprint("verify", __name__)

LOGIN_FAILURES = 10
LOGIN_WINDOW = 900


@bp.after_request
def security_headers(resp: Response) -> Response:
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"  # the URL may carry a user code
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


def _csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(24)
    return str(token)


def _render(template: str, status: int = 200, **ctx: Any) -> tuple[str, int]:
    return render_template(template, csrf=_csrf_token(), **ctx), status


def _current() -> tuple[DeviceAuthorization | None, User | None]:
    record = None
    if session.get("dva"):
        record = db.session.get(DeviceAuthorization, session["dva"])
        if record is None or record.status != "pending" or record.expires_at <= now():
            session.pop("dva", None)
            record = None
    user = db.session.get(User, session["uid"]) if session.get("uid") else None
    if user is not None and not user.active:
        session.pop("uid", None)
        user = None
    return record, user


def _review(record: DeviceAuthorization, user: User) -> tuple[str, int]:
    client = db.session.get(Client, record.client_id)
    assert client is not None
    enrolment = client.device_subject == "device"
    locations: list[Location] = []
    if enrolment:
        locations = list(
            db.session.scalars(
                select(Location).where(Location.tenant_id == user.tenant_id).order_by(Location.name)
            )
        )
    requested = datetime.fromtimestamp(record.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return _render(
        "device/review.html",
        client=client,
        record=record,
        user=user,
        scopes=record.scope.split(),
        requested=requested,
        enrolment=enrolment,
        locations=locations,
    )


@bp.get("/device")
def page() -> Any:
    record, user = _current()
    typed = request.args.get("user_code", "")
    if typed:
        # From verification_uri_complete: show the code and ask the person to compare it with
        # the device's screen before anything is looked up (RFC 8628 §5.4).
        code = device_flow.normalise_user_code(typed)
        shown = device_flow.format_user_code(code) if len(code) == 8 else typed[:20]
        return _render("device/confirm.html", user_code=shown)
    if record is None:
        return _render("device/enter.html")
    if user is None or user.tenant_id != record.tenant_id:
        return _render("device/login.html", record=record)
    return _review(record, user)


@bp.post("/device")
def act() -> Any:
    given = request.form.get("csrf", "").encode("utf-8", "surrogatepass")
    if not hmac.compare_digest(given, (session.get("csrf", "") or "-").encode()):
        return _render(
            "device/message.html",
            400,
            title="Please try again",
            message="The form expired or was sent from another page. Start again.",
        )
    action = request.form.get("action")
    if action == "code":
        return _enter_code()
    if action == "login":
        return _login()
    if action in ("approve", "deny"):
        return _decide(action == "approve")
    if action == "logout":
        session.clear()
        return redirect(url_for("verify.page"), 303)
    return _render("device/message.html", 400, title="Unknown action", message="Start again.")


def _enter_code() -> Any:
    gate = device_flow.UserCodeGate(get_state().store)
    ip = request.remote_addr or "-"
    slots = gate.reserve(ip)
    if slots is None:
        html, status = _render(
            "device/enter.html",
            429,
            error="Too many wrong codes have been entered. Wait a few minutes and try again, "
            "or ask an administrator to approve the device.",
        )
        return html, status, {"Retry-After": str(gate.retry_after)}
    record = device_flow.find_live(request.form.get("user_code", "")[:64])
    if record is None:
        # The slots stay taken: this wrong code counts against the address and globally.
        return _render(
            "device/enter.html",
            400,
            error="That code is not valid or has expired. Check the device's screen.",
        )
    gate.succeeded(slots)
    session.permanent = True
    session["dva"] = record.id
    return redirect(url_for("verify.page"), 303)


def _login() -> Any:
    record, _ = _current()
    if record is None:
        return redirect(url_for("verify.page"), 303)
    login = request.form.get("login", "")[:200]
    password = request.form.get("password", "")[:1024]
    limiter = SlotLimiter(get_state().store, "login", LOGIN_FAILURES, LOGIN_WINDOW)
    slot = limiter.acquire(f"{record.tenant_id}|{login}|{request.remote_addr}")
    if slot is None:
        html, status = _render(
            "device/login.html",
            429,
            record=record,
            error="Too many failed sign-ins. Wait a few minutes.",
        )
        return html, status, {"Retry-After": str(LOGIN_WINDOW)}
    user = device_flow.find_user(record.tenant_id, login) if clean_text(login) else None
    if not verify_password(password, user.password_hash if user else None) or not (
        user and user.active
    ):
        return _render(
            "device/login.html", 401, record=record, error="The login or password is wrong."
        )
    limiter.release(slot)
    # A new sign-in gets a new CSRF token (no fixation across the privilege change).
    session["csrf"] = secrets.token_urlsafe(24)
    session["uid"] = user.id
    session["auth_time"] = now()
    try:
        device_flow.claim(record, user)
    except device_flow.DecisionError as exc:
        session.pop("dva", None)
        return _render("device/message.html", 409, title="Code not available", message=str(exc))
    return redirect(url_for("verify.page"), 303)


def _decide(approve: bool) -> Any:
    record, user = _current()
    if record is None or user is None:
        return _render(
            "device/message.html",
            400,
            title="Nothing to approve",
            message="The request has expired or was already handled. Start again.",
        )
    location = request.form.get("location_id") or None
    till = (request.form.get("till_id") or "").strip() or None
    name = (request.form.get("name") or "").strip() or None
    try:
        device_flow.decide(
            record, user, approve, location, till, name, auth_time=session.get("auth_time")
        )
    except device_flow.DecisionError as exc:
        return _render("device/message.html", 409, title="Not possible", message=str(exc))
    session.pop("dva", None)
    if approve:
        return _render(
            "device/message.html",
            title="Device approved",
            message="You can return to the device; it will continue by itself.",
        )
    return _render(
        "device/message.html", title="Request denied", message="The device was not given access."
    )
