"""The people list at scale (issue 16): its ``login`` and ``name`` searches read trigram indexes
(migration 0025), its ``kind`` and ``active`` filters an index in the list's order.

On SQLite an FTS5 trigram table of login, first and last name finds the candidates of a search
and the search's own LIKE decides; on PostgreSQL trigram GIN indexes serve the same LIKE
(tests/system/test_migrations.py reads their plan). Either way the answers must be exactly the
answers of reading every person: these tests change people in every way that touches a searched
column and compare both paths (the index, and the walk a broad search takes), plus SQLite's plan
and the migration's backfill.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, text

from authserver import users
from authserver.models import User, db
from tests.conftest import cc_token, make_env

USERS = "/api/v1/users"


@pytest.fixture
def t(reg):
    return reg.tenant()


@pytest.fixture
def svc(reg, world, t):
    creds = world.client(t.id, scope="users:read users:write")
    return cc_token(reg.http, creds).get_json()["access_token"]


def found(reg, token, query: str) -> list[str]:
    resp = reg.call("GET", f"{USERS}?limit=200&{query}", token)
    assert resp.status_code == 200, resp.get_json()
    return [u["login"] for u in resp.get_json()["data"]]


def made(reg, token, **body) -> dict:
    resp = reg.call("POST", USERS, token, json=body)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["data"]


def _sqlite(reg) -> bool:
    with reg.app.app_context():
        return db.engine.dialect.name == "sqlite"


@pytest.mark.parametrize("path", ["index", "walk"])
def test_searches_follow_every_change_of_a_person(reg, world, t, svc, monkeypatch, path):
    if path == "walk":  # no search reads the index: the tenant's people are read in login order
        monkeypatch.setattr(users, "SEARCH_CANDIDATES", -1)
    probed = []  # what the index answered, each time it was asked
    original = users._search_keys
    monkeypatch.setattr(users, "_search_keys", lambda f: probed.append(original(f)) or probed[-1])
    anna = made(reg, svc, login="anna.nowak@shop.example", firstName="Anna", lastName="Nowak")
    bob = made(reg, svc, login="bob@shop.example", firstName="Bob", lastName="Kowalski")
    resp = reg.call("POST", f"{USERS}/bulk", svc, json={"users": [
        {"login": "gamma@depot.example", "lastName": "Gamma"},
        {"login": "delta@depot.example", "firstName": "Nowakowska"}]})  # fmt: skip
    assert resp.status_code == 201, resp.get_json()
    other = reg.tenant()
    other_svc = cc_token(
        reg.http, world.client(other.id, scope="users:read users:write")
    ).get_json()
    made(reg, other_svc["access_token"], login="anna.nowak@other.example", lastName="Nowak")
    assert found(reg, svc, "login=nowak") == ["anna.nowak@shop.example"]
    assert found(reg, svc, "login=SHOP.EX") == ["anna.nowak@shop.example", "bob@shop.example"]
    assert found(reg, svc, "name=nowak") == ["anna.nowak@shop.example", "delta@depot.example"]
    assert found(reg, svc, "name=KOWAL") == ["bob@shop.example"]
    assert found(reg, svc, "name=shop") == []  # name searches the first and last name only
    assert found(reg, svc, "login=depot&name=nowak") == ["delta@depot.example"]
    # Renamed: the old words no longer find them, the new ones do.
    resp = reg.call("PATCH", f"{USERS}/{anna['id']}", svc,
                    json={"login": "anna.lis@shop.example", "lastName": "Lis"})  # fmt: skip
    assert resp.status_code == 200, resp.get_json()
    assert found(reg, svc, "login=nowak") == []
    assert found(reg, svc, "name=nowak") == ["delta@depot.example"]
    assert found(reg, svc, "login=a.lis") == ["anna.lis@shop.example"]
    # Replaced: the names not sent are cleared, and no longer found.
    resp = reg.call("PUT", f"{USERS}/{bob['id']}", svc, json={"login": "bob@shop.example"})
    assert resp.status_code == 200, resp.get_json()
    assert found(reg, svc, "name=kowal") == []
    # A person's own change of their name.
    own = reg.user_token(t, "carol@shop.example")
    resp = reg.call("PATCH", f"{USERS}/me", own, json={"lastName": "Zielinska"})
    assert resp.status_code == 200, resp.get_json()
    assert found(reg, svc, "name=zielin") == ["carol@shop.example"]
    # Deleted, one by one or in bulk by a search: gone from every search.
    assert reg.call("DELETE", f"{USERS}/{anna['id']}", svc).status_code == 200
    assert found(reg, svc, "login=a.lis") == []
    resp = reg.call("POST", f"{USERS}/bulk/delete", svc, json={"filter": {"login": "depot"}})
    assert resp.status_code == 200, resp.get_json()
    assert found(reg, svc, "login=depot") == []
    assert found(reg, svc, "login=shop.ex") == ["bob@shop.example", "carol@shop.example"]
    # Short terms (under a trigram) and LIKE's own characters are plain text.
    made(reg, svc, login="50% off_sale@shop.example")
    assert found(reg, svc, "login=b@") == ["bob@shop.example"]
    assert found(reg, svc, "login=%25%20off_") == ["50% off_sale@shop.example"]
    assert found(reg, svc, 'login="%20off') == []
    # A quote is a character of the term, not FTS5 syntax.
    made(reg, svc, login='say"hi"@shop.example')
    assert found(reg, svc, 'login=y"hi"') == ['say"hi"@shop.example']
    # A term whose lowercase is longer than itself (Turkish dotted I: "i" and a combining dot)
    # finds what the substring test finds: the index is asked for the lowered term.
    made(reg, svc, login="i\u0307stanbul@shop.example")
    assert found(reg, svc, "login=%C4%B0stan") == ["i\u0307stanbul@shop.example"]
    # The other tenant's person was never in any of these answers, and is in its own.
    assert found(reg, other_svc["access_token"], "name=nowak") == ["anna.nowak@other.example"]
    if _sqlite(reg):  # the index answered (or, walking, said "too many") every long term
        assert any(keys is not None for keys in probed) == (path == "index"), probed


def sqlite_plan(tenant_id: str, filters: dict[str, str]) -> list[str]:
    stmt = users.filtered_users(select(User.id), tenant_id, filters)
    stmt = stmt.order_by(User.login, User.id).limit(51)
    compiled = stmt.compile(dialect=db.engine.dialect)
    args = tuple(compiled.params[name] for name in compiled.positiontup or ())
    return [row[3] for row in db.session.connection().exec_driver_sql(
        "EXPLAIN QUERY PLAN " + compiled.string, args)]  # fmt: skip


def test_a_selective_search_reads_the_index_and_a_broad_one_walks(reg, t, svc):
    """SQLite: a selective search looks people up by id from the FTS table's candidates (no
    walk of the tenant); one with more than SEARCH_CANDIDATES candidates walks login order."""
    if not _sqlite(reg):
        pytest.skip("the FTS index is SQLite's (PostgreSQL: tests/system/test_migrations.py)")
    resp = reg.call("POST", f"{USERS}/bulk", svc, json={"users": [
        {"login": f"user{i}@shop.example", "lastName": f"Nowak{i}"} for i in range(30)]})  # fmt: skip
    assert resp.status_code == 201, resp.get_json()
    with reg.app.app_context():
        keys = users._search_keys({"login": "user17@"})
        assert keys is not None
        assert json.loads(keys) == [db.session.execute(text(
            "SELECT key FROM user_search_keys JOIN users ON users.id = user_id"
            " WHERE users.login = 'user17@shop.example'")).scalar_one()]  # fmt: skip
        plan = sqlite_plan(t.id, {"login": "user17@"})
        assert any("json_each VIRTUAL TABLE" in step for step in plan), plan
        assert not any(step.startswith("SCAN users") for step in plan), plan
        # Looked up by id, not found by walking the tenant's people in login order.
        assert any(step.startswith("SEARCH users") and "(id=?)" in step for step in plan), plan
        assert not any("tenant_id=?" in step for step in plan), plan
        original = users.SEARCH_CANDIDATES
        try:
            users.SEARCH_CANDIDATES = 29
            assert users._search_keys({"login": "@shop"}) is None
            assert users._search_keys({"name": "nowak"}) is None
            # Both filters narrow the probe: logins with "@shop" and names with "nowak1".
            assert len(json.loads(users._search_keys({"login": "@shop", "name": "nowak1"}))) == 11
            users.SEARCH_CANDIDATES = 30
            assert users._search_keys({"login": "@shop"}) is not None
        finally:
            users.SEARCH_CANDIDATES = original
        assert users._search_keys({"login": "17"}) is None  # shorter than a trigram
    assert found(reg, svc, "login=user17@") == ["user17@shop.example"]
    assert found(reg, svc, "name=nowak2&login=user2") == sorted(
        ["user2@shop.example", *(f"user2{i}@shop.example" for i in range(10))]
    )


def test_kind_and_active_read_an_index_in_login_order(reg, t, svc):
    """A filter by kind or by active reads a range of an index on (tenant, kind or active,
    login): a tenant of a million customers lists its few staff without reading the rest."""
    made(reg, svc, login="zed@shop.example", kind="customer")
    made(reg, svc, login="amy@shop.example", active=False)
    assert found(reg, svc, "kind=customer") == ["zed@shop.example"]
    assert found(reg, svc, "active=false") == ["amy@shop.example"]
    if not _sqlite(reg):
        return  # PostgreSQL's planner chooses by its statistics; the index exists on both
    with reg.app.app_context():
        for filters, index in (({"kind": "staff"}, "ix_users_tenant_kind_login"),
                               ({"active": "false"}, "ix_users_tenant_active_login")):  # fmt: skip
            plan = sqlite_plan(t.id, filters)
            assert any(step.startswith("SEARCH users") and index in step for step in plan), plan
            assert not any("TEMP B-TREE" in step for step in plan), plan  # already in order


def test_the_migration_indexes_the_people_already_there(tmp_path):
    """People made before migration 0025 are found through the index after it."""
    from sqlalchemy import insert

    from authserver import create_app
    from authserver.config import load_settings
    from authserver.migrate import upgrade
    from authserver.models import Tenant

    env = make_env(tmp_path / "backfill")
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    app = create_app(load_settings(env))
    with app.app_context():
        upgrade("0024")
        db.session.execute(insert(Tenant.__table__).values(
            id="ten_b", name="b", created_at=0, active=True))  # fmt: skip
        db.session.execute(insert(User.__table__), [
            {"id": f"usr_{i}", "tenant_id": "ten_b", "login": f"old{i}@shop.example",
             "password_hash": "", "kind": "staff", "roles": [], "active": True, "created_at": i,
             "last_name": f"Kowalski{i}"} for i in range(5)])  # fmt: skip
        db.session.commit()
        upgrade()
        assert users._search_keys({"login": "old2@"}) is not None
        page = users.list_users("ten_b", {"login": "old2@"}, None, 50)
        assert [u.id for u in page.items] == ["usr_2"]
        page = users.list_users("ten_b", {"name": "kowalski3"}, None, 50)
        assert [u.id for u in page.items] == ["usr_3"]
        db.engine.dispose()
