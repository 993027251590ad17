"""The sweep reaches every due text, however many later ones wait: a text scheduled for a minute from
now goes out when due, even when more than a hundred texts scheduled later (a campaign for next week)
were created after it.

Customers: +14155550470 and +14155554000 to +14155554119.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

DUE_CUSTOMER = "+14155550470"
LATER = [f"+1415555{4000 + i:04d}" for i in range(120)]


def _schedule(stack: Stack, to: list[str], body: str, send_at: datetime) -> list[str]:
    response = stack.api(
        "POST", "/v1/messages", json={"to": to, "body": body, "send_at": send_at.isoformat()}
    )
    assert response.status_code == 202, response.text
    return [str(m["message_id"]) for m in response.json()["messages"]]


def test_a_due_scheduled_text_goes_out_behind_more_than_a_hundred_later_ones(
    stack: Stack, move_clock: Any
) -> None:
    now = datetime.now(UTC)
    (due,) = _schedule(stack, [DUE_CUSTOMER], "in a minute and a half", now + timedelta(seconds=90))
    week = now + timedelta(days=7)
    later = _schedule(stack, LATER[:100], "next week", week) + _schedule(
        stack, LATER[100:], "next week", week
    )
    try:
        move_clock({"advance_seconds": 180})
        assert stack.fire("Sweep")["released"] >= 1
        stack.wait_status(due, "delivered", timeout=30)
        assert [m["body"] for m in stack.sim_messages(DUE_CUSTOMER)] == ["in a minute and a half"]

        # The later ones wait, and the Scheduled view lists them, soonest last.
        assert {stack.message(m)["status"] for m in later[:5] + later[-5:]} == {"scheduled"}
        listed = stack.api("GET", "/v1/messages", params={"view": "scheduled", "limit": 200}).json()
        assert set(later) <= {m["message_id"] for m in listed["messages"]}
    finally:
        for message_id in later:  # out of the way of tests that move the clock further
            stack.api("POST", f"/v1/messages/{message_id}/cancel")
