"""``authserver device-login``: a kiosk in the terminal (RFC 8628 from the device's side).

Requests a code, shows the user code, the verification URI and a QR code of
``verification_uri_complete`` on stderr, polls honouring ``interval`` and ``slow_down`` with a live
progress line, and returns the tokens or the error as JSON (the CLI prints them on stdout).
"""

from __future__ import annotations

import io
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import qrcode

from authserver.dpop_client import DPoPKey, needs_nonce
from grants import DEVICE_CODE


class _Prover:
    """A DPoP key kept in memory for the whole flow (the proofs bind the transaction), and the
    server's last nonce."""

    def __init__(self) -> None:
        self.key = DPoPKey()
        self.nonce: str | None = None

    def proof(self, url: str) -> str:
        return self.key.proof("POST", url, nonce=self.nonce)


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
) -> tuple[int, dict[str, Any]]:
    """Run the flow; returns (exit code, JSON result)."""
    err = err or sys.stderr
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
            return 0, body
        error = body.get("error")
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += 5  # and for all later polls
            continue
        print("\r" + " " * 78, file=err)
        return 1, body
