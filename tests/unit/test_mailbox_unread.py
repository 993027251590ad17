"""A conversation's unread count and preview as its texts are deleted, restored and read; bulk reply's
keys per customer and its bound on time and size, on the fakes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from parley.access import Caller
from parley.domain.models import Conversation, InboundMessage, Message, OurNumber
from parley.ports import Page
from parley.services.conversations import ConversationService
from parley.services.mailbox import MAX_REPLIES, REPLY_RESERVE_SECONDS, Content, Mailbox
from parley.services.records import RecordService
from tests.fakes import T0, InMemorySearch, World

SALES = Caller("alice", frozenset({"sales"}))
SALES_NUMBER = "+15005550006"
SALES_SECOND = "+15005550007"
ANA = "+14155550100"
BO = "+14155550101"


@pytest.fixture
def world() -> World:
    w = World()
    w.numbers.save(OurNumber(number=SALES_NUMBER, carrier="fake", team="sales", is_default=True))
    w.numbers.save(OurNumber(number=SALES_SECOND, carrier="fake", team="sales"))
    return w


def mailbox(world: World) -> Mailbox:
    return Mailbox(
        messages=world.messages,
        listing=world.messages,
        numbers=world.numbers,
        sender=world.sender(),
        clock=world.clock,
        conversations=world.conversations,
    )


def service(world: World) -> ConversationService:
    return ConversationService(
        conversations=world.conversations,
        browser=world.conversations,
        search=InMemorySearch(),
        numbers=world.numbers,
        contacts=world.contacts,
        linker=world.conversations,
        records=RecordService(world.contacts, lambda: T0),
        opt_outs=world.opt_outs,
        messages=world.messages,
        unread=world.conversations,
    )


def receive(world: World, frm: str = ANA, to: str = SALES_NUMBER, *, sid: str, body: str = "hi") -> Message:
    event = InboundMessage(
        carrier="fake", carrier_message_id=sid, from_number=frm, to_number=to, body=body,
        received_at=world.clock(),
    )  # fmt: skip
    stored = world.processor().store_inbound(event)
    assert stored is not None
    world.clock.advance(seconds=1)
    return stored


def conversation(world: World, number: str = ANA) -> Conversation:
    found = world.conversations.get(number)
    assert found is not None
    return found


# -- delete and restore --------------------------------------------------------------------------


def test_deleting_the_unread_last_text_lowers_the_count_and_blanks_the_preview(world: World) -> None:
    text = receive(world, sid="SM1", body="SPAM offensive text")
    assert (conversation(world).unread_count, conversation(world).last_message_preview) == (1, text.body)

    (result,) = mailbox(world).delete([text.message_id], SALES)
    assert result.result == "ok"
    assert (conversation(world).unread_count, conversation(world).last_message_preview) == (0, "")
    mailbox(world).delete([text.message_id], SALES)  # again: already deleted, nothing moves
    assert conversation(world).unread_count == 0

    mailbox(world).restore([text.message_id], SALES)
    assert (conversation(world).unread_count, conversation(world).last_message_preview) == (1, text.body)
    mailbox(world).restore([text.message_id], SALES)
    assert conversation(world).unread_count == 1


def test_deleting_an_older_text_counts_it_only_if_it_was_still_unread(world: World) -> None:
    old = receive(world, sid="SM1", body="read long ago")
    service(world).mark_read(SALES, ANA)
    unread = receive(world, sid="SM2", body="not read yet")
    newest = receive(world, sid="SM3", body="newest")
    assert conversation(world).unread_count == 2

    mailbox(world).delete([old.message_id], SALES)
    assert conversation(world).unread_count == 2  # it had been read
    assert conversation(world).last_message_preview == "newest"  # not the last text: kept
    mailbox(world).delete([unread.message_id, newest.message_id], SALES)
    assert conversation(world).unread_count == 0

    mailbox(world).restore([old.message_id], SALES)
    assert conversation(world).unread_count == 0  # read before it was deleted
    mailbox(world).restore([newest.message_id, unread.message_id], SALES)
    assert conversation(world).unread_count == 2


def test_a_text_restored_after_a_read_passed_it_stays_read(world: World) -> None:
    first = receive(world, sid="SM1")
    mailbox(world).delete([first.message_id], SALES)
    receive(world, sid="SM2")
    service(world).mark_read(SALES, ANA)

    mailbox(world).restore([first.message_id], SALES)
    assert conversation(world).unread_count == 0


def test_a_read_between_the_check_and_the_write_never_takes_the_count_below_zero(world: World) -> None:
    text = receive(world, sid="SM1")
    box = mailbox(world)
    real_update = world.messages.update

    def read_meanwhile(message: Message, *, expected_version: int) -> Message:
        world.conversations.mark_read(ANA)
        return real_update(message, expected_version=expected_version)

    world.messages.update = read_meanwhile  # type: ignore[method-assign]
    box.delete([text.message_id], SALES)
    assert conversation(world).unread_count == 0


def test_deleting_our_own_text_leaves_the_count_alone(world: World) -> None:
    receive(world, sid="SM1")
    reply = mailbox(world).reply(conversation(world).last_message_id or "", SALES, Content(body="ok"), "k")
    assert conversation(world).unread_count == 1
    mailbox(world).delete([reply.message_id], SALES)
    assert (conversation(world).unread_count, conversation(world).last_message_preview) == (1, "")


def receive_stamped(world: World, sid: str, at: datetime) -> Message:
    """A text the carrier stamped `at` (to the second, as Vonage does), stored now."""
    event = InboundMessage(
        carrier="fake", carrier_message_id=sid, from_number=ANA, to_number=SALES_NUMBER, body=sid,
        received_at=at,
    )  # fmt: skip
    stored = world.processor().store_inbound(event)
    assert stored is not None
    world.clock.advance(seconds=1)
    return stored


def test_deleting_the_read_one_of_two_texts_stamped_the_same_second_keeps_the_unread_one(
    world: World,
) -> None:
    read = receive_stamped(world, "SM1", T0)
    service(world).mark_read(SALES, ANA, seen=read.message_id)
    unread = receive_stamped(world, "SM2", T0)  # the same carrier second, stored later
    assert conversation(world).unread_count == 1

    mailbox(world).delete([read.message_id], SALES)
    assert conversation(world).unread_count == 1
    assert world.messages.items[read.message_id].deleted_unread is False
    mailbox(world).delete([unread.message_id], SALES)
    assert conversation(world).unread_count == 0


def test_deleting_the_read_last_text_keeps_a_late_text_with_an_older_carrier_time_unread(
    world: World,
) -> None:
    newest = receive_stamped(world, "SM1", T0)
    service(world).mark_read(SALES, ANA, seen=newest.message_id)
    receive_stamped(world, "SM2", T0 - timedelta(seconds=30))  # a late webhook, stored after
    assert (conversation(world).unread_count, conversation(world).last_message_id) == (1, newest.message_id)

    mailbox(world).delete([newest.message_id], SALES)
    assert conversation(world).unread_count == 1  # unsure which is unread: not lowered


def test_deleting_many_texts_of_a_conversation_reads_its_thread_once_and_moves_the_count_once(
    world: World,
) -> None:
    texts = [receive(world, sid=f"SM{i}") for i in range(300)]
    service(world).mark_read(SALES, ANA, seen=texts[-4].message_id)
    assert conversation(world).unread_count == 3
    calls = {"list": 0, "get": 0, "add_unread": 0}
    real_list, real_get = world.messages.list_for_conversation, world.messages.get
    real_add = world.conversations.add_unread

    def listing(*args: Any, **kwargs: Any) -> Page[Message]:
        calls["list"] += 1
        return real_list(*args, **kwargs)

    def getting(message_id: str) -> Message | None:
        calls["get"] += 1
        return real_get(message_id)

    def adding(number: str, delta: int) -> bool:
        calls["add_unread"] += 1
        return real_add(number, delta)

    world.messages.list_for_conversation = listing  # type: ignore[method-assign]
    world.messages.get = getting  # type: ignore[method-assign]
    world.conversations.add_unread = adding  # type: ignore[method-assign]
    results = mailbox(world).delete([t.message_id for t in reversed(texts)], SALES)

    assert {r.result for r in results} == {"ok"}
    assert conversation(world).unread_count == 0 and conversation(world).last_message_preview == ""
    assert calls == {"list": 2, "get": 300, "add_unread": 1}
    assert sum(world.messages.items[t.message_id].deleted_unread for t in texts) == 3


def test_texts_deleted_before_a_failing_write_still_lower_the_count(world: World) -> None:
    texts = [receive(world, sid=f"SM{i}") for i in range(3)]
    real_update = world.messages.update
    written: list[str] = []

    def fails_third(message: Message, *, expected_version: int) -> Message:
        if len(written) == 2:
            raise RuntimeError("throttled")
        written.append(message.message_id)
        return real_update(message, expected_version=expected_version)

    world.messages.update = fails_third  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        mailbox(world).delete([t.message_id for t in texts], SALES)
    assert conversation(world).unread_count == 1


# -- read up to what was shown ---------------------------------------------------------------------


def test_reading_up_to_a_stale_message_leaves_the_newer_texts_unread(world: World) -> None:
    shown = receive(world, sid="SM1", body="first")
    receive(world, sid="SM2", body="arrived while the thread was open")
    receive(world, sid="SM3", body="and another")

    view = service(world).mark_read(SALES, ANA, seen=shown.message_id)
    assert view.unread_count == 2 and conversation(world).unread_count == 2

    newest = conversation(world).last_message_id
    assert service(world).mark_read(SALES, ANA, seen=newest).unread_count == 0
    assert conversation(world).unread_count == 0


def test_reading_without_a_message_reads_everything(world: World) -> None:
    receive(world, sid="SM1")
    receive(world, sid="SM2")
    assert service(world).mark_read(SALES, ANA).unread_count == 0
    assert conversation(world).unread_count == 0


def test_reading_up_to_another_conversations_message_is_refused(world: World) -> None:
    receive(world, sid="SM1")
    other = receive(world, BO, sid="SM2")
    with pytest.raises(ValueError, match="seen"):
        service(world).mark_read(SALES, ANA, seen=other.message_id)
    with pytest.raises(ValueError, match="seen"):
        service(world).mark_read(SALES, ANA, seen="in_nope")
    assert conversation(world).unread_count == 1


def test_reading_up_to_a_text_stamped_the_same_second_as_others_orders_them_by_id(world: World) -> None:
    # Vonage stamps to the second; these ids sort SM4 < SM3 < SM1, and SM1 comes last
    middle, first, last = (receive_stamped(world, sid, T0) for sid in ("SM3", "SM4", "SM1"))
    assert first.message_id < middle.message_id < last.message_id
    assert conversation(world).unread_count == 3

    assert service(world).mark_read(SALES, ANA, seen=first.message_id).unread_count == 2
    assert service(world).mark_read(SALES, ANA, seen=middle.message_id).unread_count == 1
    assert conversation(world).unread_count == 1
    assert service(world).mark_read(SALES, ANA, seen=last.message_id).unread_count == 0
    assert conversation(world).unread_count == 0


def test_a_text_arriving_during_the_read_is_not_marked_read(world: World) -> None:
    shown = receive(world, sid="SM1")
    receive(world, sid="SM2")
    real_set = world.conversations.set_unread
    arrived = []

    def text_arrives_first(number: str, count: int, *, message_count: int) -> bool:
        if not arrived:
            arrived.append(receive(world, sid="SM3"))
        return real_set(number, count, message_count=message_count)

    world.conversations.set_unread = text_arrives_first  # type: ignore[method-assign]
    assert service(world).mark_read(SALES, ANA, seen=shown.message_id).unread_count == 2
    assert conversation(world).unread_count == 2


# -- bulk reply ------------------------------------------------------------------------------------


def test_a_retried_bulk_reply_in_another_order_replies_once_per_customer(world: World) -> None:
    first = receive(world, sid="SM1")
    second = receive(world, sid="SM2")
    box = mailbox(world)

    done = box.reply_many([first.message_id, second.message_id], SALES, Content(body="On it"), "k1")
    again = box.reply_many([second.message_id, first.message_id], SALES, Content(body="On it"), "k1")
    assert [r.result for r in done] == ["ok", "skipped"] and [r.result for r in again] == ["ok", "skipped"]
    assert again[0].reply_id == done[0].reply_id
    replies = [m for m in world.messages.items.values() if m.metadata.get("reply_to")]
    assert len(replies) == 1


def test_a_bulk_reply_stops_before_the_time_runs_out(world: World) -> None:
    texts = [receive(world, f"+1415555020{i}", sid=f"SM{i}") for i in range(4)]
    left = iter([30.0, 20.0, REPLY_RESERVE_SECONDS - 0.1])

    results = mailbox(world).reply_many(
        [t.message_id for t in texts], SALES, Content(body="Thanks"), "k1", time_left=lambda: next(left)
    )
    assert [r.result for r in results] == ["ok", "ok", "not_tried", "not_tried"]
    assert results[2].reason is not None and "same key" in results[2].reason
    replies = [m for m in world.messages.items.values() if m.metadata.get("reply_to")]
    assert len(replies) == 2

    rest = mailbox(world).reply_many(
        [t.message_id for t in texts], SALES, Content(body="Thanks"), "k1", time_left=lambda: 30.0
    )
    assert [r.result for r in rest] == ["ok"] * 4
    assert rest[0].reply_id == results[0].reply_id
    assert len([m for m in world.messages.items.values() if m.metadata.get("reply_to")]) == 4


def test_a_bulk_reply_names_at_most_a_sends_worth_of_messages(world: World) -> None:
    with pytest.raises(ValueError, match=str(MAX_REPLIES)):
        mailbox(world).reply_many(["m"] * (MAX_REPLIES + 1), SALES, Content(body="x"), "k1")


def test_a_later_chunk_naming_the_customers_text_to_another_number_answers_the_reply_sent(
    world: World,
) -> None:
    to_first = receive(world, to=SALES_NUMBER, sid="SM1")
    to_second = receive(world, to=SALES_SECOND, sid="SM2")
    box = mailbox(world)

    (done,) = box.reply_many([to_first.message_id], SALES, Content(body="Thanks!"), "k1")
    (again,) = box.reply_many([to_second.message_id], SALES, Content(body="Thanks!"), "k1")
    assert (done.result, again.result) == ("ok", "ok") and again.reply_id == done.reply_id
    assert len([m for m in world.messages.items.values() if m.metadata.get("reply_to")]) == 1

    (other,) = box.reply_many([to_second.message_id], SALES, Content(body="Something else"), "k1")
    assert other.result == "rejected" and other.reason is not None and "key" in other.reason
