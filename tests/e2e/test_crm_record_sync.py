"""Records synced from the CRM on the local stack: a contact put into the simulated CRM arrives in Parley
when the CrmSync schedule fires, and a text from its number is then routed to it."""

from __future__ import annotations

from typing import Any

from local.process import wait_until
from tests.e2e.conftest import OUR_NUMBER, Stack

pytestmark = __import__("pytest").mark.e2e

CUSTOMER = "+14155550240"  # only in the simulated CRM until the sync brings it
CUSTOMER_WORK = "(415) 555-0241"


def test_a_contact_created_in_the_crm_is_synced_and_a_text_from_it_is_routed_to_it(stack: Stack) -> None:
    person = stack.control(
        "POST",
        "/_sim/crm/_people",
        expect=201,
        json={
            "first_name": "Dee",
            "last_name": "Okafor",
            "phones": [CUSTOMER_WORK, CUSTOMER],
            "owner": "dev",
        },
    )
    contact_id = f"crm-{person['ids']['webhook']}"

    report = stack.fire("CrmSync")
    assert report["crm"] == "webhook" and report["error"] is None and report["caught_up"] is True
    assert report["created"] >= 1

    again = stack.fire("CrmSync")  # nothing changed since the watermark: nothing is written
    assert (again["created"], again["updated"], again["error"]) == (0, 0, None)

    sim = stack.cli("sim", "sms", "--from", CUSTOMER, "--to", OUR_NUMBER, "--body", "Hi, Dee here")
    assert sim.returncode == 0, sim.stderr

    def conversation() -> dict[str, Any] | None:
        response = stack.api("GET", "/v1/conversations", params={"limit": 200})
        assert response.status_code == 200, response.text
        found = [c for c in response.json()["conversations"] if c["customer_number"] == CUSTOMER]
        return found[0] if found and found[0]["last_message_preview"] == "Hi, Dee here" else None

    routed: dict[str, Any] = wait_until(conversation)
    assert routed["contact_id"] == contact_id
    assert routed["routing_reason"] == "the only record with this number"
    assert routed["owner"] == "dev"
