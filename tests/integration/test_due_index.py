"""The `by-due` index on moto: waiting texts keyed by when they are next due, so a read up to now finds
the due ones oldest first however many later ones wait, and messages stored before the index existed
are moved into it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from parley.adapters.dynamo import DynamoMessages, MessageItem, iso
from parley.domain.models import Direction, Message, MessageStatus
from tests.integration.test_dynamo_adapters import T0, msg
from tests.integration.test_dynamo_adapters import fresh_clients as fresh_clients  # noqa: F401
from tests.integration.test_dynamo_adapters import messages as messages  # noqa: F401


def waiting(message_id: str, *, minutes: float, status: MessageStatus, due_minutes: float | None) -> Message:
    base = msg(message_id, at=T0 + timedelta(minutes=minutes), direction=Direction.OUTBOUND, status=status)
    due = None if due_minutes is None else T0 + timedelta(minutes=due_minutes)
    return base.model_copy(update={"next_attempt_at": due})


def ids(found: Any) -> list[str]:
    return [m.message_id for m in found.items]


def test_a_read_up_to_now_finds_the_due_texts_oldest_due_first_behind_any_number_of_later_ones(
    messages: DynamoMessages,  # noqa: F811
) -> None:
    messages.insert(waiting("due-late", minutes=0, status=MessageStatus.SCHEDULED, due_minutes=20))
    messages.insert(waiting("due-early", minutes=1, status=MessageStatus.SCHEDULED, due_minutes=10))
    for i in range(120):  # created later, due next week
        messages.insert(
            waiting(f"later-{i:03d}", minutes=2 + i, status=MessageStatus.SCHEDULED, due_minutes=10_080)
        )
    messages.insert(waiting("held", minutes=3, status=MessageStatus.HELD, due_minutes=15))

    now = T0 + timedelta(minutes=30)
    assert ids(messages.list_due("scheduled", until=now, limit=10, cursor=None)) == ["due-early", "due-late"]
    assert ids(messages.list_due("held", until=now, limit=10, cursor=None)) == ["held"]
    assert ids(messages.list_due("pending", until=now, limit=10, cursor=None)) == []

    first = messages.list_due("scheduled", until=now, limit=1, cursor=None)
    rest = messages.list_due("scheduled", until=now, limit=1, cursor=first.cursor)
    assert (ids(first), ids(rest)) == (["due-early"], ["due-late"])

    # The people's views still list them all, newest due first, from the same index.
    scheduled = messages.list_view("scheduled", limit=200, cursor=None)
    assert len(scheduled.items) == 122 and ids(scheduled)[-2:] == ["due-late", "due-early"]
    assert ids(messages.list_view("pending", limit=10, cursor=None)) == ["held"]


def test_a_text_sent_at_once_keeps_one_due_key_from_queued_to_sending_and_leaves_when_accepted(
    messages: DynamoMessages,  # noqa: F811
) -> None:
    queued = waiting("m1", minutes=0, status=MessageStatus.QUEUED, due_minutes=None)
    messages.insert(queued)
    item = MessageItem.get("m1")
    assert (item.due_view, item.due_at, item.view) == ("pending", iso(T0), None)

    sending = messages.update(queued.model_copy(update={"status": MessageStatus.SENDING}), expected_version=0)
    item = MessageItem.get("m1")
    assert (item.due_view, item.due_at) == ("pending", iso(T0))  # the claim rewrites no index key

    assert ids(messages.list_due("pending", until=T0 + timedelta(minutes=5), limit=10, cursor=None)) == ["m1"]
    messages.update(sending.model_copy(update={"status": MessageStatus.ACCEPTED}), expected_version=1)
    item = MessageItem.get("m1")
    assert (item.due_view, item.due_at, item.view) == (None, None, None)
    assert ids(messages.list_due("pending", until=T0 + timedelta(minutes=5), limit=10, cursor=None)) == []


def test_a_failed_text_stays_in_by_view_by_creation_time(messages: DynamoMessages) -> None:  # noqa: F811
    messages.insert(waiting("f1", minutes=0, status=MessageStatus.FAILED, due_minutes=None))
    item = MessageItem.get("f1")
    assert (item.view, item.due_view) == ("failed", None)
    assert ids(messages.list_view("failed", limit=10, cursor=None)) == ["f1"]


def test_messages_stored_before_the_due_index_are_moved_into_it_and_left_as_they_were(
    messages: DynamoMessages,  # noqa: F811
) -> None:
    old = [
        waiting("old-scheduled", minutes=0, status=MessageStatus.SCHEDULED, due_minutes=10),
        waiting("old-sending", minutes=1, status=MessageStatus.SENDING, due_minutes=None),
    ]
    for message, view in zip(old, ("scheduled", "pending"), strict=True):
        messages.insert(message)
        item = MessageItem.get(message.message_id)  # as stored before: under its work view in by-view
        item.update(
            actions=[MessageItem.view.set(view), MessageItem.due_view.remove(), MessageItem.due_at.remove()]
        )
    now = T0 + timedelta(minutes=30)
    assert ids(messages.list_due("scheduled", until=now, limit=10, cursor=None)) == []

    assert messages.reindex_legacy(limit=1) == 1
    assert messages.reindex_legacy(limit=10) == 1
    assert messages.reindex_legacy(limit=10) == 0

    assert ids(messages.list_due("scheduled", until=now, limit=10, cursor=None)) == ["old-scheduled"]
    assert ids(messages.list_due("pending", until=now, limit=10, cursor=None)) == ["old-sending"]
    for message in old:
        stored = messages.get(message.message_id)
        assert stored is not None and stored.version == 0 and stored.status is message.status
        assert MessageItem.get(message.message_id).view is None
