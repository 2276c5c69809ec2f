"""Request bodies of the registry API, each defined once: the definition validates a request
(``Body.parse``, with the messages clients see) and describes it (``Body.json_schema``, for the
API's OpenAPI document). A field's rules and its documentation cannot drift apart.

``authserver.registry.bodies`` reads the JSON strictly first (UTF-8, objects only, no control
characters anywhere); these schemas then check each field's type, length and allowed values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from authserver.admin import AUTH_METHODS, DEVICE_SUBJECTS, DPOP_BINDINGS
from authserver.admin import USER_KINDS as CLIENT_USER_KINDS
from authserver.authorization import LOCATION_ID_LENGTH, ROLES, USER_KINDS, is_known_role
from authserver.authorization_code import MAX_REDIRECT_URI
from authserver.customer_devices import ISSUED_KINDS, ISSUED_STATUSES
from authserver.devices import LOCATION_KINDS
from authserver.models import AppCode, DeviceOrigin, DeviceStatus, ModuleType
from authserver.modules import check_config
from authserver.problems import ValidationProblem
from authserver.registry.bodies import optional_str, required_name, string_list
from authserver.text import text_problem
from grants import KNOWN_GRANT_TYPES

ID_CHARS = 48  # the longest id a list of ids may hold
MODULE_TYPES = tuple(str(t) for t in ModuleType)


@dataclass(frozen=True)
class Field:
    """One member of a JSON body."""

    name: str
    description: str

    def parse(self, body: dict[str, Any]) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Name(Field):
    """A name people read: one line, 1-``limit`` characters after trimming; trimmed."""

    limit: int = 100

    def parse(self, body: dict[str, Any]) -> str:
        return required_name(body, self.name, self.limit)

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "minLength": 1, "maxLength": self.limit,
                "description": self.description}  # fmt: skip


@dataclass(frozen=True)
class Text(Field):
    """Optional text: null, or 1-``limit`` characters (one line unless ``multi_line``)."""

    limit: int = 100
    multi_line: bool = False

    def parse(self, body: dict[str, Any]) -> str | None:
        return optional_str(body, self.name, self.limit, single_line=not self.multi_line)

    def json_schema(self) -> dict[str, Any]:
        return {"type": ["string", "null"], "minLength": 1, "maxLength": self.limit,
                "description": self.description}  # fmt: skip


@dataclass(frozen=True)
class Ids(Field):
    """A list of at most ``limit`` ids."""

    limit: int = 50
    chars: int = ID_CHARS  # the longest id

    def parse(self, body: dict[str, Any]) -> list[str]:
        return string_list(body, self.name, self.limit, self.chars)

    def json_schema(self) -> dict[str, Any]:
        return {
            "type": ["array", "null"],
            "maxItems": self.limit,
            "items": {"type": "string", "minLength": 1, "maxLength": self.chars},
            "description": self.description,
        }


@dataclass(frozen=True)
class OneOf(Field):
    """One of ``values``; ``default`` when absent (and the body is a creation)."""

    values: tuple[str, ...] = ()
    default: str | None = None
    message: str | None = None

    def parse(self, body: dict[str, Any]) -> str:
        value = body.get(self.name, self.default)
        if value not in self.values:
            raise ValidationProblem(
                self.message or f"{self.name} must be one of {', '.join(self.values)}.",
                field=self.name,
            )
        return str(value)

    def json_schema(self) -> dict[str, Any]:
        found: dict[str, Any] = {"type": "string", "enum": list(self.values),
                                 "description": self.description}  # fmt: skip
        if self.default is not None:
            found["default"] = self.default
        return found


@dataclass(frozen=True)
class AnyText(Field):
    """A string or null, checked further by the service that uses it."""

    def parse(self, body: dict[str, Any]) -> str | None:
        value = body.get(self.name)
        if value is not None and not isinstance(value, str):
            raise ValidationProblem(f"{self.name} must be a string.", field=self.name)
        return value

    def json_schema(self) -> dict[str, Any]:
        return {"type": ["string", "null"], "description": self.description}


@dataclass(frozen=True)
class Chars(Field):
    """A string of ``low``-``high`` characters, each allowed by ``allowed`` (a predicate, with
    ``pattern``, its JSON Schema / regex spelling); null clears it unless ``required``."""

    low: int = 1
    high: int = 100
    pattern: str = ""
    allowed: Any = None  # Callable[[str], bool] per character
    nullable: bool = True
    secret: bool = False
    rule: str = ""  # the allowed characters in words, where ``pattern`` cannot say them

    def parse(self, body: dict[str, Any]) -> str | None:
        value = body.get(self.name)
        if value is None and self.nullable:
            return None
        if (
            not isinstance(value, str)
            or not self.low <= len(value) <= self.high
            or (self.allowed is not None and not all(self.allowed(c) for c in value))
            or (self.pattern and re.fullmatch(self.pattern, value) is None)
        ):
            rule = self.rule or self.pattern
            rule = f" of {rule}" if rule and not self.secret else ""
            raise ValidationProblem(
                f"{self.name} must be {self.low}-{self.high} characters{rule}.", field=self.name
            )
        if self.allowed is None and text_problem(value, single_line=True):
            raise ValidationProblem(f"{self.name} {text_problem(value)}.", field=self.name)
        return value

    def json_schema(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "type": ["string", "null"] if self.nullable else "string",
            "minLength": self.low,
            "maxLength": self.high,
            "description": self.description,
        }
        if self.pattern:
            found["pattern"] = f"^{self.pattern}$"
        if self.secret:
            found["writeOnly"] = True
        return found


@dataclass(frozen=True)
class Flag(Field):
    """true or false."""

    def parse(self, body: dict[str, Any]) -> bool:
        value = body.get(self.name)
        if not isinstance(value, bool):
            raise ValidationProblem(f"{self.name} must be true or false.", field=self.name)
        return value

    def json_schema(self) -> dict[str, Any]:
        return {"type": "boolean", "description": self.description}


def _word_char(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c in "_-")


@dataclass(frozen=True)
class Words(Field):
    """A list of at most ``limit`` distinct words of 1-32 letters, digits, ``_`` or ``-``."""

    limit: int = 16

    def parse(self, body: dict[str, Any]) -> list[str]:
        value = body.get(self.name)
        if value is None:
            return []
        if (
            not isinstance(value, list)
            or len(value) > self.limit
            or not all(isinstance(v, str) and 1 <= len(v) <= 32 and all(map(_word_char, v))
                       for v in value)
        ):  # fmt: skip
            raise ValidationProblem(
                f"{self.name} must be a list of at most {self.limit} words of 1-32 letters, "
                "digits, _ or -.",
                field=self.name,
            )
        return sorted(set(value))

    def json_schema(self) -> dict[str, Any]:
        return {
            "type": ["array", "null"],
            "maxItems": self.limit,
            "items": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"},
            "description": self.description,
        }


PROPERTY_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_PROPERTIES = 32
MAX_PROPERTY_VALUE = 1000


@dataclass(frozen=True)
class Properties(Field):
    """An object of at most 32 members named ``[A-Za-z0-9_.-]{1,64}``, each a string (up to
    1,000 characters), a number, true/false or null."""

    def parse(self, body: dict[str, Any]) -> dict[str, Any]:
        value = body.get(self.name)
        if value is None:
            return {}
        ok = isinstance(value, dict) and len(value) <= MAX_PROPERTIES
        for key, item in value.items() if ok else ():
            ok = ok and PROPERTY_KEY.fullmatch(key) is not None
            if isinstance(item, str):
                ok = ok and len(item) <= MAX_PROPERTY_VALUE
            elif not (item is None or isinstance(item, bool | int | float)):
                ok = False
        if not ok:
            raise ValidationProblem(
                f"{self.name} must be an object of at most {MAX_PROPERTIES} members named "
                f"[A-Za-z0-9_.-], each a string of at most {MAX_PROPERTY_VALUE} characters, "
                "a number, true, false or null.",
                field=self.name,
            )
        return dict(value)

    def json_schema(self) -> dict[str, Any]:
        return {
            "type": ["object", "null"],
            "maxProperties": MAX_PROPERTIES,
            "propertyNames": {"pattern": "^[A-Za-z0-9_.-]{1,64}$"},
            "additionalProperties": {
                "type": ["string", "number", "boolean", "null"],
                "maxLength": MAX_PROPERTY_VALUE,
            },
            "description": self.description,
        }


MAX_ROLES = 64


@dataclass(frozen=True)
class Roles(Field):
    """At most 64 roles, each ``{"role": ..., "locationId": ... or null}``; stored as
    ``ROLE`` or ``ROLE@loc_...``."""

    def parse(self, body: dict[str, Any]) -> list[str]:
        value = body.get(self.name)
        if value is None:
            return []
        if not isinstance(value, list) or len(value) > MAX_ROLES:
            raise ValidationProblem(
                f"{self.name} must be a list of at most {MAX_ROLES} roles.", field=self.name
            )
        found = set()
        for item in value:
            found.add(parse_role(item, self.name))
        return sorted(found)

    def json_schema(self) -> dict[str, Any]:
        return {"type": ["array", "null"], "maxItems": MAX_ROLES, "items": ROLE_SCHEMA,
                "description": self.description}  # fmt: skip


ROLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "role": {"type": "string", "enum": list(ROLES)},
        "locationId": {"type": ["string", "null"], "maxLength": LOCATION_ID_LENGTH},
    },
    "required": ["role"],
    "additionalProperties": False,
}


def parse_role(item: Any, field_name: str = "roles") -> str:
    """``{"role": ..., "locationId": ...}`` as the stored ``ROLE`` or ``ROLE@loc_...``."""
    if not isinstance(item, dict) or set(item) - {"role", "locationId"}:
        raise ValidationProblem(
            f'{field_name} holds objects {{"role": ..., "locationId": ...}}.', field=field_name
        )
    name, location = item.get("role"), item.get("locationId")
    stored = f"{name}@{location}" if location is not None else name
    if not isinstance(name, str) or (location is not None and not isinstance(location, str)):
        stored = None
    if stored is None or not is_known_role(stored):
        raise ValidationProblem(
            f"{field_name}: unknown role or location; roles are {', '.join(ROLES)}, each for "
            "the whole tenant or one location (locationId loc_...; SU only tenant-wide).",
            field=field_name,
        )
    return stored


@dataclass(frozen=True)
class Body:
    """A JSON object body: its fields, which of them a creation needs, and whether an update
    may send only some (``partial``)."""

    name: str
    description: str
    fields: tuple[Field, ...]
    required: tuple[str, ...] = ()
    defaults_apply: bool = True  # fields with a default take it when absent
    extra: dict[str, Any] = field(default_factory=dict)
    example: dict[str, Any] = field(default_factory=dict)
    parser: Any = None  # for a body whose member names are data (no fields to list)

    def parse(self, body: dict[str, Any]) -> dict[str, Any]:
        """The values of the fields present (and of the required ones, and defaults)."""
        if self.parser is not None:
            return self.parser(body)  # type: ignore[no-any-return]
        known = {f.name for f in self.fields}
        unknown = sorted(set(body) - known)
        if unknown:
            raise ValidationProblem(f"Unknown field(s): {', '.join(unknown)}.")
        data: dict[str, Any] = {}
        for f in self.fields:
            has_default = self.defaults_apply and isinstance(f, OneOf) and f.default is not None
            if f.name in body or f.name in self.required or has_default:
                data[f.name] = f.parse(body)
        return data

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "description": self.description,
            "properties": {f.name: f.json_schema() for f in self.fields},
            "additionalProperties": False,
        }
        if self.required:
            schema["required"] = list(self.required)
        if self.example:
            schema["examples"] = [self.example]
        schema.update(self.extra)
        return schema


@dataclass(frozen=True)
class Rows(Field):
    """A list of 1-``limit`` JSON objects, each a ``body``; each row is parsed (and its errors
    reported) by the bulk operation, so that one bad row does not hide the others."""

    body: Any = None  # the Body of a row
    limit: int = 10_000

    def parse(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        value = body.get(self.name)
        if not isinstance(value, list) or not 1 <= len(value) <= self.limit:
            raise ValidationProblem(
                f"{self.name} must be a list of 1-{self.limit} objects.", field=self.name
            )
        return value

    def json_schema(self) -> dict[str, Any]:
        return {"type": "array", "minItems": 1, "maxItems": self.limit,
                "items": {"$ref": f"#/components/schemas/{self.body.name}"},
                "description": self.description}  # fmt: skip


@dataclass(frozen=True)
class Filter(Field):
    """An object of list filters (the query parameters of a list, as JSON members): each a
    string of at most 200 characters, one of its values where ``choices`` lists them; at least
    one, so that an empty filter never selects everything by accident."""

    members: tuple[tuple[str, str], ...] = ()  # (name, description)
    choices: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def parse(self, body: dict[str, Any]) -> dict[str, str]:
        value = body.get(self.name)
        if not isinstance(value, dict) or not value:
            raise ValidationProblem(
                f"{self.name} must be an object with at least one of "
                f"{', '.join(n for n, _ in self.members)}.",
                field=self.name,
            )
        known = {n for n, _ in self.members}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValidationProblem(
                f"Unknown filter(s): {', '.join(unknown)}.", field=f"{self.name}.{unknown[0]}"
            )
        choices = dict(self.choices)
        for name, item in value.items():
            if not isinstance(item, str) or not 1 <= len(item) <= 200:
                raise ValidationProblem(
                    f"{self.name}.{name} must be a string of 1-200 characters.",
                    field=f"{self.name}.{name}",
                )
            if name in choices and item not in choices[name]:
                raise ValidationProblem(
                    f"{self.name}.{name} must be one of {', '.join(choices[name])}.",
                    field=f"{self.name}.{name}",
                )
        return value

    def json_schema(self) -> dict[str, Any]:
        choices = dict(self.choices)
        properties: dict[str, Any] = {}
        for name, description in self.members:
            properties[name] = {"type": "string", "minLength": 1, "maxLength": 200,
                                "description": description}  # fmt: skip
            if name in choices:
                properties[name]["enum"] = list(choices[name])
        return {"type": "object", "properties": properties, "additionalProperties": False,
                "minProperties": 1, "description": self.description}  # fmt: skip


# -- the registry's bodies -------------------------------------------------------------------------

_DEVICE_NAME = Name("name", "The device's name, as people see it.", 100)
_EXTERNAL_ID = Text("externalId", "Your own id for the device; unique in the tenant.", 200)
_LOCATION_IDS = Ids("locationIds", "The locations the device belongs to.", 50)
_TILL_ID = Text("tillId", "The till (checkout) the device serves.", 100)
_APP_CODE = OneOf("appCode", "What the device runs.", tuple(AppCode))
UID = r"[A-Za-z0-9_-]{1,64}"


@dataclass(frozen=True)
class Uids(Field):
    """A list of at most ``limit`` distinct uids (``[A-Za-z0-9_-]{1,64}``), in the order given;
    null is the empty list."""

    limit: int = 32

    def parse(self, body: dict[str, Any]) -> list[str]:
        value = body.get(self.name)
        if value is None:
            return []
        if (
            not isinstance(value, list)
            or len(value) > self.limit
            or not all(isinstance(v, str) and re.fullmatch(UID, v) for v in value)
        ):
            raise ValidationProblem(
                f"{self.name} must be a list of at most {self.limit} ids of 1-64 letters, "
                "digits, _ or -.",
                field=self.name,
            )
        return list(dict.fromkeys(value))

    def json_schema(self) -> dict[str, Any]:
        return {"type": ["array", "null"], "maxItems": self.limit,
                "items": {"type": "string", "pattern": f"^{UID}$"},
                "description": self.description}  # fmt: skip


_PRINTER_UIDS = Uids("printerUids", "The printers the device prints on (seed 000).")

DEVICE_CREATE = Body(
    "DeviceCreate",
    "A new device: ACTIVE (a record without credentials) or READY_TO_LINK (a terminal to link; "
    "the answer carries its link code).",
    (
        _DEVICE_NAME,
        _EXTERNAL_ID,
        _LOCATION_IDS,
        _TILL_ID,
        _APP_CODE,
        _PRINTER_UIDS,
        OneOf(
            "status",
            "ACTIVE (default) or READY_TO_LINK.",
            (DeviceStatus.ACTIVE, DeviceStatus.READY_TO_LINK),
        ),
    ),
    required=("name",),
    example={
        "name": "Till 3",
        "externalId": "store-12-till-3",
        "locationIds": ["loc_main"],
        "tillId": "3",
        "appCode": "CLIENT",
        "status": "READY_TO_LINK",
    },  # fmt: skip
)
DEVICE_UPDATE = Body(
    "DeviceUpdate",
    "The fields to change. status BLOCKED revokes the device's tokens; READY_TO_LINK unlinks it "
    "(tokens revoked, a new link code in the answer); ACTIVE unblocks a linked device (its old "
    "tokens stay revoked unless restoreSessions).",
    (
        _DEVICE_NAME,
        _EXTERNAL_ID,
        _LOCATION_IDS,
        _TILL_ID,
        _APP_CODE,
        _PRINTER_UIDS,
        OneOf("status", "The new status.", tuple(DeviceStatus)),
        Flag(
            "restoreSessions",
            "With status ACTIVE for a BLOCKED device: the sessions the "
            "block ended live again (default false: the device must be linked anew).",
        ),
    ),
    example={"status": "BLOCKED"},
)
BULK_LIMIT = 10_000
BULK_AFTER = Text("after", "With filter: go on after this id (a previous answer's lastId).", 64)
DEVICE_BULK_CREATE = Body(
    "DeviceBulkCreate",
    "Up to 10,000 new devices, created all together or not at all. The same rows can be sent "
    "as text/csv: a header line naming the columns (the fields of DeviceCreate), a device per "
    "line, locationIds and printerUids separated by spaces, an empty cell for a field not given.",
    (Rows("devices", "The devices to create, each a DeviceCreate.", DEVICE_CREATE, BULK_LIMIT),),
    required=("devices",),
    example={"devices": [{"name": "Till 1", "externalId": "store-12-till-1",
                          "status": "READY_TO_LINK"},
                         {"name": "Till 2", "externalId": "store-12-till-2",
                          "status": "READY_TO_LINK"}]},
)  # fmt: skip
DEVICE_FILTER = Filter(
    "filter",
    "The devices to change, chosen as the device list's query parameters choose them.",
    members=(
        ("locationId", "At this location."),
        ("name", "Name contains (case-insensitive)."),
        ("origin", "Of this origin."),
        ("status", "Of this status."),
        ("appCode", "Running this app."),
        ("externalId", "Exactly this externalId."),
        ("deviceIdentifier", "Exactly this identifier."),
        ("q", "Name, externalId, identifier or tillId contains."),
    ),
    choices=(
        ("origin", tuple(str(o) for o in DeviceOrigin)),
        ("status", tuple(str(s) for s in DeviceStatus)),
        ("appCode", tuple(str(a) for a in AppCode)),
    ),
)
DEVICE_BULK_CHANGE = Body(
    "DeviceBulkChange",
    "The devices to block, unblock or delete: ids (up to 10,000, every one a device of the "
    "tenant), or a filter (up to 10,000 devices per request; hasMore in the answer says to "
    "send it again). Exactly one of the two.",
    (
        Ids("ids", "The devices' ids.", BULK_LIMIT),
        DEVICE_FILTER,
        BULK_AFTER,
        Flag(
            "restoreSessions",
            "Unblock only: the sessions each block ended live again (default false), as PATCH "
            "with restoreSessions.",
        ),
    ),
    extra={"oneOf": [{"required": ["ids"]}, {"required": ["filter"]}]},
    example={"filter": {"locationId": "loc_main", "status": "ACTIVE"}},
)
LOCATION_CREATE = Body(
    "LocationCreate",
    "A new location.",
    (
        Name("name", "The location's name, unique in the tenant.", 200),
        OneOf("kind", "What kind of place it is.", LOCATION_KINDS, default="store"),
    ),
    required=("name",),
    example={"name": "Main street", "kind": "store"},
)
LOCATION_UPDATE = Body(
    "LocationUpdate",
    "The fields to change.",
    LOCATION_CREATE.fields,
    defaults_apply=False,
    example={"name": "Main street (north entrance)"},
)
DECISION = Body(
    "DeviceAuthorizationDecision",
    "Approve or deny a pending device authorization (RFC 8628) by its user code.",
    (
        OneOf(
            "decision",
            "approve or deny.",
            ("approve", "deny"),
            message='decision must be "approve" or "deny".',
        ),  # fmt: skip
        AnyText("locationId", "Where an enrolled kiosk is placed (needed for location managers)."),
        AnyText("tillId", "The till an enrolled kiosk serves."),
        AnyText("name", "The name an enrolled kiosk gets (else the one it asked for)."),
        AnyText(
            "moduleId",
            "The module an enrolled kiosk runs as (else the one it asked for); "
            "its earlier enrolment is logged out.",
        ),  # fmt: skip
    ),
    required=("decision",),
    example={
        "decision": "approve",
        "locationId": "loc_main",
        "tillId": "T1",
        "name": "Lobby kiosk",
    },  # fmt: skip
)
LINK = Body(
    "LinkRequest",
    "Link a terminal with its link code (the older terminal API). Send staffCode or userCode "
    "(its older name), not both.",
    (
        Text("appId", "The terminal app's client id (a public client).", 128),
        Text("staffCode", "The staff member's staff code.", 64),
        Text("userCode", "The staff code, by its older name.", 64),
        Text("password", "The staff member's password.", 1024),
        Text(
            "systemInformation", "What the terminal reports about itself.", 2000, multi_line=True
        ),  # fmt: skip
        Chars(
            "totp",
            "The staff member's current TOTP code, when they have a second factor "
            "(without it: 400 with error totp_required).",
            6,
            6,
            "[0-9]{6}",
            lambda c: c.isascii() and c.isdigit(),
        ),  # fmt: skip
    ),
    extra={"required": ["appId", "password"]},
    example={
        "appId": "cli_demo_pos",
        "staffCode": "1234",
        "password": "correct horse",
        "systemInformation": "PosOS 4.2, build 1187",
    },  # fmt: skip
)
DEVICE_SELF_UPDATE = Body(
    "DeviceSelfUpdate",
    "What the calling terminal changes about itself: its system information, the last order it "
    "took (seed 000 lastOrderUid).",
    (
        Text(
            "systemInformation",
            "Free text, up to 2,000 characters, line breaks allowed.",
            2000,
            multi_line=True,
        ),
        Chars(
            "lastOrderUid",
            "The uid of the last order it took: 1-64 of A-Z a-z 0-9 _ -.",
            1,
            64,
            pattern="[A-Za-z0-9_-]+",
        ),
    ),  # fmt: skip
    example={"lastOrderUid": "ord-20261130-0042"},
)
SYSTEM_INFORMATION = Body(
    "SystemInformation",
    "What the calling terminal reports about itself.",
    (
        Text(
            "systemInformation",
            "Free text, up to 2,000 characters, line breaks allowed.",
            2000,
            multi_line=True,
        ),
    ),  # fmt: skip
    required=("systemInformation",),
    example={"systemInformation": "PosOS 4.2, build 1187\nprinter: TM-T88"},
)


# -- people (seed 002) -----------------------------------------------------------------------------


def _name_char(c: str) -> bool:  # [\p{L}\p{N}_. -]
    return c.isalnum() or c in "_. -"


def _phone_char(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c in ". ()+-")


def _code_char(c: str) -> bool:
    return c.isascii() and c.isalnum()


USER_ID_PATTERN = "usr_[A-Za-z0-9_-]{4,44}"
_USER_ID = Chars("id", "The new user's id (else one is made).", 8, 48, USER_ID_PATTERN,
                 lambda c: c.isascii() and (c.isalnum() or c in "_-"))  # fmt: skip
_LOGIN = Chars("login", "Sign-in name, unique in the tenant: an email address or a name.", 1,
               200, nullable=False)  # fmt: skip
_PASSWORD = Chars("password", "8-64 characters; stored as an argon2 hash, never returned.", 8, 64,
                  allowed=str.isprintable, secret=True, nullable=False)  # fmt: skip
# Seed 002's [\p{L}\p{N}_. -]+, said in words: JSON Schema's regex dialect has no \p{...}.
_NAME_RULE = "letters, digits, spaces, _ . -"
_FIRST_NAME = Chars("firstName", f"Given name: {_NAME_RULE}.", 1, 100, "", _name_char,
                    rule=_NAME_RULE)  # fmt: skip
_LAST_NAME = Chars("lastName", f"Family name: {_NAME_RULE}.", 1, 100, "", _name_char,
                   rule=_NAME_RULE)  # fmt: skip
_PHONE = Chars("phone", "Phone number.", 3, 32, r"[A-Za-z0-9. ()+-]+", _phone_char)
_PUSH_ID = Chars("pushId", "Push-notification address of the person's app.", 3, 256)
_CONSENTS = Words("consents", "What the person agreed to (names of your choosing).", 16)
_PROPERTIES = Properties("properties", "Your own data about the person.")
_TRUSTED = Flag("trusted", "Marked as trusted by the tenant (its meaning is yours).")
_ACTIVE = Flag("active", "false: cannot sign in; every token issued to or for them is revoked.")
_ROLES = Roles("roles", "Roles for the whole tenant (no locationId) or at one location.")
_STAFF_CODE = Chars("staffCode", "The short code the person types on a terminal (4-32 letters "
                    "or digits, unique in the tenant); stored as a keyed hash, never returned.",
                    4, 32, "[A-Za-z0-9]+", _code_char, secret=True)  # fmt: skip
_KIND = OneOf("kind", "staff (roles, staff codes, the back office) or customer (the tenant's "
              "end users: no roles, never a scope that manages the tenant, only the apps made for "
              "customers); staff when a new user is made.", values=USER_KINDS)  # fmt: skip
_USER_FIELDS = (_LOGIN, _PASSWORD, _KIND, _FIRST_NAME, _LAST_NAME, _PHONE, _PUSH_ID, _CONSENTS,
                _PROPERTIES, _TRUSTED, _ACTIVE, _ROLES, _STAFF_CODE)  # fmt: skip
_USER_EXAMPLE = {
    "login": "anna@example.com",
    "password": "correct horse battery",
    "firstName": "Anna",
    "lastName": "Nowak",
    "roles": [{"role": "STAFF", "locationId": "loc_main"}],
    "staffCode": "4711",
}
USER_CREATE = Body("UserCreate", "A new user of the tenant.", (_USER_ID, *_USER_FIELDS),
                   required=("login",), example=_USER_EXAMPLE)  # fmt: skip
USER_REPLACE = Body(
    "UserReplace",
    "The whole user (created with this id if there is none): every profile field not sent is "
    "cleared; the password and staff code are kept unless sent.",
    _USER_FIELDS,
    required=("login",),
    example=_USER_EXAMPLE,
)
USER_UPDATE = Body("UserUpdate", "The fields to change.", _USER_FIELDS,
                   example={"active": False})  # fmt: skip
USER_BULK_CREATE = Body(
    "UserBulkCreate",
    "Up to 10,000 new users (at most 100 of them with a password), created all together or not "
    "at all. The same rows can be sent as text/csv: a header line naming the columns (the "
    "fields of UserCreate but properties), a user per line, roles (ROLE or ROLE@locationId) and "
    "consents separated by spaces, trusted and active as true or false, an empty cell for a "
    "field not given.",
    (Rows("users", "The users to create, each a UserCreate.", USER_CREATE, BULK_LIMIT),),
    required=("users",),
    example={"users": [{"login": "anna@example.com", "staffCode": "4711",
                        "roles": [{"role": "STAFF", "locationId": "loc_main"}]},
                       {"login": "ben@example.com", "staffCode": "4712"}]},
)  # fmt: skip
USER_FILTER = Filter(
    "filter",
    "The users to change, chosen as the user list's query parameters choose them.",
    members=(
        ("login", "Login contains (case-insensitive)."),
        ("name", "First or last name contains (case-insensitive)."),
        ("role", "Holds this role (tenant-wide or at a location)."),
        ("locationId", "Holds a role at this location."),
        ("active", "true or false."),
        ("kind", "staff or customer."),
    ),
    choices=(
        ("active", ("true", "false")),
        ("kind", tuple(USER_KINDS)),
        ("role", tuple(ROLES)),
    ),  # fmt: skip
)
USER_BULK_CHANGE = Body(
    "UserBulkChange",
    "The users to disable, enable or delete: ids (up to 10,000, each a user of the tenant you "
    "may manage), or a filter (up to 10,000 users per request; hasMore in the answer says to "
    "send it again). Exactly one of the two.",
    (Ids("ids", "The users' ids.", BULK_LIMIT), USER_FILTER, BULK_AFTER),
    extra={"oneOf": [{"required": ["ids"]}, {"required": ["filter"]}]},
    example={"filter": {"locationId": "loc_main", "active": "true"}},
)
SELF_UPDATE = Body(
    "SelfUpdate",
    "The fields of your own profile to change.",
    (_FIRST_NAME, _LAST_NAME, _PHONE, _PUSH_ID, _PROPERTIES),
    example={"phone": "+48 600 100 200"},
)
SELF_DELETE = Body(
    "SelfDelete",
    "Delete your own account: confirm by sending your login.",
    (Chars("login", "Your login.", 1, 200, nullable=False),),
    required=("login",),
    example={"login": "anna@example.com"},
)
CONSENTS = Body(
    "ConsentsChange",
    "Consents to add (set) and withdraw (unset); a name in both is refused.",
    (Words("set", "Consents to add.", 16), Words("unset", "Consents to withdraw.", 16)),
    example={"set": ["marketing"], "unset": ["newsletter"]},
)


@dataclass(frozen=True)
class Logins(Field):
    """1-100 logins."""

    def parse(self, body: dict[str, Any]) -> list[str]:
        value = body.get(self.name)
        if (
            not isinstance(value, list)
            or not 1 <= len(value) <= 100
            or not all(isinstance(v, str) and 1 <= len(v) <= 256 for v in value)
        ):
            raise ValidationProblem(f"{self.name} must be a list of 1-100 logins.", field=self.name)
        return list(dict.fromkeys(value))

    def json_schema(self) -> dict[str, Any]:
        return {"type": "array", "minItems": 1, "maxItems": 100,
                "items": {"type": "string", "minLength": 1, "maxLength": 256},
                "description": self.description}  # fmt: skip


@dataclass(frozen=True)
class RoleNames(Field):
    """1-5 role names (not SU)."""

    def parse(self, body: dict[str, Any]) -> list[str]:
        value = body.get(self.name)
        if (
            not isinstance(value, list)
            or not 1 <= len(value) <= 5
            or not all(isinstance(v, str) and v in ROLES for v in value)
        ):
            raise ValidationProblem(
                f"{self.name} must be a list of 1-5 roles of {', '.join(ROLES)}.",
                field=self.name,
            )
        return sorted(set(value))

    def json_schema(self) -> dict[str, Any]:
        return {"type": "array", "minItems": 1, "maxItems": 5,
                "items": {"type": "string", "enum": list(ROLES)},
                "description": self.description}  # fmt: skip


ROLE_GRANT = Body(
    "RoleGrant",
    "Give a role, for the whole tenant or at one location, to the users with these logins.",
    (
        OneOf("role", "The role.", tuple(ROLES)),
        Chars("locationId", "Only at this location.", 5, LOCATION_ID_LENGTH),
        Logins("logins", "The users' logins (1-100)."),
    ),
    required=("role", "logins"),
    example={"role": "STAFF", "locationId": "loc_main", "logins": ["anna@example.com"]},
)
ROLE_REVOCATION = Body(
    "RoleRevocation",
    "Take roles away from every user of the tenant who has them, tenant-wide or at any "
    "location. Never SU; a user never loses their own roles this way.",
    (RoleNames("roles", "1-5 roles."),),
    required=("roles",),
    example={"roles": ["DEVICE.MANAGER"]},
)


def _strategy_char(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c in "_.-")


AUTH_STRATEGY = Body(
    "AuthStrategy",
    "Link an external identity to the user (or change the link): the strategy and the user's "
    "id there. Unique in the tenant.",
    (
        Chars(
            "strategy",
            "The identity's system: FB, GOOGLE, LOYALTY, ...",
            1,
            32,
            "[A-Za-z0-9_.-]+",
            _strategy_char,
            nullable=False,
        ),  # fmt: skip
        Chars("id", "The user's id in that system.", 1, 255, nullable=False),
        Chars(
            "password",
            "A secret for that strategy (10-64 characters); stored as a hash, "
            "never returned; null removes it.",
            10,
            64,
            allowed=str.isprintable,
            secret=True,
        ),  # fmt: skip
        Flag("active", "false: the link no longer finds the user."),
    ),
    required=("strategy", "id"),
    example={"strategy": "FB", "id": "12345", "active": True},
)

_TOTP_CODE = Chars("code", "A current 6-digit code from the authenticator app.", 6, 6,
                   "[0-9]{6}", lambda c: c.isascii() and c.isdigit(), nullable=False)  # fmt: skip
TOTP_CONFIGURE = Body(
    "TotpConfigure",
    "Turn the second factor on: prove a current code made with the secret just generated.",
    (
        _TOTP_CODE,
        Chars(
            "secret",
            "The generated secret, as a check (optional).",
            10,
            64,
            "[A-Za-z0-9]+",
            _code_char,
            secret=True,
        ),  # fmt: skip
    ),
    required=("code",),
    example={"code": "492039"},
)
TOTP_REMOVE = Body(
    "TotpRemove",
    "Turn your second factor off: prove a current code.",
    (_TOTP_CODE,),
    required=("code",),
    example={"code": "492039"},
)

PROPERTY = Body(
    "TenantPropertyChange",
    "Set a property. An obfuscated property is a secret: stored encrypted, shown masked from "
    "then on, and it stays obfuscated.",
    (
        Chars(
            "value",
            "The value: up to 4,000 characters.",
            0,
            4000,
            nullable=False,
            allowed=lambda c: c.isprintable() or c in "\n\t",
        ),  # fmt: skip
        Flag("isPrivate", "true: only administrators and services read it (default false)."),
        Flag("isObfuscate", "true: a secret, never shown in clear again (default false)."),
    ),
    required=("value",),
    example={"value": "#0a5", "isPrivate": False},
)


_PROPERTY_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _public_config(body: dict[str, Any]) -> dict[str, Any]:
    if len(body) > 100 or not all(
        _PROPERTY_NAME.fullmatch(k) and isinstance(v, str) and len(v) <= 4000
        for k, v in body.items()
    ):
        raise ValidationProblem(
            "Send up to 100 properties named [A-Za-z0-9_.-]{1,64}, each a string of up to "
            "4,000 characters."
        )
    return dict(body)


PUBLIC_CONFIG = Body(
    "PublicConfigChange",
    "Public properties to set, by name (up to 100; each value up to 4,000 characters).",
    (),
    extra={
        "additionalProperties": {"type": "string", "maxLength": 4000},
        "propertyNames": {"pattern": "^[A-Za-z0-9_.-]{1,64}$"},
        "maxProperties": 100,
    },
    example={"theme.colour": "#0a5", "orders.open": "true"},
    parser=_public_config,
)


@dataclass(frozen=True)
class JsonObject(Field):
    """A JSON object of at most 12 KiB (compact); null is the empty object."""

    def parse(self, body: dict[str, Any]) -> dict[str, Any]:
        return check_config(body.get(self.name), self.name)

    def json_schema(self) -> dict[str, Any]:
        return {"type": ["object", "null"], "description": self.description}


@dataclass(frozen=True)
class OptionalId(Field):
    """An id (1-48 characters) or null."""

    def parse(self, body: dict[str, Any]) -> str | None:
        value = body.get(self.name)
        if value is not None and (not isinstance(value, str) or not 1 <= len(value) <= ID_CHARS):
            raise ValidationProblem(f"{self.name} must be an id or null.", field=self.name)
        return value

    def json_schema(self) -> dict[str, Any]:
        return {"type": ["string", "null"], "minLength": 1, "maxLength": ID_CHARS,
                "description": self.description}  # fmt: skip


_MODULE_FIELDS = (
    Chars(
        "id",
        "The module's id, chosen by you: 2-64 of A-Z a-z 0-9 _ -.",
        2,
        64,
        pattern="[A-Za-z0-9_-]+",
        nullable=False,
    ),  # fmt: skip
    OneOf("type", "What the module is.", MODULE_TYPES),
    Flag("production", "true for a production module (default false)."),
    OptionalId("userId", "The user the module acts for, if any."),
    OptionalId("locationId", "The location (venue) the module serves, if any."),
    JsonObject(
        "config",
        "The module's own config: a JSON object (up to 12 KiB), laid over the "
        "common config of its type.",
    ),  # fmt: skip
)
_MODULE_EXAMPLE = {
    "id": "kiosk-1",
    "type": "KIOSK",
    "production": False,
    "locationId": "loc_main",
    "config": {"menu": "breakfast", "idleSeconds": 60},
}
MODULE_CREATE = Body(
    "ModuleCreate",
    "A new module (only if no module has this id).",
    _MODULE_FIELDS,
    required=("id", "type"),
    example=_MODULE_EXAMPLE,
)
MODULE_BULK_CREATE = Body(
    "ModuleBulkCreate",
    "Up to 10,000 new modules, created all together or not at all. The same rows can be sent "
    "as text/csv: a header line naming the columns (the fields of ModuleCreate), a module per "
    "line, production as true or false, config as its JSON text.",
    (Rows("modules", "The modules to create, each a ModuleCreate.", MODULE_CREATE, BULK_LIMIT),),
    required=("modules",),
    example={"modules": [{"id": "kiosk-1", "type": "KIOSK"}, {"id": "kiosk-2", "type": "KIOSK"}]},
)
MODULE_FILTER = Filter(
    "filter",
    "The modules to change, chosen as the module list's query parameters choose them.",
    members=(
        ("type", "Of this type."),
        ("locationId", "At this location."),
        ("userId", "Of this user."),
        ("production", "true or false."),
        ("id", "Id contains."),
    ),
    choices=(("type", MODULE_TYPES), ("production", ("true", "false"))),
)
MODULE_BULK_CHANGE = Body(
    "ModuleBulkChange",
    "The modules to log out or delete: ids (up to 10,000, each a module of the tenant), or a "
    "filter (up to 10,000 modules per request; with hasMore in the answer, send it again with "
    "after set to its lastId). Exactly one of the two.",
    (Ids("ids", "The modules' ids.", BULK_LIMIT, 64), MODULE_FILTER, BULK_AFTER),
    extra={"oneOf": [{"required": ["ids"]}, {"required": ["filter"]}]},
    example={"filter": {"type": "KIOSK", "locationId": "loc_main"}},
)
MODULE_REPLACE = Body(
    "ModuleReplace",
    "The whole module: fields left out go back to their defaults (no user, no location, empty "
    "config, not production). The id, if sent, must be the path's.",
    _MODULE_FIELDS,
    required=("type",),
    example=_MODULE_EXAMPLE,
)
MODULE_UPDATE = Body(
    "ModuleUpdate",
    "The fields to change; config, when sent, replaces the module's own config.",
    _MODULE_FIELDS[1:],
    example={"config": {"menu": "lunch", "idleSeconds": 60}},
)
MODULE_COMMON_CONFIG = Body(
    "ModuleCommonConfig",
    "The config every module of a type shares: a JSON object (up to 12 KiB); it replaces the "
    "previous one.",
    (),
    extra={"additionalProperties": True},
    example={"currency": "PLN", "theme": {"colour": "#0a5"}},
    parser=lambda body: check_config(body, "body"),
)


@dataclass(frozen=True)
class Time(Field):
    """An RFC 3339 date-time with a time zone (``2026-12-31T23:59:59Z``), or null; kept as Unix
    seconds."""

    def parse(self, body: dict[str, Any]) -> int | None:
        value = body.get(self.name)
        if value is None:
            return None
        from datetime import datetime

        try:
            if not isinstance(value, str) or len(value) > 40:
                raise ValueError(value)
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
            if parsed.tzinfo is None:
                raise ValueError(value)
            return int(parsed.timestamp())
        except (ValueError, OverflowError, OSError) as exc:
            raise ValidationProblem(
                f"{self.name} must be an RFC 3339 date-time with a time zone, or null.",
                field=self.name,
            ) from exc

    def json_schema(self) -> dict[str, Any]:
        return {"type": ["string", "null"], "format": "date-time",
                "description": self.description}  # fmt: skip


_OWNED_INFO = (
    Text("operatingSystem", "Its operating system and version (iOS 17.2).", 100),
    Text("nickname", "The name its owner gives it.", 100),
    Text("brandName", "Its brand.", 100),
    Text("modelName", "Its model.", 100),
    Chars("installationId", "The app installation's id on it.", 1, 128, pattern="[A-Za-z0-9_.:-]+"),
    Chars("pushId", "Where push notifications reach it (an FCM or APNs token).", 1, 512,
          pattern="[A-Za-z0-9_.:/+=-]+"),
    Time("pushExpiresAt", "When the push id stops working; null: no known expiry."),
)  # fmt: skip
OWNED_REGISTER = Body(
    "OwnedDeviceRegistration",
    "Register a device you own (seed 003 POST /owned-devices).",
    (
        Chars(
            "externalDeviceIdentifier",
            "Its identifier, such as an IMEI: 1-64 of "
            "A-Z a-z 0-9 _ . : -; unique among your registered devices.",
            1,
            64,
            pattern="[A-Za-z0-9_.:-]+",
            nullable=False,
        ),
        *_OWNED_INFO,
    ),  # fmt: skip
    required=("externalDeviceIdentifier",),
    example={
        "externalDeviceIdentifier": "990000862471854",
        "operatingSystem": "iOS 17.2",
        "nickname": "My Phone",
        "brandName": "Apple iPhone",
        "modelName": "15",
        "pushId": "fcm:eXaMpLe",
        "pushExpiresAt": "2027-06-30T00:00:00Z",
    },  # fmt: skip
)
OWNED_UPDATE = Body(
    "OwnedDeviceUpdate",
    "What to change about your device (null clears a field).",
    _OWNED_INFO,
    example={"nickname": "Work phone", "pushId": "fcm:n3w", "pushExpiresAt": None},
)
ISSUED_CREATE = Body(
    "IssuedDeviceCreation",
    "A device issued to the customer: a card or a hardware token, by a masked identifier only.",
    (
        OneOf("kind", "What it is.", ISSUED_KINDS),
        Chars(
            "maskedIdentifier",
            "Its identifier masked with *: at most 4 digits in clear (**** **** **** 1234).",
            4,
            32,
            pattern="[0-9A-Za-z* -]+",
            nullable=False,
        ),
        Text("label", "A name for it (Visa Debit).", 100),
        OneOf(
            "status",
            "Where its life starts: ORDERED (default) or ACTIVE.",
            ("ORDERED", "ACTIVE"),
            default="ORDERED",
        ),
        Text("reason", "Why (kept with the status).", 200),
    ),  # fmt: skip
    required=("kind", "maskedIdentifier"),
    example={
        "kind": "PAYMENT_CARD",
        "maskedIdentifier": "**** **** **** 4242",
        "label": "Visa Debit",
    },  # fmt: skip
)
ISSUED_STATUS = Body(
    "IssuedDeviceStatusChange",
    "The next status: ORDERED -> ACTIVE | CLOSED; ACTIVE -> BLOCKED | LOST | EXPIRED | CLOSED; "
    "BLOCKED -> ACTIVE | LOST | EXPIRED | CLOSED; LOST, EXPIRED -> CLOSED; CLOSED is final.",
    (
        OneOf(
            "status",
            "The new status.",
            ISSUED_STATUSES,
        ),
        Text("reason", "Why (kept with the status).", 200),
    ),  # fmt: skip
    required=("status",),
    example={"status": "BLOCKED", "reason": "Customer reported suspicious payments."},
)

# -- OAuth clients (the tenant's apps and services) -------------------------------------------------

MAX_CLIENT_URIS = 20
MAX_SCOPE_CHARS = 2000
SCOPE_TOKEN = r"[!#-\[\]-~]+"  # RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )


@dataclass(frozen=True)
class Choices(Field):
    """A non-empty list of distinct values, each one of ``values``."""

    values: tuple[str, ...] = ()

    def parse(self, body: dict[str, Any]) -> list[str]:
        value = body.get(self.name)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = list(dict.fromkeys(value))  # a repeated value is the same choice
        if (
            not isinstance(value, list)
            or not 1 <= len(value) <= len(self.values)
            or not all(isinstance(v, str) and v in self.values for v in value)
        ):
            raise ValidationProblem(
                f"{self.name} must be a list of one or more of {', '.join(self.values)}.",
                field=self.name,
            )
        return list(dict.fromkeys(value))

    def json_schema(self) -> dict[str, Any]:
        return {"type": "array", "minItems": 1, "uniqueItems": True,
                "items": {"type": "string", "enum": list(self.values)},
                "description": self.description}  # fmt: skip


@dataclass(frozen=True)
class Uris(Field):
    """A list of at most ``MAX_CLIENT_URIS`` URIs (each checked further by the service)."""

    def parse(self, body: dict[str, Any]) -> list[str]:
        value = body.get(self.name)
        if value is None:
            return []
        if (
            not isinstance(value, list)
            or len(value) > MAX_CLIENT_URIS
            or not all(isinstance(v, str) and 1 <= len(v) <= MAX_REDIRECT_URI for v in value)
        ):
            raise ValidationProblem(
                f"{self.name} must be a list of at most {MAX_CLIENT_URIS} URIs of at most "
                f"{MAX_REDIRECT_URI} characters.",
                field=self.name,
            )
        return list(dict.fromkeys(value))

    def json_schema(self) -> dict[str, Any]:
        return {"type": ["array", "null"], "maxItems": MAX_CLIENT_URIS,
                "items": {"type": "string", "format": "uri", "minLength": 1,
                          "maxLength": MAX_REDIRECT_URI},
                "description": self.description}  # fmt: skip


@dataclass(frozen=True)
class Scope(Field):
    """Space-separated scope tokens (RFC 6749 §3.3), or null/"" for none; which scopes exist is
    the server's configuration, checked by the service."""

    def parse(self, body: dict[str, Any]) -> str:
        value = body.get(self.name)
        if value is None or value == "":
            return ""
        if (
            not isinstance(value, str)
            or len(value) > MAX_SCOPE_CHARS
            or re.fullmatch(f"{SCOPE_TOKEN}( {SCOPE_TOKEN})*", value) is None
        ):
            raise ValidationProblem(
                f"{self.name} must be scope names separated by single spaces "
                f"(at most {MAX_SCOPE_CHARS} characters).",
                field=self.name,
            )
        return value

    def json_schema(self) -> dict[str, Any]:
        return {"type": ["string", "null"], "maxLength": MAX_SCOPE_CHARS,
                "pattern": f"^({SCOPE_TOKEN}( {SCOPE_TOKEN})*)?$",
                "description": self.description}  # fmt: skip


_CLIENT_CHANGEABLE = (
    Name("name", "The client's name, as people see it (on the sign-in and consent pages).", 200),
    Scope(
        "scope",
        "The scopes it may be given, space-separated. Scopes that manage the tenant "
        "(devices:, users:, tenant:, modules:, customer-devices:, clients:) only if your own "
        "token holds them.",
    ),
    Choices("grantTypes", "The grants it may use.", KNOWN_GRANT_TYPES),
    Flag(
        "dpopBoundAccessTokens",
        "RFC 9449 §5.2 dpop_bound_access_tokens: every token request must carry a DPoP "
        "proof (default false).",
    ),  # fmt: skip
    Uris(
        "redirectUris",
        "Where the authorization code flow may send the browser back to, compared exactly "
        "(https; http on 127.0.0.1 or [::1] on any port, or a private-use scheme, for a native "
        "app, RFC 8252). Needed with the authorization_code grant.",
    ),  # fmt: skip
    Uris("postLogoutRedirectUris", "Where RP-initiated logout may send the browser back to."),
    Flag(
        "firstParty",
        "The tenant's own app: no consent page, and its user tokens reach the person's "
        "account (/users/me). Default false.",
    ),  # fmt: skip
    Flag(
        "requirePushedAuthorizationRequests",
        "RFC 9126 §5: its authorization requests must be pushed first (default false).",
    ),
    Chars(
        "idTokenSignedResponseAlg",
        "OIDC Registration §2: the ID tokens' algorithm, one the server signs with; null: RS256.",
        2,
        16,
        "[A-Za-z0-9]+",
    ),  # fmt: skip
    OneOf(
        "userKind",
        "Who may sign in to it: staff, customer, or any (default).",
        CLIENT_USER_KINDS,
        default="any",
    ),  # fmt: skip
)
_CLIENT_EXAMPLE = {
    "name": "Back-office web app",
    "grantTypes": ["authorization_code", "refresh_token"],
    "tokenEndpointAuthMethod": "client_secret_basic",
    "scope": "openid profile offline_access devices:read",
    "redirectUris": ["https://backoffice.example/callback"],
    "postLogoutRedirectUris": ["https://backoffice.example/"],
    "firstParty": True,
    "userKind": "staff",
}
CLIENT_CREATE = Body(
    "ClientCreate",
    "A new client of the tenant; its id is made by the server, and a confidential client's "
    "secret is in the answer, once.",
    (
        *_CLIENT_CHANGEABLE,
        OneOf(
            "tokenEndpointAuthMethod",
            "How it authenticates: client_secret_basic (default), client_secret_post, or "
            "none for a public client (an app on a phone or a device).",
            AUTH_METHODS,
            default="client_secret_basic",
        ),  # fmt: skip
        OneOf(
            "dpopBinding",
            "all (default): a DPoP proof binds access and refresh tokens; refresh_only: "
            "access tokens stay Bearer.",
            DPOP_BINDINGS,
            default="all",
        ),  # fmt: skip
        OneOf(
            "deviceSubject",
            "Whose token a device-flow approval gives: the device's (default) or the "
            "approving user's.",
            DEVICE_SUBJECTS,
            default="device",
        ),  # fmt: skip
    ),
    required=("name", "grantTypes"),
    example=_CLIENT_EXAMPLE,
)
CLIENT_UPDATE = Body(
    "ClientUpdate",
    "The fields to change. active false disables it and ends its tokens at once; a new user "
    "kind ends its tokens too.",
    (*_CLIENT_CHANGEABLE,
     Flag("active", "false: it cannot authenticate and its tokens end; true: enabled again.")),
    defaults_apply=False,
    example={"redirectUris": ["https://backoffice.example/callback",
                              "https://backoffice.example/callback2"]},
)  # fmt: skip

BODIES = (DEVICE_CREATE, DEVICE_UPDATE, DEVICE_BULK_CREATE, DEVICE_BULK_CHANGE, USER_BULK_CREATE,
          USER_BULK_CHANGE, MODULE_BULK_CREATE, MODULE_BULK_CHANGE, LOCATION_CREATE, LOCATION_UPDATE, DECISION, LINK,
          SYSTEM_INFORMATION, USER_CREATE, USER_REPLACE, USER_UPDATE, SELF_UPDATE, SELF_DELETE,
          DEVICE_SELF_UPDATE, CONSENTS, ROLE_GRANT, ROLE_REVOCATION, AUTH_STRATEGY, TOTP_CONFIGURE,
          TOTP_REMOVE, PROPERTY, PUBLIC_CONFIG, MODULE_CREATE, MODULE_REPLACE, MODULE_UPDATE,
          MODULE_COMMON_CONFIG, OWNED_REGISTER, OWNED_UPDATE, ISSUED_CREATE,
          ISSUED_STATUS, CLIENT_CREATE, CLIENT_UPDATE)  # fmt: skip
