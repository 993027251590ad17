"""Inbound routing on the local stack: texts from the seeded numbers (local/seed.py) land on the
right record, an unknown number gets a lead, and a shared line is a conflict left for a person."""

from __future__ import annotations

from typing import Any

from local.process import wait_until
from tests.e2e.conftest import OUR_NUMBER, Stack

pytestmark = __import__("pytest").mark.e2e

CONTACT_AND_LEAD = "+14155550210"  # c-lin (a contact) and l-lin (a lead)
CONTACT_SECOND_NUMBER = "+14155550211"  # c-lin's other number
SHARED = "+14155550220"  # c-sam and c-kim, of equal rank
UNKNOWN = "+14155550230"  # no record


def _text(stack: Stack, customer: str, body: str) -> dict[str, Any]:
    sim = stack.cli("sim", "sms", "--from", customer, "--to", OUR_NUMBER, "--body", body)
    assert sim.returncode == 0, sim.stderr

    def conversation() -> dict[str, Any] | None:
        response = stack.api("GET", "/v1/conversations", params={"limit": 200})
        assert response.status_code == 200, response.text
        found = [c for c in response.json()["conversations"] if c["customer_number"] == customer]
        return found[0] if found and found[0]["last_message_preview"] == body else None

    result: dict[str, Any] = wait_until(conversation)
    return result


def test_a_number_on_a_contact_and_a_lead_goes_to_the_contact(stack: Stack) -> None:
    conversation = _text(stack, CONTACT_AND_LEAD, "Hi, it's Lin")
    assert (conversation["contact_id"], conversation["owner"]) == ("c-lin", "dev")
    assert conversation["routing_reason"].startswith("its type (contact) ranks first")
    assert conversation["conflict_candidates"] == []


def test_a_contact_is_found_by_its_second_number(stack: Stack) -> None:
    conversation = _text(stack, CONTACT_SECOND_NUMBER, "Lin again, from my other phone")
    assert conversation["contact_id"] == "c-lin"
    assert conversation["routing_reason"] == "the only record with this number"


def test_an_unknown_number_creates_a_lead_and_links_it(stack: Stack) -> None:
    first = _text(stack, UNKNOWN, "Hello, who is this?")
    assert first["contact_id"] == "lead-" + UNKNOWN.lstrip("+")
    assert first["owner"] == "dev"  # the owner of the number texted
    assert first["routing_reason"] == "created a lead for an unknown number"

    again = _text(stack, UNKNOWN, "Anyone there?")  # the lead is found now, not made again
    assert again["contact_id"] == first["contact_id"]
    assert again["routing_reason"] == "the only record with this number"


def test_a_shared_number_is_a_conflict_with_both_candidates(stack: Stack) -> None:
    conversation = _text(stack, SHARED, "Hi from the Reyes household")
    assert conversation["contact_id"] is None
    assert conversation["conflict_candidates"] == ["c-kim", "c-sam"]
    assert conversation["routing_reason"].startswith("conflict: 2 records tie on every rule")


def test_a_record_created_through_the_api_gets_its_number_s_texts(stack: Stack) -> None:
    created = stack.api(
        "POST",
        "/v1/records",
        json={"record_id": "c-api-ivy", "name": "Ivy Chen", "phones": ["(415) 555-0233"], "owner": "dev"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["phones"] == ["+14155550233"]

    conversation = _text(stack, "+14155550233", "Ivy here")

    assert (conversation["contact_id"], conversation["owner"]) == ("c-api-ivy", "dev")
    found = stack.api("GET", "/v1/records", params={"phone": "+14155550233"})
    assert [r["contact_id"] for r in found.json()["records"]] == ["c-api-ivy"]  # no lead was made
