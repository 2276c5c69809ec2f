"""Invariant 6: no secret, password, code or token is readable in clear in the database."""

from __future__ import annotations

from sqlalchemy import text

from authserver.models import db
from tests.conftest import cc_token
from tests.device_helpers import DEVICE_GRANT
from tests.oauth2.refresh_factory import make_refresh_token


def dump_database(app) -> str:
    """Every value in every table, as text: what someone who steals the database can read."""
    out = []
    with app.app_context():
        with db.engine.connect() as conn:
            for table in db.metadata.sorted_tables:
                for row in conn.execute(text(f"SELECT * FROM {table.name}")):
                    for value in row:
                        if isinstance(value, bytes | memoryview):
                            out.append(bytes(value).decode("latin-1"))
                        else:
                            out.append(str(value))
    return "\n".join(out)


def test_invariant_6_no_secret_is_stored_in_clear(http, world, app):
    tenant = world.tenant()
    password, staff_code = "s3cret-passw0rd", "482913"
    world.user(tenant, login="bob", password=password, staff_code=staff_code)
    creds = world.client(tenant, grant_types=("client_credentials", "refresh_token"))
    access = cc_token(http, creds).get_json()["access_token"]
    refresh = make_refresh_token(app, creds)

    # Device flow and link codes too.
    kiosk = world.client(tenant, grant_types=(DEVICE_GRANT,), auth_method="none")
    flow = http.post("/oauth/device_authorization", data={"client_id": kiosk.client_id}).get_json()
    device = http.post(
        "/api/v1/devices",
        json={"name": "t", "status": "READY_TO_LINK"},
        headers={"Authorization": f"Bearer {access}"},
    ).get_json()["data"]
    codes = (
        flow["device_code"],
        flow["user_code"],
        flow["user_code"].replace("-", ""),
        device["linkCode"],
        device["linkCode"].replace("-", ""),
    )

    dump = dump_database(app)
    for secret in (
        creds.client_secret,
        password,
        staff_code,
        refresh,
        access,
        access.split(".")[2],
        *codes,
    ):
        assert secret not in dump
    assert "PRIVATE KEY" not in dump
    assert "bob" in dump  # the dump does see the tables' contents
