"""Delivery receipts that report a passing failure (an unreachable phone, a throttled campaign): the text
is sent again after a backoff, once per failure, until it is delivered or the retry limits are reached;
a lasting failure is not retried. Customer numbers +1415555 2100-2109."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.e2e.conftest import Stack, wait_until

pytestmark = pytest.mark.e2e

AddFault = Callable[[dict[str, Any]], dict[str, Any]]
ONCE, ALWAYS, LASTING = "+14155552100", "+14155552101", "+14155552102"
BANDWIDTH_CUSTOMER, BANDWIDTH_NUMBER = "+14155552103", "+14155550146"
# local/runtime.py runs the stack with PARLEY_RETRY_MAX_ATTEMPTS=5 (and 1-second backoff steps)
MAX_ATTEMPTS = 5
PROMISES = ("retried", "retry", "trying again")


def _send(stack: Stack, to: str, *, from_number: str | None = None) -> str:
    request: dict[str, Any] = {"to": [to], "body": f"Your table is ready ({uuid.uuid4().hex[:8]})"}
    if from_number is not None:
        request["from"] = from_number
    response = stack.api("POST", "/v1/messages", json=request)
    assert response.status_code == 202, response.text
    return str(response.json()["messages"][0]["message_id"])


def _carrier_texts(stack: Stack, carrier: str, to: str) -> list[dict[str, Any]]:
    response = requests.get(stack.url(f"/_sim/{carrier}/_messages"), timeout=10)
    assert response.status_code == 200, response.text
    digits = to.lstrip("+")
    return [t for t in response.json()["messages"] if digits in str(t.get("to"))]


def _retries(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [h for h in message["history"] if h["status"] == "retrying"]


def test_a_passing_receipt_failure_is_retried_once_and_delivered(
    stack: Stack, carrier_fault: AddFault
) -> None:
    # The carrier takes the first text and reports it undelivered (30003: the phone was unreachable).
    carrier_fault({"kind": "undelivered", "count": 1, "to": ONCE, "error_code": "30003"})

    message_id = _send(stack, ONCE)

    delivered = stack.wait_status(message_id, "delivered", timeout=60)
    assert [a["outcome"] for a in delivered["attempts"]] == ["accepted", "accepted"]
    assert delivered["attempts"][0]["error_code"] == "30003"
    assert len(_retries(delivered)) == 1
    assert delivered["error_code"] is None and delivered["error_reason"] is None
    assert len(delivered["superseded_carrier_ids"]) == 1
    texts = _carrier_texts(stack, "twilio", ONCE)
    assert sorted(t["status"] for t in texts) == ["delivered", "undelivered"]  # one resend, no more


def test_a_receipt_failure_that_persists_ends_failed_after_the_limit(
    stack: Stack, carrier_fault: AddFault
) -> None:
    carrier_fault({"kind": "undelivered", "count": MAX_ATTEMPTS + 3, "to": ALWAYS, "error_code": "30003"})

    message_id = _send(stack, ALWAYS)

    failed = stack.wait_status(message_id, "undelivered", "failed", timeout=90)
    assert [a["outcome"] for a in failed["attempts"]] == ["accepted"] * MAX_ATTEMPTS
    assert len(_retries(failed)) == MAX_ATTEMPTS - 1
    reason = failed["error_reason"]
    assert reason.startswith(f"gave up after {MAX_ATTEMPTS} attempts over "), reason
    assert "unreachable" in reason and not any(p in reason for p in PROMISES), reason
    assert len(_carrier_texts(stack, "twilio", ALWAYS)) == MAX_ATTEMPTS  # one text per attempt
    view = stack.api("GET", "/v1/messages", params={"view": "failed", "limit": 100})
    assert view.status_code == 200, view.text
    assert message_id in {m["message_id"] for m in view.json()["messages"]}


def test_a_lasting_receipt_failure_is_not_retried(stack: Stack, carrier_fault: AddFault) -> None:
    carrier_fault({"kind": "undelivered", "count": 1, "to": LASTING, "error_code": "30006"})

    message_id = _send(stack, LASTING)

    failed = stack.wait_status(message_id, "undelivered", "failed", timeout=30)
    assert [a["outcome"] for a in failed["attempts"]] == ["accepted"]
    assert _retries(failed) == []
    assert failed["error_reason"] and not any(p in failed["error_reason"] for p in PROMISES)
    assert len(_carrier_texts(stack, "twilio", LASTING)) == 1


def test_a_throttled_bandwidth_text_is_sent_again_and_delivered(stack: Stack) -> None:
    # 4780: T-Mobile's daily limit for our brand; Bandwidth reports it in a message-failed receipt.
    fault = {"kind": "undelivered", "count": 1, "to": BANDWIDTH_CUSTOMER, "error_code": "4780"}
    added = requests.post(stack.url("/_sim/bandwidth/_faults"), json=fault, timeout=10)
    assert added.status_code == 201, added.text
    try:
        message_id = _send(stack, BANDWIDTH_CUSTOMER, from_number=BANDWIDTH_NUMBER)

        delivered = stack.wait_status(message_id, "delivered", timeout=60)
        assert [a["outcome"] for a in delivered["attempts"]] == ["accepted", "accepted"]
        (retry,) = _retries(delivered)
        assert retry["detail"].startswith(
            "T-Mobile's daily limit for our brand was exceeded; trying again in"
        )
        wait_until(lambda: len(_carrier_texts(stack, "bandwidth", BANDWIDTH_CUSTOMER)) == 2 or None)
    finally:
        requests.delete(stack.url("/_sim/bandwidth/_faults"), timeout=10)
