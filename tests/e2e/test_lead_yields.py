"""On the local stack: an unknown number's first text makes a lead; once the CRM sync brings in the
real contact with that number, the next text moves the conversation to it, and the day already posted
under the lead is updated in the same CRM record, now carrying the CRM contact."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import requests

from local.process import wait_until
from parley.domain.routing import OVER_LEAD, lead_id_for
from parley.services.digest import external_id
from tests.e2e.conftest import OUR_NUMBER, Stack

pytestmark = pytest.mark.e2e

CUSTOMER = "+14155550761"  # no record until the CRM has one


def _text(stack: Stack, body: str, count: int) -> None:
    sent = stack.cli("sim", "sms", "--from", CUSTOMER, "--to", OUR_NUMBER, "--body", body)
    assert sent.returncode == 0, sent.stderr
    wait_until(lambda: len(stack.thread(CUSTOMER)) >= count or None)


def _conversation(stack: Stack) -> dict[str, Any]:
    response = stack.api("GET", "/v1/conversations", params={"q": CUSTOMER})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["conversations"]
    (conversation,) = [c for c in found if c["customer_number"] == CUSTOMER]
    return conversation


def _days_in_crm(stack: Stack) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = requests.get(stack.url("/_sim/crm/records"), timeout=10).json()["records"]
    return [r for r in records if CUSTOMER in r["payload"]["customer_numbers"]]


def _digest(stack: Stack, day: str) -> None:
    run = stack.cli("digest", "--day", day)
    assert run.returncode == 0, run.stderr + run.stdout


def test_the_crm_contact_takes_over_from_the_lead_and_the_days_crm_record(stack: Stack) -> None:
    day = dt.datetime.now(dt.UTC).date().isoformat()
    _text(stack, "before the CRM knew me", 1)
    lead = lead_id_for(CUSTOMER)
    assert _conversation(stack)["contact_id"] == lead
    _digest(stack, day)
    (posted,) = _days_in_crm(stack)
    assert posted["external_id"] == external_id(lead, day)
    assert posted["payload"]["crm_contact_id"] is None

    person = {
        "name": "Known Later",
        "first_name": "Known",
        "last_name": "Later",
        "phones": [CUSTOMER],
        "type": "contact",
        "owner": "dev",
        "team": "default",
    }
    made = stack.control("POST", "/_sim/crm/_people", expect=201, json=person)
    report = stack.fire("CrmSync")
    assert report["error"] is None, report
    record_id = f"crm-{made['ids']['webhook']}"

    _text(stack, "after the CRM knew me", 2)
    conversation = _conversation(stack)
    assert (conversation["contact_id"], conversation["routing_reason"]) == (record_id, OVER_LEAD)
    assert conversation["conflict_candidates"] == []

    _digest(stack, day)
    (after,) = _days_in_crm(stack)  # the same CRM record, not a second one for the day
    assert (after["external_id"], after["version"]) == (posted["external_id"], 2)
    assert after["payload"]["contact_id"] == record_id
    assert after["payload"]["crm_contact_id"] is not None
    assert [m["body"] for m in after["payload"]["messages"]] == [
        "before the CRM knew me",
        "after the CRM knew me",
    ]
