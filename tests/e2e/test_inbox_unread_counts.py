"""A conversation's unread count on the local stack, over HTTP: deleting an unread text lowers it and
takes the text out of the preview, and a read up to a stale message leaves the newer text unread."""

from __future__ import annotations

from typing import Any

import pytest

from local.process import wait_until
from tests.e2e.conftest import OUR_NUMBER, Stack

pytestmark = pytest.mark.e2e

DELETES = "+14155552800"
READS = "+14155552801"


def _text(stack: Stack, customer: str, body: str) -> str:
    sim = stack.cli("sim", "sms", "--from", customer, "--to", OUR_NUMBER, "--body", body)
    assert sim.returncode == 0, sim.stderr

    def arrived() -> str | None:
        found = [m for m in stack.thread(customer) if m["direction"] == "inbound" and m["body"] == body]
        return str(found[0]["message_id"]) if found else None

    message_id: str = wait_until(arrived)
    return message_id


def _conversation(stack: Stack, customer: str) -> dict[str, Any]:
    response = stack.api("GET", "/v1/conversations", params={"q": customer, "status": "all"})
    assert response.status_code == 200, response.text
    (found,) = [c for c in response.json()["conversations"] if c["customer_number"] == customer]
    return dict(found)


def _unread(stack: Stack) -> list[str]:
    response = stack.api("GET", "/v1/conversations", params={"unread": "true", "limit": "200"})
    assert response.status_code == 200, response.text
    return [c["customer_number"] for c in response.json()["conversations"]]


def test_deleting_an_unread_text_lowers_the_count_and_leaves_the_preview(stack: Stack) -> None:
    spam = _text(stack, DELETES, "SPAM offensive text")
    before = _conversation(stack, DELETES)
    assert (before["unread_count"], before["last_message_preview"]) == (1, "SPAM offensive text")

    deleted = stack.api("POST", "/v1/messages/delete", json={"ids": [spam]})
    assert deleted.status_code == 200 and deleted.json()["results"][0]["result"] == "ok"
    after = _conversation(stack, DELETES)
    assert after["unread_count"] == 0
    assert "SPAM" not in after["last_message_preview"]
    assert DELETES not in _unread(stack)

    restored = stack.api("POST", "/v1/messages/restore", json={"ids": [spam]})
    assert restored.status_code == 200
    assert _conversation(stack, DELETES)["unread_count"] == 1


def test_a_read_up_to_a_stale_message_leaves_the_new_text_unread(stack: Stack) -> None:
    shown = _text(stack, READS, "first, shown in the thread")
    newer = _text(stack, READS, "second, arrived after the thread loaded")

    read = stack.api("POST", f"/v1/conversations/{READS}/read", json={"seen_message_id": shown})
    assert read.status_code == 200, read.text
    assert read.json()["unread_count"] == 1
    assert _conversation(stack, READS)["unread_count"] == 1
    assert READS in _unread(stack)

    read = stack.api("POST", f"/v1/conversations/{READS}/read", json={"seen_message_id": newer})
    assert read.status_code == 200 and read.json()["unread_count"] == 0
    assert READS not in _unread(stack)
