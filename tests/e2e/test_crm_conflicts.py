"""CRM conflicts on the local stack: a text from a line two seeded records share (local/seed.py) is
held by the digest, listed by the API, resolved by a person, and then logged to the CRM once."""

from __future__ import annotations

import datetime as dt
from typing import Any

import requests

from parley.services.digest import conflict_id, external_id
from tests.e2e.conftest import OUR_NUMBER, Stack

pytestmark = __import__("pytest").mark.e2e

SHARED = "+14155550221"  # c-eve and c-max, of equal rank


def _crm_records(stack: Stack) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = requests.get(stack.url("/_sim/crm/records"), timeout=10).json()["records"]
    return [r for r in records if r["payload"]["customer_number"] == SHARED]


def _conflicts(stack: Stack) -> list[dict[str, Any]]:
    response = stack.api("GET", "/v1/crm/conflicts", params={"limit": 200})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["conflicts"]
    return found


def test_a_shared_line_is_held_listed_resolved_and_then_logged_once(stack: Stack) -> None:
    sim = stack.cli("sim", "sms", "--from", SHARED, "--to", OUR_NUMBER, "--body", "Which Moss is this for?")
    assert sim.returncode == 0, sim.stderr

    assert stack.tied_conversation(SHARED)["conflict_candidates"] == ["c-eve", "c-max"]
    day = dt.datetime.now(dt.UTC).date().isoformat()

    held = stack.cli("digest", "--day", day)
    assert held.returncode == 0, held.stderr
    mine = [c for c in _conflicts(stack) if c["customer_number"] == SHARED]
    assert [c["conflict_id"] for c in mine] == [conflict_id(SHARED, day)]
    assert [(c["record_id"], c["name"], c["record_type"], c["owner"]) for c in mine[0]["candidates"]] == [
        ("c-eve", "Eve Moss", "contact", "dev"),
        ("c-max", "Max Moss", "contact", "dev"),
    ]
    assert (mine[0]["day"], mine[0]["resolved"]) == (day, False)
    assert _crm_records(stack) == []

    path = f"/v1/crm/conflicts/{mine[0]['conflict_id']}/resolve"
    refused = stack.api("POST", path, json={"record_id": "c-sam"})
    assert refused.status_code == 400, refused.text
    assert "one of the candidates" in refused.json()["error"]
    assert (
        stack.api("POST", "/v1/crm/conflicts/conflict-nope/resolve", json={"record_id": "c-eve"}).status_code
        == 404
    )

    resolved = stack.api("POST", path, json={"record_id": "c-max"})
    assert resolved.status_code == 200, resolved.text
    assert (resolved.json()["resolved"], resolved.json()["record_id"]) == (True, "c-max")
    records = _crm_records(stack)
    assert [r["external_id"] for r in records] == [external_id("c-max", day)]
    assert records[0]["payload"]["contact_id"] == "c-max"
    linked = conversation_now(stack)
    assert (linked["contact_id"], linked["conflict_candidates"]) == ("c-max", [])
    assert linked["routing_reason"] == "chosen by e2e"
    assert [c for c in _conflicts(stack) if c["customer_number"] == SHARED] == []

    again = stack.api("POST", path, json={"record_id": "c-max"})  # idempotent
    assert again.status_code == 200, again.text
    assert stack.api("POST", path, json={"record_id": "c-eve"}).status_code == 409

    rerun = stack.cli("digest", "--day", day)
    assert rerun.returncode == 0, rerun.stderr
    after = _crm_records(stack)
    assert [(r["external_id"], r["version"]) for r in after] == [
        (r["external_id"], r["version"]) for r in records
    ]


def conversation_now(stack: Stack) -> dict[str, Any]:
    response = stack.api("GET", "/v1/conversations", params={"limit": 200})
    found: list[dict[str, Any]] = [
        c for c in response.json()["conversations"] if c["customer_number"] == SHARED
    ]
    assert found, response.text
    return found[0]
