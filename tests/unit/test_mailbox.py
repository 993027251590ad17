"""The message views, soft delete and restore, reply (one and many) and forward, on the fakes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from parley.access import Caller
from parley.carriers.base import FailureKind, SendFailed
from parley.domain.models import InboundMessage, Message, MessageStatus, OurNumber, SendRequest, Template
from parley.domain.views import VIEWS
from parley.services.inbox import NotFound
from parley.services.mailbox import MAX_BATCH, Content, Mailbox, ViewFilter, derived_key
from parley.services.resend import FailedFilter
from parley.services.sending import SendRejected, SendService
from tests.fakes import T0, World

SALES = Caller("alice", frozenset({"sales"}))
SUPPORT = Caller("bob", frozenset({"support"}))
BOTH = Caller("cy", frozenset({"sales", "support"}))
ADMIN = Caller("root", frozenset({"ops"}), admin=True)

SALES_NUMBER = "+15005550006"
SALES_SECOND = "+15005550007"
SUPPORT_NUMBER = "+15005550008"
ANA = "+14155550100"
BO = "+14155550101"
CY = "+14155550102"
DEE = "+14155550103"


@pytest.fixture
def world() -> World:
    w = World()
    w.numbers.save(OurNumber(number=SALES_NUMBER, carrier="fake", team="sales", is_default=True))
    w.numbers.save(OurNumber(number=SALES_SECOND, carrier="fake", team="sales"))
    w.numbers.save(OurNumber(number=SUPPORT_NUMBER, carrier="fake", team="support", is_default=True))
    w.templates.save(Template(template_id="thanks", name="Thanks", body="Thanks {{name}}!"))
    return w


def mailbox(world: World, sender: SendService | None = None) -> Mailbox:
    return Mailbox(
        messages=world.messages,
        listing=world.messages,
        numbers=world.numbers,
        sender=sender or world.sender(),
        clock=world.clock,
        conversations=world.conversations,
    )


def send(world: World, to: str, *, team: str = "sales", key: str, body: str = "hello", **f: str) -> Message:
    (message,) = world.sender().submit(
        SendRequest.model_validate({"to": [to], "body": body, **f}), key, team=team
    )
    world.send_queue.take()
    world.clock.advance(seconds=1)
    return message


def receive(world: World, frm: str, to: str = SALES_NUMBER, *, sid: str, body: str = "hi there") -> Message:
    event = InboundMessage(
        carrier="fake", carrier_message_id=sid, from_number=frm, to_number=to, body=body,
        received_at=world.clock(),
    )  # fmt: skip
    stored = world.processor().store_inbound(event)
    assert stored is not None
    world.clock.advance(seconds=1)
    return stored


def ids(messages: list[Message]) -> list[str]:
    return [m.message_id for m in messages]


def view(world: World, name: str, caller: Caller = SALES, limit: int = 50, **where: object) -> list[Message]:
    out: list[Message] = []
    cursor: str | None = None
    box = mailbox(world)
    while True:
        page = box.view(name, caller, ViewFilter(**where), limit=limit, cursor=cursor)  # type: ignore[arg-type]
        out += page.items
        cursor = page.cursor
        if cursor is None:
            return out


# -- views ------------------------------------------------------------------------------------------


def test_all_received_and_sent_are_the_teams_newest_first(world: World) -> None:
    sent = send(world, ANA, key="k1")
    received = receive(world, BO, sid="SM1")
    other_team = send(world, CY, team="support", key="k2")

    assert ids(view(world, "all")) == [received.message_id, sent.message_id]
    assert ids(view(world, "received")) == [received.message_id]
    assert ids(view(world, "sent")) == [sent.message_id]
    assert ids(view(world, "all", SUPPORT)) == [other_team.message_id]
    # several teams: merged newest first under one cursor, one page at a time
    assert ids(view(world, "all", BOTH, limit=1)) == [
        other_team.message_id,
        received.message_id,
        sent.message_id,
    ]
    assert ids(view(world, "all", ADMIN)) == ids(view(world, "all", BOTH))


def test_work_views_keep_to_the_callers_teams(world: World) -> None:
    pending = send(world, ANA, key="k1")
    scheduled = send(world, BO, key="k2", send_at=(world.clock() + timedelta(days=1)).isoformat())
    world.opt_outs.record(CY, opted_out=True, source="test", at=T0, detail=None)
    suppressed = send(world, CY, key="k3")
    world.carrier.script(SendFailed(FailureKind.PERMANENT, "refused", "30007", 400))
    failed = send(world, DEE, key="k4")
    assert world.sender().deliver(failed.message_id) is not None
    send(world, ANA, team="support", key="k5")  # another team's pending text

    assert ids(view(world, "pending")) == [pending.message_id]
    assert ids(view(world, "scheduled")) == [scheduled.message_id]
    assert ids(view(world, "failed")) == [failed.message_id]
    (did_not_trigger,) = view(world, "did-not-trigger")
    assert did_not_trigger.message_id == suppressed.message_id
    assert did_not_trigger.error_reason and "opted out" in did_not_trigger.error_reason
    assert view(world, "failed", SUPPORT) == []


def test_views_filter_by_our_number_and_time(world: World) -> None:
    first = send(world, ANA, key="k1")
    world.clock.advance(minutes=10)
    second = send(world, BO, key="k2", **{"from": SALES_SECOND})
    third = receive(world, CY, to=SALES_SECOND, sid="SM1")

    assert ids(view(world, "all", our_number=SALES_SECOND)) == [third.message_id, second.message_id]
    assert ids(view(world, "all", since=second.created_at)) == [third.message_id, second.message_id]
    assert ids(view(world, "all", until=first.created_at)) == [first.message_id]
    assert ids(view(world, "sent", since=first.created_at, until=second.created_at)) == [
        second.message_id,
        first.message_id,
    ]


def test_unknown_view_and_backwards_range_are_refused(world: World) -> None:
    with pytest.raises(ValueError, match="'view' must be one of"):
        mailbox(world).view("trash", SALES, ViewFilter(), limit=10, cursor=None)
    with pytest.raises(ValueError, match="'since' must not be after"):
        mailbox(world).view(
            "all", SALES, ViewFilter(since=T0, until=T0 - timedelta(seconds=1)), limit=10, cursor=None
        )
    assert len(VIEWS) == 8


# -- delete and restore -----------------------------------------------------------------------------


def test_delete_moves_messages_to_deleted_and_restore_puts_them_back(world: World) -> None:
    world.carrier.script(SendFailed(FailureKind.PERMANENT, "refused", "30007", 400))
    failed = send(world, ANA, key="k1")
    world.sender().deliver(failed.message_id)
    received = receive(world, BO, sid="SM1")
    box = mailbox(world)

    results = box.delete([failed.message_id, received.message_id, "nope", failed.message_id], SALES)

    assert [(r.message_id, r.result) for r in results] == [
        (failed.message_id, "ok"),
        (received.message_id, "ok"),
        ("nope", "not_found"),
    ]
    assert view(world, "all") == [] and view(world, "failed") == []
    assert set(ids(view(world, "deleted"))) == {failed.message_id, received.message_id}
    gone = world.messages.get(failed.message_id)
    assert gone is not None and gone.status is MessageStatus.FAILED  # status kept
    assert gone.deleted_at == world.clock() and gone.deleted_by == "alice"
    # a deleted failure leaves the Failed view the resend filter reads
    assert world.resender().resend_failed(FailedFilter(), caller=SALES, by=None).results == []

    again = box.delete([failed.message_id], SALES)  # idempotent
    assert [(r.result, r.deleted) for r in again] == [("ok", True)]

    box.restore([failed.message_id, received.message_id], SALES)
    assert ids(view(world, "failed")) == [failed.message_id]
    assert ids(view(world, "received")) == [received.message_id]
    assert view(world, "deleted") == []
    restored = world.messages.get(failed.message_id)
    assert restored is not None and restored.deleted_at is None and restored.deleted_by is None


def test_another_teams_message_is_not_found_and_left_alone(world: World) -> None:
    theirs = send(world, ANA, team="support", key="k1")
    (result,) = mailbox(world).delete([theirs.message_id], SALES)
    assert result.result == "not_found"
    stored = world.messages.get(theirs.message_id)
    assert stored is not None and stored.deleted_at is None


def test_a_deletion_that_loses_a_race_reads_again(world: World) -> None:
    message = send(world, ANA, key="k1")
    world.messages.inject_conflicts(1)
    (result,) = mailbox(world).delete([message.message_id], SALES)
    assert result.result == "ok"
    world.messages.inject_conflicts(5)
    (result,) = mailbox(world).restore([message.message_id], SALES)
    assert result.result == "conflict"


@pytest.mark.parametrize("bad", [[], ["x"] * (MAX_BATCH + 1), [""], [3], "abc"])
def test_bad_ids_refuse_the_whole_request(world: World, bad: object) -> None:
    message = send(world, ANA, key="k1")
    with pytest.raises(ValueError):
        mailbox(world).delete(bad, SALES)  # type: ignore[arg-type]
    stored = world.messages.get(message.message_id)
    assert stored is not None and stored.deleted_at is None


# -- reply and forward ------------------------------------------------------------------------------


def test_a_reply_goes_to_the_customer_from_the_number_they_used(world: World) -> None:
    received = receive(world, ANA, to=SALES_SECOND, sid="SM1")
    reply = mailbox(world).reply(received.message_id, SALES, Content(body="On its way"), "rk-1")

    assert (reply.customer_number, reply.our_number, reply.team) == (ANA, SALES_SECOND, "sales")
    assert reply.body == "On its way" and reply.metadata == {"reply_to": received.message_id}
    assert reply.requested_by == "alice"
    again = mailbox(world).reply(received.message_id, SALES, Content(body="On its way"), "rk-1")
    assert again.message_id == reply.message_id  # the same key sends once
    with pytest.raises(NotFound):
        mailbox(world).reply(received.message_id, SUPPORT, Content(body="x"), "rk-2")


def test_a_reply_with_a_template(world: World) -> None:
    received = receive(world, ANA, sid="SM1")
    content = Content(template_id="thanks", merge_values={"name": "Ana"})
    reply = mailbox(world).reply(received.message_id, SALES, content, "rk-1")
    assert reply.body == "Thanks Ana!"
    with pytest.raises(SendRejected):
        mailbox(world).reply(received.message_id, SALES, Content(template_id="nope"), "rk-2")


def test_replying_to_many_sends_once_per_customer_and_once_per_request(world: World) -> None:
    first = receive(world, ANA, sid="SM1")
    second = receive(world, ANA, sid="SM2")
    other = receive(world, BO, to=SALES_SECOND, sid="SM3")
    theirs = receive(world, CY, to=SUPPORT_NUMBER, sid="SM4")
    box = mailbox(world)
    selected = [first.message_id, second.message_id, other.message_id, theirs.message_id]

    results = box.reply_many(selected, SALES, Content(body="Thanks!"), "bulk-1")

    assert [r.result for r in results] == ["ok", "skipped", "ok", "not_found"]
    replies = {m.customer_number: m for m in world.messages.items.values() if m.metadata.get("reply_to")}
    assert set(replies) == {ANA, BO}
    assert replies[BO].our_number == SALES_SECOND
    assert results[0].reply_id == derived_reply_id(world, f"sales\n{ANA}")
    count = len(world.messages.items)
    assert [r.reply_id for r in box.reply_many(selected, SALES, Content(body="Thanks!"), "bulk-1")] == [
        r.reply_id for r in results
    ]
    assert len(world.messages.items) == count  # the retried request sent nothing new


def derived_reply_id(world: World, conversation: str) -> str:
    key = derived_key("bulk-1", conversation, "reply")
    return next(m.message_id for m in world.messages.items.values() if m.request_id == key)


def test_forward_sends_the_text_or_an_edited_one_to_each_recipient(world: World) -> None:
    received = receive(world, ANA, sid="SM1", body="Can you call me?")
    box = mailbox(world)

    sent = box.forward(received.message_id, SALES, [BO, CY], None, "fw-1")
    assert [(m.customer_number, m.body) for m in sent] == [(BO, "Can you call me?"), (CY, "Can you call me?")]
    assert all(m.metadata == {"forwarded_from": received.message_id} for m in sent)
    edited = box.forward(received.message_id, SALES, [DEE], "FYI: Ana asks for a call", "fw-2")
    assert edited[0].body == "FYI: Ana asks for a call"
    with pytest.raises(NotFound):
        box.forward(received.message_id, SUPPORT, [BO], None, "fw-3")
