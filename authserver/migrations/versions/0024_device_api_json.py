"""device list on PostgreSQL: each device's JSON (as the API shows it) kept in the row

A page of the device list rendered its 50 items in the statement that read them
(``authserver.sqljson``): on PostgreSQL a ``row_to_json`` per item, three ``to_char`` and a
correlated aggregate of the device's locations. That was about 0.5 ms of the database's CPU per
page, two thirds of the statement, on the same cores as the server (measured 2026-12-03 with
``bench/compare.py``: the list was the one row below 0.4 of the peer on PostgreSQL + Redis).

Here a trigger renders the item when a device is written, and a list reads ``api_json``:

- ``devices_api_json`` (BEFORE INSERT OR UPDATE, each row) renders ``NEW.api_json`` from the
  row and its locations. Every write of a device goes through it, whatever wrote it (the API,
  the CLI, bulk operations, an activity touch, an operator's SQL).
- A change of ``device_locations`` (each statement, from its transition tables) updates its
  devices' ``api_json`` to NULL, which runs the trigger above: the item is rendered again,
  inside the same transaction.

The text is what ``authserver.registry.serialize.device_json`` gives (the same keys in the same
order, the same values); ``tests/registry/test_device_api_json.py`` compares the two after
every kind of change. A change of the wire format is a migration that replaces the function
and renders every row again (as this one does at the end).

SQLite renders items in the statement still: it runs in the server's process, where the page
costs about 0.2 ms, and a second write of every changed row would cost its writers more.

Not in the models (a PostgreSQL-only column, as the trigram indexes of 0019).

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03 11:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def _iso_ms(column: str) -> str:
    """Unix milliseconds as ISO 8601 UTC with milliseconds, exact (as ``sqljson.IsoMs``)."""
    return (
        f"to_char(TIMESTAMP '1970-01-01' + NEW.{column} * INTERVAL '1 millisecond', "
        '\'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"\')'
    )


# (key, expression over NEW), in the order of ``device_json``.
_ITEM = (
    ("id", "NEW.id"),
    ("name", "NEW.name"),
    ("status", "NEW.status"),
    ("origin", "NEW.origin"),
    ("appCode", "NEW.app_code"),
    ("externalId", "NEW.external_id"),
    (
        "locationIds",
        "coalesce((SELECT json_agg(l.location_id ORDER BY l.location_id)"
        " FROM device_locations AS l WHERE l.device_id = NEW.id), '[]'::json)",
    ),
    ("tillId", "NEW.till_id"),
    ("identifier", "NEW.identifier"),
    ("systemInformation", "NEW.system_information"),
    ("dpopJkt", "NEW.dpop_jkt"),
    ("lastActivityAt", _iso_ms("last_activity_at")),
    ("lastTenantUserId", "NEW.last_tenant_user_id"),
    ("printerUids", "coalesce(nullif(NEW.printer_uids::text, 'null'), '[]')::json"),
    ("lastOrderUid", "NEW.last_order_uid"),
    ("createdAt", _iso_ms("created_at")),
    ("createdBy", "NEW.created_by"),
    ("updatedAt", _iso_ms("updated_at")),
    ("updatedBy", "NEW.updated_by"),
)
# row_to_json of a one-row subquery whose columns are named as the keys: compact, keys in order.
# Built from the constants above: no value is in the text.
_COLUMNS = ", ".join(f'{expr} AS "{key}"' for key, expr in _ITEM)
_RENDER = f"(SELECT row_to_json(o)::text FROM (SELECT {_COLUMNS}) AS o)"  # noqa: S608

# Each statement that changes device_locations renders its devices again (the update runs the
# row trigger); one UPDATE per statement, however many rows it changed.
_TOUCH = "UPDATE devices SET api_json = NULL WHERE id IN (SELECT device_id FROM {rows})"
_BOTH = "(SELECT device_id FROM old_rows UNION SELECT device_id FROM new_rows) AS c"

UPGRADE = (
    "ALTER TABLE devices ADD COLUMN api_json TEXT",
    "CREATE FUNCTION devices_api_json() RETURNS trigger LANGUAGE plpgsql AS $$"
    f" BEGIN NEW.api_json := {_RENDER}; RETURN NEW; END $$",
    "CREATE TRIGGER devices_api_json BEFORE INSERT OR UPDATE ON devices"
    " FOR EACH ROW EXECUTE FUNCTION devices_api_json()",
    "CREATE FUNCTION device_locations_added() RETURNS trigger LANGUAGE plpgsql AS $$"
    f" BEGIN {_TOUCH.format(rows='new_rows')}; RETURN NULL; END $$",
    "CREATE FUNCTION device_locations_removed() RETURNS trigger LANGUAGE plpgsql AS $$"
    f" BEGIN {_TOUCH.format(rows='old_rows')}; RETURN NULL; END $$",
    "CREATE FUNCTION device_locations_changed() RETURNS trigger LANGUAGE plpgsql AS $$"
    f" BEGIN {_TOUCH.format(rows=_BOTH)}; RETURN NULL; END $$",
    "CREATE TRIGGER device_locations_insert AFTER INSERT ON device_locations"
    " REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT"
    " EXECUTE FUNCTION device_locations_added()",
    "CREATE TRIGGER device_locations_delete AFTER DELETE ON device_locations"
    " REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT"
    " EXECUTE FUNCTION device_locations_removed()",
    "CREATE TRIGGER device_locations_update AFTER UPDATE ON device_locations"
    " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT"
    " EXECUTE FUNCTION device_locations_changed()",
    # Every existing device rendered (the row trigger runs for each).
    "UPDATE devices SET api_json = NULL",
)
TRIGGERS = (
    ("devices_api_json", "devices"),
    ("device_locations_insert", "device_locations"),
    ("device_locations_delete", "device_locations"),
    ("device_locations_update", "device_locations"),
)
FUNCTIONS = ("devices_api_json", "device_locations_added", "device_locations_removed",
             "device_locations_changed")  # fmt: skip


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for trigger, table in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
    for function in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    op.execute("ALTER TABLE devices DROP COLUMN IF EXISTS api_json")
