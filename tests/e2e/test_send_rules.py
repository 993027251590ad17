"""Send rules end to end: a template to several people, once, however often it is asked for."""

from __future__ import annotations

from typing import Any

import requests

from tests.e2e.conftest import Stack, wait_until

pytestmark = __import__("pytest").mark.e2e

# The seeded contacts (local/seed.py) supply the first names.
PEOPLE = {"+14155550100": "Ada", "+14155550101": "Grace", "+14155550102": "Alan"}


def _queues_idle(stack: Stack) -> bool:
    depths = requests.get(stack.url("/_local/queues"), timeout=10).json()
    return all(sum(depths[q].values()) == 0 for q in ("SendQueue", "RetryQueue"))


def _conversation(stack: Stack, number: str) -> dict[str, Any]:
    response = stack.api("GET", "/v1/conversations", params={"limit": 200})
    assert response.status_code == 200, response.text
    found = [c for c in response.json()["conversations"] if c["customer_number"] == number]
    assert len(found) == 1, found
    return found[0]


def test_a_template_to_three_people_renders_for_each_and_the_same_key_sends_nothing_more(
    stack: Stack,
) -> None:
    created = stack.api(
        "POST",
        "/v1/templates",
        json={"name": "e2e order shipped", "body": "Hi {{first_name}}, order {{order}} ships {{day|today}}."},
    )
    assert created.status_code == 201, created.text
    request = {
        "to": list(PEOPLE),
        "template_id": created.json()["template_id"],
        "merge_values": {"order": "#77"},
        "idempotency_key": "e2e-template-to-three",
    }
    before = {number: len(stack.sim_messages(number)) for number in PEOPLE}

    first = stack.api("POST", "/v1/messages", json=request)

    assert first.status_code == 202, first.text
    messages = {m["customer_number"]: m for m in first.json()["messages"]}
    assert set(messages) == set(PEOPLE)
    assert len({m["message_id"] for m in messages.values()}) == 3  # one message per person
    for number, name in PEOPLE.items():
        text = f"Hi {name}, order #77 ships today."
        assert messages[number]["body"] == text
        stack.wait_status(messages[number]["message_id"], "sent", "delivered")
        assert [m["body"] for m in stack.sim_messages(number)[before[number] :]] == [text]
        # each in that person's own conversation, which now ends with it
        assert _conversation(stack, number)["last_message_id"] == messages[number]["message_id"]

    again = stack.api("POST", "/v1/messages", json=request)

    assert again.status_code == 202, again.text
    assert {m["message_id"] for m in again.json()["messages"]} == {m["message_id"] for m in messages.values()}
    wait_until(lambda: _queues_idle(stack))
    assert {number: len(stack.sim_messages(number)) for number in PEOPLE} == {
        number: count + 1 for number, count in before.items()
    }
