"""The CRM digest on the local stack when a conversation's record changes: the day stays one CRM record
(updated, never posted again), and resolving one day's conflict settles the conversation's other days."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import requests

from local.process import wait_until
from parley.services.digest import conflict_id, external_id
from tests.e2e.conftest import OUR_NUMBER, Stack

pytestmark = pytest.mark.e2e

NEW_CUSTOMER = "+14155550060"  # no record: its first text makes a lead
SHARED = "+14155550061"  # two CRM people put in below, of equal rank


def _records_for(stack: Stack, number: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = requests.get(stack.url("/_sim/crm/records"), timeout=10).json()["records"]
    return [r for r in records if number in r["payload"]["customer_numbers"]]


def _text(stack: Stack, number: str, body: str, count: int) -> None:
    sent = stack.cli("sim", "sms", "--from", number, "--to", OUR_NUMBER, "--body", body)
    assert sent.returncode == 0, sent.stderr
    wait_until(lambda: len(stack.thread(number)) >= count or None)


def _digest(stack: Stack, day: str) -> None:
    run = stack.cli("digest", "--day", day)
    assert run.returncode == 0, run.stderr + run.stdout


def _open_conflicts(stack: Stack, number: str) -> list[str]:
    response = stack.api("GET", "/v1/crm/conflicts", params={"limit": 200})
    assert response.status_code == 200, response.text
    return sorted(c["conflict_id"] for c in response.json()["conflicts"] if c["customer_number"] == number)


def test_a_day_posted_under_a_lead_stays_one_record_after_add_contact(stack: Stack) -> None:
    day = dt.datetime.now(dt.UTC).date().isoformat()
    _text(stack, NEW_CUSTOMER, "first text", 1)
    _digest(stack, day)
    (posted,) = _records_for(stack, NEW_CUSTOMER)
    assert posted["external_id"] == external_id("lead-" + NEW_CUSTOMER.lstrip("+"), day)

    added = stack.api(
        "POST",
        f"/v1/conversations/{NEW_CUSTOMER}/contact",
        json={"name": "Real Person", "record_type": "contact"},
    )
    assert added.status_code == 201, added.text
    record_id = added.json()["record"]["contact_id"]
    _digest(stack, day)

    (after,) = _records_for(stack, NEW_CUSTOMER)  # not a second record for the day
    assert (after["external_id"], after["version"]) == (posted["external_id"], 2)
    assert (after["payload"]["contact_id"], after["payload"]["subject"]) == (
        record_id,
        f"SMS with Real Person on {day}",
    )
    assert [m["body"] for m in after["payload"]["messages"]] == ["first text"]

    _digest(stack, day)  # a re-run posts nothing
    assert [(r["external_id"], r["version"]) for r in _records_for(stack, NEW_CUSTOMER)] == [
        (posted["external_id"], 2)
    ]


def test_resolving_one_days_conflict_settles_the_other_day_and_posts_both_once(
    stack: Stack, move_clock: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    now = dt.datetime.now(dt.UTC)
    today, yesterday = now.date().isoformat(), (now.date() - dt.timedelta(days=1)).isoformat()
    ids = stack.tied_crm_people(SHARED, "Ren", "Rae", last_name="Tanaka")

    _text(stack, SHARED, "today's text", 1)
    move_clock({"now": f"{yesterday}T15:00:00+00:00"})
    _text(stack, SHARED, "yesterday's text", 2)
    stack.control("DELETE", "/_local/clock")
    conversation = stack.api("GET", "/v1/conversations", params={"limit": 200}).json()["conversations"]
    assert [c["conflict_candidates"] for c in conversation if c["customer_number"] == SHARED] == [sorted(ids)]
    _digest(stack, yesterday)
    _digest(stack, today)
    held = sorted([conflict_id(SHARED, yesterday), conflict_id(SHARED, today)])
    assert _open_conflicts(stack, SHARED) == held
    assert _records_for(stack, SHARED) == []

    chosen, other = ids
    resolved = stack.api(
        "POST", f"/v1/crm/conflicts/{conflict_id(SHARED, today)}/resolve", json={"record_id": chosen}
    )
    assert resolved.status_code == 200, resolved.text

    assert _open_conflicts(stack, SHARED) == []  # yesterday's too: the conversation is linked now
    records = {r["external_id"]: r for r in _records_for(stack, SHARED)}
    assert sorted(records) == sorted([external_id(chosen, yesterday), external_id(chosen, today)])
    assert [m["body"] for m in records[external_id(chosen, yesterday)]["payload"]["messages"]] == [
        "yesterday's text"
    ]

    stale = stack.api(
        "POST", f"/v1/crm/conflicts/{conflict_id(SHARED, yesterday)}/resolve", json={"record_id": other}
    )
    assert stale.status_code == 409, stale.text
    assert chosen in stale.json()["error"]
    _digest(stack, yesterday)
    _digest(stack, today)
    assert sorted((r["external_id"], r["version"]) for r in _records_for(stack, SHARED)) == sorted(
        (key, 1) for key in records
    )
