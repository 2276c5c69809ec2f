"""The property that makes resource reads fast, held without a clock: a warm read of the registry
asks the state store once for every revocation entry that could apply to its token, checks a DPoP
proof's replay with one more call, and writes nothing to the database."""

from __future__ import annotations

from sqlalchemy import event

from authserver.models import db


class Recorder:
    """Every call to the app's state store and every SQL statement of its engine."""

    def __init__(self, app, monkeypatch):
        self.store_calls: list[str] = []
        self.statements: list[str] = []
        store = app.extensions["authserver"].store
        for name in (
            "claim_once", "claim_or_hold", "hit", "hit_many", "count", "give_back",
            "put", "get", "get_many", "delete",
        ):  # fmt: skip
            monkeypatch.setattr(store, name, self._wrap(name, getattr(store, name)))
        with app.app_context():
            self.engine = db.engine
        event.listen(self.engine, "before_cursor_execute", self._statement)

    def _wrap(self, name, fn):
        def call(*args, **kwargs):
            self.store_calls.append(name)
            return fn(*args, **kwargs)

        return call

    def _statement(self, conn, cursor, statement, *args):
        self.statements.append(statement)

    def stop(self):
        event.remove(self.engine, "before_cursor_execute", self._statement)

    def writes(self):
        return [s for s in self.statements if not s.lstrip().upper().startswith("SELECT")]


def test_a_warm_service_read_asks_the_store_once_and_writes_nothing(reg, app, monkeypatch):
    t = reg.tenant()
    token = reg.service_token(t)
    assert reg.call("GET", "/api/v1/devices?limit=50", token).status_code == 200  # warm
    rec = Recorder(app, monkeypatch)
    try:
        assert reg.call("GET", "/api/v1/devices?limit=50", token).status_code == 200
    finally:
        rec.stop()
    assert rec.store_calls == ["get_many"]
    assert rec.writes() == []


def test_a_warm_terminal_read_checks_replay_and_revocation_and_writes_nothing(
    reg, app, monkeypatch
):
    t = reg.tenant()
    _, tokens, key = reg.linked_device(t)
    token = tokens["access_token"]
    assert reg.call("GET", "/api/v1/devices/me", token, key=key).status_code == 200  # warm
    rec = Recorder(app, monkeypatch)
    try:
        assert reg.call("GET", "/api/v1/devices/me", token, key=key).status_code == 200
    finally:
        rec.stop()
    # The proof's jti claimed once (RFC 9449 §11.1), then every revocation entry in one read.
    assert sorted(rec.store_calls) == ["claim_once", "get_many"]
    assert rec.writes() == []  # lastActivityAt was written by the first read, within the minute


def test_a_page_of_devices_is_one_statement_that_renders_its_items(reg, app, monkeypatch):
    """The list's items come out of the database as JSON text (authserver.sqljson): no
    statement per item, none for their locations, nothing rebuilt in Python."""
    t = reg.tenant()
    token = reg.service_token(t)
    loc = reg.call("POST", "/api/v1/locations", token, json={"name": "Main", "kind": "store"})
    for i in range(5):
        reg.create_device(t, name=f"Till {i}", locationIds=[loc.get_json()["data"]["id"]])
    assert reg.call("GET", "/api/v1/devices?limit=3", token).status_code == 200  # warm
    direct = app.extensions["authserver"].direct
    reads: list[list] = []

    sql: list[str] = []

    def all_(stmt, params):
        rows = type(direct).all(direct, stmt, params)
        reads.append(rows)
        sql.append(str(stmt.compile(dialect=rec.engine.dialect)))
        return rows

    monkeypatch.setattr(direct, "all", all_)
    monkeypatch.setattr(direct, "write", lambda *a: (_ for _ in ()).throw(AssertionError(a)))
    rec = Recorder(app, monkeypatch)
    try:
        body = reg.call("GET", "/api/v1/devices?limit=3", token).get_json()
    finally:
        rec.stop()
    assert len(body["data"]) == 3 and body["hasMore"] is True
    assert len(reads) == 1 and len(reads[0]) == 4  # the page and one more, in one statement
    assert all(isinstance(row.item, str) for row in reads[0])  # rendered by the database
    if rec.engine.dialect.name == "postgresql":
        # Rendered when each device was written (migration 0024), read as one column.
        assert "devices.api_json" in sql[0] and "row_to_json" not in sql[0]
    else:
        assert "json_object(" in sql[0]
    assert rec.statements == []  # nothing through the session either
    assert rec.store_calls == ["get_many"]  # the token's revocation entries
