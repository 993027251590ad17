"""Other services send through EventBridge or SQS; both reach the same send rules as the API."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest
import requests

from parley.domain.ids import outbound_message_id
from tests.e2e.conftest import Stack, wait_until

pytestmark = pytest.mark.e2e


def _aws(stack: Stack, service: str) -> Any:
    endpoint = requests.get(stack.url("/_local/health"), timeout=10).json()["moto"]
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def _resources(stack: Stack) -> dict[str, Any]:
    resources: dict[str, Any] = requests.get(stack.url("/_local/resources"), timeout=10).json()
    return resources


def _messages_to(stack: Stack, number: str) -> list[dict[str, Any]]:
    response = stack.api("GET", f"/v1/conversations/{number}/messages")
    if response.status_code == 404:
        return []
    assert response.status_code == 200, response.text
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


def test_an_eventbridge_send_message_event_is_delivered_once_even_if_published_twice(stack: Stack) -> None:
    customer = "+14155550140"
    events = _aws(stack, "events")
    bus = _resources(stack)["ParleyBus"]["name"]
    detail = {"to": [customer], "template_id": "welcome", "merge_values": {"company": "Parley"}}
    entry = {
        "EventBusName": bus,
        "Source": "orders.service",
        "DetailType": "SendMessage",
        "Detail": json.dumps({**detail, "idempotency_key": f"order-{uuid.uuid4().hex}"}),
    }

    for _ in range(2):  # a publisher retrying after a timeout
        assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0

    (message,) = wait_until(lambda: _messages_to(stack, customer))
    delivered = stack.wait_status(message["message_id"], "delivered")
    assert delivered["body"] == "Hi there, thanks for reaching out to Parley! Reply here any time."
    assert len(stack.sim_messages(customer)) == 1


def test_a_raw_sqs_send_request_reaches_every_recipient(stack: Stack) -> None:
    first, second = "+14155550141", "+14155550149"  # customers: +14155550142 is one of our numbers
    sqs = _aws(stack, "sqs")
    queue_url = _resources(stack)["SendQueue"]["url"]

    sqs.send_message(
        QueueUrl=queue_url, MessageBody=json.dumps({"to": [first, second], "body": "Doors at 7"})
    )

    for number in (first, second):
        (message,) = wait_until(lambda n=number: _messages_to(stack, n))
        stack.wait_status(message["message_id"], "delivered")
        assert len(stack.sim_messages(number)) == 1


def test_an_invalid_queued_request_becomes_a_visible_failed_message_and_is_not_retried(stack: Stack) -> None:
    sqs = _aws(stack, "sqs")
    queue_url = _resources(stack)["SendQueue"]["url"]

    sent = sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"to": ["not a number"], "body": "x"}))

    message_id = outbound_message_id(f"rejected:{sent['MessageId']}", "not a number")
    failed = wait_until(
        lambda: (r := stack.api("GET", f"/v1/messages/{message_id}")).status_code == 200 and r.json()
    )
    assert failed["status"] == "failed"
    assert "not a number" in failed["error_reason"] and "rejected" in failed["error_reason"]

    def drained() -> bool:
        depths = requests.get(stack.url("/_local/queues"), timeout=10).json()
        send = depths["SendQueue"]
        return send["visible"] == 0 and send["in_flight"] == 0 and depths["SendDLQ"]["visible"] == 0

    assert wait_until(drained)
