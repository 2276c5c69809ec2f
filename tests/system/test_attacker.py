"""An attacker against a real server (``authserver serve``, two workers), from several source addresses on
loopback (127.0.0.x), beside a legitimate user: forged and replayed credentials at the token
endpoint, the registry, /device and the link-code grant (security review, "done when").

What it shows: no forged or replayed credential is accepted; the verification page stays usable
for a legitimate user while the attacker guesses; password guessing is bounded per account, from
any address.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re

import pytest
import requests
from requests.adapters import HTTPAdapter

from tests.conftest import make_env, start_server, stop_server
from tests.dpop_client import DPoPKey

pytestmark = pytest.mark.processes
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
LINK_GRANT = "urn:authserver:params:oauth:grant-type:link-code"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class _From(HTTPAdapter):
    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        kwargs["source_address"] = (self.address, 0)
        return super().init_poolmanager(*args, **kwargs)


def browser(address: str) -> requests.Session:
    """A session whose connections come from ``address`` (one of 127.0.0.0/8)."""
    s = requests.Session()
    s.mount("http://", _From(address))
    return s


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segments(token: str) -> tuple[dict, dict]:
    head, body, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return json.loads(base64.urlsafe_b64decode(pad(head))), json.loads(
        base64.urlsafe_b64decode(pad(body))
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(make_env(tmp_path_factory.mktemp("attack")), workers=2)
    try:
        tenant = srv.cli("tenants", "create", "Victim")
        srv.tenant = tenant
        srv.cli(
            "users", "create", "--tenant", tenant["id"], "--login", "admin",
            "--password", "correct horse", "--user-code", "4321", "--role", "TENANT.ADMIN",
        )  # fmt: skip
        srv.service = srv.cli(
            "clients", "create", "--tenant", tenant["id"], "--name", "svc",
            "--grant-type", "client_credentials", "--scope", "devices:read devices:write",
        )  # fmt: skip
        srv.kiosk = srv.cli(
            "clients", "create", "--tenant", tenant["id"], "--name", "Kiosk", "--public",
            "--grant-type", DEVICE_GRANT, "--scope", "devices:read",
        )  # fmt: skip
        srv.pos = srv.cli(
            "clients", "create", "--tenant", tenant["id"], "--name", "POS", "--public",
            "--grant-type", LINK_GRANT, "--scope", "devices:read devices:write",
        )  # fmt: skip
        yield srv
    finally:
        stop_server(srv)


def service_token(server, http=None, proof=None) -> requests.Response:
    http = http or requests
    headers = {"DPoP": proof} if proof else {}
    return http.post(
        f"{server.url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(server.service["client_id"], server.service["client_secret"]),
        headers=headers,
        timeout=10,
    )


def create_device(server, token: str, **body) -> requests.Response:
    return requests.post(
        f"{server.url}/api/v1/devices",
        json={"name": "x", **body},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def introspect(server, token: str) -> dict:
    return requests.post(
        f"{server.url}/oauth/introspect",
        data={"token": token},
        auth=(server.service["client_id"], server.service["client_secret"]),
        timeout=10,
    ).json()


def test_no_forged_or_replayed_token_is_accepted(server):
    attacker = browser("127.0.0.2")
    live = service_token(server).json()["access_token"]
    header, claims = segments(live)  # what a resource server's log shows
    jwks = requests.get(f"{server.url}/oauth/jwks", timeout=10).json()["keys"]
    published = next(k for k in jwks if k["kid"] == header["kid"])
    body = b64(json.dumps({**claims, "scope": "devices:read devices:write"}).encode())
    forged = [
        f"{b64(json.dumps({'alg': 'none', 'typ': 'at+jwt'}).encode())}.{body}.",
        f"{b64(json.dumps({**header, 'alg': 'none'}).encode())}.{body}.",
    ]
    hs_head = b64(json.dumps({**header, "alg": "HS256"}).encode())
    mac = hmac.new(json.dumps(published).encode(), f"{hs_head}.{body}".encode(), hashlib.sha256)
    forged.append(f"{hs_head}.{body}.{b64(mac.digest())}")
    forged.append(live[:-8] + ("AAAAAAAA" if not live.endswith("AAAAAAAA") else "BBBBBBBB"))
    for token in forged:
        resp = attacker.post(
            f"{server.url}/api/v1/devices",
            json={"name": "planted"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert resp.status_code == 401, token
        assert introspect(server, token) == {"active": False}
    # The genuine token, revoked, is refused by every worker on the next request.
    assert create_device(server, live).status_code == 201
    requests.post(
        f"{server.url}/oauth/revoke",
        data={"token": live},
        auth=(server.service["client_id"], server.service["client_secret"]),
        timeout=10,
    )
    for _ in range(4):
        assert (
            attacker.get(
                f"{server.url}/api/v1/devices",
                headers={"Authorization": f"Bearer {live}"},
                timeout=10,
            ).status_code
            == 401
        )


def test_a_replayed_dpop_proof_is_refused_at_the_token_endpoint_and_resources(server):
    key = DPoPKey()
    proof = key.proof("POST", f"{server.url}/oauth/token")
    first = service_token(server, proof=proof)
    assert first.status_code == 200
    # The attacker replays the captured proof from another address (another worker, maybe).
    replay = service_token(server, browser("127.0.0.3"), proof=proof)
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_dpop_proof")
    token = first.json()["access_token"]
    url = f"{server.url}/api/v1/devices"
    res_proof = key.proof("GET", url, access_token=token)
    headers = {"Authorization": f"DPoP {token}", "DPoP": res_proof}
    assert requests.get(url, headers=headers, timeout=10).status_code == 200
    again = browser("127.0.0.3").get(url, headers=headers, timeout=10)
    assert again.status_code == 401
    # Without the key, the bound token is worth nothing, as Bearer or with the attacker's key.
    as_bearer = {"Authorization": f"Bearer {token}"}
    assert browser("127.0.0.3").get(url, headers=as_bearer, timeout=10).status_code == 401
    own = DPoPKey()
    stolen = {"Authorization": f"DPoP {token}", "DPoP": own.proof("GET", url, access_token=token)}
    assert browser("127.0.0.3").get(url, headers=stolen, timeout=10).status_code == 401


def page(session: requests.Session, url: str) -> str:
    return CSRF.search(session.get(f"{url}/device", timeout=10).text).group(1)


def enter(session: requests.Session, url: str, code: str) -> requests.Response:
    return session.post(
        f"{url}/device",
        data={"csrf": page(session, url), "action": "code", "user_code": code},
        allow_redirects=False,
        timeout=10,
    )


def sign_in(session, url, login, password, organisation=None) -> requests.Response:
    data = {"csrf": page(session, url), "action": "login", "login": login, "password": password}
    if organisation:
        data["organisation"] = organisation
    return session.post(f"{url}/device", data=data, allow_redirects=False, timeout=10)


def test_invariant_8_the_page_stays_usable_for_a_legitimate_user_while_an_attacker_guesses(server):
    url = server.url
    # The attacker guesses from three addresses until each is refused.
    for address in ("127.0.0.4", "127.0.0.5", "127.0.0.6"):
        attacker = browser(address)
        while (resp := enter(attacker, url, "BBBBB-BBBBB")).status_code == 400:
            pass
        assert resp.status_code == 429
    # A person at the kiosk, from another address, is not affected.
    flow = requests.post(
        f"{url}/oauth/device_authorization",
        data={"client_id": server.kiosk["client_id"]},
        timeout=10,
    ).json()
    person = browser("127.0.0.9")
    assert enter(person, url, flow["user_code"]).status_code == 303
    assert sign_in(person, url, "admin", "correct horse").status_code == 303
    review = person.get(f"{url}/device", timeout=10).text
    assert "Allow this device?" in review and flow["user_code"] in review


def test_staff_who_sign_in_first_are_not_stopped_by_a_flooded_network(server):
    url = server.url
    # The attacker fills this /24's budget from more addresses; anonymous entry from the
    # network is refused, for the attacker and for anyone else in it.
    for n in range(10, 20):
        attacker = browser(f"127.0.0.{n}")
        while enter(attacker, url, "CCCCC-CCCCC").status_code == 400:
            pass
    flow = requests.post(
        f"{url}/oauth/device_authorization",
        data={"client_id": server.kiosk["client_id"]},
        timeout=10,
    ).json()
    staff = browser("127.0.0.30")
    refused = enter(staff, url, flow["user_code"])
    assert refused.status_code == 429 and 'name="organisation"' in refused.text
    assert sign_in(staff, url, "admin", "correct horse", server.tenant["id"]).status_code == 303
    assert enter(staff, url, flow["user_code"]).status_code == 303
    done = staff.post(
        f"{url}/device",
        data={"csrf": page(staff, url), "action": "approve"},
        timeout=10,
    )
    assert "Device approved" in done.text


def test_password_guessing_is_bounded_per_account_from_any_address(server):
    url, tenant = server.url, server.tenant["id"]
    # /device: five wrong passwords for "admin" from five addresses ...
    for n in range(40, 45):
        resp = sign_in(browser(f"127.0.0.{n}"), url, "admin", f"guess {n}", tenant)
        assert resp.status_code == 401
    # ... and the right one, from yet another address, has to wait.
    locked = sign_in(browser("127.0.0.46"), url, "admin", "correct horse", tenant)
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    # The link-code grant: the same, for the staff code typed on a terminal.
    token = service_token(server).json()["access_token"]
    for n in range(50, 56):
        code = create_device(server, token, status="READY_TO_LINK").json()["data"]["linkCode"]
        resp = browser(f"127.0.0.{n}").post(
            f"{url}/oauth/token",
            data={
                "grant_type": LINK_GRANT,
                "client_id": server.pos["client_id"],
                "link_code": code,
                "user_code": "4321",
                "password": "correct horse" if n == 55 else f"guess {n}",
            },
            timeout=10,
        )
        assert resp.status_code == (429 if n == 55 else 400), resp.text


def test_a_used_link_code_cannot_be_replayed(server):
    token = service_token(server).json()["access_token"]
    code = create_device(server, token, status="READY_TO_LINK").json()["data"]["linkCode"]
    form = {
        "grant_type": LINK_GRANT,
        "client_id": server.pos["client_id"],
        "link_code": code,
        "username": "admin",
        "password": "correct horse",
    }
    first = browser("127.0.0.60").post(f"{server.url}/oauth/token", data=form, timeout=10)
    assert first.status_code == 200, first.text
    replay = browser("127.0.0.61").post(f"{server.url}/oauth/token", data=form, timeout=10)
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_grant")
