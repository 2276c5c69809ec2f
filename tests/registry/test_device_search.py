"""The device list's substring searches (``name``, ``q``) at fleet scale (issue 16).

On SQLite an FTS5 trigram index (migration 0020) finds the candidates of a term and the search's
own LIKE decides; on PostgreSQL trigram GIN indexes (0019) serve the same LIKE. Either way the
answers must be exactly the answers of reading every device: these tests change devices in every
way that touches a searched column and compare both paths (the index, and the walk a broad term
takes), plus SQLite's plan and the index's survival of VACUUM and of the migration's backfill.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from authserver import devices
from authserver.models import db
from tests.conftest import make_env

DEVICES = "/api/v1/devices"


def found(reg, token, query: str) -> list[str]:
    resp = reg.call("GET", f"{DEVICES}?limit=200&sortBy=name&{query}", token)
    assert resp.status_code == 200, resp.get_json()
    return [d["name"] for d in resp.get_json()["data"]]


@pytest.mark.parametrize("path", ["index", "walk"])
def test_searches_follow_every_change_of_a_device(reg, monkeypatch, path):
    if path == "walk":  # no term reads the index: the tenant's devices are read in order
        monkeypatch.setattr(devices, "FTS_CANDIDATES", -1)
    t = reg.tenant()
    svc = reg.service_token(t)
    alpha = reg.create_device(t, name="Alpha kiosk", externalId="EXT-alpha-1", tillId="till-77")
    reg.create_device(t, name="Beta kiosk")
    reg.call("POST", f"{DEVICES}/bulk", svc, json={"devices": [
        {"name": "Gamma till", "externalId": "EXT-gamma"}, {"name": "Delta till"}]})  # fmt: skip
    other = reg.tenant()
    reg.create_device(other, name="Alpha of another tenant")
    assert found(reg, svc, "q=alpha") == ["Alpha kiosk"]
    assert found(reg, svc, "q=KIOSK") == ["Alpha kiosk", "Beta kiosk"]
    assert found(reg, svc, "q=ext-gam") == ["Gamma till"]
    assert found(reg, svc, "q=ll-77") == ["Alpha kiosk"]  # the till
    assert found(reg, svc, "name=till") == ["Delta till", "Gamma till"]
    assert found(reg, svc, "name=ext-gam") == []  # name searches the name only
    # Renamed and re-identified: the old words no longer find it, the new ones do.
    reg.call("PATCH", f"{DEVICES}/{alpha['id']}", svc,
             json={"name": "Omega kiosk", "externalId": "EXT-omega", "tillId": None})  # fmt: skip
    assert found(reg, svc, "q=alpha") == []
    assert found(reg, svc, "q=omega") == ["Omega kiosk"]
    assert found(reg, svc, "q=ll-77") == []
    # Linked: its identifier is searchable.
    device, _, _ = reg.linked_device(t)
    identifier = reg.call("GET", f"{DEVICES}/{device['id']}", svc).get_json()["data"]["identifier"]
    assert found(reg, svc, f"q={identifier[2:10]}") == ["Till"]
    # Deleted, one by one or in bulk: gone from every search.
    reg.call("DELETE", f"{DEVICES}/{alpha['id']}", svc)
    assert found(reg, svc, "q=omega") == []
    reg.call("POST", f"{DEVICES}/bulk/delete", svc, json={"filter": {"name": "till"}})
    assert found(reg, svc, "q=till") == []
    assert found(reg, svc, "q=kiosk") == ["Beta kiosk"]
    # Short terms (under a trigram) and LIKE's own characters are plain text.
    reg.create_device(t, name="50% off_sale")
    assert found(reg, svc, "q=k") == ["Beta kiosk"]
    assert found(reg, svc, "q=%25%20off_") == ["50% off_sale"]
    assert found(reg, svc, 'q="%20off') == []


def sqlite_plan(query: devices.DeviceQuery, params: dict) -> list[str]:
    """SQLite's plan of the first page of ``query`` with ``params`` (``filter_params``'s)."""
    stmt = devices._search_statement(query, False, None, devices.drivers(params))
    compiled = stmt.compile(dialect=db.engine.dialect)
    values = {**compiled.params, **params, "limit": 51}
    args = tuple(values[name] for name in compiled.positiontup or ())
    return [row[3] for row in db.session.connection().exec_driver_sql(
        "EXPLAIN QUERY PLAN " + compiled.string, args)]  # fmt: skip


def _sqlite(reg) -> bool:
    with reg.app.app_context():
        return db.engine.dialect.name == "sqlite"


def test_a_selective_term_reads_the_index_and_a_broad_one_the_sort_order(reg):
    """SQLite: the plan of a selective term looks devices up by key from the FTS table (no scan
    of the tenant); a term matched by more than FTS_CANDIDATES devices walks the sort index."""
    if not _sqlite(reg):
        pytest.skip("the FTS index is SQLite's (PostgreSQL: tests/system/test_migrations.py)")
    t = reg.tenant()
    svc = reg.service_token(t)
    reg.call("POST", f"{DEVICES}/bulk", reg.service_token(t), json={"devices": [
        {"name": f"Till {i}"} for i in range(30)]})  # fmt: skip
    with reg.app.app_context():
        query = devices.DeviceQuery(sort_by="name", q="ill 17")
        params = devices.filter_params(t.id, query)
        # The probe read the index once and handed over the candidates' keys: Till 17's.
        assert json.loads(params["search_keys"]) == [
            db.session.execute(text("SELECT key FROM device_search_keys JOIN devices"
                                    " ON devices.id = device_id WHERE devices.name = 'Till 17'"
                                    " AND devices.tenant_id = :t"), {"t": t.id}).scalar_one()
        ]  # fmt: skip
        plan = sqlite_plan(query, params)
        assert any("json_each VIRTUAL TABLE" in step for step in plan), plan
        assert not any(step.startswith("SCAN devices") for step in plan), plan
        assert any("devices USING INDEX sqlite_autoindex_devices_1 (id=?)" in step
                   for step in plan), plan  # fmt: skip
    assert found(reg, svc, "q=ill%2017") == ["Till 17"]
    with reg.app.app_context():
        broad = devices.DeviceQuery(sort_by="name", q="till")
        original = devices.FTS_CANDIDATES
        try:
            devices.FTS_CANDIDATES = 29
            assert "search_keys" not in devices.filter_params(t.id, broad)
            devices.FTS_CANDIDATES = 30
            assert "search_keys" in devices.filter_params(t.id, broad)
        finally:
            devices.FTS_CANDIDATES = original


def test_a_name_search_counts_its_candidates_among_names(reg, monkeypatch):
    """The probe of a ``name`` search counts names that hold the term, not external ids, so
    a term common among other columns still reads the index for names; ``q`` counts all four."""
    if not _sqlite(reg):
        pytest.skip("the FTS index is SQLite's")
    t = reg.tenant()
    svc = reg.service_token(t)
    reg.call("POST", f"{DEVICES}/bulk", svc, json={"devices": [
        {"name": f"Till {i}", "externalId": f"ext-{i}"} for i in range(30)]
        + [{"name": "Next door"}]})  # fmt: skip
    monkeypatch.setattr(devices, "FTS_CANDIDATES", 29)
    with reg.app.app_context():
        assert "search_keys" in devices.filter_params(t.id, devices.DeviceQuery(name="ext"))
        assert "search_keys" not in devices.filter_params(t.id, devices.DeviceQuery(q="ext"))
    assert found(reg, svc, "name=ext") == ["Next door"]
    assert len(found(reg, svc, "q=ext")) == 31


def test_the_index_survives_vacuum(reg):
    """VACUUM may renumber a table's implicit rowids; the index is keyed by an INTEGER PRIMARY
    KEY of its own, which VACUUM keeps."""
    if not _sqlite(reg):
        pytest.skip("SQLite only")
    t = reg.tenant()
    svc = reg.service_token(t)
    made = reg.call("POST", f"{DEVICES}/bulk", svc, json={"devices": [
        {"name": f"Kiosk {i:03d}"} for i in range(60)]}).get_json()["data"]  # fmt: skip
    reg.call("POST", f"{DEVICES}/bulk/delete", svc,
             json={"ids": [d["id"] for d in made[::2]]})  # fmt: skip
    with reg.app.app_context():
        db.session.execute(text("DELETE FROM devices WHERE deleted_at IS NOT NULL"))
        db.session.commit()
        with db.engine.connect() as conn:
            conn.exec_driver_sql("VACUUM")
    assert found(reg, svc, "q=kiosk%20013") == ["Kiosk 013"]
    assert found(reg, svc, "q=kiosk%20012") == []
    assert len(found(reg, svc, "q=iosk")) == 30


def test_the_migration_indexes_the_devices_already_there(tmp_path):
    """Devices made before migration 0020 are found through the index after it."""
    from sqlalchemy import insert

    from authserver import create_app
    from authserver.config import load_settings
    from authserver.migrate import upgrade
    from authserver.models import Device, Tenant

    env = make_env(tmp_path / "backfill")
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    app = create_app(load_settings(env))
    with app.app_context():
        upgrade("0019")
        db.session.execute(insert(Tenant.__table__).values(
            id="ten_b", name="b", created_at=0, active=True))  # fmt: skip
        db.session.execute(insert(Device.__table__), [
            {"id": f"dev_{i}", "tenant_id": "ten_b", "name": f"Old till {i}", "status": "ACTIVE",
             "origin": "api", "created_at": i, "updated_at": i,
             "deleted_at": 5 if i == 3 else None} for i in range(5)])  # fmt: skip
        db.session.commit()
        upgrade()
        query = devices.DeviceQuery(sort_by="name", q="till 2")
        assert "search_keys" in devices.filter_params("ten_b", query)
        page = devices.search_devices("ten_b", query, None, 50)
        assert [d.id for d in page.items] == ["dev_2"]
        assert (
            devices.search_devices("ten_b", devices.DeviceQuery(q="till 3"), None, 50).items == []
        )
        db.engine.dispose()


@pytest.mark.parametrize("path", ["location", "walk"])
def test_the_location_filter_reads_the_locations_devices_or_walks(reg, monkeypatch, path):
    """On SQLite a location of at most LOCATION_CANDIDATES devices is read through its own index
    (the plan says so), a larger one by walking the sort index; both answer the same lists,
    pages, counts and bulk selections, after devices move between locations or are deleted."""
    if path == "walk":
        monkeypatch.setattr(devices, "LOCATION_CANDIDATES", -1)
    t = reg.tenant()
    svc = reg.service_token(t)
    north, south = (
        reg.call("POST", "/api/v1/locations", svc, json={"name": n}).get_json()["data"]["id"]
        for n in ("North", "South")
    )
    made = reg.call("POST", f"{DEVICES}/bulk", svc, json={"devices": [
        {"name": f"Till {i:02d}", "locationIds": [[north], [south], [north, south], []][i % 4]}
        for i in range(20)]}).get_json()["data"]  # fmt: skip

    def names(query: str) -> list[str]:
        out, cursor = [], ""
        while True:  # pages of 3, so that the cursor is used
            page = reg.call("GET", f"{DEVICES}?limit=3&sortBy=name&{query}{cursor}", svc)
            assert page.status_code == 200, page.get_json()
            body = page.get_json()
            out += [d["name"] for d in body["data"]]
            if not body.get("nextCursor"):
                return out
            cursor = f"&cursor={body['nextCursor']}"

    def count(query: str) -> int:
        body = reg.call("GET", f"{DEVICES}?limit=1&count=true&{query}", svc).get_json()
        assert body["countExact"] is True
        return int(body["count"])

    in_north = [f"Till {i:02d}" for i in range(20) if i % 4 in (0, 2)]
    assert names(f"locationId={north}") == in_north
    assert count(f"locationId={north}") == 10
    assert names(f"locationId={north}&name=till%201") == [n for n in in_north if "Till 1" in n]
    # Moved out of North, and deleted: gone from North's list.
    reg.call("PATCH", f"{DEVICES}/{made[0]['id']}", svc, json={"locationIds": [south]})
    reg.call("DELETE", f"{DEVICES}/{made[2]['id']}", svc)
    assert names(f"locationId={north}") == in_north[2:]
    assert count(f"locationId={north}") == 8 and count(f"locationId={south}") == 10
    other = reg.tenant()
    assert names(f"locationId={north}") == names(f"locationId={north}")  # stable
    assert reg.call("GET", f"{DEVICES}?locationId={north}",
                    reg.service_token(other)).get_json()["data"] == []  # fmt: skip
    blocked = reg.call("POST", f"{DEVICES}/bulk/block", svc,
                       json={"filter": {"locationId": north}}).get_json()["data"]  # fmt: skip
    assert blocked["changed"] == 8
    if path == "location" and _sqlite(reg):
        with reg.app.app_context():
            query = devices.DeviceQuery(sort_by="name", location_id=north)
            params = devices.filter_params(t.id, query)
            assert devices.drivers(params) == (False, True)
            plan = sqlite_plan(query, params)
            assert not any(step.startswith("SCAN devices") for step in plan), plan
            assert any("device_locations" in step and "location_id=?" in step
                       for step in plan), plan  # fmt: skip
