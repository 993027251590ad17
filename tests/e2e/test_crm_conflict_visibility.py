"""A CRM conflict over records of another team, on the local stack: two sales contacts synced from the
CRM share a number that texts the default team's line, so the digest holds the day. The default team
sees the conflict, but not the sales records (only how many there are), and can't resolve to one; a
member of both teams sees them, and an admin resolves it."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from parley.services.digest import conflict_id
from tests.e2e.conftest import OUR_NUMBER, Stack

pytestmark = __import__("pytest").mark.e2e

CUSTOMER = "+14155550225"  # only the sales team's two CRM contacts have it
SECRET = "Secret Sales Lead"


def sales_contacts(stack: Stack, customer: str = CUSTOMER) -> list[str]:
    """Two sales contacts with the number and the same last change (so routing can't choose), synced
    in; their record ids."""
    ids = []
    updated_at = None
    for last in ("Ames", "Byrd"):
        person: dict[str, Any] = {
            "name": f"{SECRET} {last}",
            "first_name": SECRET,
            "last_name": last,
            "phones": [customer],
            "type": "contact",
            "owner": "salesrep",
            "team": "sales",
        }
        if updated_at is not None:
            person["updated_at"] = updated_at
        made = stack.control("POST", "/_sim/crm/_people", expect=201, json=person)
        ids.append(f"crm-{made['ids']['webhook']}")
        if updated_at is None:  # the first one's time, as the simulator keeps it, for the second
            people = stack.control("GET", "/_sim/crm/_people")["people"]
            updated_at = next(
                p["updated_at"] for p in people if p["last_name"] == last and customer in p.get("phones", [])
            )
    report = stack.fire("CrmSync")
    assert report["error"] is None, report
    return ids


def _conflicts(stack: Stack, token: str) -> list[dict[str, Any]]:
    response = stack.as_(token, "GET", "/v1/crm/conflicts", params={"limit": 200})
    assert response.status_code == 200, response.text
    return [c for c in response.json()["conflicts"] if c["customer_number"] == CUSTOMER]


def _records(stack: Stack, token: str) -> list[str]:
    response = stack.as_(token, "GET", "/v1/records", params={"phone": CUSTOMER})
    assert response.status_code == 200, response.text
    return [r["contact_id"] for r in response.json()["records"]]


def test_the_default_team_sees_no_sales_record_in_a_conflict_and_cant_resolve_to_one(stack: Stack) -> None:
    sales = sales_contacts(stack)
    dev = stack.token  # user e2e, team default
    sales_user = stack.issue_token("--user", "salesrep", "--teams", "sales")
    both = stack.issue_token("--user", "lead", "--teams", "default,sales")
    admin = stack.issue_token("--user", "root", "--teams", "ops", "--admin")
    assert sorted(_records(stack, sales_user)) == sorted(sales)
    assert _records(stack, dev) == []

    sim = stack.cli("sim", "sms", "--from", CUSTOMER, "--to", OUR_NUMBER, "--body", "Which of you is this?")
    assert sim.returncode == 0, sim.stderr

    assert stack.tied_conversation(CUSTOMER)["team"] == "default"
    day = dt.datetime.now(dt.UTC).date().isoformat()
    digest = stack.cli("digest", "--day", day)
    assert digest.returncode == 0, digest.stderr
    held = conflict_id(CUSTOMER, day)

    (mine,) = _conflicts(stack, dev)
    shown = json.dumps(mine)
    assert (mine["conflict_id"], mine["candidates"]) == (held, []), shown
    assert SECRET not in shown and "salesrep" not in shown
    assert not any(record_id in shown for record_id in sales)
    assert mine["hidden_candidates"] == 2

    path = f"/v1/crm/conflicts/{held}/resolve"
    refused = stack.as_(dev, "POST", path, json={"record_id": sales[0]})
    unknown = stack.as_(dev, "POST", path, json={"record_id": "crm-nope"})
    assert refused.status_code == unknown.status_code == 400, refused.text
    assert refused.json()["error"].replace(sales[0], "X") == unknown.json()["error"].replace("crm-nope", "X")
    assert sales[1] not in refused.text

    for token in (both, admin):
        (seen,) = _conflicts(stack, token)
        assert sorted(c["record_id"] for c in seen["candidates"]) == sorted(sales)
        assert {c["owner"] for c in seen["candidates"]} == {"salesrep"}
        assert seen["hidden_candidates"] == 0

    resolved = stack.as_(admin, "POST", path, json={"record_id": sales[1]})
    assert resolved.status_code in (200, 202), resolved.text
    assert (resolved.json()["resolved"], resolved.json()["record_id"]) == (True, sales[1])
    assert _conflicts(stack, dev) == []
    again = stack.as_(dev, "POST", path, json={"record_id": sales[1]})
    assert again.status_code == 409, again.text  # not the admin's 200: the picked record stays unnamed
    assert sales[1] not in again.text
