"""A conversation's messages as a key range of `by-conversation` (what the send order check reads):
created at or after `since` and before `before`, newest first, against moto."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from parley.adapters import aws
from parley.adapters.dynamo import DynamoMessages
from parley.config import Settings
from parley.domain.models import Direction, Message, MessageStatus
from parley.ports import ConversationDelta

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
OURS = "+15005550006"
ANA = "+14155550100"
BO = "+14155550101"


@pytest.fixture(autouse=True)
def fresh_clients() -> Iterator[None]:
    aws.client.cache_clear()
    yield
    aws.client.cache_clear()


@pytest.fixture
def messages(aws_settings: Settings) -> DynamoMessages:
    return DynamoMessages(aws_settings)


def text(message_id: str, at: datetime, customer: str = ANA) -> Message:
    return Message(
        message_id=message_id,
        direction=Direction.OUTBOUND,
        customer_number=customer,
        our_number=OURS,
        body=f"body of {message_id}",
        status=MessageStatus.QUEUED,
        carrier="twilio",
        created_at=at,
        updated_at=at,
    )


def store(messages: DynamoMessages, message: Message) -> None:
    delta = ConversationDelta(
        customer_number=message.customer_number,
        team="default",
        our_number=OURS,
        at=message.created_at,
        message_id=message.message_id,
        preview=message.body,
        direction=message.direction.value,
        unread_increment=0,
    )
    assert messages.insert_with_conversation(message, delta)


def test_a_key_range_ending_at_a_message_reads_the_ones_just_before_it(messages: DynamoMessages) -> None:
    for i in range(30):
        store(messages, text(f"m{i:02d}", T0 + timedelta(seconds=i)))
    store(messages, text("bo", T0 + timedelta(seconds=10), customer=BO))

    page = messages.list_for_conversation(
        ANA, limit=20, cursor=None, since=T0 + timedelta(seconds=2), before=T0 + timedelta(seconds=25)
    )

    # m25 itself (created at `before`) is out, and so is what came after it, or before `since`
    assert [m.message_id for m in page.items] == [f"m{i:02d}" for i in range(24, 4, -1)]
    shorter = messages.list_for_conversation(
        ANA, limit=20, cursor=None, since=T0 + timedelta(seconds=20), before=T0 + timedelta(seconds=25)
    )
    assert [m.message_id for m in shorter.items] == ["m24", "m23", "m22", "m21", "m20"]
    only_before = messages.list_for_conversation(ANA, limit=3, cursor=None, before=T0 + timedelta(seconds=1))
    assert [m.message_id for m in only_before.items] == ["m00"]
    empty = messages.list_for_conversation(
        ANA, limit=20, cursor=None, since=T0 + timedelta(seconds=9), before=T0 + timedelta(seconds=9)
    )
    assert empty.items == []
