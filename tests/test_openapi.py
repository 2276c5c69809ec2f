"""The OpenAPI document: valid OpenAPI 3.1, every route the app serves documented and every
documented operation served, request bodies described by the schemas that parse them."""

from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate

from authserver import openapi
from authserver.registry import schema


def served(app) -> set[tuple[str, str]]:
    return {
        (rule.endpoint, m.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for m in rule.methods or ()
        if m not in ("HEAD", "OPTIONS")
    }


def test_the_document_is_valid_openapi_3_1(http):
    doc = http.get("/openapi.json").get_json()
    assert doc["openapi"] == "3.1.0"
    validate(doc)


def test_every_route_is_documented_and_every_documented_operation_is_served(app, http):
    doc = http.get("/openapi.json").get_json()
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    routes = {
        (openapi._openapi_path(rule.rule), m.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for m in rule.methods or ()
        if m not in ("HEAD", "OPTIONS")
    }
    assert documented == routes
    # Nothing documented for a view that no longer exists.
    stale = set(openapi.OPERATIONS) - served(app)
    assert not stale, stale


def test_an_undocumented_route_stops_the_document(app):
    app.add_url_rule("/api/v1/new-thing", "new_thing", lambda: "x")
    with pytest.raises(KeyError, match="undocumented operation: GET /api/v1/new-thing"):
        openapi.document(app)


def test_bodies_are_the_schemas_the_views_parse_with(http):
    doc = http.get("/openapi.json").get_json()
    for body in schema.BODIES:
        assert doc["components"]["schemas"][body.name] == body.json_schema()
    create = doc["paths"]["/api/v1/devices"]["post"]["requestBody"]["content"]
    assert create["application/json"]["schema"] == {"$ref": "#/components/schemas/DeviceCreate"}
    device_create = doc["components"]["schemas"]["DeviceCreate"]
    assert device_create["required"] == ["name"] and not device_create["additionalProperties"]
    assert device_create["properties"]["name"]["maxLength"] == 100


@pytest.mark.parametrize(
    ("body", "field", "value", "accepted"),
    [
        (schema.DEVICE_CREATE, "name", "x" * 100, True),
        (schema.DEVICE_CREATE, "name", "x" * 101, False),
        (schema.DEVICE_CREATE, "status", "BLOCKED", False),  # not on creation
        (schema.DEVICE_UPDATE, "status", "BLOCKED", True),
        (schema.LOCATION_CREATE, "kind", "venue", True),
        (schema.LOCATION_CREATE, "kind", "castle", False),
        (schema.DECISION, "decision", "maybe", False),
    ],
)
def test_what_the_schema_says_is_what_the_parser_does(body, field, value, accepted):
    """The JSON Schema and ``parse`` agree on a value at and past each documented bound."""
    from jsonschema import Draft202012Validator

    from authserver.problems import ValidationProblem

    data = {"name": "Till"} if "name" in body.required else {}
    if "decision" in body.required:
        data = {"decision": "approve"}
    data[field] = value
    by_schema = Draft202012Validator(body.json_schema()).is_valid(data)
    try:
        body.parse(data)
        by_parser = True
    except ValidationProblem:
        by_parser = False
    assert by_schema == by_parser == accepted


@pytest.mark.parametrize("body", schema.BODIES, ids=lambda b: b.name)
def test_every_body_has_an_example_its_schema_and_its_parser_accept(body):
    from jsonschema import Draft202012Validator

    example = body.json_schema()["examples"][0]
    # Bodies refer to each other as the document does (#/components/schemas/...).
    components = {"schemas": {b.name: b.json_schema() for b in schema.BODIES}}
    Draft202012Validator({**body.json_schema(), "components": components}).validate(example)
    body.parse(example)  # raises on anything the view would refuse


def test_the_reference_page_renders_every_operation_offline(http):
    resp = http.get("/docs/api")
    html = resp.get_data(as_text=True)
    assert (
        resp.status_code == 200 and "default-src 'none'" in resp.headers["Content-Security-Policy"]
    )
    # Nothing loaded from anywhere: no script, no image, links only within the server.
    assert "<script" not in html and " src=" not in html
    assert all(href.startswith(("#", "/")) for href in re.findall(r'href="([^"]*)"', html))
    doc = http.get("/openapi.json").get_json()
    for ops in doc["paths"].values():
        for op in ops.values():
            assert f'id="{op["operationId"]}"' in html
