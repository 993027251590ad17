"""Failures that lose nothing: texts the carrier failed are resent from the Failed view, once each.

This test's customers are +14155550010 to +14155550059; its sender is +14155550161 (Twilio, 5 a
second), so the rate limit is at work both times round.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import pytest
import requests

from tests.e2e.conftest import Stack, wait_until

pytestmark = pytest.mark.e2e

SENDER = "+14155550161"
CUSTOMERS = [f"+1415555{10 + i:04d}" for i in range(50)]
TRIES = 5  # local/runtime.py's PARLEY_RETRY_MAX_ATTEMPTS: a receipt's passing failure is retried up to it


def _statuses(stack: Stack, ids: list[str]) -> dict[str, dict[str, Any]]:
    return {message_id: stack.message(message_id) for message_id in ids}


def _all_in(stack: Stack, ids: list[str], *statuses: str) -> dict[str, dict[str, Any]] | None:
    """Every message, once all are in one of `statuses` (polled only while any is not)."""
    current = _statuses(stack, ids)
    return current if all(m["status"] in statuses for m in current.values()) else None


def _sim_messages(stack: Stack) -> list[dict[str, Any]]:
    response = requests.get(stack.url("/_sim/twilio/_messages"), timeout=10)
    assert response.status_code == 200, response.text
    return [m for m in response.json()["messages"] if m["to"] in CUSTOMERS]


def test_fifty_failed_texts_resent_by_a_filter_are_each_delivered_once(stack: Stack) -> None:
    # The carrier reports each of these customers' texts undelivered (30003, unreachable: a passing
    # failure) until the retries are spent, so each ends in the Failed view; the fault is gone then.
    for customer in CUSTOMERS:
        fault = requests.post(
            stack.url("/_sim/twilio/_faults"),
            json={"kind": "undelivered", "count": TRIES, "to": customer, "error_code": "30003"},
            timeout=10,
        )
        assert fault.status_code == 201, fault.text
    body = f"Your appointment is confirmed ({uuid.uuid4().hex[:8]})"

    sent = stack.api(
        "POST",
        "/v1/messages",
        json={"to": CUSTOMERS, "body": body, "from": SENDER, "idempotency_key": f"resend-{body}"},
    )
    assert sent.status_code == 202, sent.text
    ids = [m["message_id"] for m in sent.json()["messages"]]
    assert len(ids) == 50
    since = min(m["created_at"] for m in sent.json()["messages"])

    failed = wait_until(lambda: _all_in(stack, ids, "undelivered", "failed"), timeout=240, interval=0.5)
    assert {m["error_code"] for m in failed.values()} == {"30003"}
    active = requests.get(stack.url("/_sim/twilio/_faults"), timeout=10).json()["faults"]
    assert [f for f in active if f["to"] in CUSTOMERS] == []  # the carrier has recovered

    resent = stack.api(
        "POST", "/v1/messages/resend", json={"view": "failed", "our_number": SENDER, "since": since}
    )

    assert resent.status_code == 200, resent.text
    results = resent.json()["results"]
    assert sorted(r["message_id"] for r in results) == sorted(ids)
    assert {(r["result"], r["status"]) for r in results} == {("resent", "queued")}
    assert resent.json()["more"] is False

    # A second resend sends nothing more: each is already on its way, or gone and no longer failed.
    again = stack.api("POST", "/v1/messages/resend", json={"ids": ids})
    assert again.status_code == 200, again.text
    for result in again.json()["results"]:
        if result["result"] == "resent":
            assert result["reason"] == "already resent; it is on its way", result
        else:
            assert result["reason"].startswith("the message is not failed: it is "), result

    delivered = wait_until(lambda: _all_in(stack, ids, "delivered"), timeout=120, interval=0.5)
    for message_id, message in delivered.items():
        assert message["message_id"] == message_id
        assert [a["outcome"] for a in message["attempts"]] == ["accepted"] * (TRIES + 1), message_id
        details = [h["detail"] or "" for h in message["history"]]
        assert sum(d.startswith("resent by e2e") for d in details) == 1, details
        assert len(message["superseded_carrier_ids"]) == TRIES
        assert message["carrier_message_id"] not in message["superseded_carrier_ids"]

    # The carrier holds exactly one delivered copy for each customer, and the ones it failed.
    at_carrier = [m for m in _sim_messages(stack) if m["body"] == body]
    delivered_copies = Counter(m["to"] for m in at_carrier if m["status"] == "delivered")
    undelivered_copies = Counter(m["to"] for m in at_carrier if m["status"] == "undelivered")
    assert delivered_copies == Counter(CUSTOMERS)
    assert undelivered_copies == Counter(CUSTOMERS * TRIES)
    assert len(at_carrier) == 50 * (TRIES + 1)
