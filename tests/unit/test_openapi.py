"""The inbox API's OpenAPI document: valid, complete, served, and one source with events/schemas."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from pydantic import BaseModel
from samtranslator.yaml_helper import yaml_parse

from functions.api import app as api
from parley.openapi import OPERATIONS, SEND_REQUEST_SCHEMA_ID, as_component, openapi_document

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED_SEND_REQUEST = ROOT / "events" / "schemas" / "send-request.v1.schema.json"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document()


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): op
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    }


def _inlined(schema: dict[str, Any], root: dict[str, Any]) -> Any:
    """`schema` with every local $ref replaced by its target in `root`, and no $defs or $id: what
    the schema says, wherever its definitions happen to be kept."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                target: Any = root
                for part in node["$ref"].removeprefix("#/").split("/"):
                    target = target[part]
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return {**walk(target), **walk(rest)}
            return {k: walk(v) for k, v in node.items() if k not in ("$defs", "$id")}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    return walk(schema)


def _event(method: str, path: str, *, body: str | None = None, claims: bool = True) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((ROOT / "events" / "api_list_conversations.json").read_text())
    event.update(routeKey=f"{method} {path}", rawPath=path, rawQueryString="")
    event.pop("queryStringParameters")
    event["requestContext"]["http"].update(method=method, path=path)
    event["requestContext"]["routeKey"] = f"{method} {path}"
    if not claims:
        event["requestContext"].pop("authorizer")
    if body is not None:
        event["body"] = body
        event["headers"] = {"content-type": "application/json"}
    return event


@dataclass
class LambdaContext:
    function_name: str = "parley-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:parley-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"


def _call(event: dict[str, Any]) -> dict[str, Any]:
    """Through the function's real entry point, as Lambda calls it."""
    return api.handler(event, LambdaContext())


def _conforms(instance: Any, component: str, document: dict[str, Any]) -> None:
    schema = {"$ref": f"#/components/schemas/{component}", "components": document["components"]}
    OAS31Validator(schema).validate(instance)


# ---------------------------------------------------------------- the document


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"].startswith("3.1.")


def test_every_route_in_the_api_is_documented_and_nothing_else(document: dict[str, Any]) -> None:
    routed = {
        (method, path)
        for path, item in (api.app.get_openapi_schema().paths or {}).items()
        for method in item.model_dump(exclude_none=True).keys() & HTTP_METHODS
    }
    assert set(_operations(document)) == routed


def test_each_operation_is_named_after_its_handler(document: dict[str, Any]) -> None:
    for op in OPERATIONS:
        assert callable(getattr(api, op.operation_id, None)), f"no handler {op.operation_id} in app.py"
    ids = [op["operationId"] for op in _operations(document).values()]
    assert len(ids) == len(set(ids))


def test_the_documented_routes_are_the_templates_api_routes_with_the_same_authorizer() -> None:
    template = yaml_parse((ROOT / "template.yaml").read_text())
    events = template["Resources"]["ApiFunction"]["Properties"]["Events"].values()
    declared = {
        (e["Properties"]["Method"].lower(), e["Properties"]["Path"]): e["Properties"].get("Auth", {})
        for e in events
        if e["Type"] == "HttpApi"
    }
    documented = {(op.method, op.path): op.public for op in OPERATIONS}
    assert set(declared) == set(documented)
    for key, auth in declared.items():
        assert (auth.get("Authorizer") == "NONE") == documented[key], f"{key}: template {auth}"


def test_every_operation_but_the_document_needs_the_bearer_jwt(document: dict[str, Any]) -> None:
    (scheme_name,) = document["components"]["securitySchemes"]
    scheme = document["components"]["securitySchemes"][scheme_name]
    assert scheme == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert document["security"] == [{scheme_name: []}]
    for key, op in _operations(document).items():
        if key == ("get", "/v1/openapi.json"):
            assert op["security"] == []
            assert "401" not in op["responses"]
        else:
            assert "security" not in op, f"{key} overrides the API's security"
            assert op["responses"]["401"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/GatewayError"
            }


def test_path_and_paging_parameters_are_documented(document: dict[str, Any]) -> None:
    ops = _operations(document)
    for (method, path), op in ops.items():
        in_path = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert in_path == {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}, (method, path)
    for key in (("get", "/v1/conversations"), ("get", "/v1/conversations/{number}/messages")):
        query = {p["name"]: p["schema"] for p in ops[key]["parameters"] if p["in"] == "query"}
        assert {name: query[name] for name in ("limit", "cursor")} == {
            "limit": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
            "cursor": {"type": "string"},
        }


@pytest.mark.parametrize(
    ("key", "component"),
    [
        (("post", "/v1/messages"), "SendRequest"),
        (("post", "/v1/messages/preview"), "PreviewRequest"),
        (("post", "/v1/messages/{message_id}/reschedule"), "RescheduleRequest"),
        (("post", "/v1/messages/resend"), "ResendRequest"),
        (("post", "/v1/messages/delete"), "MessageIds"),
        (("post", "/v1/messages/restore"), "MessageIds"),
        (("post", "/v1/messages/{message_id}/reply"), "ReplyRequest"),
        (("post", "/v1/messages/reply"), "BulkReplyRequest"),
        (("post", "/v1/messages/{message_id}/forward"), "ForwardRequest"),
        (("post", "/v1/templates"), "TemplateDraft"),
        (("put", "/v1/templates/{template_id}"), "TemplateDraft"),
        (("post", "/v1/crm/conflicts/{conflict_id}/resolve"), "ResolveConflictRequest"),
        (("post", "/v1/crm/digest"), "StartDigestRequest"),
        (("post", "/v1/crm/log"), "LogDayRequest"),
        (("put", "/v1/crm/auto-log"), "SetAutoLogRequest"),
        (("post", "/v1/erasures"), "ErasureRequest"),
    ],
)
def test_request_bodies_are_documented(
    document: dict[str, Any], key: tuple[str, str], component: str
) -> None:
    body = _operations(document)[key]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{component}"}


def test_only_operations_that_read_a_body_document_one(document: dict[str, Any]) -> None:
    with_body = {key for key, op in _operations(document).items() if "requestBody" in op}
    assert with_body == {
        ("post", "/v1/erasures"),
        ("post", "/v1/messages"),
        ("post", "/v1/messages/preview"),
        ("post", "/v1/messages/{message_id}/reschedule"),
        ("post", "/v1/messages/resend"),
        ("post", "/v1/messages/delete"),
        ("post", "/v1/messages/restore"),
        ("post", "/v1/messages/{message_id}/reply"),
        ("post", "/v1/messages/reply"),
        ("post", "/v1/messages/{message_id}/forward"),
        ("post", "/v1/templates"),
        ("put", "/v1/templates/{template_id}"),
        ("post", "/v1/crm/conflicts/{conflict_id}/resolve"),
        ("post", "/v1/crm/digest"),
        ("post", "/v1/crm/log"),
        ("put", "/v1/crm/auto-log"),
        ("post", "/v1/records"),
        ("put", "/v1/records/{record_id}"),
        ("post", "/v1/conversations/read"),
        ("post", "/v1/conversations/{number}/read"),
        ("post", "/v1/conversations/{number}/contact"),
    }


def test_answers_other_than_the_success_and_errors_are_documented(document: dict[str, Any]) -> None:
    """A resolve the CRM refused is a 202 of the same shape; a day the CRM refused, a 502 with the report."""
    ops = _operations(document)
    resolve = ops[("post", "/v1/crm/conflicts/{conflict_id}/resolve")]["responses"]
    for status in ("200", "202"):
        schema = resolve[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ResolvedConflict"}
    assert "502" not in resolve
    refused = ops[("post", "/v1/crm/log")]["responses"]["502"]["content"]["application/json"]["schema"]
    assert refused == {"$ref": "#/components/schemas/CrmRefused"}


def test_an_attachment_is_documented_as_bytes_with_its_404_and_413(document: dict[str, Any]) -> None:
    """The one answer that is not JSON: the file, in whatever type it was stored with."""
    op = _operations(document)[("get", "/v1/messages/{message_id}/media/{index}")]
    assert op["operationId"] == "get_message_media"
    assert op["responses"]["200"]["content"] == {"*/*": {}}
    assert {"404", "413"} <= set(op["responses"])
    assert {p["name"] for p in op["parameters"] if p["in"] == "path"} == {"message_id", "index"}
    binary = [
        key
        for key, o in _operations(document).items()
        if "*/*" in o["responses"].get("200", {}).get("content", {})
    ]
    assert binary == [("get", "/v1/messages/{message_id}/media/{index}")]


def test_every_operation_documents_its_success_and_errors_as_json(document: dict[str, Any]) -> None:
    for key, op in _operations(document).items():
        statuses = set(op["responses"])
        assert any(s.startswith("2") for s in statuses), key
        assert op["responses"]["default"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/GatewayError"
        }
        for status in statuses - {"default", "401"}:
            if status.startswith("4"):
                schema = op["responses"][status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (key, status)


# ---------------------------------------------------------------- one source for the send request


def test_the_send_request_schema_is_the_published_one(document: dict[str, Any]) -> None:
    """Regenerate events/ (python events/generate.py) after changing SendRequest."""
    published = json.loads(PUBLISHED_SEND_REQUEST.read_text())
    in_document = document["components"]["schemas"]["SendRequest"]
    assert _inlined(in_document, document) == _inlined(published, published)
    assert published["$id"] == SEND_REQUEST_SCHEMA_ID


def test_a_send_request_with_nested_definitions_keeps_them_resolvable(document: dict[str, Any]) -> None:
    """If SendRequest grows a nested model, its $defs move under components and the refs follow."""

    class Channel(StrEnum):
        SMS = "sms"
        MMS = "mms"

    class Attachment(BaseModel):
        url: str
        channel: Channel

    class Nested(BaseModel):
        to: list[str]
        attachments: list[Attachment] = []

    published = Nested.model_json_schema(by_alias=True) | {"$id": SEND_REQUEST_SCHEMA_ID}
    assert "$defs" in published
    doc = copy.deepcopy(document)
    schemas = doc["components"]["schemas"]
    schemas["SendRequest"] = as_component(copy.deepcopy(published), schemas)
    validate(doc)
    assert "$id" not in schemas["SendRequest"]
    assert _inlined(schemas["SendRequest"], doc) == _inlined(published, published)


def test_two_different_schemas_with_one_name_are_refused() -> None:
    schema = {"$defs": {"Error": {"type": "string"}}, "properties": {"e": {"$ref": "#/$defs/Error"}}}
    with pytest.raises(ValueError, match="'Error'"):
        as_component(schema, {"Error": {"type": "object"}})


# ---------------------------------------------------------------- served, and truthful about errors


def test_the_api_serves_the_document_without_a_token() -> None:
    response = _call(_event("GET", "/v1/openapi.json", claims=False))
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "application/json"
    assert json.loads(response["body"]) == openapi_document()


def test_a_body_that_is_not_valid_answers_the_documented_error_with_fields(document: dict[str, Any]) -> None:
    response = _call(_event("POST", "/v1/messages", body='{"to": [], "colour": "red"}'))
    assert response["statusCode"] == 400
    body = json.loads(response["body"])
    _conforms(body, "Error", document)
    assert {e["field"] for e in body["errors"]} == {"to", "colour"}


def test_a_body_that_is_not_json_answers_the_documented_error(document: dict[str, Any]) -> None:
    response = _call(_event("POST", "/v1/messages/preview", body="[1, 2]"))
    assert response["statusCode"] == 400
    _conforms(json.loads(response["body"]), "Error", document)
