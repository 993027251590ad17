"""Inbound through the local stack: a customer abroad keeps their own number, and a long text's part
that the carrier sends again never joins the customer's next long text."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from local import sim_vonage
from local.carrier_sims import VONAGE_API_KEY
from tests.e2e.conftest import Stack, wait_until

pytestmark = pytest.mark.e2e

# Our numbers at each carrier, as local/seed.py seeds them.
PLIVO_NUMBER = "+14155550147"
VONAGE_NUMBER = "+14155550144"
VONAGE_MESSAGES_NUMBER = "+14155550145"
# Ten digits each without the "+": also a valid North American national number.
ABROAD = {"plivo": "+6598765432", "vonage-messages": "+4799876543", "vonage": "+6598761234"}
OURS = {"plivo": PLIVO_NUMBER, "vonage-messages": VONAGE_MESSAGES_NUMBER, "vonage": VONAGE_NUMBER}
PARTS_CUSTOMER = "+14155552400"


def _drained(stack: Stack) -> bool:
    depth: dict[str, int] = requests.get(stack.url("/_local/queues"), timeout=10).json()["InboundQueue"]
    return depth["visible"] == 0 and depth["in_flight"] == 0 and depth["delayed"] == 0


@pytest.mark.parametrize("carrier", sorted(ABROAD))
def test_a_customer_abroad_is_threaded_and_answered_under_their_own_number(
    stack: Stack, carrier: str
) -> None:
    phone, ours = ABROAD[carrier], OURS[carrier]
    response = requests.post(
        stack.url(f"/_sim/{carrier}/_inbound"),
        json={"from": phone, "to": ours, "body": f"Hei from abroad over {carrier}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text

    (message,) = wait_until(lambda: stack.thread(phone))
    assert message["body"] == f"Hei from abroad over {carrier}" and message["our_number"] == ours
    wait_until(lambda: _drained(stack))
    assert stack.thread("+1" + phone.removeprefix("+")) == []  # no stranger's thread


def _part(message_id: str, ref: str, n: int, text: str) -> dict[str, str]:
    """One part of a long text as Vonage's SMS API posts it, signed with the local stack's secret."""
    fields = {
        "msisdn": PARTS_CUSTOMER.removeprefix("+"),
        "to": VONAGE_NUMBER.removeprefix("+"),
        "messageId": message_id,
        "text": text,
        "type": "text",
        "keyword": text.split()[0].upper(),
        "concat": "true",
        "concat-ref": ref,
        "concat-total": "2",
        "concat-part": str(n),
        "api-key": VONAGE_API_KEY,
        "message-timestamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "timestamp": str(int(time.time())),
        "nonce": str(uuid.uuid4()),
    }
    fields["sig"] = sim_vonage.vonage_signature(
        fields, sim_vonage.DEFAULT_SIGNATURE_SECRET, sim_vonage.DEFAULT_SIGNATURE_METHOD
    )
    return fields


def _post(stack: Stack, fields: dict[str, Any]) -> None:
    response = requests.post(
        stack.url("/webhooks/vonage/messages"),
        data=urlencode(fields),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert 200 <= response.status_code < 300, response.text


def test_a_part_sent_again_after_its_text_is_stored_does_not_spoil_the_next_one(stack: Stack) -> None:
    ref = str(int(time.time()) % 256)
    first = uuid.uuid4().hex[:12].upper()
    old_two = _part(first + "A2", ref, 2, "is done.")
    _post(stack, _part(first + "A1", ref, 1, "The first long text "))
    _post(stack, old_two)
    wait_until(lambda: stack.thread(PARTS_CUSTOMER))
    wait_until(lambda: _drained(stack))

    _post(stack, old_two)  # the carrier retries a part it already delivered
    wait_until(lambda: _drained(stack))
    _post(stack, _part(first + "B1", ref, 1, "Then a second one "))  # the phone's reference wrapped
    _post(stack, _part(first + "B2", ref, 2, "is done too."))

    def both() -> list[str] | None:
        bodies = sorted(m["body"] for m in stack.thread(PARTS_CUSTOMER))
        return bodies if len(bodies) >= 2 else None

    wait_until(both)
    wait_until(lambda: _drained(stack))
    assert both() == ["The first long text is done.", "Then a second one is done too."]
