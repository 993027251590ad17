"""Keyword answers on the local stack: a team that texts from the pool's number gets its customer's
STOP and the confirmation in its own conversation, and the customer hears nothing more from it.

This file's customers are +14155552300 to +14155552309.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from local.process import wait_until
from tests.e2e.conftest import OUR_NUMBER, Stack

pytestmark = pytest.mark.e2e

CUSTOMER = "+14155552300"


def sales(stack: Stack) -> dict[str, str]:
    made = stack.cli("token", "--user", "sam", "--team", "sales")
    assert made.returncode == 0, made.stderr
    return {"Authorization": f"Bearer {made.stdout.strip()}"}


def thread(stack: Stack, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = stack.api("GET", f"/v1/conversations/{CUSTOMER}/messages", headers=headers)
    if response.status_code == 404:
        return []
    assert response.status_code == 200, response.text
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


def test_a_stop_in_a_teams_thread_on_the_pool_number_is_confirmed_as_that_teams(stack: Stack) -> None:
    team = sales(stack)
    first = stack.api("POST", "/v1/messages", json={"to": [CUSTOMER], "body": "Hi from sales"}, headers=team)
    assert first.status_code == 202, first.text
    assert first.json()["messages"][0]["our_number"] == OUR_NUMBER  # sales has no number: the pool's

    payload = {"from": CUSTOMER, "to": OUR_NUMBER, "body": "STOP"}
    assert requests.post(stack.url("/_sim/twilio/_inbound"), json=payload, timeout=15).status_code == 200

    answer = wait_until(
        lambda: next((m for m in thread(stack, team) if m.get("compliance")), None), timeout=30
    )
    assert (answer["team"], answer["our_number"], answer["direction"]) == ("sales", OUR_NUMBER, "outbound")
    assert answer["body"].startswith("You're unsubscribed")
    confirmation = wait_until(
        lambda: [t for t in stack.sim_messages(CUSTOMER) if "unsubscribed" in t["body"]]
    )
    assert [t["from"] for t in confirmation] == [OUR_NUMBER]
    stop = next(m for m in thread(stack, team) if m["direction"] == "inbound")
    assert (stop["team"], stop["body"]) == ("sales", "STOP")

    later = stack.api("POST", "/v1/messages", json={"to": [CUSTOMER], "body": "One more offer"}, headers=team)
    assert later.status_code == 202, later.text
    assert later.json()["messages"][0]["status"] == "suppressed"
