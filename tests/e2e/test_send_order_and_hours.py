"""Sends over HTTP that keep their order and the recipient's evening: a text the carrier keeps refusing
for a while is not overtaken by the many later texts to the same person, and a text whose retry
falls in the recipient's quiet hours is held until their morning, then sent once.

This file's customers are +14155550980 to +14155550989.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from datetime import time as clock_time
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

FAST_NUMBER = "+14155550164"  # seeded at 1000 texts a second: only the order holds texts back
QUIET_NUMBER = "+14155550160"  # seeded with quiet hours 21:00-08:00 (local/seed.py)
ORDERED = "+14155550980"
EVENING = "+14155550981"  # a +1 415 number: America/Los_Angeles
RECIPIENT_ZONE = ZoneInfo("America/Los_Angeles")
FINAL = ("accepted", "sent", "delivered", "failed", "undelivered")

Fault = Callable[[dict[str, Any]], dict[str, Any]]


def send(stack: Stack, to: str, body: str, sender: str) -> str:
    response = stack.api("POST", "/v1/messages", json={"to": [to], "body": body, "from": sender})
    assert response.status_code == 202, response.text
    message_id: str = response.json()["messages"][0]["message_id"]
    return message_id


def test_a_text_being_retried_is_not_overtaken_by_25_later_texts_to_the_same_person(
    stack: Stack, carrier_fault: Fault
) -> None:
    # Four refusals: with the local 1-second backoff base the first text goes 8 s or more after its
    # first attempt, by which time all the later ones exist.
    carrier_fault({"kind": "429", "to": ORDERED, "count": 4})
    first = send(stack, ORDERED, "first", FAST_NUMBER)
    later = [send(stack, ORDERED, f"later {i:02d}", FAST_NUMBER) for i in range(25)]

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if all(stack.message(m)["status"] in FINAL for m in [first, *later]):
            break
        time.sleep(1)

    received = sorted(stack.sim_messages(ORDERED), key=lambda m: m["received_at"])
    assert [m["body"] for m in received] == ["first"] + [f"later {i:02d}" for i in range(25)]
    assert [a["outcome"] for a in stack.message(first)["attempts"]] == ["transient"] * 4 + ["accepted"]


def test_a_retry_that_falls_in_the_recipient_s_quiet_hours_is_held_until_morning(
    stack: Stack, carrier_fault: Fault, move_clock: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    # Two nights ago, so the whole test stays in the past and going back to real time moves forward.
    day = datetime.now(RECIPIENT_ZONE).date() - timedelta(days=2)
    evening = datetime.combine(day, clock_time(20, 59, 58), tzinfo=RECIPIENT_ZONE)
    morning = datetime.combine(day + timedelta(days=1), clock_time(8, 0), tzinfo=RECIPIENT_ZONE)
    carrier_fault({"kind": "429", "to": EVENING, "count": 2})
    move_clock({"now": evening.isoformat()})

    text = send(stack, EVENING, "evening text", QUIET_NUMBER)  # accepted just before 21:00

    held = stack.wait_status(text, "held", *FINAL, timeout=30)
    assert held["status"] == "held"
    assert datetime.fromisoformat(held["next_attempt_at"]) == morning
    assert "accepted" not in [a["outcome"] for a in held["attempts"]]
    assert stack.sim_messages(EVENING) == []

    move_clock({"now": (morning + timedelta(minutes=1)).isoformat()})
    assert stack.fire("Sweep")["released"] >= 1

    sent = stack.wait_status(text, "sent", "delivered", timeout=30)
    assert sent["attempts"][-1]["outcome"] == "accepted"
    (copy,) = stack.sim_messages(EVENING)
    assert (copy["from"], copy["body"]) == (QUIET_NUMBER, "evening text")
