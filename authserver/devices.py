"""Devices and locations of one tenant (seeds 000 and 001): the registry's domain operations.

Every function takes the tenant id first, from its caller, who took it from the token; nothing
here reads a tenant from the request, and every query is filtered by it (DESIGN invariant 4).
Blocking, unlinking and deleting a device revoke its tokens in the same transaction as the change
(invariant 3). Errors are ``authserver.problems`` types; the wire format is ``serialize``'s.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import (
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal_column,
    select,
    table,
    text,
    union,
    update,
)
from sqlalchemy import column as sql_column
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from authserver import audit, authorization, credentials, revocation, tokens, trigram
from authserver.direct import direct
from authserver.models import (
    AppCode,
    Device,
    DeviceLocation,
    DeviceOrigin,
    DeviceStatus,
    Location,
    User,
    db,
)
from authserver.paging import After, Page, containing, keyset, keyset_page
from authserver.problems import ConflictProblem, NotFoundProblem, ValidationProblem
from authserver.security import new_id, now, now_float, now_ms
from authserver.state import get_state

log = logging.getLogger("authserver.devices")

STATUSES = tuple(DeviceStatus)
ORIGINS = tuple(DeviceOrigin)
APP_CODES = tuple(AppCode)
LOCATION_KINDS = ("store", "venue", "warehouse", "other")
ACTIVITY_INTERVAL = 60

_ID = re.compile(r"[A-Za-z0-9_-]{1,48}")


# -- locations -----------------------------------------------------------------------------------


def get_location(tenant_id: str, location_id: str) -> Location:
    loc = db.session.get(Location, location_id) if _ID.fullmatch(location_id) else None
    if loc is None or loc.tenant_id != tenant_id:
        raise NotFoundProblem("No such location.")
    return loc


def list_locations(tenant_id: str, after: After, limit: int) -> Page[Location]:
    query = select(Location).where(Location.tenant_id == tenant_id)
    return keyset_page(query, Location.name, Location.id, after, limit, lambda x: x.name)


def locations_for_picker(tenant_id: str, only: Iterable[str] | None = None) -> list[Location]:
    """The tenant's locations by name (``only`` these ids when given), for a person to choose."""
    query = select(Location).where(Location.tenant_id == tenant_id)
    if only is not None:
        query = query.where(Location.id.in_(list(only)))
    return list(db.session.scalars(query.order_by(Location.name)))


def create_location(tenant_id: str, data: dict[str, Any]) -> Location:
    t = now()
    loc = Location(id=new_id("loc"), tenant_id=tenant_id, created_at=t, updated_at=t, **data)
    db.session.add(loc)
    db.session.commit()
    return loc


def update_location(loc: Location, data: dict[str, Any]) -> Location:
    for key, value in data.items():
        setattr(loc, key, value)
    loc.updated_at = now()
    db.session.commit()
    return loc


def check_location_ids(tenant_id: str, ids: Iterable[str]) -> list[str]:
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return []
    if not all(_ID.fullmatch(i) for i in wanted):
        raise ValidationProblem("Location ids are letters, digits, _ and -.")
    found = set(
        db.session.scalars(
            select(Location.id).where(Location.tenant_id == tenant_id, Location.id.in_(wanted))
        )
    )
    missing = [i for i in wanted if i not in found]
    if missing:
        raise ValidationProblem(f"Unknown location id(s): {', '.join(missing)}.")
    return wanted


def delete_location(loc: Location) -> None:
    active = db.session.scalar(
        select(func.count())
        .select_from(DeviceLocation)
        .join(Device, Device.id == DeviceLocation.device_id)
        .where(
            DeviceLocation.location_id == loc.id,
            Device.deleted_at.is_(None),
            Device.status != DeviceStatus.BLOCKED,
        )
    )
    if active:
        raise ConflictProblem("The location still has active devices.")
    db.session.execute(delete(DeviceLocation).where(DeviceLocation.location_id == loc.id))
    db.session.delete(loc)
    db.session.commit()


# -- devices -------------------------------------------------------------------------------------


def set_device_locations(device_id: str, location_ids: list[str]) -> None:
    db.session.execute(delete(DeviceLocation).where(DeviceLocation.device_id == device_id))
    if location_ids:
        db.session.execute(
            insert(DeviceLocation),
            [{"device_id": device_id, "location_id": loc} for loc in location_ids],
        )


# Reads build no statement per request: these are built once, with bound parameters, so
# SQLAlchemy's compiled cache answers; they select columns (rows, not ORM objects).
DEVICE_COLUMNS = tuple(c for c in Device.__table__.c if c.name != "link_code_hash")  # type: ignore[attr-defined]
_DEVICE_WITH_LOCATIONS = (
    select(*DEVICE_COLUMNS, DeviceLocation.location_id.label("joined_location_id"))
    .outerjoin(DeviceLocation, DeviceLocation.device_id == Device.id)
    .where(
        Device.id == bindparam("device_id"),
        Device.tenant_id == bindparam("tenant_id"),
        Device.deleted_at.is_(None),
    )
    .order_by(DeviceLocation.location_id)
)


def locations_of(device_ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {d: [] for d in device_ids}
    if device_ids:
        stmt = _locations_of(len(device_ids))
        params = {f"d{i}": device_id for i, device_id in enumerate(device_ids)}
        for device_id, location_id in direct().all(stmt, params):
            out[device_id].append(location_id)
    return out


_LOCATIONS_OF_N: dict[int, Any] = {}


def _locations_of(n: int) -> Any:
    """The locations of n devices: one statement per n, built once (a page is at most 200)."""
    stmt = _LOCATIONS_OF_N.get(n)
    if stmt is None:
        stmt = _LOCATIONS_OF_N[n] = (
            select(DeviceLocation.device_id, DeviceLocation.location_id)
            .where(DeviceLocation.device_id.in_([bindparam(f"d{i}") for i in range(n)]))
            .order_by(DeviceLocation.location_id)
        )
    return stmt


def read_device(tenant_id: str, device_id: str) -> tuple[Any, list[str]]:
    """A device of the tenant (a row with the model's attribute names) and its location ids, in
    one statement: the read path of ``GET /devices/me`` and ``GET /devices/{id}``."""
    rows = (
        direct().all(_DEVICE_WITH_LOCATIONS, {"device_id": device_id, "tenant_id": tenant_id})
        if _ID.fullmatch(device_id)
        else []
    )
    if not rows:
        raise NotFoundProblem("No such device.")
    return rows[0], [r.joined_location_id for r in rows if r.joined_location_id is not None]


def get_device(tenant_id: str, device_id: str) -> Device:
    device = db.session.get(Device, device_id) if _ID.fullmatch(device_id) else None
    if device is None or device.tenant_id != tenant_id or device.deleted_at is not None:
        raise NotFoundProblem("No such device.")
    return device


@dataclass(frozen=True)
class DeviceQuery:
    """Filters and sort of a device search (``GET /api/v1/devices``); None: not filtered."""

    sort_by: str = "createdAt"
    descending: bool = False
    location_id: str | None = None
    name: str | None = None
    origin: str | None = None
    status: str | None = None
    app_code: str | None = None
    external_id: str | None = None
    identifier: str | None = None
    q: str | None = None

    def filters(self) -> tuple[str | None, ...]:
        """The filters' values, in a fixed order (None: not filtered by it)."""
        return (self.location_id, self.name, self.origin, self.status, self.app_code,
                self.external_id, self.identifier, self.q)  # fmt: skip


# Never active sorts as 0 (first, ascending). Spelt with a literal 0, as the index
# ix_devices_tenant_activity is: a bound parameter there would not match the index.
ACTIVITY_KEY = func.coalesce(Device.last_activity_at, literal_column("0"))
SORT_KEYS = {
    "name": (Device.name, lambda d: d.name),
    "createdAt": (Device.created_at, lambda d: d.created_at),
    "updatedAt": (Device.updated_at, lambda d: d.updated_at),
    "lastActivityAt": (ACTIVITY_KEY, lambda d: d.last_activity_at or 0),
}


def search_devices(
    tenant_id: str,
    query: DeviceQuery,
    after: After,
    limit: int,
    rendered: Any = None,
    chosen: dict[str, Any] | None = None,
) -> Page[Any]:
    """One page of the tenant's devices, as rows with the model's attribute names; with
    ``rendered`` (a module-level column expression, such as a device's JSON built by the
    database: its id() names the statement), rows of ``id``, the sort column and ``rendered``
    as ``item``. ``chosen``: ``filter_params(tenant_id, query)`` when the caller has them (a
    page and its count read the index once)."""
    params = dict(chosen if chosen is not None else filter_params(tenant_id, query))
    params["limit"] = limit + 1
    if after is not None:
        params["after_key"], params["after_id"] = after
    stmt = _search_statement(query, after is not None, rendered, drivers(params))
    rows = direct().all(stmt, params)
    return Page(rows[:limit], len(rows) > limit, SORT_KEYS[query.sort_by][1])


# Counted exactly up to this many; beyond, PostgreSQL's planner estimates (``countExact``
# false), so that a count costs what a page does however large the fleet.
COUNT_EXACT_UP_TO = 10_000
_COUNTS: dict[tuple[Any, ...], Any] = {}


# Each tenant's live devices per status, origin and appCode (migration 0022, kept by triggers in
# the transaction of every change): on SQLite one row per combination; on PostgreSQL rows of net
# changes appended by each statement, folded into one per combination once a tenant has more
# than ``FOLD_ABOVE`` of them.
_TALLIES = table(
    "device_tallies",
    *(sql_column(name) for name in ("tenant_id", "status", "origin", "app_code", "n")),
)
_TALLIED = ("status", "origin", "app_code")
FOLD_ABOVE = 1_000
_TALLY_READS: dict[tuple[bool, ...], Any] = {}
_FOLD = (
    "WITH gone AS (DELETE FROM device_tallies{where} RETURNING tenant_id, status, origin, app_code,"
    " n) INSERT INTO device_tallies (tenant_id, status, origin, app_code, n)"
    " SELECT tenant_id, status, origin, app_code, sum(n) FROM gone"
    " GROUP BY tenant_id, status, origin, app_code HAVING sum(n) <> 0"
)
_FOLD_TENANT = text(_FOLD.format(where=" WHERE tenant_id = :tenant_id"))
_FOLD_ALL = text(_FOLD.format(where=""))


def fold_tallies(engine: Engine, tenant_id: str | None = None) -> None:
    """PostgreSQL: the appended tally rows of one tenant (or of all) folded into one per
    combination. One statement, in its own transaction: rows appended meanwhile are kept, and a
    count sees the rows before or after, never a part. Run by a count that reads many rows and
    by the periodic purge (``authserver.retention``), so tenants that never count stay small."""
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as conn:
        if tenant_id is None:
            conn.execute(_FOLD_ALL)
        else:
            conn.execute(_FOLD_TENANT, {"tenant_id": tenant_id})


def _tallied(tenant_id: str, query: DeviceQuery) -> int:
    """The tenant's live devices of the query's status, origin and appCode (each optional),
    from the tallies: exact, one read of at most a few hundred small rows."""
    values = (query.status, query.origin, query.app_code)
    shape = tuple(value is not None for value in values)
    stmt = _TALLY_READS.get(shape)
    if stmt is None:
        stmt = select(
            func.coalesce(func.sum(_TALLIES.c.n), 0).label("n"), func.count().label("rows")
        ).where(_TALLIES.c.tenant_id == bindparam("tenant_id"))
        for name, wanted in zip(_TALLIED, shape, strict=True):
            if wanted:
                stmt = stmt.where(_TALLIES.c[name] == bindparam(name))
        _TALLY_READS[shape] = stmt
    params = {"tenant_id": tenant_id}
    params.update({k: v for k, v in zip(_TALLIED, values, strict=True) if v is not None})
    found = direct().first(stmt, params)
    assert found is not None  # an aggregate: always one row
    if found.rows > FOLD_ABOVE and db.engine.dialect.name == "postgresql":
        # Appended changes are summed on every count: fold them so the next count reads a few.
        # The count above is already exact: a fold that fails (a lock, a deadlock with another
        # fold) is logged and left to the next count or purge.
        try:
            fold_tallies(db.engine, tenant_id)
        except SQLAlchemyError:
            log.warning("device tallies of a tenant not folded", exc_info=True)
    return int(found.n)


def _has_tallies() -> bool:
    # Made by migration 0022 on both backends; a SQLite database is asked once, as for its
    # search index.
    return db.engine.dialect.name != "sqlite" or trigram.sqlite_has("device_tallies")


def count_devices(
    tenant_id: str, query: DeviceQuery, chosen: dict[str, Any] | None = None
) -> tuple[int, bool]:
    """How many devices ``query`` selects, and whether that is exact. Filtered by nothing but
    status, origin and appCode: the tallies' sum (migration 0022), exact, one read. Otherwise
    exact up to ``COUNT_EXACT_UP_TO`` (the count stops there); beyond, an estimate (never below
    the exact part): on PostgreSQL the planner's for the filters, on SQLite the share of
    matches in a sample of the tenant's devices (``_sampled``). ``chosen``: as
    ``search_devices`` takes it."""
    rest = replace(query, status=None, origin=None, app_code=None).filters()
    if all(value is None for value in rest) and _has_tallies():
        return _tallied(tenant_id, query), True
    params = chosen if chosen is not None else filter_params(tenant_id, query)
    shape = (*drivers(params), *(value is not None for value in query.filters()))
    stmts = _COUNTS.get(shape)
    if stmts is None:
        matching = filtered(select(literal_column("1")), query, *drivers(params))
        stmts = _COUNTS[shape] = (
            capped_count(matching),
            select(func.count()).select_from(matching.subquery()),
            matching,
        )
    capped = db.session.scalar(stmts[0], {**params, "cap": COUNT_EXACT_UP_TO + 1}) or 0
    if capped <= COUNT_EXACT_UP_TO:
        return capped, True
    if db.engine.dialect.name != "postgresql":
        sampled = _sampled(tenant_id, query, params) if _has_tallies() else None
        if sampled is None:
            return db.session.scalar(stmts[1], params) or 0, True
        matched, seen, total = sampled
        if seen >= total:  # the sample was every device: its count is the count
            return matched, True
        return min(total, max(capped, round(total * matched / seen))), False
    # EXPLAIN of the same statement, with the same bound values (the driver binds them).
    compiled = stmts[2].compile(dialect=db.engine.dialect)
    plan = (
        db.session.connection()
        .exec_driver_sql(
            "EXPLAIN (FORMAT JSON) " + compiled.string, compiled.construct_params(params)
        )
        .scalar()
    )
    estimate = int(plan[0]["Plan"]["Plan Rows"]) if plan else 0
    return max(estimate, capped), False


# SQLite keeps no statistics to estimate a count from, and counting a broad search exactly reads
# every device of the tenant (about 60 ms at 100,000 on a small VM, linear). Beyond the exact
# part it samples instead: ``SAMPLE_WINDOWS`` runs of ``SAMPLE_WINDOW`` consecutive devices,
# starting at evenly spaced creation times (so a fleet's old and new devices are both seen),
# each read from the (tenant, createdAt) index. 2,000 devices: a share within about 2 points
# of the tenant's (one standard error at most 1.1%), for about 2 µs a device.
SAMPLE_WINDOWS = 8
SAMPLE_WINDOW = 250
_SAMPLES: dict[tuple[Any, ...], Any] = {}
_CREATED_RANGE: Any = select(
    select(func.min(Device.created_at)).where(Device.tenant_id == bindparam("tenant_id"))
    .scalar_subquery().label("lo"),
    select(func.max(Device.created_at)).where(Device.tenant_id == bindparam("tenant_id"))
    .scalar_subquery().label("hi"),
)  # fmt: skip


def _sampled(
    tenant_id: str, query: DeviceQuery, params: dict[str, Any]
) -> tuple[int, int, int] | None:
    """(devices of the sample that ``query`` selects, devices in the sample, live devices of
    the tenant); None when the tenant has none. The share of the first in the second,
    times the third, estimates the count."""
    total = _tallied(tenant_id, DeviceQuery())
    bounds = direct().first(_CREATED_RANGE, {"tenant_id": tenant_id})
    if not total or bounds is None or bounds.lo is None:
        return None
    shape = (SAMPLE_WINDOWS, SAMPLE_WINDOW, *(value is not None for value in query.filters()))
    stmt = _SAMPLES.get(shape)
    if stmt is None:
        windows = [
            select(Device.id)
            .where(Device.tenant_id == bindparam("tenant_id"), Device.deleted_at.is_(None),
                   Device.created_at >= bindparam(f"start_{k}"))
            .order_by(Device.created_at, Device.id)
            .limit(SAMPLE_WINDOW)
            .subquery()
            for k in range(SAMPLE_WINDOWS)
        ]  # fmt: skip
        # UNION, not UNION ALL: windows that overlap (devices created in one burst) count once.
        sample = union(*[select(w.c.id) for w in windows]).cte("sample")
        matched = filtered(select(func.count()), query).where(Device.id.in_(select(sample.c.id)))
        stmt = _SAMPLES[shape] = select(
            matched.scalar_subquery().label("matched"),
            select(func.count()).select_from(sample).scalar_subquery().label("seen"),
        )
    lo, hi = int(bounds.lo), int(bounds.hi)
    starts = {f"start_{k}": lo + (hi - lo) * k // SAMPLE_WINDOWS for k in range(SAMPLE_WINDOWS)}
    row = direct().first(stmt, {**params, **starts})
    assert row is not None  # aggregates: always one row
    if not row.seen:  # every device deleted since the tallies were read
        return None
    return int(row.matched), int(row.seen), total


# What each sort's key (above) is read from, in a row of a rendered search.
_SORT_COLUMNS = {
    "name": Device.name,
    "createdAt": Device.created_at,
    "updatedAt": Device.updated_at,
    "lastActivityAt": Device.last_activity_at,
}

# One statement per shape of search (what it selects, sort, direction, which filters), built on
# first use with bound parameters: later searches of that shape build nothing. At most
# 3 x 4 x 2 x 2 x 2^8 shapes.
_SEARCHES: dict[tuple[Any, ...], Any] = {}


def _search_statement(
    query: DeviceQuery, has_after: bool, rendered: Any, driven: tuple[bool, bool]
) -> Any:
    shape = (
        id(rendered),
        *driven,
        query.sort_by,
        query.descending,
        has_after,
        *(value is not None for value in query.filters()),
    )
    stmt = _SEARCHES.get(shape)
    if stmt is not None:
        return stmt
    columns: Any = DEVICE_COLUMNS
    if rendered is not None:
        columns = (Device.id, _SORT_COLUMNS[query.sort_by], rendered.label("item"))
    stmt = filtered(select(*columns), query, *driven)
    key, _ = SORT_KEYS[query.sort_by]
    after: Any = (bindparam("after_key"), bindparam("after_id")) if has_after else None
    stmt = keyset(stmt, key, Device.id, after, query.descending).limit(bindparam("limit"))
    _SEARCHES[shape] = stmt
    return stmt


# SQLite's trigram index of the searched columns (migration 0020): a term whose candidates across
# the database are at most this many reads them through the index; a broader one walks the
# tenant's devices in the sort's order, where its matches are dense enough to fill a page soon.
FTS_CANDIDATES = 10_000
# The index is read once per request (``trigram.probe``): the probe that chooses the path also
# lists the candidates' keys, and the statements then take the keys. A trigram phrase reads each
# of its trigrams' lists, which grow with the whole database: at a million devices that read is
# most of a search's time.
_FTS_CANDIDATES: Any = trigram.candidates("device_search_keys", "device_id")


def capped_count(stmt: Any) -> Any:
    """How many rows ``stmt`` gives, counting no further than ``:cap``."""
    return select(func.count().label("n")).select_from(stmt.limit(bindparam("cap")).subquery())


def _fts_keys(query: DeviceQuery) -> str | None:
    """The keys (a JSON array) of the devices whose searched columns hold the search's term
    (``q``, else ``name``) when the index can narrow it: SQLite with the index, a term of 3
    characters or more (a trigram's length), matched by at most ``FTS_CANDIDATES`` devices
    across the database. None: the search reads the tenant's devices."""
    term = query.q if query.q is not None else query.name
    if term is None or len(term) < 3:
        return None
    # A name search's candidates: names that hold the term. The term lowered as the LIKE has it
    # (the index folds case itself): whatever the LIKE matches holds these characters.
    fts = trigram.phrase(term.lower(), "name" if query.q is None else "")
    return trigram.candidate_keys("device_search", fts, FTS_CANDIDATES, direct().first)


# On SQLite, a location of at most this many devices is read through its own index (its devices,
# by primary key, then sorted); a larger one walks the tenant's devices in the sort's order,
# where its devices are dense enough to fill a page soon. SQLite has no statistics to choose by.
LOCATION_CANDIDATES = 10_000
_LOCATION_DEVICES: Any = select(DeviceLocation.device_id).where(
    DeviceLocation.location_id == bindparam("location_id")
)
_LOCATION_PROBE = capped_count(_LOCATION_DEVICES)


def _located(query: DeviceQuery) -> bool:
    """Whether the search reads the devices of its location first (SQLite, a location of at
    most ``LOCATION_CANDIDATES`` devices, no trigram search driving already)."""
    if query.location_id is None or db.engine.dialect.name != "sqlite":
        return False
    found = direct().first(
        _LOCATION_PROBE, {"location_id": query.location_id, "cap": LOCATION_CANDIDATES + 1}
    )
    return found is not None and found[0] <= LOCATION_CANDIDATES


def drivers(params: dict[str, Any]) -> tuple[bool, bool]:
    """What ``filter_params`` chose to read first: the trigram index, the location's devices
    (``filtered``'s ``fts`` and ``located``; neither: the tenant's sort index)."""
    return "search_keys" in params, "located" in params


def filter_params(tenant_id: str, query: DeviceQuery) -> dict[str, Any]:
    """The bound values of ``filtered(..., query, *drivers(params))``, and which index drives
    the search: ``search_keys`` (a bound value: the trigram index's candidates) when it reads
    the trigram index, ``located`` (a mark no statement binds) when it reads the location's
    devices."""
    params: dict[str, Any] = {"tenant_id": tenant_id}
    keys = _fts_keys(query)
    if keys is not None:
        params["search_keys"] = keys
    elif _located(query):
        params["located"] = True
    for name, value in (
        ("location_id", query.location_id),
        ("origin", query.origin),
        ("status", query.status),
        ("app_code", query.app_code),
        ("external_id", query.external_id),
        ("identifier", query.identifier),
    ):
        if value is not None:
            params[name] = value
    if query.name is not None:
        params["name"] = containing(query.name.lower())
    if query.q is not None:
        params["q"] = containing(query.q.lower())
    return params


def filtered(stmt: Any, query: DeviceQuery, fts: bool = False, located: bool = False) -> Any:
    """``stmt`` limited to the live devices of the tenant (``:tenant_id``) that ``query``'s
    filters select (bound parameters; their values are ``filter_params``). With ``fts`` the
    devices are read from the trigram index's candidates (``:search_keys``), with ``located``
    from the location's devices: by primary key, then sorted (the tenant's column is written
    ``+tenant_id`` so that SQLite cannot walk a sort index instead); the filters below still
    decide which match."""
    if fts or located:
        candidates = _FTS_CANDIDATES if fts else _LOCATION_DEVICES
        stmt = stmt.where(
            literal_column("+devices.tenant_id") == bindparam("tenant_id"),
            Device.id.in_(candidates),
        )
    else:
        stmt = stmt.where(Device.tenant_id == bindparam("tenant_id"))
    stmt = stmt.where(Device.deleted_at.is_(None))
    if query.location_id is not None and not located:
        stmt = stmt.where(
            exists().where(
                DeviceLocation.device_id == Device.id,
                DeviceLocation.location_id == bindparam("location_id"),
            )
        )
    if query.name is not None:
        stmt = stmt.where(func.lower(Device.name).like(bindparam("name"), escape="\\"))
    for column, value in (
        (Device.origin, query.origin),
        (Device.status, query.status),
        (Device.app_code, query.app_code),
        (Device.external_id, query.external_id),
        (Device.identifier, query.identifier),
    ):
        if value is not None:
            stmt = stmt.where(column == bindparam(column.key))
    if query.q is not None:
        pattern: Any = bindparam("q")
        stmt = stmt.where(
            func.lower(Device.name).like(pattern, escape="\\")
            | func.lower(Device.external_id).like(pattern, escape="\\")
            | func.lower(Device.identifier).like(pattern, escape="\\")
            | func.lower(Device.till_id).like(pattern, escape="\\")
        )
    return stmt


def _issue_link_code(device: Device) -> str:
    shown, device.link_code_hash = credentials.new_link_code()
    device.link_code_expires_at = now() + get_state().settings.link_code_ttl
    return shown


def _flush_unique() -> None:
    try:
        db.session.flush()
    except IntegrityError as exc:
        db.session.rollback()
        raise ConflictProblem("A device with this externalId already exists.") from exc


def _commit_unique() -> None:
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise ConflictProblem("A device with this externalId already exists.") from exc


def new_device(
    tenant_id: str, actor: str, data: dict[str, Any], t: int
) -> tuple[Device, str | None]:
    """A device from a parsed ``DeviceCreate`` body, every column set (not in the session), and
    its link code when it is READY_TO_LINK (shown once; the device holds its hash)."""
    to_link = data.get("status") == DeviceStatus.READY_TO_LINK
    device = Device(
        id=new_id("dev"),
        tenant_id=tenant_id,
        name=data["name"],
        status=DeviceStatus.READY_TO_LINK if to_link else DeviceStatus.ACTIVE,
        origin=DeviceOrigin.LINK if to_link else DeviceOrigin.API,
        app_code=data.get("appCode") or AppCode.UNKNOWN,
        external_id=data.get("externalId"),
        till_id=data.get("tillId"),
        identifier=None,
        system_information=None,
        dpop_jkt=None,
        last_activity_at=None,
        last_tenant_user_id=None,
        printer_uids=data.get("printerUids") or [],
        last_order_uid=None,
        link_code_hash=None,
        link_code_expires_at=None,
        block_mark=None,
        mark_before_block=None,
        created_at=t,
        created_by=actor,
        updated_at=t,
        updated_by=actor,
        deleted_at=None,
    )
    link_code = _issue_link_code(device) if to_link else None
    return device, link_code


def create_device(tenant_id: str, actor: str, data: dict[str, Any]) -> tuple[Device, str | None]:
    device, link_code = new_device(tenant_id, actor, data, now_ms())
    locations = check_location_ids(tenant_id, data.get("locationIds") or [])
    db.session.add(device)
    _flush_unique()
    set_device_locations(device.id, locations)
    _commit_unique()
    return device, link_code


def update_device(device: Device, actor: str, data: dict[str, Any]) -> str | None:
    """Apply a PATCH; returns a new link code when the device was set READY_TO_LINK."""
    if data.get("status") is not None:
        # One status change of a device at a time: a block racing an unblock waits for it.
        db.session.refresh(device, with_for_update=True)
    link_code = None
    for field, attr in (
        ("name", "name"),
        ("tillId", "till_id"),
        ("appCode", "app_code"),
        ("externalId", "external_id"),
        ("printerUids", "printer_uids"),
    ):
        if field in data:
            setattr(device, attr, data[field])
    # The device's own columns first, where a taken externalId is a 409: the location
    # statements below would otherwise flush them on the way and fail with a 500.
    _flush_unique()
    if "locationIds" in data:
        set_device_locations(device.id, check_location_ids(device.tenant_id, data["locationIds"]))
    status = data.get("status")
    restore = data.get("restoreSessions", False)
    if restore and not (status == DeviceStatus.ACTIVE and device.status == DeviceStatus.BLOCKED):
        raise ValidationProblem(
            "restoreSessions applies to unblocking: status ACTIVE for a BLOCKED device.",
            field="restoreSessions",
        )
    unblocking = device.status == DeviceStatus.BLOCKED and status == DeviceStatus.ACTIVE
    block_mark, mark_before = device.block_mark, device.mark_before_block
    if status is not None and (status != device.status or status == DeviceStatus.READY_TO_LINK):
        # READY_TO_LINK again gives a still-unlinked device a fresh code.
        link_code = _change_status(device, status, actor, restore)
    if unblocking:
        # In the unblock's own transaction: what the block ended lives again, or never will.
        if restore:
            tokens.restore_device(device.id, mark_before)
        else:
            tokens.keep_blocked_sessions_dead([device.id])
    device.updated_at = now_ms()
    device.updated_by = actor
    _commit_unique()
    if unblocking and restore and block_mark is not None:
        # Redis last, and only if the mark is still the block's (not a block made since).
        revocation.restore_in_store("device", device.id, block_mark, mark_before)
    return link_code


def can_be_active(device: Any) -> bool:
    """Whether a device (or a row of its columns) may be ACTIVE: linked (it has an
    identifier), or an audit device (made by the API, with no link code to wait for)."""
    linked = device.identifier is not None
    return linked or (device.origin == DeviceOrigin.API and device.link_code_hash is None)


def _change_status(device: Device, status: str, actor: str, restore: bool = False) -> str | None:
    event = {
        DeviceStatus.BLOCKED: "device.blocked",
        DeviceStatus.ACTIVE: "device.activated",
    }.get(DeviceStatus(status), "device.unlinked")
    audit.record(event, device.tenant_id, actor, device.id, previous=device.status,
                 restored_sessions=True if restore else None)  # fmt: skip
    if status == DeviceStatus.BLOCKED:
        # What unblocking with restoreSessions puts back: the mark as it was before.
        device.mark_before_block = revocation.current_mark("device", device.id)
        device.block_mark = tokens.revoke_device(device.id, tokens.BLOCKED)
        device.status = DeviceStatus.BLOCKED
        return None
    device.block_mark = device.mark_before_block = None
    if status == DeviceStatus.ACTIVE:
        if not can_be_active(device):
            raise ConflictProblem("Only a linked device can be made ACTIVE; link it.")
        device.status = DeviceStatus.ACTIVE
        return None
    # READY_TO_LINK: unlink (seed 000): tokens revoked, identifier and key cleared, new code.
    tokens.revoke_device(device.id)
    device.status = DeviceStatus.READY_TO_LINK
    device.identifier = None
    device.dpop_jkt = None
    return _issue_link_code(device)


def delete_device(device: Device, actor: str) -> None:
    """Soft delete: gone from lists and lookups, tokens revoked, externalId free again."""
    tokens.revoke_device(device.id)
    audit.record("device.deleted", device.tenant_id, actor, device.id)
    device.deleted_at = now()
    device.updated_at = now_ms()
    device.updated_by = actor
    device.link_code_hash = None
    db.session.commit()


# -- the calling device (seed 000 GET/PUT /device, /device/users; seed 001 /devices/me) ------------


def set_system_information(device: Device, info: str | None) -> None:
    update_self(device, {"systemInformation": info})


def update_self(device: Device, data: dict[str, Any]) -> None:
    """What a terminal changes about itself: its system information, its last order."""
    if "systemInformation" in data:
        device.system_information = data["systemInformation"]
    if "lastOrderUid" in data:
        device.last_order_uid = data["lastOrderUid"]
    device.updated_at = now_ms()
    device.updated_by = device.id
    db.session.commit()


def users_for_device(device: Device, after: After, limit: int) -> Page[User]:
    """Active users who may sign in on ``device``: a role for the whole tenant (``ROLE``) or for
    one of the device's locations (``ROLE@loc_...``), by login."""
    locs = set(locations_of([device.id])[device.id])
    query = select(User).where(User.tenant_id == device.tenant_id, User.active.is_(True))
    # Roles live in a JSON list, so eligibility is decided here, row by row, in login order.
    page: list[User] = []
    has_more = False
    for user in db.session.scalars(keyset(query, User.login, User.id, after)):
        if authorization.may_sign_in_on(user, locs):
            if len(page) == limit:
                has_more = True
                break
            page.append(user)
    return Page(page, has_more, lambda u: u.login)


# -- linking (seed 000 "Link a physical device") --------------------------------------------------


def find_linkable(tenant_id: str, link_code: str) -> Device | None:
    """The device waiting for ``link_code`` in ``tenant_id``, if its code is still valid."""
    device = db.session.scalar(
        select(Device).where(Device.link_code_hash == credentials.link_code_hash(link_code))
    )
    if (
        device is None
        or device.tenant_id != tenant_id
        or device.deleted_at is not None
        or device.status != DeviceStatus.READY_TO_LINK
        or (device.link_code_expires_at or 0) <= now()
    ):
        return None
    return device


def consume_link_code(
    device: Device,
    user: User,
    client_id: str,
    jkt: str | None,
    system_information: str | None,
) -> bool:
    """Link ``device``: only one request can move it out of READY_TO_LINK with its code (a
    conditional UPDATE); the winner's link is recorded and audited in the caller's transaction.
    A loser's transaction is rolled back."""
    won = db.session.execute(
        update(Device)
        .where(
            Device.id == device.id,
            Device.link_code_hash == device.link_code_hash,
            Device.status == DeviceStatus.READY_TO_LINK,
        )
        .values(
            status=DeviceStatus.ACTIVE,
            # Linked now, whatever it was created as: its key binds its tokens from here on.
            origin=DeviceOrigin.LINK,
            link_code_hash=None,
            link_code_expires_at=None,
            identifier=credentials.new_device_identifier(),
            dpop_jkt=jkt,
            system_information=system_information or device.system_information,
            last_tenant_user_id=user.id,
            updated_at=now_ms(),
            updated_by=user.id,
        )
    ).rowcount  # type: ignore[attr-defined]
    if won != 1:
        db.session.rollback()
        return False
    audit.record(
        "device.linked", device.tenant_id, user.id, device.id, client_id=client_id, dpop_jkt=jkt
    )
    return True


# -- activity --------------------------------------------------------------------------------------

_recent_activity: dict[str, float] = {}


def touch_activity(device_id: str) -> None:
    """lastActivityAt, written at most once a minute per device (not on every request).

    A process that touched the device within the minute skips even the store; otherwise the
    shared claim picks one writer per minute across every process.
    """
    t = now_float()
    if t - _recent_activity.get(device_id, float("-inf")) < ACTIVITY_INTERVAL:
        return
    if len(_recent_activity) > 10_000:
        _recent_activity.clear()  # bounded memory; only costs a store call per device
    _recent_activity[device_id] = t
    if get_state().store.claim_once(f"activity:{device_id}", ttl=ACTIVITY_INTERVAL):
        db.session.execute(
            update(Device).where(Device.id == device_id).values(last_activity_at=now_ms())
        )
        db.session.commit()
