"""GET /v1/openapi.json on the local stack: served without a token, valid, and what the API answers."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from parley.openapi import openapi_document
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

CUSTOMER = "+14155550170"


@pytest.fixture(scope="module")
def document(stack: Stack) -> dict[str, Any]:
    response = requests.get(stack.url("/v1/openapi.json"), timeout=15)  # no Authorization header
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    served: dict[str, Any] = response.json()
    return served


def _conforms(instance: Any, schema: dict[str, Any], document: dict[str, Any]) -> None:
    OAS31Validator({**schema, "components": document["components"]}).validate(instance)


def _answer_schema(document: dict[str, Any], method: str, path: str, status: int) -> dict[str, Any]:
    schema: dict[str, Any] = document["paths"][path][method]["responses"][str(status)]["content"][
        "application/json"
    ]["schema"]
    return schema


def test_the_document_is_served_without_a_token_and_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)
    assert document == openapi_document()  # what the code generates, SendRequest as in events/schemas


def test_a_v1_route_without_a_token_answers_the_documented_gateway_error(
    stack: Stack, document: dict[str, Any]
) -> None:
    response = requests.get(stack.url("/v1/conversations"), timeout=15)
    assert response.status_code == 401
    _conforms(response.json(), _answer_schema(document, "get", "/v1/conversations", 401), document)


def test_the_api_answers_what_the_document_says(stack: Stack, document: dict[str, Any]) -> None:
    send = {"to": [CUSTOMER], "body": "Your order is ready.", "idempotency_key": "openapi-e2e"}
    _conforms(send, {"$ref": "#/components/schemas/SendRequest"}, document)
    sent = stack.api("POST", "/v1/messages", json=send)
    assert sent.status_code == 202, sent.text
    _conforms(sent.json(), _answer_schema(document, "post", "/v1/messages", 202), document)
    message_id = sent.json()["messages"][0]["message_id"]

    reads = {
        ("get", "/v1/messages/{message_id}"): f"/v1/messages/{message_id}",
        ("get", "/v1/conversations/{number}/messages"): f"/v1/conversations/{CUSTOMER}/messages?limit=5",
        ("get", "/v1/conversations"): "/v1/conversations?limit=5",
        ("get", "/v1/numbers"): "/v1/numbers",
        ("get", "/v1/templates"): "/v1/templates",
    }
    for (method, path), url in reads.items():
        response = stack.api(method.upper(), url)
        assert response.status_code == 200, (url, response.text)
        _conforms(response.json(), _answer_schema(document, method, path, 200), document)

    preview = stack.api("POST", "/v1/messages/preview", json={"body": "Olá 😀", "to": CUSTOMER})
    assert preview.status_code == 200, preview.text
    _conforms(preview.json(), _answer_schema(document, "post", "/v1/messages/preview", 200), document)


@pytest.mark.parametrize(
    ("method", "path", "url", "body", "status"),
    [
        ("post", "/v1/messages", "/v1/messages", {"to": [], "colour": "red"}, 400),
        ("post", "/v1/messages/preview", "/v1/messages/preview", [1, 2], 400),
        ("get", "/v1/conversations", "/v1/conversations?limit=0", None, 400),
        ("get", "/v1/messages/{message_id}", "/v1/messages/out_nowhere", None, 404),
        ("post", "/v1/messages/{message_id}/cancel", "/v1/messages/out_nowhere/cancel", None, 404),
    ],
)
def test_errors_have_the_documented_shape(
    stack: Stack, document: dict[str, Any], method: str, path: str, url: str, body: Any, status: int
) -> None:
    response = stack.api(method.upper(), url, json=body)
    assert response.status_code == status, response.text
    _conforms(response.json(), _answer_schema(document, method, path, status), document)
