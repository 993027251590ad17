"""A long text over Vonage whose every part is first reported failed and then, late, delivered: it is not
sent again, and it ends delivered and out of the Failed view, as it would in any other order of the
same receipts. Customer +14155553170."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local import sim_vonage
from local.carrier_sims import VONAGE_API_KEY
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

CUSTOMER = "+14155553170"
VONAGE_SENDER = "+14155550144"
SIM = "/_sim/vonage"


@pytest.fixture
def fault(stack: Stack) -> Iterator[None]:
    # err-code 2, the phone unreachable for now: a passing failure for each part
    spec = {"kind": "undelivered", "count": 1, "to": CUSTOMER, "error_code": "2"}
    stack.control("POST", f"{SIM}/_faults", expect=201, json=spec)
    try:
        yield
    finally:
        requests.delete(stack.url(f"{SIM}/_faults"), timeout=10).raise_for_status()


def _sim_texts(stack: Stack, body: str) -> list[dict[str, Any]]:
    response = requests.get(stack.url(f"{SIM}/_messages"), timeout=10)
    assert response.status_code == 200, response.text
    return [
        t
        for t in response.json()["messages"]
        if CUSTOMER.lstrip("+") in str(t.get("to")) and t.get("text") == body
    ]


def _late_delivery(stack: Stack, text: dict[str, Any], part_id: str) -> None:
    """A delivery receipt for one part, signed as Vonage signs it, posted to our status webhook."""
    fields = {
        "msisdn": str(text["to"]),
        "to": str(text["from"]),
        "network-code": sim_vonage.NETWORK_CODE,
        "messageId": part_id,
        "price": sim_vonage.PART_PRICE,
        "status": "delivered",
        "scts": time.strftime("%y%m%d%H%M", time.gmtime()),
        "err-code": "0",
        "api-key": VONAGE_API_KEY,
        "message-timestamp": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "timestamp": str(int(time.time())),
        "nonce": str(uuid.uuid4()),
    }
    if text.get("client_ref"):
        fields["client-ref"] = str(text["client_ref"])
    fields["sig"] = sim_vonage.vonage_signature(
        fields, sim_vonage.DEFAULT_SIGNATURE_SECRET, sim_vonage.DEFAULT_SIGNATURE_METHOD
    )
    response = requests.post(stack.url(sim_vonage.STATUS_PATH), data=fields, timeout=15)
    assert response.status_code < 300, response.text


def _in_failed_view(stack: Stack, message: dict[str, Any]) -> bool:
    response = stack.api(
        "GET",
        "/v1/messages",
        params={"view": "failed", "our_number": VONAGE_SENDER, "since": message["created_at"], "limit": 100},
    )
    assert response.status_code == 200, response.text
    return message["message_id"] in {m["message_id"] for m in response.json()["messages"]}


def test_every_part_failed_then_delivered_ends_delivered_and_not_resent(stack: Stack, fault: None) -> None:
    body = f"Your table for four is booked ({uuid.uuid4().hex[:8]}). " + "See you on Friday at eight. " * 6
    response = stack.api("POST", "/v1/messages", json={"to": [CUSTOMER], "from": VONAGE_SENDER, "body": body})
    assert response.status_code == 202, response.text
    sent = response.json()["messages"][0]
    message_id = sent["message_id"]

    failed = stack.wait_status(message_id, "failed", "undelivered", timeout=30)
    assert set(failed["part_statuses"].values()) <= {"failed", "undelivered"}, failed
    assert len(failed["part_statuses"]) == 2, failed
    assert _in_failed_view(stack, sent)
    (text,) = _sim_texts(stack, body)  # a part's passing failure does not send the text again
    first, second = text["message_ids"]

    _late_delivery(stack, text, first)
    stack.wait_status(message_id, "partially_delivered", timeout=20)
    assert _in_failed_view(stack, sent)  # the second part is still missing
    _late_delivery(stack, text, second)

    delivered = stack.wait_status(message_id, "delivered", timeout=20)
    assert set(delivered["part_statuses"].values()) == {"delivered"}, delivered
    assert delivered["error_code"] is None and delivered["error_reason"] is None, delivered
    assert not _in_failed_view(stack, sent)
    assert len(_sim_texts(stack, body)) == 1
