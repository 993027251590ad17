"""The CRM digest on the local stack when a conversation's number and its records disagree: an
outbound-only conversation whose number two records share is held as a conflict, and a number its
record dropped keeps its texts in the CRM."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import requests

from local.process import wait_until
from parley.services.digest import conflict_id, external_id
from tests.e2e.conftest import OUR_NUMBER, Stack

pytestmark = pytest.mark.e2e

OUTBOUND_ONLY = "+14155558760"
KEPT, DROPPED = "+14155558770", "+14155558771"  # one record's numbers, until it drops the second


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def _crm_records(stack: Stack, number: str) -> dict[str, list[str]]:
    records: list[dict[str, Any]] = requests.get(stack.url("/_sim/crm/records"), timeout=10).json()["records"]
    return {
        r["external_id"]: [m["body"] for m in r["payload"]["messages"]]
        for r in records
        if number in r["payload"]["customer_numbers"]
    }


def _digest(stack: Stack, day: str) -> None:
    run = stack.cli("digest", "--day", day)
    assert run.returncode == 0, run.stderr + run.stdout


def _record(stack: Stack, body: dict[str, Any]) -> str:
    created = stack.api("POST", "/v1/records", json={"record_type": "contact", **body})
    assert created.status_code == 201, created.text
    record_id: str = created.json()["contact_id"]
    return record_id


def _tied_people(stack: Stack, number: str) -> list[str]:
    """Two CRM people with `number`, of equal rank at every routing rule, synced in: their record ids."""
    return stack.tied_crm_people(number, "Dup", "Twin", last_name="Person")


def test_an_outbound_only_conversation_two_records_share_is_held_and_then_resolved(stack: Stack) -> None:
    day = _today()
    sent = stack.api("POST", "/v1/messages", json={"to": [OUTBOUND_ONLY], "body": "outbound first"})
    assert sent.status_code in (200, 201, 202), sent.text
    wait_until(lambda: len(stack.thread(OUTBOUND_ONLY)) >= 1 or None)
    ids = _tied_people(stack, OUTBOUND_ONLY)

    _digest(stack, day)

    assert _crm_records(stack, OUTBOUND_ONLY) == {}  # not posted under the bare number
    conflicts = stack.api("GET", "/v1/crm/conflicts", params={"limit": 200}).json()["conflicts"]
    (held,) = [c for c in conflicts if c["customer_number"] == OUTBOUND_ONLY]
    assert held["conflict_id"] == conflict_id(OUTBOUND_ONLY, day)
    assert sorted(c["record_id"] for c in held["candidates"]) == sorted(ids)

    resolved = stack.api(
        "POST", f"/v1/crm/conflicts/{held['conflict_id']}/resolve", json={"record_id": ids[1]}
    )

    assert resolved.status_code == 200, resolved.text
    assert _crm_records(stack, OUTBOUND_ONLY) == {external_id(ids[1], day): ["outbound first"]}


def test_a_number_its_record_drops_keeps_its_texts_in_the_crm(stack: Stack) -> None:
    day = _today()
    record_id = _record(stack, {"name": "Three Numbers", "phones": [KEPT, DROPPED]})
    for number, body in ((KEPT, "from the kept number"), (DROPPED, "from the dropped number")):
        sent = stack.cli("sim", "sms", "--from", number, "--to", OUR_NUMBER, "--body", body)
        assert sent.returncode == 0, sent.stderr
        wait_until(lambda n=number: len(stack.thread(n)) >= 1 or None)
    _digest(stack, day)
    merged = external_id(record_id, day)
    assert _crm_records(stack, KEPT) == {merged: ["from the kept number", "from the dropped number"]}

    put = stack.api(
        "PUT",
        f"/v1/records/{record_id}",
        json={"name": "Three Numbers", "phones": [KEPT], "record_type": "contact"},
    )
    assert put.status_code == 200, put.text
    _digest(stack, day)

    assert _crm_records(stack, KEPT) == {merged: ["from the kept number"]}
    assert _crm_records(stack, DROPPED) == {external_id(DROPPED, day): ["from the dropped number"]}
