"""Requests the published schema refuses, through the real handlers against moto: a template that
renders to nothing and a smart_encoding that isn't a boolean are 400 from the API, and from the send
queue (EventBridge or SQS) visible failed messages instead of texts the carrier would refuse."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from functions.send import app as send_app
from parley.adapters.dynamo import DynamoMessages, DynamoTemplates
from parley.domain.models import Template
from tests.integration.test_handlers import CONTEXT, CUSTOMER, REGION, Stack, post_json, sqs_event
from tests.integration.test_handlers import stack as stack  # noqa: F401 - the moto stack fixture


@pytest.fixture
def blank(stack: Stack) -> Stack:
    DynamoTemplates().save(Template(template_id="note", name="Note", body="{{note|}}"))
    return stack


def test_the_api_refuses_a_template_that_renders_to_nothing_and_stores_nothing(blank: Stack) -> None:
    status, answer = post_json("/v1/messages", {"to": [CUSTOMER], "template_id": "note"})

    assert status == 400, answer
    assert answer["errors"] == [
        {"field": "merge_values", "reason": f"the template renders to an empty text for {CUSTOMER}"}
    ]
    assert blank.queue_messages(blank.settings.send_queue_url) == []
    assert DynamoMessages(blank.settings).list_view("failed", limit=10, cursor=None).items == []


def test_the_same_template_with_a_value_is_accepted(blank: Stack) -> None:
    status, answer = post_json(
        "/v1/messages", {"to": [CUSTOMER], "template_id": "note", "merge_values": {"note": "Ready"}}
    )

    assert status == 202, answer
    assert [m["body"] for m in answer["messages"]] == ["Ready"]


@pytest.mark.parametrize("value", ["no", 0, "false"])
def test_the_api_refuses_a_smart_encoding_that_is_not_a_boolean(stack: Stack, value: Any) -> None:
    status, answer = post_json("/v1/messages", {"to": [CUSTOMER], "body": "hi", "smart_encoding": value})

    assert status == 400, answer
    assert "smart_encoding" in json.dumps(answer)


@pytest.mark.parametrize(
    ("request_body", "reason"),
    [
        ({"template_id": "note"}, "the template renders to an empty text"),
        ({"body": "hi", "smart_encoding": "no"}, "smart_encoding"),
    ],
    ids=["blank template", "smart_encoding 'no'"],
)
def test_from_the_send_queue_it_becomes_a_visible_failed_message(
    blank: Stack, request_body: dict[str, Any], reason: str
) -> None:
    event = {
        "source": "crm",
        "detail-type": "SendMessage",
        "detail": {"to": [CUSTOMER], "idempotency_key": "order-7"} | request_body,
    }
    sqs = boto3.client("sqs", region_name=REGION)
    sqs.send_message(QueueUrl=blank.settings.send_queue_url, MessageBody=json.dumps(event))
    records = blank.queue_messages(blank.settings.send_queue_url)

    result = send_app.handler(sqs_event(records, queue="send"), CONTEXT)

    assert result == {"batchItemFailures": []}  # consumed: retrying can't fix it
    assert blank.domain_events() == ["MessageFailed"]
    (failed,) = DynamoMessages(blank.settings).list_view("failed", limit=10, cursor=None).items
    assert failed.customer_number == CUSTOMER
    assert failed.carrier_message_id is None  # it never reached a carrier
    assert (failed.error_reason or "").startswith("the send request was rejected")
    assert reason in (failed.error_reason or "")
