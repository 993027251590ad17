"""Resending from the Failed view over the API: a filter leaves out a text the carrier failed for good
(a landline) and resends a passing failure; a long text of which one part was lost is shown in the
Failed view, left out of a filter, and resent whole by id. Customers +14155552200 to +14155552209."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

LANDLINE, UNREACHABLE, HALF = "+14155552200", "+14155552201", "+14155552202"
TWILIO_SENDER = "+14155550164"
VONAGE_SENDER = "+14155550144"
# local/runtime.py runs the stack with PARLEY_RETRY_MAX_ATTEMPTS=5: a passing receipt failure is
# retried until then
MAX_ATTEMPTS = 5


@pytest.fixture
def faults(stack: Stack) -> Iterator[list[str]]:
    """The simulators whose faults this test adds (by mount path); their faults are cleared after."""
    used: list[str] = []
    try:
        yield used
    finally:
        for path in used:
            requests.delete(stack.url(f"{path}/_faults"), timeout=10).raise_for_status()


def _fault(stack: Stack, faults: list[str], sim: str, spec: dict[str, Any]) -> None:
    path = f"/_sim/{sim}"
    if path not in faults:
        faults.append(path)
    stack.control("POST", f"{path}/_faults", expect=201, json=spec)


def _send(stack: Stack, to: str, sender: str, body: str) -> dict[str, Any]:
    response = stack.api("POST", "/v1/messages", json={"to": [to], "from": sender, "body": body})
    assert response.status_code == 202, response.text
    message: dict[str, Any] = response.json()["messages"][0]
    return message


def _carrier_texts(stack: Stack, sim: str, to: str, body: str) -> list[dict[str, Any]]:
    response = requests.get(stack.url(f"/_sim/{sim}/_messages"), timeout=10)
    assert response.status_code == 200, response.text
    digits = to.lstrip("+")
    return [
        t
        for t in response.json()["messages"]
        if digits in str(t.get("to")) and t.get("body", t.get("text")) == body
    ]


def _resend_view(stack: Stack, wanted: set[str], **where: Any) -> dict[str, dict[str, Any]]:
    """A resend of the Failed view with a filter, followed through its cursor: the answers for `wanted`."""
    found: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        body = {"view": "failed", **where, **({"cursor": cursor} if cursor else {})}
        response = stack.api("POST", "/v1/messages/resend", json=body)
        assert response.status_code == 200, response.text
        answer = response.json()
        found.update({r["message_id"]: r for r in answer["results"] if r["message_id"] in wanted})
        cursor = answer.get("cursor")
        if not answer["more"] or found.keys() == wanted:
            return found


def _failed_view(stack: Stack, sender: str, since: str) -> dict[str, dict[str, Any]]:
    response = stack.api(
        "GET", "/v1/messages", params={"view": "failed", "our_number": sender, "since": since, "limit": 100}
    )
    assert response.status_code == 200, response.text
    return {m["message_id"]: m for m in response.json()["messages"]}


def test_a_filter_leaves_out_a_landline_and_resends_a_passing_failure(
    stack: Stack, faults: list[str]
) -> None:
    _fault(
        stack, faults, "twilio", {"kind": "undelivered", "count": 1, "to": LANDLINE, "error_code": "30006"}
    )
    spec = {"kind": "undelivered", "count": MAX_ATTEMPTS, "to": UNREACHABLE, "error_code": "30003"}
    _fault(stack, faults, "twilio", spec)
    body = f"Your order has shipped ({uuid.uuid4().hex[:8]})"
    landline = _send(stack, LANDLINE, TWILIO_SENDER, body)
    unreachable = _send(stack, UNREACHABLE, TWILIO_SENDER, body)
    ids = {landline["message_id"], unreachable["message_id"]}
    stack.wait_status(landline["message_id"], "undelivered", timeout=30)
    stack.wait_status(unreachable["message_id"], "undelivered", "failed", timeout=90)

    results = _resend_view(stack, ids, our_number=TWILIO_SENDER, since=landline["created_at"])

    refused = results[landline["message_id"]]
    assert (refused["result"], refused["status"]) == ("refused", "undelivered"), refused
    assert "30006" in refused["reason"] and "by id" in refused["reason"], refused
    assert (results[unreachable["message_id"]]["result"]) == "resent", results
    delivered = stack.wait_status(unreachable["message_id"], "delivered", timeout=30)
    assert any((h["detail"] or "").startswith("resent by ") for h in delivered["history"])
    assert stack.message(landline["message_id"])["status"] == "undelivered"
    assert landline["message_id"] in _failed_view(stack, TWILIO_SENDER, landline["created_at"])
    assert len(_carrier_texts(stack, "twilio", LANDLINE, body)) == 1  # never sent again
    assert len(_carrier_texts(stack, "twilio", UNREACHABLE, body)) == MAX_ATTEMPTS + 1


def test_a_partly_delivered_text_is_in_the_failed_view_and_resent_whole_by_id(
    stack: Stack, faults: list[str]
) -> None:
    _fault(
        stack, faults, "vonage", {"kind": "undelivered_last_part", "count": 1, "to": HALF, "error_code": "7"}
    )
    body = (
        f"Your appointment on Tuesday is confirmed ({uuid.uuid4().hex[:8]}). "
        + "Please bring your card. " * 6
    )
    sent = _send(stack, HALF, VONAGE_SENDER, body)
    message_id = sent["message_id"]

    partial = stack.wait_status(message_id, "partially_delivered", timeout=30)
    assert sorted(partial["part_statuses"].values()) == ["delivered", "undelivered"], partial
    view = _failed_view(stack, VONAGE_SENDER, sent["created_at"])
    assert view[message_id]["status"] == "partially_delivered"

    # a filter leaves it out unless asked; ids name it alone
    (left,) = _resend_view(stack, {message_id}, our_number=VONAGE_SENDER, since=sent["created_at"]).values()
    assert (left["result"], left["status"]) == ("refused", "partially_delivered"), left
    assert "parts already delivered" in left["reason"], left
    mixed = stack.api("POST", "/v1/messages/resend", json={"ids": [message_id], "partially_delivered": True})
    assert mixed.status_code == 400, mixed.text
    vague = stack.api("POST", "/v1/messages/resend", json={"view": "failed", "partially_delivered": "yes"})
    assert vague.status_code == 400, vague.text

    resent = stack.api("POST", f"/v1/messages/{message_id}/resend")

    assert resent.status_code == 200, resent.text
    assert resent.json()["status"] == "queued" and resent.json()["part_statuses"] == {}
    delivered = stack.wait_status(message_id, "delivered", timeout=30)
    assert set(delivered["part_statuses"].values()) == {"delivered"}
    assert message_id not in _failed_view(stack, VONAGE_SENDER, sent["created_at"])
    texts = _carrier_texts(stack, "vonage", HALF, body)
    assert len(texts) == 2, texts  # the text that lost a part, then the whole of it again
