"""``authserver device-login``: a kiosk in the terminal (RFC 8628 from the device's side).

Requests a code, shows the user code, the verification URI and a QR code of
``verification_uri_complete`` on stderr, polls honouring ``interval`` and ``slow_down`` with a live
progress line, and returns the tokens or the error as JSON (the CLI prints them on stdout).

With a state file the kiosk keeps what it needs to go on after it exits: its DPoP key (the tokens
are bound to it), its tokens and the server, in one file only its owner can read (0600).
``device-login --refresh`` rotates the tokens with it, and ``device-call`` makes a DPoP-bound
request with it (refreshing first when the access token is about to expire), the way a kiosk
reads ``/api/v1/modules/me/config``.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import qrcode

from authserver.dpop_client import DPoPKey, needs_nonce
from grants import DEVICE_CODE


class _Prover:
    """A DPoP key kept for the whole flow (the proofs bind the transaction), and the server's
    last nonce."""

    def __init__(self, key: DPoPKey | None = None) -> None:
        self.key = key or DPoPKey()
        self.nonce: str | None = None

    def proof(self, url: str, method: str = "POST", access_token: str | None = None) -> str:
        return self.key.proof(method, url, nonce=self.nonce, access_token=access_token)


def _post(url: str, form: dict[str, str], prover: _Prover | None) -> tuple[int, dict[str, Any]]:
    status, headers, raw = _send(url, form, prover)
    if prover is not None:
        nonce = needs_nonce(status, headers, raw)
        prover.nonce = headers.get("DPoP-Nonce") or prover.nonce
        if nonce is not None:  # RFC 9449 §8: once more, with the server's nonce
            status, headers, raw = _send(url, form, prover)
            prover.nonce = headers.get("DPoP-Nonce") or prover.nonce
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, {"error": "http_error", "error_description": f"HTTP {status}"}


def _send(url: str, form: dict[str, str], prover: _Prover | None) -> tuple[int, Any, bytes]:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if prover is not None:
        headers["DPoP"] = prover.proof(url)
    _check_url(url)
    req = urllib.request.Request(  # noqa: S310 - scheme checked above
        url, data=urllib.parse.urlencode(form).encode(), headers=headers
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - URL from the operator
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def _check_url(url: str) -> None:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {url!r}")


def qr_text(data: str) -> str:
    qr = qrcode.QRCode(border=2)
    qr.add_data(data)
    qr.make(fit=True)
    out = io.StringIO()
    qr.print_ascii(out=out, invert=True)
    return out.getvalue()


def run_device_login(
    server: str,
    client_id: str,
    scope: str | None,
    device_name: str | None,
    dpop: bool,
    err: Any = None,
    sleep: Any = time.sleep,
    module: str | None = None,
    state_file: Path | None = None,
) -> tuple[int, dict[str, Any]]:
    """Run the flow; returns (exit code, JSON result). With ``state_file`` the flow is DPoP-bound
    and the key and tokens are kept there."""
    err = err or sys.stderr
    if state_file is not None:
        dpop = True
        problem = _check_writable(state_file)
        if problem:
            return 2, {"error": "state_file", "error_description": problem}
    meta_url = f"{server}/.well-known/oauth-authorization-server"
    try:
        _check_url(meta_url)
        with urllib.request.urlopen(meta_url, timeout=10) as resp:  # noqa: S310
            meta = json.load(resp)
    except (urllib.error.URLError, ValueError, OSError) as exc:
        return 2, {"error": "server_unreachable", "error_description": f"{meta_url}: {exc}"}
    prover = _Prover() if dpop else None
    form = {"client_id": client_id}
    if scope:
        form["scope"] = scope
    if device_name:
        form["device_name"] = device_name
    if module:
        form["module"] = module
    status, start = _post(meta["device_authorization_endpoint"], form, prover)
    if status != 200:
        return 1, start
    print(f"\nTo connect this device, open  {start['verification_uri']}", file=err)
    print(f"and enter the code            {start['user_code']}\n", file=err)
    print("or scan:", file=err)
    print(qr_text(start["verification_uri_complete"]), file=err)

    interval = int(start.get("interval", 5))
    deadline = time.monotonic() + int(start["expires_in"])
    begun = time.monotonic()
    poll = {"grant_type": DEVICE_CODE, "device_code": start["device_code"], "client_id": client_id}
    while True:
        # RFC 8628 §3.5: wait at least `interval` seconds between polls.
        for _ in range(interval):
            left = int(deadline - time.monotonic())
            print(
                f"\rwaiting for approval ... {int(time.monotonic() - begun):4d}s elapsed, "
                f"{max(left, 0):4d}s left, polling every {interval}s ",
                end="",
                file=err,
                flush=True,
            )
            sleep(1)
        status, body = _post(meta["token_endpoint"], poll, prover)
        if status == 200:
            print("\rapproved." + " " * 60, file=err)
            if state_file is not None and prover is not None:
                save_state(state_file, server, client_id, meta["token_endpoint"], prover.key, body)
                return 0, summary(state_file, body)  # kept in the file (0600), not printed
            return 0, body
        error = body.get("error")
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += 5  # and for all later polls
            continue
        print("\r" + " " * 78, file=err)
        return 1, body


# -- the kiosk's state: key and tokens in a file only its owner can read -----------------------------


def _check_writable(path: Path) -> str | None:
    if path.exists() and not path.is_file():
        return f"{path} is not a file"
    if not path.parent.is_dir():
        return f"{path.parent} is not a directory"
    return None


def save_state(
    path: Path, server: str, client_id: str, token_endpoint: str, key: DPoPKey,
    tokens: dict[str, Any],
) -> None:  # fmt: skip
    """Write the state atomically, created 0600 (never readable by others, not even briefly)."""
    state = {
        "server": server,
        "client_id": client_id,
        "token_endpoint": token_endpoint,
        "dpop_private_key_pem": key.private_pem().decode(),
        "access_token": tokens["access_token"],
        "token_type": tokens.get("token_type", "DPoP"),
        "expires_at": int(time.time()) + int(tokens.get("expires_in", 0)),
        "refresh_token": tokens.get("refresh_token"),
        "scope": tokens.get("scope"),
    }
    # A fresh file of our own (O_EXCL, 0600: no file or link planted beside it is written
    # through), synced, then renamed over the state: never readable by others, never half written.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(state, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_state(path: Path) -> tuple[dict[str, Any], DPoPKey]:
    """The kept state; refused when others could read it or it is not the user's own."""
    info = path.stat()
    if info.st_mode & 0o077 or (hasattr(os, "geteuid") and info.st_uid != os.geteuid()):
        raise ValueError("the state file must be yours and readable by you only (chmod 600)")
    state = json.loads(path.read_text())
    return state, DPoPKey(private_pem=state["dpop_private_key_pem"].encode())


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One user of the state at a time (two calls refreshing the same token at once would look
    like a stolen token to the server, which then revokes the grant)."""
    lock = path.with_name(f".{path.name}.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def summary(state_file: Path, tokens: dict[str, Any]) -> dict[str, Any]:
    """What to print when the tokens are kept in a file: not the tokens themselves."""
    return {"state": str(state_file), "token_type": tokens.get("token_type"),
            "expires_in": tokens.get("expires_in"), "scope": tokens.get("scope"),
            "refresh_token_kept": bool(tokens.get("refresh_token"))}  # fmt: skip


def run_refresh(state_file: Path) -> tuple[int, dict[str, Any]]:
    """Rotate the kept refresh token (RFC 6749 §6) with a proof by the kept key; keep the new
    tokens. Returns (exit code, JSON result: a summary, not the tokens)."""
    try:
        with _locked(state_file):
            code, body = _refresh(state_file)
    except OSError as exc:
        return 2, {"error": "state_file", "error_description": f"{state_file}: {exc}"}
    return code, (summary(state_file, body) if code == 0 else body)


def _refresh(state_file: Path) -> tuple[int, dict[str, Any]]:
    try:
        state, key = load_state(state_file)
    except (OSError, ValueError, KeyError) as exc:
        return 2, {"error": "state_file", "error_description": f"{state_file}: {exc}"}
    if not state.get("refresh_token"):
        return 1, {"error": "no_refresh_token",
                   "error_description": "The kiosk's client gets no refresh tokens."}  # fmt: skip
    form = {"grant_type": "refresh_token", "refresh_token": state["refresh_token"],
            "client_id": state["client_id"]}  # fmt: skip
    status, body = _post(state["token_endpoint"], form, _Prover(key))
    if status != 200:
        return 1, body
    save_state(state_file, state["server"], state["client_id"], state["token_endpoint"], key, body)
    return 0, body


def run_call(state_file: Path, path: str, method: str = "GET") -> tuple[int, dict[str, Any]]:
    """``method path`` on the kiosk's server with its token and a DPoP proof (RFC 9449 §7), the
    tokens refreshed first when the access token expires within 30 seconds. Returns (exit code,
    the answer's JSON with its status)."""
    try:
        with _locked(state_file):
            state, key = load_state(state_file)
            if state.get("expires_at", 0) - 30 <= time.time() and state.get("refresh_token"):
                code, body = _refresh(state_file)
                if code:
                    return code, body
                state, key = load_state(state_file)
    except (OSError, ValueError, KeyError) as exc:
        return 2, {"error": "state_file", "error_description": f"{state_file}: {exc}"}
    url = state["server"].rstrip("/") + "/" + path.lstrip("/")
    _check_url(url)
    prover = _Prover(key)
    token = state["access_token"]
    for _attempt in (1, 2):
        headers = {"Authorization": f"{state.get('token_type', 'DPoP')} {token}"}
        if headers["Authorization"].startswith("DPoP "):
            headers["DPoP"] = prover.proof(url, method, access_token=token)
        req = urllib.request.Request(url, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - checked above
                status, resp_headers, raw = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as exc:
            status, resp_headers, raw = exc.code, exc.headers, exc.read()
        nonce = needs_nonce(status, resp_headers, raw)
        if nonce is None:
            break
        prover.nonce = nonce  # RFC 9449 §9: once more, with the resource's nonce
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = {"error": "http_error", "error_description": f"HTTP {status}"}
    return (0 if 200 <= status < 300 else 1), {"status": status, **body}
