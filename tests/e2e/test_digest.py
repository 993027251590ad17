"""The CRM digest on the local stack: runs fanned out through the digest queue with their progress,
one record per contact per day, and auto-log per number (seeded in local/seed.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import requests

from local.process import wait_until
from parley.services.digest import external_id
from tests.e2e.conftest import OUR_NUMBER, Stack

pytestmark = pytest.mark.e2e

IMMEDIATE = "+14155550162"  # auto-log immediate
OFF = "+14155550163"  # auto-log off
JO_MOBILE, JO_OFFICE = "+14155550540", "+14155550541"  # both numbers of a record made below


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def _records_for(stack: Stack, number: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = requests.get(stack.url("/_sim/crm/records"), timeout=10).json()["records"]
    return [
        r
        for r in records
        if number in r["payload"].get("customer_numbers", [r["payload"]["customer_number"]])
    ]


def _bodies(record: dict[str, Any]) -> list[str]:
    return [m["body"] for m in record["payload"]["messages"]]


def _text(stack: Stack, frm: str, to: str, body: str) -> None:
    sent = stack.cli("sim", "sms", "--from", frm, "--to", to, "--body", body)
    assert sent.returncode == 0, sent.stderr


def _stored(stack: Stack, number: str, count: int) -> bool:
    response = stack.api("GET", f"/v1/conversations/{number}/messages", params={"limit": 50})
    return response.status_code == 200 and len(response.json()["messages"]) >= count


def test_immediate_auto_log_logs_each_text_as_it_comes_to_one_record(stack: Stack) -> None:
    customer = "+14155550530"
    _text(stack, customer, IMMEDIATE, "Is the blue one in stock?")

    first = wait_until(lambda: _records_for(stack, customer) or None)
    assert [_bodies(r) for r in first] == [["Is the blue one in stock?"]]

    _text(stack, customer, IMMEDIATE, "Size 9 please")

    def updated() -> list[dict[str, Any]] | None:
        found = _records_for(stack, customer)
        return found if found and len(_bodies(found[0])) == 2 else None

    (record,) = wait_until(updated)  # the same record, no second one
    assert record["external_id"] == first[0]["external_id"]
    assert _bodies(record) == ["Is the blue one in stock?", "Size 9 please"]
    assert record["version"] == 2


def test_auto_log_off_logs_nothing_until_a_person_asks(stack: Stack) -> None:
    customer = "+14155550531"
    settings = stack.api("GET", "/v1/crm/auto-log")
    assert settings.status_code == 200, settings.text
    assert {"number": OFF, "auto_log": "off"} in [
        {"number": n["number"], "auto_log": n["auto_log"]} for n in settings.json()["numbers"]
    ]
    day = _today()  # once, before the text arrives: every step below asks about that same day
    _text(stack, customer, OFF, "Please don't log this yet")
    wait_until(lambda: _stored(stack, customer, 1))

    run = stack.cli("digest", "--day", day)
    assert run.returncode == 0, run.stderr
    assert _records_for(stack, customer) == []

    asked = stack.api("POST", "/v1/crm/log", json={"customer_number": customer, "day": day})
    assert asked.status_code == 200, asked.text
    assert asked.json()["created"] == 1
    (record,) = _records_for(stack, customer)
    assert _bodies(record) == ["Please don't log this yet"]

    again = stack.api("POST", "/v1/crm/log", json={"customer_number": customer, "day": day})
    assert again.status_code == 200 and again.json()["unchanged"] == 1  # asking twice posts once


def test_a_contact_with_two_numbers_gets_one_record_for_the_day(stack: Stack) -> None:
    created = stack.api(
        "POST", "/v1/records", json={"record_id": "c-jo", "name": "Jo Park", "phones": [JO_MOBILE, JO_OFFICE]}
    )
    assert created.status_code == 201, created.text
    day = _today()  # once, before the texts arrive
    _text(stack, JO_MOBILE, OUR_NUMBER, "From my mobile")
    _text(stack, JO_OFFICE, OUR_NUMBER, "And now from the office")
    wait_until(lambda: _stored(stack, JO_MOBILE, 1) and _stored(stack, JO_OFFICE, 1))

    run = stack.cli("digest", "--day", day)
    assert run.returncode == 0, run.stderr

    records = _records_for(stack, JO_MOBILE)
    assert [r["external_id"] for r in records] == [external_id("c-jo", day)]
    assert records[0]["payload"]["customer_numbers"] == [JO_MOBILE, JO_OFFICE]
    assert _bodies(records[0]) == ["From my mobile", "And now from the office"]
    assert _records_for(stack, JO_OFFICE) == records  # not a second record for the office line


def test_a_run_started_through_the_api_shows_its_progress_until_done(stack: Stack) -> None:
    day = _today()
    _text(stack, "+14155550532", OUR_NUMBER, "Progress check")
    wait_until(lambda: _stored(stack, "+14155550532", 1))

    started = stack.api("POST", "/v1/crm/digest", json={"day": day})
    assert started.status_code == 202, started.text
    assert started.json()["queued"] is True and started.json()["jobs"] >= 1

    def finished() -> dict[str, Any] | None:
        response = stack.api("GET", f"/v1/crm/digest/{day}")
        assert response.status_code == 200, response.text
        progress: dict[str, Any] = response.json()
        return progress if progress["finished"] else None

    progress = wait_until(finished)
    assert progress["shards_done"] == progress["shards"] >= 1
    assert progress["counts"]["conversations"] >= 1
    assert progress["counts"].get("failed", 0) == 0
    assert [r["payload"]["day"] for r in _records_for(stack, "+14155550532")] == [day]

    unknown = stack.api("GET", "/v1/crm/digest/1999-01-01")
    assert unknown.status_code == 404
