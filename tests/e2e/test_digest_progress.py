"""The CRM digest on the local stack: a day past retention is refused and never overwrites its CRM
record with blank texts, and a day retried after a CRM failure moves the run from failed to created."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import requests

from local.process import wait_until
from tests.e2e.conftest import OUR_NUMBER, Stack

pytestmark = pytest.mark.e2e

OLD_CUSTOMER = "+14155550681"  # texts eight days ago, then the Retention sweep runs
RETRIED_CUSTOMER = "+14155550682"  # its day meets a CRM rate limit once


def _records_for(stack: Stack, number: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = requests.get(stack.url("/_sim/crm/records"), timeout=10).json()["records"]
    return [r for r in records if r["payload"]["customer_number"] == number]


def _text(stack: Stack, number: str, body: str) -> None:
    sent = stack.cli("sim", "sms", "--from", number, "--to", OUR_NUMBER, "--body", body)
    assert sent.returncode == 0, sent.stderr
    wait_until(lambda: stack.thread(number) or None)


def _run(stack: Stack, day: str, *, done: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        response = stack.api("GET", f"/v1/crm/digest/{day}")
        assert response.status_code == 200, response.text
        progress: dict[str, Any] = response.json()
        return progress if progress["finished"] and (done is None or done(progress)) else None

    return wait_until(finished, timeout=150)


def test_a_day_past_retention_is_refused_and_its_crm_record_keeps_the_texts(
    stack: Stack, move_clock: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    today = dt.datetime.now(dt.UTC).date()
    old = (today - dt.timedelta(days=8)).isoformat()
    move_clock({"now": f"{old}T12:00:00+00:00"})
    _text(stack, OLD_CUSTOMER, "important old conversation content")
    stack.control("DELETE", "/_local/clock")
    assert stack.api("POST", "/v1/crm/digest", json={"day": old}).status_code == 202
    _run(stack, old)
    (record,) = _records_for(stack, OLD_CUSTOMER)
    assert [m["body"] for m in record["payload"]["messages"]] == ["important old conversation content"]

    swept = stack.control("POST", "/_local/schedules/Retention/fire", json={"days": 7})
    try:
        assert swept["expired"] >= 1
        started = stack.api("POST", "/v1/crm/digest", json={"day": old})
        logged = stack.api("POST", "/v1/crm/log", json={"customer_number": OLD_CUSTOMER, "day": old})
        cli = stack.cli("digest", "--day", old)
        # the nightly schedule's own run of that day (the lookback) leaves the record alone too
        stack.control("POST", "/_local/schedules/Nightly/fire", json={"day": old})
        run = _run(stack, old)
    finally:
        stack.control("POST", "/_local/schedules/Retention/fire", json={"days": 0})  # others: forever

    for answer in (started, logged):
        assert answer.status_code == 400, answer.text
        assert "past retention" in answer.json()["error"] and "RetentionDays" in answer.json()["error"]
    assert cli.returncode != 0 and "RetentionDays" in cli.stderr, cli.stderr
    assert run["counts"]["expired"] >= 1 and run["counts"]["updated"] == 0
    (after,) = _records_for(stack, OLD_CUSTOMER)
    assert after["version"] == record["version"]
    assert [m["body"] for m in after["payload"]["messages"]] == ["important old conversation content"]


def test_a_day_the_crm_rate_limited_and_the_retry_posted_counts_as_created(stack: Stack) -> None:
    today = dt.datetime.now(dt.UTC).date().isoformat()
    _text(stack, RETRIED_CUSTOMER, "please log me despite the rate limit")
    # days already logged are unchanged and post nothing: the fault meets this customer's day
    assert stack.cli("digest", "--day", today).returncode in (0, 1)
    stack.control("POST", "/_sim/crm/_faults", expect=201, json={"kind": "429", "count": 1})
    _text(stack, RETRIED_CUSTOMER, "and a second text")
    try:
        assert stack.api("POST", "/v1/crm/digest", json={"day": today}).status_code == 202
        failed = _run(stack, today)
        assert failed["counts"]["failed"] == 1, failed
        assert [f["customer_number"] for f in failed["failures"]] == [RETRIED_CUSTOMER]

        # the digest queue tries the day again a minute later, and the CRM takes it
        retried = _run(stack, today, done=lambda p: p["counts"]["failed"] == 0)
    finally:
        requests.delete(stack.url("/_sim/crm/_faults"), timeout=10).raise_for_status()

    assert retried["counts"]["updated"] == failed["counts"]["updated"] + 1
    assert retried["failures"] == []
    (record,) = _records_for(stack, RETRIED_CUSTOMER)
    assert [m["body"] for m in record["payload"]["messages"]] == [
        "please log me despite the rate limit",
        "and a second text",
    ]
