"""Records with several numbers on moto: one lookup item per (number, record), written with the record,
found through the by-phone index (no Scan); and the conversation remembering a routing decision."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from parley.adapters import aws
from parley.adapters.dynamo import ContactItem, DynamoContacts, DynamoConversations, DynamoMessages
from parley.config import Settings
from parley.domain.models import ContactRecord, Direction, Message, MessageStatus
from parley.ports import ConversationDelta

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
ANA = "+14155550100"
ANA_MOBILE = "+14155550110"
BO = "+14155550101"


@pytest.fixture(autouse=True)
def fresh_clients() -> Iterator[None]:
    aws.client.cache_clear()
    yield
    aws.client.cache_clear()


@pytest.fixture
def contacts(aws_settings: Settings) -> DynamoContacts:
    return DynamoContacts()


def keys() -> list[str]:
    return sorted(i.contact_id for i in ContactItem.scan())  # tests only: what the table holds


def test_a_record_is_found_by_each_of_its_numbers(contacts: DynamoContacts) -> None:
    contacts.save(ContactRecord(contact_id="c1", name="Ana", phones=[ANA, ANA_MOBILE], owner="dev"))
    contacts.save(ContactRecord(contact_id="l1", name="Ana (lead)", phone=ANA, record_type="lead"))

    assert [c.contact_id for c in contacts.find_by_phone(ANA)] == ["c1", "l1"]
    assert [c.contact_id for c in contacts.find_by_phone(ANA_MOBILE)] == ["c1"]
    assert contacts.find_by_phone(BO) == []
    assert keys() == ["c1", "l1", f"phone#{ANA}#c1", f"phone#{ANA}#l1", f"phone#{ANA_MOBILE}#c1"]
    got = contacts.get("c1")
    assert got is not None and (got.phone, got.phones) == (ANA, [ANA, ANA_MOBILE])
    assert contacts.get(f"phone#{ANA}#c1") is None  # a lookup is not a record


def test_removing_a_number_removes_its_lookup_and_saving_again_changes_nothing(
    contacts: DynamoContacts,
) -> None:
    record = ContactRecord(contact_id="c1", name="Ana", phones=[ANA, ANA_MOBILE])
    contacts.save(record)
    contacts.save(record)  # idempotent
    assert len(keys()) == 3
    contacts.save(record.model_copy(update={"phone": BO, "phones": [BO, ANA]}))

    assert keys() == ["c1", f"phone#{ANA}#c1", f"phone#{BO}#c1"]
    assert contacts.find_by_phone(ANA_MOBILE) == []
    assert [c.contact_id for c in contacts.find_by_phone(BO)] == ["c1"]
    assert ContactItem.get("c1").version == 3


def test_a_stale_lookup_never_finds_a_record_that_dropped_the_number(contacts: DynamoContacts) -> None:
    contacts.save(ContactRecord(contact_id="c1", name="Ana", phones=[ANA, ANA_MOBILE]))
    # As if the index still showed a lookup the last write deleted.
    ContactItem(contact_id=f"phone#{BO}#c1", phone=BO, record_id="c1").save()
    assert contacts.find_by_phone(BO) == []


def test_a_record_written_before_records_had_several_numbers_is_still_found_and_upgraded(
    contacts: DynamoContacts,
) -> None:
    legacy = {"contact_id": "old", "name": "Old", "phone": ANA, "team": "default"}
    ContactItem(contact_id="old", phone=ANA, doc=legacy).save()  # the item shape before lookups
    (found,) = contacts.find_by_phone(ANA)
    assert (found.contact_id, found.phones, found.active) == ("old", [ANA], True)

    contacts.save(found.model_copy(update={"phones": [ANA, ANA_MOBILE]}))
    assert ContactItem.get("old").phone is None  # the record itself is no longer in the index
    assert [c.contact_id for c in contacts.find_by_phone(ANA)] == ["old"]
    assert [c.contact_id for c in contacts.find_by_phone(ANA_MOBILE)] == ["old"]


def test_create_writes_once(contacts: DynamoContacts) -> None:
    lead = ContactRecord(contact_id="lead-1", name=ANA, phone=ANA, record_type="lead", updated_at=T0)
    assert contacts.create(lead) is True
    assert contacts.create(lead.model_copy(update={"name": "second"})) is False
    got = contacts.get("lead-1")
    assert got is not None and got.name == ANA and got.updated_at == T0
    assert keys() == ["lead-1", f"phone#{ANA}#lead-1"]


def test_a_record_id_that_looks_like_a_lookup_is_refused(contacts: DynamoContacts) -> None:
    with pytest.raises(ValueError, match="can't start with"):
        contacts.save(ContactRecord(contact_id="phone#x", name="X", phone=ANA))


def _text(message_id: str, minute: int) -> Message:
    at = T0.replace(minute=minute)
    return Message(
        message_id=message_id,
        direction=Direction.INBOUND,
        customer_number=ANA,
        our_number="+15005550006",
        body="hi",
        status=MessageStatus.RECEIVED,
        carrier="twilio",
        carrier_message_id=message_id,
        created_at=at,
        updated_at=at,
    )


def _routed(message: Message, contact_id: str | None, reason: str, *tied: str) -> ConversationDelta:
    return ConversationDelta(
        customer_number=message.customer_number,
        team="default",
        our_number=message.our_number,
        at=message.created_at,
        message_id=message.message_id,
        preview=message.body,
        direction=message.direction.value,
        unread_increment=1,
        owner="dev",
        contact_id=contact_id,
        routed=True,
        routing_reason=reason,
        conflict_candidates=tied,
    )


def test_a_routing_decision_replaces_the_last_one_on_the_conversation(aws_settings: Settings) -> None:
    messages, conversations = DynamoMessages(aws_settings), DynamoConversations()
    first = _text("m1", 0)
    assert messages.insert_with_conversation(first, _routed(first, None, "conflict: a, b", "a", "b"))
    conversation = conversations.get(ANA)
    assert conversation is not None
    assert (conversation.contact_id, conversation.conflict_candidates) == (None, ["a", "b"])
    assert conversation.routing_reason == "conflict: a, b"

    second = _text("m2", 1)
    assert messages.insert_with_conversation(second, _routed(second, "b", "the most recently updated"))
    conversation = conversations.get(ANA)
    assert conversation is not None
    assert (conversation.contact_id, conversation.conflict_candidates, conversation.owner) == ("b", [], "dev")
    assert conversation.routing_reason == "the most recently updated"
    assert not messages.insert_with_conversation(second, _routed(second, "a", "again"))  # a duplicate
    conversation = conversations.get(ANA)
    assert conversation is not None and conversation.contact_id == "b"
