"""The device list as one tenant grows: latency of each read at 1,000 → N devices (issue 16).

    .venv/bin/python bench/scale.py                        # embedded SQLite, up to 100,000
    .venv/bin/python bench/scale.py --max 1000000          # up to a million (minutes to load)
    DATABASE_URL=postgresql://... .venv/bin/python bench/scale.py
    .venv/bin/python bench/scale.py --people               # the people list instead

Loads devices straight into the database (two tenants of the same size: the second proves that
another tenant's rows cost nothing) and analyses the table, then times each request through the app in process (the
WSGI app called directly, a service token with devices:read), the median of 7, in milliseconds:
the first page of each sort, a page deep in each sort (its cursor points at the middle of the
tenant), each search, the list with its count, a count filtered by status and appCode, one
location's devices (each location has 20, as a store has a few tills) with their count, the
second tenant's list, and a bulk block of
1,000 devices by ids (POST /api/v1/devices/bulk/block: their tokens revoked, each audited; the
median of 3, each a different 1,000). Prints one table; figures move from machine to machine,
the growth from row to row is what to read.

With ``--people`` it loads people instead (a tenant of customers with one staff member in a
thousand and one disabled person in five hundred, as a shop's loyalty scheme has) and times the
people list: its first page and a page deep in login order, a login and a name search, the
staff among the customers (``kind``), the disabled (``active``), the second tenant's list, and
a bulk disable of 1,000 people by ids (``POST /api/v1/users/bulk/disable``, each audited and
their tokens revoked; the median of 3).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZES = (1_000, 10_000, 100_000, 1_000_000)
REPEAT = 7
CHUNK = 20_000
PER_LOCATION = 20  # devices per location, as a store has a few tills: a fleet grows by stores


def columns() -> list[tuple[str, str]]:
    """(label, query) of each read, the deep ones with ``{cursor:SORT}`` filled in later."""
    return [
        ("list (createdAt)", "limit=50"),
        ("deep page (createdAt)", "limit=50&cursor={createdAt}"),
        ("sortBy=name", "limit=50&sortBy=name"),
        ("deep page (name)", "limit=50&sortBy=name&cursor={name}"),
        ("deep page (updatedAt, desc)", "limit=50&sortBy=updatedAt&sortOrder=desc&cursor={updatedAt}"),
        ("deep page (lastActivityAt)", "limit=50&sortBy=lastActivityAt&cursor={lastActivityAt}"),
        ("name substring", "limit=50&name=ill {middle}"),
        ("q search", "limit=50&q=xt-{middle}"),
        ("externalId (exact)", "limit=50&externalId=ext-{middle}"),
        ("list + count", "limit=50&count=true"),
        ("count, status + appCode", "limit=50&count=true&status=ACTIVE&appCode=CLIENT"),
        ("location (20 devices) + count", "limit=50&count=true&locationId={location}"),
        # A term every device matches ("Till 7", "till-7"): more matches than a count reads exactly.
        ("broad q + count", "limit=50&count=true&q=till"),
        ("list, 2nd tenant", "limit=50"),
    ]  # fmt: skip


class Bench:
    def __init__(self) -> None:
        instance = tempfile.mkdtemp(prefix="authserver-scale-")
        os.environ.setdefault("AUTHSERVER_INSTANCE_PATH", instance)
        for name in ("AUTHSERVER_KEY_ENCRYPTION_KEY", "AUTHSERVER_SECRET_KEY"):
            if not os.environ.get(name) and not os.environ.get(f"{name}_FILE"):
                os.environ[f"{name}_FILE"] = os.path.join(instance, name.lower())
        os.environ.setdefault("AUTHSERVER_PURGE_INTERVAL", "0")
        os.environ.setdefault("AUTHSERVER_LOG_LEVEL", "WARNING")  # no access log on stdout
        import logging

        from authserver import create_app
        from authserver.admin import create_client, create_tenant, prepare_database
        from authserver.config import load_settings

        logging.getLogger("authserver").setLevel(logging.WARNING)
        self.app = create_app(load_settings(dict(os.environ)))
        self.http = self.app.test_client()
        with self.app.app_context():
            prepare_database()
            self.tenants = [create_tenant(f"scale-{i}-{time.time_ns()}").id for i in (1, 2)]
            from authserver.models import Tenant, db

            creds = []
            for tenant in self.tenants:
                made = create_client(
                    db.session.get(Tenant, tenant),
                    "scale bench",
                    ["client_credentials"],
                    scope="devices:read devices:write users:read users:write",
                )
                creds.append((made.client.client_id, made.client_secret or ""))  # fmt: skip
        self.creds = creds
        self.tokens: list[str] = []
        self.count = 0

    def new_tokens(self) -> None:
        """Fresh service tokens: loading a million devices can outlast a token's lifetime."""
        self.tokens = []
        for pair in self.creds:
            resp = self.http.post("/oauth/token", data={"grant_type": "client_credentials"},
                                  auth=pair)  # fmt: skip
            self.tokens.append(resp.get_json()["access_token"])

    def grow_to(self, size: int) -> float:
        """Add devices to both tenants until each holds ``size``; seconds taken."""
        from sqlalchemy import insert, text

        from authserver.models import Device, DeviceLocation, Location, db
        from authserver.security import new_id

        started = time.perf_counter()
        t0 = 1_700_000_000_000
        with self.app.app_context():
            while self.count < size:
                n = min(CHUNK, size - self.count)
                for tenant in self.tenants:
                    rows = []
                    for i in range(self.count, self.count + n):
                        rows.append({
                            "id": new_id("dev"), "tenant_id": tenant, "name": f"Till {i}",
                            "status": "ACTIVE", "origin": "api", "app_code": "CLIENT",
                            "external_id": f"ext-{i}", "identifier": f"SN{i:09d}",
                            "till_id": f"till-{i % 50}", "created_at": t0 + i,
                            "updated_at": t0 + (i * 7919) % size,
                            "last_activity_at": None if i % 3 == 0 else t0 + (i * 104729) % size,
                        })  # fmt: skip
                    for k in range(0, n, 1000):  # multi-row inserts, as a bulk create makes
                        db.session.execute(insert(Device.__table__).values(rows[k : k + 1000]))
                    places = [{"id": f"loc_{tenant}_{j}", "tenant_id": tenant, "name": f"Store {j}",
                               "kind": "store", "created_at": t0, "updated_at": t0}
                              for j in range(self.count // PER_LOCATION,
                                             -(-(self.count + n) // PER_LOCATION))]  # fmt: skip
                    db.session.execute(insert(Location.__table__), places)
                    db.session.execute(insert(DeviceLocation.__table__), [
                        {"device_id": row["id"],
                         "location_id": f"loc_{tenant}_{(self.count + k) // PER_LOCATION}"}
                        for k, row in enumerate(rows)])  # fmt: skip
                db.session.commit()
                self.count += n
            # Statistics as a database in service has them (autovacuum's on PostgreSQL): right
            # after a bulk load the planner would otherwise cost the table as it was before.
            db.session.execute(text(
                "ANALYZE devices, device_locations" if db.engine.dialect.name == "postgresql"
                else "ANALYZE"))  # fmt: skip
            db.session.commit()
        return time.perf_counter() - started

    def cursors(self) -> dict[str, str]:
        """A cursor at the middle of the tenant for each sort, as the API would give it."""
        from sqlalchemy import select

        from authserver.devices import SORT_KEYS
        from authserver.models import Device, db
        from authserver.registry.pagination import encode

        found = {}
        with self.app.app_context():
            for sort, order in (("createdAt", "asc"), ("name", "asc"), ("updatedAt", "desc"),
                                ("lastActivityAt", "asc")):  # fmt: skip
                key = SORT_KEYS[sort][0]
                row = db.session.execute(
                    select(key.label("k"), Device.id)
                    .where(Device.tenant_id == self.tenants[0])
                    .order_by(key, Device.id)
                    .offset(self.count // 2)
                    .limit(1)
                ).one()
                found[sort] = encode(row.k, row.id, f"devices:{sort}:{order}")
        return found

    def time(self, query: str, full: bool, tenant: int = 0) -> float:
        """The median ms of ``query``; with ``full``, each answer must be a whole page."""
        return self.time_path("/api/v1/devices", query, full, tenant)

    def time_path(self, path: str, query: str, full: bool, tenant: int = 0) -> float:
        headers = {"Authorization": f"Bearer {self.tokens[tenant]}"}
        took = []
        for _ in range(REPEAT):
            started = time.perf_counter()
            resp = self.http.get(f"{path}?{query}", headers=headers)
            took.append((time.perf_counter() - started) * 1000)
            assert resp.status_code == 200, resp.get_json()
            items = resp.get_json()["data"]
            assert items and (len(items) == 50 or not full), (query, len(items))
        return statistics.median(took)

    def time_bulk_block(self, n: int = 1000) -> float:
        """The median ms of 3 bulk blocks of ``n`` devices by ids (from the middle of the first
        tenant), each undone by a bulk unblock (not timed) before the next."""
        from sqlalchemy import select

        from authserver.models import Device

        ids = (
            select(Device.id)
            .where(Device.tenant_id == self.tenants[0],
                   Device.created_at >= 1_700_000_000_000 + (self.count - n) // 2)
            .order_by(Device.created_at)
            .limit(n)
        )  # fmt: skip
        return self.timed_bulk(ids, "/api/v1/devices/bulk/block", "/api/v1/devices/bulk/unblock", n)

    def timed_bulk(self, ids_stmt: Any, do: str, undo: str, at_least: int) -> float:
        """The median ms of 3 bulk changes (``do``) of the ids ``ids_stmt`` selects, each undone
        by ``undo`` (not timed) before the next; each must change every one of them, and at
        least ``at_least``."""
        from authserver.models import db

        headers = {"Authorization": f"Bearer {self.tokens[0]}"}
        took = []
        for _ in range(3):
            with self.app.app_context():
                ids = list(db.session.scalars(ids_stmt))
            started = time.perf_counter()
            resp = self.http.post(do, json={"ids": ids}, headers=headers)
            took.append((time.perf_counter() - started) * 1000)
            assert resp.status_code == 200, resp.get_json()
            assert resp.get_json()["data"]["changed"] == len(ids) >= at_least, resp.get_json()
            resp = self.http.post(undo, json={"ids": ids}, headers=headers)
            assert resp.get_json()["data"]["changed"] == len(ids), resp.get_json()
        return statistics.median(took)


FIRST_NAMES = ("Anna", "Piotr", "Maria", "Jan", "Ewa", "Tomasz", "Zofia", "Adam", "Olga", "Marek")
LAST_NAMES = ("Nowak", "Kowalski", "Wisniewski", "Wojcik", "Kaminski", "Lewandowski", "Zielinski",
              "Szymanski")  # fmt: skip


def people_columns() -> list[tuple[str, str]]:
    return [
        ("list (login)", "limit=50"),
        ("deep page (login)", "limit=50&cursor={login}"),
        ("login substring", "limit=50&login=user{middle}@"),
        ("name substring", "limit=50&name={last_name}"),
        ("staff among customers (kind)", "limit=50&kind=staff"),
        ("disabled (active=false)", "limit=50&active=false"),
        ("list, 2nd tenant", "limit=50"),
    ]


class PeopleBench(Bench):
    def grow_to(self, size: int) -> float:
        """Add people to both tenants until each holds ``size``; seconds taken."""
        from sqlalchemy import insert, text

        from authserver.models import User, db

        started = time.perf_counter()
        with self.app.app_context():
            while self.count < size:
                n = min(CHUNK, size - self.count)
                for k, tenant in enumerate(self.tenants):
                    rows = [{
                        "id": f"usr_{k}_{i:09d}", "tenant_id": tenant,
                        "login": f"user{i}@shop{i % 97}.example", "password_hash": "",
                        "kind": "staff" if i % 1000 == 0 else "customer", "roles": [],
                        "active": i % 500 != 7, "created_at": 1_700_000_000_000 + i,
                        "first_name": FIRST_NAMES[i % 10],
                        "last_name": f"{LAST_NAMES[i % 8]}{i}", "trusted": False,
                    } for i in range(self.count, self.count + n)]  # fmt: skip
                    for j in range(0, n, 1000):
                        db.session.execute(insert(User.__table__).values(rows[j : j + 1000]))
                db.session.commit()
                self.count += n
            db.session.execute(text(
                "ANALYZE users" if db.engine.dialect.name == "postgresql" else "ANALYZE"))  # fmt: skip
            db.session.commit()
        return time.perf_counter() - started

    def cursors(self) -> dict[str, str]:
        """A cursor at the middle of the tenant in login order, as the API would give it."""
        from sqlalchemy import select

        from authserver.models import User, db
        from authserver.registry.pagination import encode

        with self.app.app_context():
            row = db.session.execute(
                select(User.login, User.id)
                .where(User.tenant_id == self.tenants[0])
                .order_by(User.login, User.id)
                .offset(self.count // 2)
                .limit(1)
            ).one()
            return {"login": encode(row.login, row.id, "users:login")}

    def time(self, query: str, full: bool, tenant: int = 0) -> float:
        return self.time_path("/api/v1/users", query, full, tenant)

    def time_bulk_block(self, n: int = 1000) -> float:
        """The median ms of 3 bulk disables of ``n`` people by ids (from the middle of the
        first tenant), each undone by a bulk enable (not timed) before the next: all of them
        but the few already disabled, where the tenant has no more."""
        from sqlalchemy import select

        from authserver.models import User

        ids = (
            select(User.id)
            .where(User.tenant_id == self.tenants[0], User.active.is_(True),
                   User.created_at >= 1_700_000_000_000 + (self.count - n) // 2)
            .order_by(User.created_at)
            .limit(n)
        )  # fmt: skip
        return self.timed_bulk(ids, "/api/v1/users/bulk/disable", "/api/v1/users/bulk/enable",
                               n - 10)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max", type=int, default=100_000, help="the largest tenant (default 100000)")
    ap.add_argument("--people", action="store_true", help="the people list instead of devices")
    args = ap.parse_args()
    if args.people:
        people(args.max)
        return
    bench = Bench()
    backend = "postgresql" if os.environ.get("DATABASE_URL") else "sqlite"
    reads = columns()
    print(f"Device list latency, ms (median of {REPEAT}), in process, backend {backend}; "
          "two tenants of the size shown")  # fmt: skip
    labels = [label for label, _ in reads] + ["bulk block of 1,000"]
    print("| devices in the tenant | " + " | ".join(labels) + " |")
    print("| ---: |" + " ---: |" * len(labels))
    for size in [s for s in SIZES if s <= args.max]:
        loaded = bench.grow_to(size)
        bench.new_tokens()
        cursors = {k: urlencode({"c": v})[2:] for k, v in bench.cursors().items()}
        cells: list[Any] = []
        for label, query in reads:
            location = f"loc_{bench.tenants[0]}_{size // 2 // PER_LOCATION}"
            filled = query.format(middle=size // 2, location=location, **cursors).replace(
                " ", "%20"
            )
            full = (
                "sort" in label or "page" in label or "list" in label
            ) and "location" not in label
            tenant = 1 if "2nd tenant" in label else 0
            cells.append(f"{bench.time(filled, full, tenant):.1f}")
        cells.append(f"{bench.time_bulk_block():.0f}")
        print(f"| {size:,} | " + " | ".join(cells) + " |", flush=True)
        print(f"  (loaded in {loaded:.0f} s)", file=sys.stderr, flush=True)


def people(largest: int) -> None:
    bench = PeopleBench()
    backend = "postgresql" if os.environ.get("DATABASE_URL") else "sqlite"
    reads = people_columns()
    print(f"People list latency, ms (median of {REPEAT}), in process, backend {backend}; "
          "two tenants of the size shown")  # fmt: skip
    labels = [label for label, _ in reads] + ["bulk disable of 1,000"]
    print("| people in the tenant | " + " | ".join(labels) + " |")
    print("| ---: |" + " ---: |" * len(labels))
    for size in [s for s in SIZES if s <= largest]:
        loaded = bench.grow_to(size)
        bench.new_tokens()
        cursors = {k: urlencode({"c": v})[2:] for k, v in bench.cursors().items()}
        middle = size // 2
        cells: list[Any] = []
        for label, query in reads:
            filled = query.format(middle=middle, last_name=f"{LAST_NAMES[middle % 8]}{middle}",
                                  **cursors)  # fmt: skip
            full = "list" in label or "page" in label
            tenant = 1 if "2nd tenant" in label else 0
            cells.append(f"{bench.time(filled, full, tenant):.1f}")
        cells.append(f"{bench.time_bulk_block():.0f}")
        print(f"| {size:,} | " + " | ".join(cells) + " |", flush=True)
        print(f"  (loaded in {loaded:.0f} s)", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
