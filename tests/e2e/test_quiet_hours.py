"""Quiet hours with the clock under the test's control: a text due at night in the recipient's zone
waits, and the sweep sends it once when their morning comes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

QUIET_NUMBER = "+14155550160"  # seeded with quiet hours 21:00-08:00 (local/seed.py)
CUSTOMER = "+14155550621"  # a +1 415 number: America/Los_Angeles
RECIPIENT_ZONE = ZoneInfo("America/Los_Angeles")

MoveClock = Callable[[dict[str, Any]], dict[str, Any]]


def test_a_text_at_23_00_recipient_time_is_held_until_08_00_then_sent_once(
    stack: Stack, move_clock: MoveClock
) -> None:
    # Two nights ago, so the whole test stays in the past and going back to real time moves forward.
    night = datetime.combine(datetime.now(RECIPIENT_ZONE).date() - timedelta(days=2), time(23, 0))
    night = night.replace(tzinfo=RECIPIENT_ZONE)
    morning = datetime.combine(night.date() + timedelta(days=1), time(8, 0), tzinfo=RECIPIENT_ZONE)
    move_clock({"now": night.isoformat()})

    sent = stack.api(
        "POST", "/v1/messages", json={"to": [CUSTOMER], "from": QUIET_NUMBER, "body": "Your order shipped"}
    )
    assert sent.status_code == 202, sent.text
    (message,) = sent.json()["messages"]
    message_id = message["message_id"]
    assert message["status"] == "held"
    assert datetime.fromisoformat(message["next_attempt_at"]) == morning

    stack.fire("Sweep")  # still night: nothing is due
    assert stack.message(message_id)["status"] == "held"
    assert stack.sim_messages(CUSTOMER) == []

    # Subtract in UTC: two times in the same zone subtract as wall-clock times, wrong across a DST change.
    overnight = (morning.astimezone(UTC) - night.astimezone(UTC)).total_seconds()
    state = move_clock({"advance_seconds": overnight + 60})
    assert datetime.fromisoformat(state["now"]) > morning
    assert stack.fire("Sweep")["released"] >= 1

    delivered = stack.wait_status(message_id, "sent", "delivered")
    statuses = [h["status"] for h in delivered["history"]]
    assert statuses[:2] == ["held", "queued"]
    (copy,) = stack.sim_messages(CUSTOMER)
    assert (copy["from"], copy["body"]) == (QUIET_NUMBER, "Your order shipped")
