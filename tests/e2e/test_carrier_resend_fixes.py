"""A resend is sent, and a text the carrier already has is not sent again, whatever else is going on.

- Telnyx replays a key's first answer for 24 hours, so a person's resend of an undelivered Telnyx text
  must reach Telnyx as a new text (a new Idempotency-Key), not get the old, undelivered one back.
- Twilio has no idempotency key: before a text whose send was interrupted is sent again, Twilio's list
  is searched for it, and the search must read past its first page.

Customers: +14155550622 to +14155550624.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from local.process import wait_until
from tests.e2e.conftest import Stack, queues_tuned

pytestmark = pytest.mark.e2e

TELNYX_NUMBER = "+14155550143"
TWILIO_FAST_NUMBER = "+14155550164"  # 1000 a second: a burst goes out without waiting its turn
STUCK_AFTER_SECONDS = 6 * 60  # past services/sending.py's STUCK_SENDING_AFTER (5 minutes)


def _send(stack: Stack, to: str, body: str, from_number: str, **fields: str) -> str:
    request = {"to": [to], "body": body, "from": from_number, **fields}
    response = stack.api("POST", "/v1/messages", json=request)
    assert response.status_code == 202, response.text
    return str(response.json()["messages"][0]["message_id"])


def _telnyx_texts(stack: Stack, to: str) -> list[dict[str, Any]]:
    response = requests.get(stack.url("/_sim/telnyx/_messages"), timeout=10)
    assert response.status_code == 200, response.text
    return [t for t in response.json()["messages"] if t["to"][0]["phone_number"] == to]


@pytest.fixture
def telnyx_fault(stack: Stack) -> Iterator[Any]:
    def add(spec: dict[str, Any]) -> None:
        stack.control("POST", "/_sim/telnyx/_faults", expect=201, json=spec)

    try:
        yield add
    finally:
        requests.delete(stack.url("/_sim/telnyx/_faults"), timeout=10).raise_for_status()


def test_an_undelivered_telnyx_text_resent_is_delivered_as_a_new_text(
    stack: Stack, telnyx_fault: Any
) -> None:
    customer = "+14155550622"
    telnyx_fault({"kind": "undelivered", "count": 1, "to": customer})
    message_id = _send(stack, customer, "Your table is ready", TELNYX_NUMBER)
    undelivered = stack.wait_status(message_id, "undelivered", timeout=30)
    (first,) = _telnyx_texts(stack, customer)
    assert undelivered["carrier_message_id"] == first["id"]

    resent = stack.api("POST", f"/v1/messages/{message_id}/resend")
    assert resent.status_code == 200, resent.text

    delivered = stack.wait_status(message_id, "delivered", timeout=30)
    texts = _telnyx_texts(stack, customer)
    assert len(texts) == 2  # Telnyx sent it again
    second = texts[1]
    assert second["id"] != first["id"] and second["idempotency_key"] != first["idempotency_key"]
    assert delivered["carrier_message_id"] == second["id"]
    assert first["id"] in delivered["superseded_carrier_ids"]
    assert [a["outcome"] for a in delivered["attempts"]] == ["accepted", "accepted"]


@pytest.fixture
def short_visibility(stack: Stack) -> Iterator[None]:
    """A job a function failed comes back after 2 s instead of the template's 180."""
    with queues_tuned(stack, lambda _lid, _now: {"VisibilityTimeout": "2"}, "SendQueue", "RetryQueue"):
        yield


@pytest.mark.usefixtures("short_visibility")
def test_a_twilio_text_behind_more_than_a_page_of_newer_ones_is_found_not_sent_again(
    stack: Stack, aws_fault: Any, move_clock: Any
) -> None:
    """The send function dies after Twilio accepted a text, which stays `sending`. Before the sweep
    finds it stuck, 55 texts to the same person scheduled earlier go out, so Twilio lists them before
    it: the search must read past its first page to find it."""
    customer = "+14155550623"
    send_at = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()
    scheduled = [
        _send(stack, customer, f"scheduled {i:03d}", TWILIO_FAST_NUMBER, send_at=send_at) for i in range(55)
    ]
    aws_fault(
        {
            "service": "dynamodb",
            "operation": "PutItem",
            "table": "MessagesTable",
            "function": "SendFunction",
            "match": customer,
            "skip": 1,  # the claim; the next write, recording Twilio's answer, crashes
            "error": "crash",
        }
    )
    first_id = _send(stack, customer, "sent, then the function died", TWILIO_FAST_NUMBER)
    wait_until(
        lambda: stack.message(first_id)["status"] == "sending" and stack.sim_messages(customer), timeout=30
    )
    wait_until(lambda: not requests.get(stack.url("/_local/faults"), timeout=10).json()["faults"], timeout=30)

    move_clock({"advance_seconds": 3 * 60})  # the scheduled texts are due; the stuck one not yet found
    assert stack.fire("Sweep")["released"] == len(scheduled)
    # They go one after another, each behind the one before (about one a second or two).
    wait_until(
        lambda: all(stack.message(m)["status"] == "delivered" for m in scheduled), timeout=300, interval=2
    )
    assert stack.message(first_id)["status"] == "sending"

    move_clock({"advance_seconds": STUCK_AFTER_SECONDS})
    assert stack.fire("Sweep")["recovered"] >= 1

    settled = stack.wait_status(first_id, "delivered", "failed", timeout=30)
    bodies = [m["body"] for m in stack.sim_messages(customer)]
    assert bodies.count("sent, then the function died") == 1  # never sent twice
    assert len(bodies) == 56
    assert settled["status"] == "delivered"
    assert [a["outcome"] for a in settled["attempts"]] == ["ambiguous", "reconciled"]
