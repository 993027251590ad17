"""Schemathesis against the local stack's served `/v1/openapi.json`, with a real dev token.

Every documented operation is called with requests generated from the document (valid and invalid
ones), and each answer is checked: never a 5xx, only documented status codes and content types, and
a body that matches the documented schema. The caller is in a team of its own, so what it sends,
creates and deletes can't touch what the other end-to-end tests look at. Examples per operation are
few (PARLEY_SCHEMATHESIS_EXAMPLES, default 25) so the whole run takes a minute or two.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from parley.openapi import openapi_document
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("PARLEY_SCHEMATHESIS_EXAMPLES", "25"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def served(stack: Stack) -> None:
    """The stack serves exactly the document the cases are generated from."""
    response = requests.get(stack.url("/v1/openapi.json"), timeout=15)
    assert response.status_code == 200 and response.json() == openapi_document()


@pytest.fixture(scope="module")
def fuzzer_token(stack: Stack) -> str:
    made = stack.cli("token", "--user", "schemathesis", "--teams", "fuzz")
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


# Generated from the code's document at import (the stack isn't up yet; the `served` fixture checks
# the served one is the same): schemathesis' lazy `from_fixture` doesn't work with this pytest.
schema = schemathesis.openapi.from_dict(openapi_document())
PHONE = "+14155553901"  # a real mobile number's shape: the document says "string", the API wants E.164


@schema.hook
def flatmap_body(context: Any, body: Any) -> Any:
    """Half the bodies get a phone number the API takes, so that sends, records, replies and forwards
    also answer 2xx and those answers are checked too (random strings are never valid numbers)."""
    if not isinstance(body, dict):
        return st.just(body)
    usable = dict(body)
    for key in ("to", "phones"):
        if isinstance(usable.get(key), list) and usable[key]:
            usable[key] = [PHONE]
        elif isinstance(usable.get(key), str):
            usable[key] = PHONE
    usable.pop("from", None)  # one of our numbers, or none
    usable.pop("team", None)  # the caller's own
    if "to" in usable:  # a text: a body (random template ids don't exist), now
        usable.pop("template_id", None)
        usable.pop("send_at", None)
        if not (isinstance(usable.get("body"), str) and usable["body"].strip()):
            usable["body"] = "Your order is ready."
    return st.sampled_from([body, usable])


KNOWN: dict[str, str] = {}  # path parameters of things the fuzzing caller has: filled by `known`


@schema.hook
def flatmap_path_parameters(context: Any, parameters: Any) -> Any:
    """Half the paths name something that exists (the caller's text, template, record,
    conversation), so that the answers about one thing are checked too, not only the 404s."""
    if not isinstance(parameters, dict) or not KNOWN:
        return st.just(parameters)
    existing = {key: KNOWN.get(key, value) for key, value in parameters.items()}
    return st.sampled_from([parameters, existing])


@pytest.fixture(scope="module")
def known(stack: Stack, fuzzer_token: str) -> None:
    auth = {"Authorization": f"Bearer {fuzzer_token}"}

    def post(path: str, payload: dict[str, Any]) -> dict[str, Any]:
        response = requests.post(stack.url(path), json=payload, headers=auth, timeout=15)
        assert response.status_code in (201, 202), response.text
        answer: dict[str, Any] = response.json()
        return answer

    sent = post("/v1/messages", {"to": [PHONE], "body": "Your order is ready."})
    template = post("/v1/templates", {"name": "Fuzz", "body": "Hi {{first_name|there}}"})
    record = post("/v1/records", {"name": "Fuzz Person", "phones": [PHONE]})
    KNOWN.update(
        number=PHONE,
        message_id=sent["messages"][0]["message_id"],
        template_id=template["template_id"],
        record_id=record["contact_id"],
    )


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_answers_as_its_document_says(
    case: Any, stack: Stack, served: None, fuzzer_token: str, known: None
) -> None:
    case.call_and_validate(
        base_url=stack.base_url,
        headers={"Authorization": f"Bearer {fuzzer_token}"},
        checks=CHECKS,
        timeout=15,
    )
