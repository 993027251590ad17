"""A conversation's tied records through the real API handler against moto: a caller is shown the
ids of the conflict candidates whose records they see, and only a count of the others
(`hidden_candidates`), in the lists, the search and one conversation's answers; the records of a
page are read in one batch."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from parley.adapters.dynamo import DynamoContacts, DynamoMessages
from parley.config import Settings
from parley.domain.models import ContactRecord, Direction, Message, MessageStatus
from parley.ports import ConversationDelta
from tests.integration.test_handlers import OURS, Stack, get, post_json
from tests.integration.test_handlers import stack as stack  # noqa: F401 - the moto stack fixture

SALES = {"sub": "ann", "teams": "[sales]"}
BOTH = {"sub": "bea", "teams": "[sales support]"}
ADMIN = {"sub": "root", "team": "ops", "roles": "[admin]"}
T0 = datetime(2026, 5, 6, 9, 0, tzinfo=UTC)
SOME_HIDDEN = "+14155552100"  # tied between a sales record and a support record
ALL_HIDDEN = "+14155552101"  # tied between support records only (and one since deleted)
NONE = "+14155552102"  # linked to a record: no candidates
_ids = itertools.count()


def tied(settings: Settings, number: str, candidates: tuple[str, ...], *, minutes: int) -> None:
    """A text to a sales conversation, routed as a tie between `candidates` (none linked)."""
    n = next(_ids)
    at = T0 + timedelta(minutes=minutes)
    message = Message(
        message_id=f"mc-{n}",
        direction=Direction.INBOUND,
        customer_number=number,
        our_number=OURS,
        body="which of you?",
        status=MessageStatus.RECEIVED,
        carrier="twilio",
        created_at=at,
        updated_at=at,
        team="sales",
    )
    delta = ConversationDelta(
        customer_number=number,
        team="sales",
        our_number=OURS,
        at=at,
        message_id=message.message_id,
        preview=message.body,
        direction="inbound",
        unread_increment=1,
        contact_id=None if candidates else "s-linked",
        routed=True,
        routing_reason="conflict" if candidates else "the only record with this number",
        conflict_candidates=candidates,
    )
    assert DynamoMessages(settings).insert_with_conversation(message, delta)


def record(contact_id: str, team: str, phone: str) -> ContactRecord:
    return ContactRecord(contact_id=contact_id, name=f"Secret {contact_id}", phone=phone, team=team)


@pytest.fixture
def world(stack: Stack) -> None:
    contacts = DynamoContacts()
    contacts.save(record("s-ann", "sales", SOME_HIDDEN))
    contacts.save(record("p-bob", "support", SOME_HIDDEN))
    contacts.save(record("p-cy", "support", ALL_HIDDEN))
    contacts.save(record("s-linked", "sales", NONE))
    tied(stack.settings, SOME_HIDDEN, ("p-bob", "s-ann"), minutes=1)
    tied(stack.settings, ALL_HIDDEN, ("p-cy", "p-gone"), minutes=2)
    tied(stack.settings, NONE, (), minutes=3)


def shown(conversation: dict[str, Any]) -> tuple[list[str], int]:
    return sorted(conversation["conflict_candidates"]), conversation["hidden_candidates"]


def listed(claims: dict[str, str], **query: str) -> dict[str, tuple[list[str], int]]:
    status, answer = get("/v1/conversations", claims=claims, query={"status": "all", **query})
    assert status == 200, answer
    return {c["customer_number"]: shown(c) for c in answer["conversations"]}


@pytest.mark.usefixtures("world")
def test_the_list_and_the_search_show_only_the_candidates_the_caller_sees() -> None:
    expected = {SOME_HIDDEN: (["s-ann"], 1), ALL_HIDDEN: ([], 2), NONE: ([], 0)}
    assert listed(SALES) == expected
    assert listed(SALES, q="4155552") == expected
    # a member of both teams sees both teams' records; a record that no longer exists stays hidden
    assert listed(BOTH)[SOME_HIDDEN] == (["p-bob", "s-ann"], 0)
    assert listed(BOTH)[ALL_HIDDEN] == (["p-cy"], 1)
    # an admin sees every record's id
    assert listed(ADMIN, team="sales")[ALL_HIDDEN] == (["p-cy", "p-gone"], 0)


@pytest.mark.usefixtures("world")
def test_one_conversations_answers_show_only_the_candidates_the_caller_sees() -> None:
    for action in ("read", "close", "reopen"):
        status, answer = post_json(f"/v1/conversations/{ALL_HIDDEN}/{action}", {}, claims=SALES)
        assert status == 200, answer
        assert shown(answer) == ([], 2)  # still recognisable as tied: nothing linked, records hidden
        assert answer["contact_id"] is None
        status, answer = post_json(f"/v1/conversations/{SOME_HIDDEN}/{action}", {}, claims=SALES)
        assert status == 200 and shown(answer) == (["s-ann"], 1), answer
    status, answer = post_json(f"/v1/conversations/{SOME_HIDDEN}/read", {}, claims=BOTH)
    assert status == 200 and shown(answer) == (["p-bob", "s-ann"], 0), answer


@pytest.mark.usefixtures("world")
def test_a_page_reads_its_candidates_records_in_one_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    batches: list[list[str]] = []
    single: list[str] = []
    get_many, get_one = DynamoContacts.get_many, DynamoContacts.get

    def counted_many(self: DynamoContacts, contact_ids: list[str]) -> list[ContactRecord]:
        batches.append(sorted(contact_ids))
        return get_many(self, contact_ids)

    def counted_get(self: DynamoContacts, contact_id: str) -> ContactRecord | None:
        single.append(contact_id)
        return get_one(self, contact_id)

    monkeypatch.setattr(DynamoContacts, "get_many", counted_many)
    monkeypatch.setattr(DynamoContacts, "get", counted_get)
    assert listed(SALES)[SOME_HIDDEN] == (["s-ann"], 1)
    assert batches == [["p-bob", "p-cy", "p-gone", "s-ann"]] and single == []
    batches.clear()
    assert listed(ADMIN, team="sales")[SOME_HIDDEN] == (["p-bob", "s-ann"], 0)
    assert batches == []  # an admin sees every record: nothing to read
