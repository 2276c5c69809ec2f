"""Request bodies of the registry API, each defined once: the definition validates a request
(``Body.parse``, with the messages clients see) and describes it (``Body.json_schema``, for the
API's OpenAPI document). A field's rules and its documentation cannot drift apart.

``authserver.registry.bodies`` reads the JSON strictly first (UTF-8, objects only, no control
characters anywhere); these schemas then check each field's type, length and allowed values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from authserver.devices import LOCATION_KINDS
from authserver.models import AppCode, DeviceStatus
from authserver.problems import ValidationProblem
from authserver.registry.bodies import optional_str, required_name, string_list

ID_CHARS = 48  # the longest id a list of ids may hold


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

    def parse(self, body: dict[str, Any]) -> list[str]:
        return string_list(body, self.name, self.limit)

    def json_schema(self) -> dict[str, Any]:
        return {
            "type": ["array", "null"],
            "maxItems": self.limit,
            "items": {"type": "string", "minLength": 1, "maxLength": ID_CHARS},
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
                self.message or f"{self.name} must be one of {', '.join(self.values)}."
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
            raise ValidationProblem(f"{self.name} must be a string.")
        return value

    def json_schema(self) -> dict[str, Any]:
        return {"type": ["string", "null"], "description": self.description}


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

    def parse(self, body: dict[str, Any]) -> dict[str, Any]:
        """The values of the fields present (and of the required ones, and defaults)."""
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


# -- the registry's bodies -------------------------------------------------------------------------

_DEVICE_NAME = Name("name", "The device's name, as people see it.", 100)
_EXTERNAL_ID = Text("externalId", "Your own id for the device; unique in the tenant.", 200)
_LOCATION_IDS = Ids("locationIds", "The locations the device belongs to.", 50)
_TILL_ID = Text("tillId", "The till (checkout) the device serves.", 100)
_APP_CODE = OneOf("appCode", "What the device runs.", tuple(AppCode))

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
    "(tokens revoked, a new link code in the answer); ACTIVE unblocks a linked device.",
    (
        _DEVICE_NAME,
        _EXTERNAL_ID,
        _LOCATION_IDS,
        _TILL_ID,
        _APP_CODE,
        OneOf("status", "The new status.", tuple(DeviceStatus)),
    ),
    example={"status": "BLOCKED"},
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
    ),
    extra={"required": ["appId", "password"]},
    example={
        "appId": "cli_demo_pos",
        "staffCode": "1234",
        "password": "correct horse",
        "systemInformation": "PosOS 4.2, build 1187",
    },  # fmt: skip
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

BODIES = (DEVICE_CREATE, DEVICE_UPDATE, LOCATION_CREATE, LOCATION_UPDATE, DECISION, LINK,
          SYSTEM_INFORMATION)  # fmt: skip
