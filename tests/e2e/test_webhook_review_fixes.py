"""Carrier webhooks over HTTP, through the local stack: hostile but signed input is either refused
with a 4xx and a reason, or stored; it is never acknowledged and then lost in the processor."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from local import sim_bandwidth, sim_telnyx
from local.sim_twilio import twilio_signature
from tests.e2e.conftest import AUTH_TOKEN, Stack, wait_until

pytestmark = pytest.mark.e2e

TELNYX_NUMBER = "+14155550143"
TWILIO_NUMBER = "+15005550006"


def _telnyx(stack: Stack, sender: str, text: str, received_at: str | None = None) -> requests.Response:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    payload: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "type": "SMS",
        "from": {"phone_number": sender},
        "to": [{"phone_number": TELNYX_NUMBER}],
        "text": text,
    }
    if received_at is not None:
        payload["received_at"] = received_at
    document = {
        "data": {
            "event_type": "message.received",
            "id": str(uuid.uuid4()),
            "occurred_at": stamp,
            "payload": payload,
        }
    }
    # A lone surrogate reaches us as a \ud800 escape (json.dumps writes one when asked for ASCII).
    has_surrogate = any("\ud800" <= char <= "\udfff" for char in text)
    body = json.dumps(document, ensure_ascii=has_surrogate).encode()
    key = Ed25519PrivateKey.from_private_bytes(sim_telnyx.DEFAULT_SIGNING_SEED)
    now = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "telnyx-timestamp": now,
        "telnyx-signature-ed25519": sim_telnyx.telnyx_signature(key, now, body),
    }
    return requests.post(stack.url("/webhooks/telnyx/events"), data=body, headers=headers, timeout=30)


def _texts(stack: Stack, customer: str, count: int = 1) -> list[dict[str, Any]]:
    def stored() -> list[dict[str, Any]] | None:
        response = stack.api("GET", f"/v1/conversations/{quote(customer)}/messages")
        if response.status_code != 200:
            return None
        messages: list[dict[str, Any]] = response.json()["messages"]
        return messages if len(messages) >= count else None

    return wait_until(stored, timeout=30)


def _conversations(stack: Stack) -> list[dict[str, Any]]:
    response = stack.api("GET", "/v1/conversations", params={"status": "all", "limit": "200"})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["conversations"]
    return found


def test_a_text_with_half_an_emoji_is_stored_with_a_replacement_character(stack: Stack) -> None:
    customer = "+14155558601"
    answer = _telnyx(stack, customer, "lone \ud800 surrogate")
    assert answer.status_code == 200, answer.text
    (text,) = _texts(stack, customer)
    assert text["body"] == "lone \ufffd surrogate"


def test_a_text_just_under_the_webhook_limit_is_queued_and_stored(stack: Stack) -> None:
    """64,000 emoji: 256 KB of UTF-8, which \\u escapes and a second copy in `raw` made 1.5 MB."""
    customer = "+14155558602"
    answer = _telnyx(stack, customer, "\U0001f600" * 64_000)
    assert answer.status_code == 200, answer.text
    (text,) = _texts(stack, customer)
    assert text["body"] == "\U0001f600" * 64_000


def test_a_text_dated_in_the_future_does_not_pin_the_conversation(stack: Stack) -> None:
    customer = "+14155558603"
    assert _telnyx(stack, customer, "clock-skewed text", "2099-01-01T00:00:00+00:00").status_code == 200
    _texts(stack, customer)
    time.sleep(1.1)
    assert _telnyx(stack, customer, "a normal text sent now").status_code == 200
    texts = _texts(stack, customer, 2)
    assert all(not t["created_at"].startswith("2099") for t in texts)

    def preview() -> dict[str, Any] | None:
        found = [c for c in _conversations(stack) if c["customer_number"] == customer]
        return found[0] if found and found[0]["last_message_preview"] == "a normal text sent now" else None

    assert not wait_until(preview, timeout=30)["last_activity_at"].startswith("2099")


def _twilio(stack: Stack, fields: dict[str, str]) -> requests.Response:
    url = stack.url("/webhooks/twilio/messages")
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(AUTH_TOKEN, url, fields),
    }
    return requests.post(url, data=urlencode(fields), headers=headers, timeout=30)


def test_a_receipt_or_a_junk_sender_at_the_inbound_url_gets_a_400_and_stores_nothing(stack: Stack) -> None:
    receipt = {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "From": TWILIO_NUMBER,
        "To": "+14155558604",
        "MessageStatus": "delivered",
        "SmsStatus": "delivered",
    }
    answer = _twilio(stack, receipt)
    assert answer.status_code == 400 and "status callback" in answer.text
    for sender in ("+", "+abc", "+0", "+999999999999999999", "+1415555\x009701"):
        junk = {"MessageSid": "SM" + uuid.uuid4().hex, "From": sender, "To": TWILIO_NUMBER, "Body": "hi"}
        answer = _twilio(stack, junk)
        assert answer.status_code == 400 and "invalid From number" in answer.text, (sender, answer.text)
    assert TWILIO_NUMBER not in [c["customer_number"] for c in _conversations(stack)]


def test_a_large_bandwidth_callback_is_acknowledged_in_batches_and_an_oversized_one_refused(
    stack: Stack,
) -> None:
    credentials = f"{sim_bandwidth.DEFAULT_CALLBACK_USERNAME}:{sim_bandwidth.DEFAULT_CALLBACK_PASSWORD}"
    headers = {
        "Authorization": "Basic " + base64.b64encode(credentials.encode()).decode(),
        "Content-Type": "application/json",
    }

    def callback(count: int) -> requests.Response:
        events = [
            {
                "type": "message-delivered",
                "time": "2026-11-28T14:00:00Z",
                "message": {"id": f"bw-unknown-{uuid.uuid4().hex}"},
            }
            for _ in range(count)
        ]
        return requests.post(
            stack.url("/webhooks/bandwidth/events"), json=events, headers=headers, timeout=60
        )

    assert callback(100).status_code == 200
    refused = callback(1000)
    assert refused.status_code == 400 and "more than 100 events" in refused.text
