"""A registry world: two tenants, an admin, services, a POS client, and helpers to get tokens."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import ClientCreds, cc_token
from tests.dpop_client import DPoPKey

LINK_GRANT = "urn:authserver:params:oauth:grant-type:link-code"


@dataclass
class Tenant:
    id: str
    service: ClientCreds
    reader: ClientCreds
    pos: ClientCreds
    extra: dict[str, Any] = field(default_factory=dict)


class Registry:
    def __init__(self, http, world, app):
        self.http, self.world, self.app = http, world, app
        self.settings = app.extensions["authserver"].settings
        self.now = app.extensions["authserver"].clock

    def tenant(self) -> Tenant:
        w = self.world
        tid = w.tenant()
        w.user(
            tid, login="admin", password="correct horse", staff_code="1234", roles=("TENANT.ADMIN",)
        )
        return Tenant(
            id=tid,
            service=w.client(tid, scope="devices:read devices:write"),
            reader=w.client(tid, scope="devices:read"),
            pos=w.client(
                tid,
                grant_types=(LINK_GRANT, "refresh_token"),
                auth_method="none",
                scope="devices:read devices:write",
            ),
        )

    def user_token(
        self,
        t: Tenant,
        login: str,
        roles: tuple[str, ...] = (),
        scope: str = "devices:read devices:write users:read users:write",
        create: bool = True,
    ) -> str:
        """An access token about a user of ``t`` (created with ``roles`` unless ``create`` is
        false), from a sign-in client (device flow, user subject) approved by the user."""
        from authserver.models import Client, db
        from tests.device_helpers import DEVICE_GRANT, approve, poll, start

        if create:
            self.world.user(t.id, login=login, password="correct horse", roles=roles)
        signin = self.world.client(
            t.id, grant_types=(DEVICE_GRANT,), auth_method="none", scope=scope
        )
        with self.app.app_context():
            db.session.get(Client, signin.client_id).device_subject = "user"
            db.session.commit()
        body = start(self.http, signin.client_id).get_json()
        approve(self.app, body["user_code"], login)
        resp = poll(self.http, signin.client_id, body["device_code"])
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()["access_token"]

    def service_token(self, t: Tenant, write: bool = True) -> str:
        creds = t.service if write else t.reader
        return cc_token(self.http, creds).get_json()["access_token"]

    def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        json: Any = None,
        key: DPoPKey | None = None,
        **kw,
    ):
        headers = dict(kw.pop("headers", {}))
        if token and key:
            headers["Authorization"] = f"DPoP {token}"
            headers["DPoP"] = key.proof(
                method,
                self.settings.issuer + path.split("?")[0],
                access_token=token,
                iat=self.now(),
            )
        elif token:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.open(path, method=method, json=json, headers=headers, **kw)

    def create_device(self, t: Tenant, token: str | None = None, **body):
        body.setdefault("name", "Till")
        resp = self.call("POST", "/api/v1/devices", token or self.service_token(t), json=body)
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()["data"]

    def link(
        self, t: Tenant, link_code: str, key: DPoPKey | None = None, ip: str | None = None, **form
    ):
        data = {
            "grant_type": LINK_GRANT,
            "link_code": link_code,
            "staff_code": "1234",
            "password": "correct horse",
            "client_id": t.pos.client_id,
            **form,
        }
        headers = {}
        if key:
            headers["DPoP"] = key.proof(
                "POST", self.settings.issuer + "/oauth/token", iat=self.now()
            )
        environ = {"REMOTE_ADDR": ip} if ip else {}
        return self.http.post("/oauth/token", data=data, headers=headers, environ_overrides=environ)

    def linked_device(self, t: Tenant) -> tuple[dict, dict, DPoPKey]:
        """A POS terminal created in the back office and linked with a DPoP key."""
        device = self.create_device(t, status="READY_TO_LINK", appCode="CLIENT")
        key = DPoPKey()
        resp = self.link(t, device["linkCode"], key)
        assert resp.status_code == 200, resp.get_json()
        return device, resp.get_json(), key


@pytest.fixture
def reg(http, world, app) -> Registry:
    return Registry(http, world, app)


def audit_events(app, tenant_id: str, type_: str) -> list:
    """The tenant's audit events of one type, read from the database (detached)."""
    from authserver.models import AuditEvent, db

    with app.app_context():
        found = list(db.session.scalars(db.select(AuditEvent).where(
            AuditEvent.tenant_id == tenant_id, AuditEvent.type == type_)))  # fmt: skip
        db.session.expunge_all()
        return found
