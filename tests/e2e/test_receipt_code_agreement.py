"""A failure code a delivery receipt retries is one a Failed-view filter resends: Twilio's 30001 (its
queue for our number overflowed) is retried until the limits, then resent by the filter rather than
left out as permanent. Customer numbers +14155552900 to +14155552909."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

OVERFLOWED = "+14155552900"
# local/runtime.py runs the stack with PARLEY_RETRY_MAX_ATTEMPTS=5 (and 1-second backoff steps)
MAX_ATTEMPTS = 5


def _resend_view(stack: Stack, message_id: str, **where: Any) -> dict[str, Any]:
    """A filtered resend of the Failed view, followed through its cursor: the answer for `message_id`."""
    cursor = None
    while True:
        body = {"view": "failed", **where, **({"cursor": cursor} if cursor else {})}
        response = stack.api("POST", "/v1/messages/resend", json=body)
        assert response.status_code == 200, response.text
        answer = response.json()
        for result in answer["results"]:
            if result["message_id"] == message_id:
                return dict(result)
        cursor = answer.get("cursor")
        assert answer["more"], f"{message_id} not in the filter's answer"


def test_a_twilio_queue_overflow_retried_to_the_limit_is_resent_by_the_filter(stack: Stack) -> None:
    fault = {"kind": "undelivered", "count": MAX_ATTEMPTS, "to": OVERFLOWED, "error_code": "30001"}
    stack.control("POST", "/_sim/twilio/_faults", expect=201, json=fault)
    try:
        body = f"Your appointment is at 3pm ({uuid.uuid4().hex[:8]})"
        response = stack.api("POST", "/v1/messages", json={"to": [OVERFLOWED], "body": body})
        assert response.status_code == 202, response.text
        sent = response.json()["messages"][0]
        message_id = sent["message_id"]

        gave_up = stack.wait_status(message_id, "undelivered", timeout=90)
        assert [a["outcome"] for a in gave_up["attempts"]] == ["accepted"] * MAX_ATTEMPTS
        assert gave_up["error_code"] == "30001"

        result = _resend_view(stack, message_id, our_number=gave_up["our_number"], since=sent["created_at"])

        assert result["result"] == "resent", result
        delivered = stack.wait_status(message_id, "delivered", timeout=30)
        assert any((h["detail"] or "").startswith("resent by ") for h in delivered["history"])
    finally:
        requests.delete(stack.url("/_sim/twilio/_faults"), timeout=10)
