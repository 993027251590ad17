"""Through the real API handler against moto: a reply to a customer who texted another team's
number, who may make a template personal, "add contact" over a CRM lead, the routing's reserved
record ids, and JSON nested too deeply to read."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from functions.inbound import processor
from parley.adapters.dynamo import DynamoContacts, DynamoConversations, DynamoNumbers
from parley.domain.models import ContactRecord, OurNumber
from tests.integration.test_handlers import (
    CONTEXT,
    CUSTOMER,
    Stack,
    call_api,
    call_webhook,
    get,
    http_event,
    inbound_form,
    post_json,
    sqs_event,
    webhook_event,
)
from tests.integration.test_handlers import stack as stack  # noqa: F401 - the moto stack fixture

SALES = {"sub": "u-sales", "team": "sales"}
SALES_TOO = {"sub": "u-sales-2", "team": "sales"}
SUPPORT = {"sub": "u-sup", "team": "support"}
ADMIN = {"sub": "u-admin", "roles": "[admin]"}
NO_USER = {"team": "sales"}
SALES_NO = "+15005550010"
SUPPORT_NO = "+15005550020"
DEEP = "[" * 5000


def receive(stack: Stack, *, to: str, body: str = "hello") -> None:
    form = inbound_form(body=body)
    form["To"] = to
    assert call_webhook(webhook_event(form))["statusCode"] == 200
    queued = stack.queue_messages(stack.settings.inbound_queue_url)
    assert processor.handler(sqs_event(queued), CONTEXT) == {"batchItemFailures": []}


def put_json(path: str, payload: Any, *, claims: dict[str, str]) -> tuple[int, Any]:
    headers = {"content-type": "application/json"}
    return call_api(http_event("PUT", path, body=json.dumps(payload), headers=headers, claims=claims))


def test_a_reply_to_a_text_on_another_teams_number_is_sent_from_the_teams_own(stack: Stack) -> None:
    DynamoNumbers().save(OurNumber(number=SALES_NO, carrier="twilio", team="sales", is_default=True))
    DynamoNumbers().save(OurNumber(number=SUPPORT_NO, carrier="twilio", team="support", is_default=True))
    status, _ = post_json("/v1/messages", {"to": [CUSTOMER], "body": "hi from sales"}, claims=SALES)
    assert status == 202
    receive(stack, to=SUPPORT_NO, body="answer on support's number")
    status, thread = get(f"/v1/conversations/{CUSTOMER}/messages", claims=SALES)
    (received,) = [m for m in thread["messages"] if m["direction"] == "inbound"]
    assert (received["team"], received["our_number"]) == ("sales", SUPPORT_NO)

    status, replied = post_json(
        f"/v1/messages/{received['message_id']}/reply", {"body": "thanks"}, claims=SALES
    )
    assert status == 202, replied
    assert replied["messages"][0]["our_number"] == SALES_NO
    status, bulk = post_json(
        "/v1/messages/reply", {"ids": [received["message_id"]], "body": "thanks again"}, claims=SALES
    )
    assert status == 200 and bulk["results"][0]["result"] == "ok", bulk
    status, sent = get(f"/v1/messages/{bulk['results'][0]['reply_id']}", claims=SALES)
    assert status == 200 and sent["our_number"] == SALES_NO


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/delete", "/v1/templates", "/v1/records"])
@pytest.mark.parametrize("raw", [DEEP, '{"a":' * 5000 + "1" + "}" * 5000])
def test_a_body_nested_too_deeply_is_a_400_with_the_reason(stack: Stack, path: str, raw: str) -> None:
    status, answer = post_json(path, raw, claims=SALES)
    assert (status, answer) == (400, {"error": "the body is not valid JSON: it is nested too deeply"})


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/conversations", {}),
        (f"/v1/conversations/{CUSTOMER}/messages", {}),
        ("/v1/messages", {"view": "received"}),
        ("/v1/crm/conflicts", {}),
    ],
)
def test_a_cursor_nested_too_deeply_is_a_400(stack: Stack, path: str, query: dict[str, str]) -> None:
    receive(stack, to="+15005550006")  # the customer's conversation exists
    cursor = base64.urlsafe_b64encode(DEEP.encode()).decode()
    status, answer = get(path, claims=ADMIN, query={**query, "cursor": cursor})
    assert status == 400 and "cursor is not valid" in answer["error"], answer


def test_only_its_owner_makes_a_template_personal_and_only_a_user_has_one(stack: Stack) -> None:
    status, made = post_json("/v1/templates", {"name": "Team", "body": "hello"}, claims=SALES)
    assert status == 201
    path = f"/v1/templates/{made['template_id']}"
    personal = {"name": "Team", "body": "hello", "shared": False}

    for claims in (SALES_TOO, ADMIN):
        status, answer = put_json(path, personal, claims=claims)
        assert status == 403 and "only by its owner" in answer["error"], answer
    assert [t["template_id"] for t in get("/v1/templates", claims=SALES_TOO)[1]["templates"]] == [
        made["template_id"]
    ]
    status, answer = post_json(
        "/v1/templates", {"name": "Mine", "body": "x", "shared": False}, claims=NO_USER
    )
    assert status == 400 and "needs a user" in answer["error"], answer
    assert put_json(path, personal, claims=SALES)[0] == 200


def test_add_contact_keeps_a_crm_lead_linked(stack: Stack) -> None:
    receive(stack, to="+15005550006")
    DynamoContacts().save(
        ContactRecord(
            contact_id="sf-00Q123", name="Real CRM Lead", phones=[CUSTOMER], record_type="lead",
            crm_id="00Q123", team="default",
        )
    )  # fmt: skip
    DynamoConversations().link(CUSTOMER, contact_id="sf-00Q123", owner=None, reason="crm")
    claims = {"sub": "u", "team": "default"}

    status, answer = post_json(
        f"/v1/conversations/{CUSTOMER}/contact", {"name": "Someone New"}, claims=claims
    )

    assert status == 409 and "lead 'sf-00Q123' already" in answer["error"], answer
    listed = get("/v1/conversations", claims=claims, query={"status": "all"})[1]["conversations"]
    assert [c["contact_id"] for c in listed if c["customer_number"] == CUSTOMER] == ["sf-00Q123"]


def test_a_record_id_in_the_routings_lead_form_is_refused_whatever_exists(stack: Stack) -> None:
    receive(stack, to="+15005550006")  # routing makes lead-14155550100, on the default team
    assert DynamoContacts().get("lead-" + CUSTOMER.lstrip("+")) is not None
    taken = {"name": "Probe", "phones": ["+14155550199"], "record_id": "lead-" + CUSTOMER.lstrip("+")}
    free = {**taken, "record_id": "lead-14155550199"}

    answers = [post_json("/v1/records", body, claims=SUPPORT) for body in (taken, free)]

    assert answers[0] == answers[1]  # nothing tells that one number texted us
    status, answer = answers[0]
    assert status == 400 and "reserved" in json.dumps(answer), answer
