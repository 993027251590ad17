"""Vonage SMS can't be searched, so a send whose answer never came fails for a person to check; the
receipt that then arrives with our id as client-ref proves the text went out: the message shows it
delivered, under the carrier's id, and a resend is refused (the customer is not texted twice)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.e2e.conftest import CARRIER_TIMEOUT_SECONDS, Stack

pytestmark = pytest.mark.e2e

VONAGE_NUMBER = "+14155550144"  # our Vonage SMS number, as local/seed.py seeds it
CUSTOMER = "+14155552500"
FAULTS = "/_sim/vonage/_faults"


@pytest.fixture
def vonage_faults(stack: Stack) -> Iterator[None]:
    try:
        yield
    finally:
        requests.delete(stack.url(FAULTS), timeout=10).raise_for_status()


def _digits(number: str) -> str:
    return re.sub(r"\D", "", number)


def _texts_to(stack: Stack, to: str) -> list[dict[str, Any]]:
    response = requests.get(stack.url("/_sim/vonage/_messages"), timeout=10)
    assert response.status_code == 200, response.text
    return [t for t in response.json()["messages"] if _digits(str(t["to"])) == _digits(to)]


@pytest.mark.usefixtures("vonage_faults")
def test_a_receipt_with_our_id_settles_a_send_that_timed_out(stack: Stack) -> None:
    # Vonage takes the text (and posts its receipts) but holds the answer past our read timeout.
    stack.control(
        "POST",
        FAULTS,
        expect=201,
        json={
            "kind": "timeout_after_accept",
            "count": 1,
            "to": CUSTOMER,
            "hold_seconds": CARRIER_TIMEOUT_SECONDS + 6,
        },
    )
    response = stack.api(
        "POST", "/v1/messages", json={"to": [CUSTOMER], "body": "Your table is booked", "from": VONAGE_NUMBER}
    )
    assert response.status_code == 202, response.text
    (sent,) = response.json()["messages"]
    message_id = str(sent["message_id"])

    # The receipts came while the send still waited for its answer, so they were parked; the send
    # then ends failed for a person (or, if the sweep ran meanwhile, the receipt has settled it).
    settled = stack.wait_status(message_id, "failed", "delivered", timeout=40)
    if settled["status"] == "failed":
        assert "check with the customer" in settled["error_reason"], settled
    stack.fire("Sweep")  # applies parked receipts

    delivered = stack.wait_status(message_id, "delivered", timeout=20)
    (text,) = _texts_to(stack, CUSTOMER)
    assert text["client_ref"] == message_id
    assert delivered["carrier_message_id"] == text["message_id"]
    assert [a["outcome"] for a in delivered["attempts"]] == ["ambiguous", "reconciled"]
    assert delivered["error_reason"] is None
    confirmed = [h for h in delivered["history"] if "receipt shows it has the text" in (h["detail"] or "")]
    assert [h["status"] for h in confirmed] == ["accepted"], delivered["history"]
    assert confirmed[0]["source"].startswith("vonage:")

    resend = stack.api("POST", "/v1/messages/resend", json={"ids": [message_id]})
    assert resend.status_code == 200, resend.text
    (result,) = resend.json()["results"]
    assert result["result"] == "refused", result
    assert result["reason"] == "the message is not failed: it is delivered", result
    assert stack.message(message_id)["status"] == "delivered"
    assert len(_texts_to(stack, CUSTOMER)) == 1
