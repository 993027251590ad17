"""A CRM conflict of one team whose tied records belong to another team, through the real API handler
on moto: the conversation's team sees the conflict but none of those records (only how many there
are), and can't resolve to one; a member of both teams and an admin see and pick them."""

from __future__ import annotations

import json
from typing import Any

from parley.adapters.dynamo import ConversationItem, DynamoContacts
from parley.domain.models import ContactRecord
from tests.integration.test_crm_api import FakeCrm, texted
from tests.integration.test_crm_api import crm as crm  # noqa: F401 - the fake CRM fixture
from tests.integration.test_handlers import CUSTOMER, Stack, get, post_json
from tests.integration.test_handlers import stack as stack  # noqa: F401 - the moto stack fixture

DEFAULT = {"sub": "dev", "teams": "[default]"}  # the conversation's team (it texted from OURS)
SALES = {"sub": "ana", "teams": "[sales]"}
BOTH = {"sub": "bo", "teams": "[default sales]"}
ADMIN = {"sub": "root", "teams": "[ops]", "roles": "[admin]"}
SECRET = "sales-secret"


def held(teams: dict[str, str]) -> str:
    """Today's day of CUSTOMER's conversation (team default), held because the records of `teams`
    (record id -> team) tie for its number; the conflict's id."""
    day = texted()
    for record_id, team in teams.items():
        DynamoContacts().save(
            ContactRecord(
                contact_id=record_id,
                name=f"{SECRET} {record_id}",
                phone=CUSTOMER,
                owner="salesrep",
                team=team,
            )
        )
    item = ConversationItem.get(CUSTOMER)
    item.contact_id = None
    item.conflict_candidates = set(teams)
    item.save()
    status, answer = post_json("/v1/crm/log", {"customer_number": CUSTOMER, "day": day}, claims=DEFAULT)
    assert status == 409, answer
    return str(answer["conflict_id"])


def listed(claims: dict[str, str]) -> list[dict[str, Any]]:
    status, answer = get("/v1/crm/conflicts", claims=claims)
    assert status == 200, answer
    return [c for c in answer["conflicts"] if c["customer_number"] == CUSTOMER]


def resolve(conflict: str, record_id: str, claims: dict[str, str]) -> tuple[int, Any]:
    return post_json(f"/v1/crm/conflicts/{conflict}/resolve", {"record_id": record_id}, claims=claims)


def linked() -> str | None:
    contact_id: str | None = ConversationItem.get(CUSTOMER).contact_id
    return contact_id


def test_the_conversations_team_sees_the_conflict_but_no_record_of_another_team(
    stack: Stack, crm: FakeCrm
) -> None:
    conflict = held({"c-kim": "sales", "c-sam": "sales"})

    mine = listed(DEFAULT)

    assert [(c["conflict_id"], c["candidates"]) for c in mine] == [(conflict, [])]
    assert SECRET not in json.dumps(mine) and "salesrep" not in json.dumps(mine)
    assert "c-kim" not in json.dumps(mine) and "c-sam" not in json.dumps(mine)
    assert mine[0]["hidden_candidates"] == 2
    assert listed(SALES) == []  # the conversation, and so its conflict, is team default's


def test_resolving_to_another_teams_record_is_refused_as_a_record_that_is_no_candidate(
    stack: Stack, crm: FakeCrm
) -> None:
    conflict = held({"c-kim": "sales", "c-sam": "sales"})

    hidden = resolve(conflict, "c-sam", DEFAULT)
    unknown = resolve(conflict, "c-nope", DEFAULT)

    assert hidden[0] == unknown[0] == 400
    assert hidden[1]["error"].replace("c-sam", "X") == unknown[1]["error"].replace("c-nope", "X")
    assert "c-kim" not in hidden[1]["error"]
    assert linked() is None and crm.posted == []
    assert [c["conflict_id"] for c in listed(ADMIN)] == [conflict]  # still open


def test_a_member_of_both_teams_and_an_admin_see_every_candidate_and_may_pick_one(
    stack: Stack, crm: FakeCrm
) -> None:
    conflict = held({"c-kim": "sales", "c-sam": "sales"})

    for claims in (BOTH, ADMIN):
        (seen,) = listed(claims)
        assert [(c["record_id"], c["name"], c["owner"]) for c in seen["candidates"]] == [
            ("c-kim", f"{SECRET} c-kim", "salesrep"),
            ("c-sam", f"{SECRET} c-sam", "salesrep"),
        ]
        assert seen["hidden_candidates"] == 0

    status, answer = resolve(conflict, "c-sam", ADMIN)

    assert status == 200, answer
    assert (answer["resolved"], answer["record_id"], answer["hidden_candidates"]) == (True, "c-sam", 0)
    assert linked() == "c-sam" and len(crm.posted) == 1


def test_a_member_of_both_teams_may_resolve_to_the_other_teams_record(stack: Stack, crm: FakeCrm) -> None:
    conflict = held({"c-kim": "sales", "c-sam": "sales"})

    status, answer = resolve(conflict, "c-kim", BOTH)

    assert status == 200, answer
    assert linked() == "c-kim"


def test_only_the_candidates_the_caller_sees_are_shown_and_picked(stack: Stack, crm: FakeCrm) -> None:
    conflict = held({"c-kim": "default", "c-sam": "sales"})

    (mine,) = listed(DEFAULT)
    assert [c["record_id"] for c in mine["candidates"]] == ["c-kim"]
    assert "c-sam" not in json.dumps(mine)
    assert mine["hidden_candidates"] == 1

    refused = resolve(conflict, "c-sam", DEFAULT)
    assert refused[0] == 400
    assert refused[1]["error"] == "'record_id' must be one of the candidates (c-kim), not 'c-sam'"

    status, answer = resolve(conflict, "c-kim", DEFAULT)
    assert status == 200, answer
    assert ([c["record_id"] for c in answer["candidates"]], answer["hidden_candidates"]) == (["c-kim"], 1)
    assert "c-sam" not in json.dumps(answer)
    assert linked() == "c-kim"


def test_a_conflict_resolved_to_a_record_the_caller_cant_see_is_409_without_naming_it(
    stack: Stack, crm: FakeCrm
) -> None:
    conflict = held({"c-kim": "default", "c-sam": "sales"})
    assert resolve(conflict, "c-sam", ADMIN)[0] == 200

    for record_id in ("c-kim", "c-sam"):  # the one picked, too: no answer tells it from another
        status, answer = resolve(conflict, record_id, DEFAULT)
        assert status == 409, answer
        assert "c-sam" not in answer["error"]
        assert "root" in answer["error"]  # who resolved it, so the caller knows whom to ask
    assert resolve(conflict, "c-sam", ADMIN)[0] == 200  # the admin's own pick again: idempotent
