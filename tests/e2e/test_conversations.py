"""Conversations in the inbox on the local stack, over HTTP: list filters, read and mark all read,
close and reopen (a new text reopens), add contact and search; and an outsider sees none of it."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from local.process import wait_until
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

LINE = "+14155550163"  # a seeded Twilio number of the default team that no other e2e test texts
FIRST = "+14155550291"
SECOND = "+14155550292"


def _text(stack: Stack, customer: str, body: str) -> None:
    sim = stack.cli("sim", "sms", "--from", customer, "--to", LINE, "--body", body)
    assert sim.returncode == 0, sim.stderr


def _list(stack: Stack, token: str | None = None, **params: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = stack.api("GET", "/v1/conversations", params={"limit": "200", **params}, headers=headers)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["conversations"]
    return [c for c in found if c["customer_number"] in (FIRST, SECOND)]


def _numbers(conversations: list[dict[str, Any]]) -> list[str]:
    return [c["customer_number"] for c in conversations]


def _wait_for(stack: Stack, customer: str, body: str) -> dict[str, Any]:
    def arrived() -> dict[str, Any] | None:
        found = [c for c in _list(stack, status="all") if c["customer_number"] == customer]
        return found[0] if found and found[0]["last_message_preview"] == body else None

    result: dict[str, Any] = wait_until(arrived)
    return result


def test_conversations_filtered_read_closed_reopened_added_to_and_searched(stack: Stack) -> None:
    _text(stack, FIRST, "Hello from the first")
    _wait_for(stack, FIRST, "Hello from the first")
    _text(stack, SECOND, "Hello from the second")
    _wait_for(stack, SECOND, "Hello from the second")

    # filters: newest first, our number, unread
    assert _numbers(_list(stack, our_number=LINE)) == [SECOND, FIRST]
    assert _numbers(_list(stack, our_number="+15005550006")) == []
    assert _numbers(_list(stack, unread="true")) == [SECOND, FIRST]
    bad = stack.api("GET", "/v1/conversations", params={"status": "gone"})
    assert bad.status_code == 400 and "status" in bad.json()["error"]

    # reading the messages doesn't mark read; POST .../read does
    assert stack.api("GET", f"/v1/conversations/{FIRST}/messages").status_code == 200
    assert _list(stack, unread="true")[-1]["unread_count"] == 1
    read = stack.api("POST", f"/v1/conversations/{FIRST}/read")
    assert read.status_code == 200 and read.json()["unread_count"] == 0
    assert _numbers(_list(stack, unread="true")) == [SECOND]

    # mark all read, for one of our numbers
    marked = stack.api("POST", "/v1/conversations/read", json={"our_number": LINE})
    assert marked.status_code == 200 and marked.json() == {"marked": 1, "cursor": None}
    assert _list(stack, unread="true") == []

    # close hides it from the default list; a new text reopens it; reopen does too
    closed = stack.api("POST", f"/v1/conversations/{SECOND}/close")
    assert closed.status_code == 200 and closed.json()["closed"] is True
    assert _numbers(_list(stack)) == [FIRST]
    assert _numbers(_list(stack, status="closed")) == [SECOND]
    _text(stack, SECOND, "Are you still there?")
    assert _wait_for(stack, SECOND, "Are you still there?")["closed"] is False
    assert _numbers(_list(stack)) == [SECOND, FIRST]
    stack.api("POST", f"/v1/conversations/{FIRST}/close")
    reopened = stack.api("POST", f"/v1/conversations/{FIRST}/reopen")
    assert reopened.status_code == 200 and reopened.json()["closed"] is False

    # add a contact from a conversation the routing gave only a lead; then find it by name or number
    added = stack.api("POST", f"/v1/conversations/{FIRST}/contact", json={"name": "Zelda Quartermaine"})
    assert added.status_code == 201, added.text
    record = added.json()["record"]
    assert record["phones"] == [FIRST] and added.json()["conversation"]["contact_id"] == record["contact_id"]
    again = stack.api("POST", f"/v1/conversations/{FIRST}/contact", json={"name": "Someone Else"})
    assert again.status_code == 409
    for q in ("zel", "QUARTER", "0291", "4155550291"):
        assert _numbers(_list(stack, q=q)) == [FIRST], q
    assert _numbers(_list(stack, q="5550292")) == [SECOND]
    assert stack.api("GET", "/v1/conversations", params={"q": "12"}).status_code == 400

    # an outsider (another team) sees and changes none of it
    outsider = stack.cli("token", "--user", "eve", "--team", "marketing").stdout.strip()
    assert outsider
    assert _list(stack, outsider) == [] and _list(stack, outsider, q="zelda") == []
    headers = {"Authorization": f"Bearer {outsider}"}
    for action in ("read", "close", "reopen"):
        answer = requests.post(stack.url(f"/v1/conversations/{FIRST}/{action}"), headers=headers, timeout=15)
        assert answer.status_code == 404, (action, answer.text)
    answer = requests.post(
        stack.url(f"/v1/conversations/{SECOND}/contact"), headers=headers, json={"name": "Eve"}, timeout=15
    )
    assert answer.status_code == 404
    answer = requests.post(stack.url("/v1/conversations/read"), headers=headers, json={}, timeout=15)
    assert answer.status_code == 200 and answer.json()["marked"] == 0
