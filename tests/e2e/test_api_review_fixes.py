"""Sends that must go out once over HTTP: a request repeated after a 503, and an idempotency key given as a
header beside a null in the body. Each test counts what the simulated carrier received.

Customer numbers +1415555 38xx belong to this file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from local.process import wait_until
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

AddFault = Callable[[dict[str, Any]], dict[str, Any]]
MoveClock = Callable[[dict[str, Any]], dict[str, Any]]
LOST_JOB_AFTER_SECONDS = 6 * 60  # past the Sweep's wait before it requeues a queued text with no job


def _delivered(stack: Stack, message_id: str) -> dict[str, Any]:
    return stack.wait_status(message_id, "sent", "delivered", timeout=30)


def test_a_keyless_send_that_got_a_503_repeated_with_the_key_it_was_given_goes_out_once(
    stack: Stack, aws_fault: AddFault, move_clock: MoveClock
) -> None:
    customer = "+14155553801"
    aws_fault(
        {
            "service": "sqs",
            "operation": "SendMessage",
            "function": "ApiFunction",
            "error": "timeout",
            "count": 10,
        }
    )
    payload = {"to": [customer], "body": "keyless, then a 503"}

    failed = stack.api("POST", "/v1/messages", json=payload)

    assert failed.status_code == 503, failed.text
    key = failed.json()["idempotency_key"]
    assert failed.headers["Idempotency-Key"] == key and key in failed.json()["error"]
    stack.control("DELETE", "/_local/faults")

    again = stack.api("POST", "/v1/messages", json=payload, headers={"Idempotency-Key": key})

    assert again.status_code == 202, again.text
    (message_id,) = [m["message_id"] for m in again.json()["messages"]]
    _delivered(stack, message_id)
    move_clock({"advance_seconds": LOST_JOB_AFTER_SECONDS})  # the Sweep finds nothing else to send
    stack.fire("Sweep")
    thread = stack.api("GET", f"/v1/conversations/{customer}/messages").json()["messages"]
    assert [m["message_id"] for m in thread] == [message_id]
    assert [m["body"] for m in stack.sim_messages(customer)] == ["keyless, then a 503"]


def test_a_null_key_in_the_body_leaves_the_header_key_in_charge(stack: Stack) -> None:
    customer = "+14155553802"
    payload = {"to": [customer], "body": "header key, null body key", "idempotency_key": None}

    first = stack.api("POST", "/v1/messages", json=payload, headers={"Idempotency-Key": "e2e-null-1"})
    second = stack.api("POST", "/v1/messages", json=payload, headers={"Idempotency-Key": "e2e-null-1"})

    assert (first.status_code, second.status_code) == (202, 202), (first.text, second.text)
    (message_id,) = {m["message_id"] for m in first.json()["messages"] + second.json()["messages"]}
    _delivered(stack, message_id)
    wait_until(lambda: stack.sim_messages(customer) or None, timeout=10)
    assert len(stack.sim_messages(customer)) == 1
