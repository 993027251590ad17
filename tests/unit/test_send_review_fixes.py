"""Send rules that keep teams and consent apart: the compliance mark no request can set, idempotency
keys per team that refuse a different request, merge fields from the sending team's records only,
bounded metadata, a sweep that survives one bad message, no resend of a deleted message and no text
to one of our own numbers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from parley.access import Caller
from parley.carriers.base import FailureKind, SendFailed
from parley.domain.ids import outbound_message_id
from parley.domain.keywords import Keyword
from parley.domain.models import (
    MAX_METADATA_BYTES,
    ContactRecord,
    Message,
    MessageStatus,
    OurNumber,
    SendRequest,
    Template,
)
from parley.services.mailbox import Content, Mailbox
from parley.services.sending import (
    STUCK_SENDING_AFTER,
    KeyReused,
    NotResendable,
    SendRejected,
    SendService,
)
from tests.fakes import T0, World
from tests.unit.test_send_service import message, req

POOL = "+15005550006"
SECOND = "+15005550007"
SUPPORT = "+15005550008"
ANA = "+14155550100"
BO = "+14155550101"
PERMANENT = SendFailed(FailureKind.PERMANENT, "the carrier refused the text", "30007", 400)
STOP_TEXT = "You're unsubscribed. Reply START to resubscribe."


@pytest.fixture
def world() -> World:
    w = World()
    w.numbers.save(OurNumber(number=POOL, carrier="fake", is_default=True))
    w.numbers.save(OurNumber(number=SECOND, carrier="fake"))
    w.numbers.save(OurNumber(number=SUPPORT, carrier="fake", team="support", is_default=True))
    return w


def opt_out(world: World, number: str) -> None:
    world.opt_outs.record(number, opted_out=True, source="keyword", at=world.clock(), detail="STOP")


def deliver_queued(world: World, sender: SendService) -> None:
    for job in world.send_queue.take():
        sender.deliver(job.body["message_id"])


def failed(world: World, sender: SendService, message: Message) -> Message:
    world.send_queue.take()
    world.carrier.script(PERMANENT)
    result = sender.deliver(message.message_id)
    assert result is not None and result.status is MessageStatus.FAILED
    return result


# -- the compliance mark ------------------------------------------------------------------------------


def test_metadata_compliance_in_a_request_does_not_skip_the_opt_out_check(world: World) -> None:
    sender = world.sender()
    later = world.clock() + timedelta(minutes=2)
    (tagged,) = sender.submit(req(ANA, send_at=later, metadata={"compliance": "STOP"}), "k-1")
    assert tagged.status is MessageStatus.SCHEDULED and not tagged.compliance
    opt_out(world, ANA)  # the customer opts out while the text waits
    world.clock.advance(timedelta(minutes=3))

    assert sender.release_due([message(world, tagged.message_id)]) == 1
    deliver_queued(world, sender)

    assert message(world, tagged.message_id).status is MessageStatus.SUPPRESSED
    assert world.carrier.sent == []
    # sent now, it is suppressed at once, as any text
    (now,) = sender.submit(req(ANA, metadata={"compliance": "HELP"}), "k-2")
    assert now.status is MessageStatus.SUPPRESSED


def test_metadata_compliance_does_not_skip_the_opt_out_check_or_quiet_hours_on_resend(world: World) -> None:
    sender = world.sender()
    (sent,) = sender.submit(req(ANA, metadata={"compliance": "STOP"}), "k-1")
    failed(world, sender, sent)
    opt_out(world, ANA)

    resent, _ = sender.resend(message(world, sent.message_id), by="alice")

    assert resent.status is MessageStatus.SUPPRESSED


def test_a_send_request_cannot_carry_the_compliance_mark() -> None:
    with pytest.raises(ValidationError, match="compliance"):
        SendRequest.model_validate({"to": [ANA], "body": "hi", "compliance": True})


def test_only_the_keyword_answer_is_marked_and_reaches_an_opted_out_customer(world: World) -> None:
    opt_out(world, ANA)
    sender = world.sender()

    answer = sender.send_compliance_reply(Keyword.OPT_OUT, ANA, POOL, "in_stop_1")

    assert answer is not None and answer.compliance and answer.status is MessageStatus.ACCEPTED
    failed_answer = answer.model_copy(update={"status": MessageStatus.FAILED})
    world.messages.items[answer.message_id] = failed_answer  # the carrier failed it after all
    resent, _ = sender.resend(failed_answer, by="alice")
    assert resent.status is MessageStatus.QUEUED  # the legally required answer is resent as such


def legacy_message(world: World, body: str, status: MessageStatus = MessageStatus.QUEUED) -> Message:
    """A message stored before the compliance mark and request fingerprints had fields."""
    legacy = Message(
        message_id="out_legacy",
        direction="outbound",
        customer_number=ANA,
        our_number=POOL,
        body=body,
        status=status,
        carrier="fake",
        created_at=world.clock(),
        updated_at=world.clock(),
        request_id="compliance:in_old",
        metadata={"compliance": "opt_out"},
    )
    world.messages.insert(legacy)
    return legacy


def test_a_keyword_answer_stored_before_the_mark_existed_still_reaches_an_opted_out_customer(
    world: World,
) -> None:
    opt_out(world, ANA)
    legacy_message(world, STOP_TEXT)

    delivered = world.sender().deliver("out_legacy")

    assert delivered is not None and delivered.status is MessageStatus.ACCEPTED


def test_an_old_message_with_the_metadata_key_but_another_text_is_checked_for_consent(world: World) -> None:
    opt_out(world, ANA)
    legacy_message(world, "promo A")

    delivered = world.sender().deliver("out_legacy")

    assert delivered is not None and delivered.status is MessageStatus.SUPPRESSED
    assert world.carrier.sent == []


# -- idempotency keys per team ------------------------------------------------------------------------


def test_two_teams_with_the_same_key_each_send_their_own_message(world: World) -> None:
    sender = world.sender()
    (sales,) = sender.submit(req(ANA, body="SECRET sales offer"), "order-1001", team="sales")
    (support,) = sender.submit(req(ANA, body="hello from support"), "order-1001", team="support")

    assert sales.message_id != support.message_id
    assert (support.team, support.body) == ("support", "hello from support")
    assert message(world, sales.message_id).body == "SECRET sales offer"
    deliver_queued(world, sender)
    assert sorted(t.body for t in world.carrier.sent) == ["SECRET sales offer", "hello from support"]


def test_the_same_team_repeating_its_key_gets_the_same_message_and_sends_once(world: World) -> None:
    sender = world.sender()
    first = sender.submit(req(ANA, BO), "order-1", team="sales")
    again = sender.submit(req(ANA, BO), "order-1", team="sales")
    deliver_queued(world, sender)

    assert [m.message_id for m in again] == [m.message_id for m in first]
    assert sorted(t.to_number for t in world.carrier.sent) == [ANA, BO]


def test_ids_are_derived_per_team_and_the_default_team_keeps_its_earlier_ids() -> None:
    assert outbound_message_id("k", ANA, "default") == outbound_message_id("k", ANA)
    assert outbound_message_id("k", ANA, None) == outbound_message_id("k", ANA)
    ids = {outbound_message_id("k", ANA, t) for t in ("default", "sales", "support")}
    assert len(ids) == 3


def test_a_message_of_another_team_under_the_same_id_is_never_handed_back(world: World) -> None:
    """A message stored before keys were per team has the id the default team now derives."""
    sender = world.sender()
    (theirs,) = sender.submit(req(ANA, body="SECRET"), "order-9", team="default")
    world.messages.items[theirs.message_id] = theirs.model_copy(update={"team": "sales"})

    with pytest.raises(KeyReused):
        sender.submit(req(ANA, body="SECRET"), "order-9", team="default")


def test_reply_keys_are_per_team(world: World) -> None:
    sender = world.sender()
    (to_ana,) = sender.submit(req(ANA, body="hi"), "a", team="default")
    (to_ana_support,) = sender.submit(req(ANA, body="hi"), "a", team="support")
    mailbox = Mailbox(
        messages=world.messages,
        listing=world.messages,
        numbers=world.numbers,
        sender=sender,
        clock=world.clock,
    )
    alice = Caller("alice", frozenset({"default"}))
    bob = Caller("bob", frozenset({"support"}))

    one = mailbox.reply(to_ana.message_id, alice, Content(body="from default"), "reply-1")
    two = mailbox.reply(to_ana_support.message_id, bob, Content(body="from support"), "reply-1")

    assert one.message_id != two.message_id
    assert (two.team, two.body) == ("support", "from support")
    assert mailbox.reply(to_ana.message_id, alice, Content(body="from default"), "reply-1") == one


# -- the same key, a different request ------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"body": "different"},
        {"from": SECOND},
        {"send_at": T0 + timedelta(hours=2)},
        {"body": None, "template_id": "t"},
        {"body": None, "template_id": "t", "merge_values": {"x": "2"}},
    ],
    ids=["body", "from", "send_at", "template", "merge_values"],
)
def test_a_repeated_key_asking_for_something_else_is_refused(world: World, change: dict[str, Any]) -> None:
    world.templates.save(Template(template_id="t", name="T", body="Code {{x|0}}"))
    sender = world.sender()
    first: dict[str, Any] = {"body": "Your order is ready.", "send_at": T0 + timedelta(hours=1)}
    if "merge_values" in change:
        first = {"template_id": "t", "merge_values": {"x": "1"}, "send_at": T0 + timedelta(hours=1)}
    sender.submit(req(ANA, **first), "order-1001")
    second = {k: v for k, v in {**first, **change}.items() if v is not None}

    with pytest.raises(KeyReused) as refused:
        sender.submit(req(ANA, BO, **second), "order-1001")

    assert [e.field for e in refused.value.errors] == ["idempotency_key"]
    assert "different request" in str(refused.value) and ANA in str(refused.value)
    assert world.messages.get(outbound_message_id("order-1001", BO)) is None  # nothing written


def _race(world: World, monkeypatch: pytest.MonkeyPatch, winner: SendRequest, key: str) -> None:
    """The winner is stored under `key` between the loser's check for it and the loser's write."""
    read = world.messages.get
    raced: list[str] = []

    def stored_just_after_this_read(message_id: str) -> Message | None:
        found = read(message_id)
        if found is None and not raced:
            raced.append(message_id)
            world.sender().submit(winner, key)
        return found

    monkeypatch.setattr(world.messages, "get", stored_just_after_this_read)


def test_a_different_request_losing_the_race_for_its_key_is_refused(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _race(world, monkeypatch, req(ANA, body="Your order is ready."), "order-7")

    with pytest.raises(KeyReused) as refused:
        world.sender().submit(req(ANA, body="Your order was cancelled."), "order-7")

    assert ANA in str(refused.value)
    stored = world.messages.get(outbound_message_id("order-7", ANA))
    assert stored is not None and stored.body == "Your order is ready."


def test_the_same_request_losing_the_race_gets_the_winner_s_message(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _race(world, monkeypatch, req(ANA), "order-8")

    (loser,) = world.sender().submit(req(ANA), "order-8")

    assert loser.message_id == outbound_message_id("order-8", ANA)
    assert len([m for m in world.messages.items.values() if m.customer_number == ANA]) == 1


def test_a_race_lost_after_writing_to_another_recipient_keeps_what_was_written(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    bo_id = outbound_message_id("order-9", BO)
    insert = world.messages.insert_with_conversation

    def another_request_stores_bo_first(message: Message, delta: Any) -> bool:
        if message.message_id == bo_id:
            insert(message.model_copy(update={"body": "another text", "request_fingerprint": "x"}), delta)
        return insert(message, delta)

    monkeypatch.setattr(world.messages, "insert_with_conversation", another_request_stores_bo_first)

    sent = world.sender().submit(req(ANA, BO), "order-9")

    assert [m.customer_number for m in sent] == [ANA, BO]
    assert world.messages.get(outbound_message_id("order-9", ANA)) is not None  # ANA's is kept and answered
    assert "reused for a different request at the same instant" in caplog.text


def test_a_repeat_that_differs_only_in_metadata_or_requester_replays(world: World) -> None:
    sender = world.sender()
    (first,) = sender.submit(req(ANA, metadata={"a": 1}, requested_by="u"), "k")
    (again,) = sender.submit(req(ANA, metadata={"a": 2}, requested_by="v"), "k")
    assert again.message_id == first.message_id


def test_a_message_stored_before_fingerprints_is_compared_by_its_text(world: World) -> None:
    sender = world.sender()
    (first,) = sender.submit(req(ANA), "k")
    world.messages.items[first.message_id] = first.model_copy(update={"request_fingerprint": None})

    assert sender.submit(req(ANA), "k")[0].message_id == first.message_id
    with pytest.raises(KeyReused):
        sender.submit(req(ANA, body="another text"), "k")


def test_a_queued_request_reusing_a_key_for_another_text_is_not_sent(world: World) -> None:
    sender = world.sender()
    sender.handle_request(req(ANA), "eb:1")
    with pytest.raises(SendRejected):  # the send function makes it a rejected request
        sender.handle_request(req(ANA, body="another text"), "eb:1")
    assert [t.body for t in world.carrier.sent] == ["Your order is ready."]


# -- merge fields and conversation links from the sending team's records only -----------------------


def test_another_team_s_record_neither_fills_merge_fields_nor_links_the_conversation(world: World) -> None:
    world.contacts.save(
        ContactRecord(
            contact_id="victor",
            name="Victor Secret",
            phone=ANA,
            team="support",
            owner="bob",
            fields={"deal": "$2M"},
        )
    )
    world.templates.save(Template(template_id="t", name="T", body="{{name|-}} / {{deal|-}}"))
    sender = world.sender()

    assert sender.render(body=None, template_id="t", merge_values={}, to=ANA, team="sales") == "- / -"
    assert sender.render(body=None, template_id="t", merge_values={}, to=ANA) == "- / -"
    (sent,) = sender.submit(req(ANA, body=None, template_id="t"), "k", team="sales")

    assert sent.body == "- / -"
    conversation = world.conversations.get(ANA)
    assert conversation is not None and conversation.contact_id is None and conversation.owner != "bob"


def test_the_sending_team_s_own_record_fills_merge_fields_and_links(world: World) -> None:
    world.contacts.save(
        ContactRecord(contact_id="v", name="Victor", phone=ANA, team="support", fields={"deal": "X"})
    )
    world.contacts.save(
        ContactRecord(contact_id="s", name="Sally", phone=ANA, team="sales", fields={"deal": "Y"})
    )
    world.templates.save(Template(template_id="t", name="T", body="{{name}} {{deal}}"))
    sender = world.sender()

    assert sender.render(body=None, template_id="t", merge_values={}, to=ANA, team="sales") == "Sally Y"
    (sent,) = sender.submit(req(ANA, body=None, template_id="t"), "k", team="sales")

    assert sent.body == "Sally Y"
    conversation = world.conversations.get(ANA)
    assert conversation is not None and conversation.contact_id == "s"


# -- bounded metadata; a sweep that survives one bad message ------------------------------------------


def test_metadata_over_the_limit_is_refused_naming_the_field() -> None:
    pad = "p" * (MAX_METADATA_BYTES - len('{"pad":""}'))
    assert SendRequest.model_validate({"to": [ANA], "body": "x", "metadata": {"pad": pad}}).metadata
    with pytest.raises(ValidationError) as refused:
        SendRequest.model_validate({"to": [ANA], "body": "x", "metadata": {"pad": pad + "p"}})
    (error,) = refused.value.errors()
    assert error["loc"] == ("metadata",) and "the limit is 4096" in error["msg"]


def test_deeply_nested_metadata_is_refused() -> None:
    nested: dict[str, Any] = {}
    for _ in range(20):
        nested = {"a": nested}
    with pytest.raises(ValidationError, match="levels deep"):
        SendRequest.model_validate({"to": [ANA], "body": "x", "metadata": nested})


def test_a_rejected_queued_request_keeps_no_oversized_metadata(world: World) -> None:
    body = '{"to": ["+14155550100"], "body": "x", "metadata": {"pad": "' + "p" * 300_000 + '"}}'
    (message,) = world.sender().record_rejected(body, "sqs-1", "metadata too large")
    assert len(str(message.metadata)) < 200


class Unwritable(Exception):
    """What DynamoDB raises for an item past its size limit (not a version conflict)."""


def break_writes_of(world: World, message_id: str) -> None:
    update = world.messages.update

    def failing(message: Message, *, expected_version: int) -> Message:
        if message.message_id == message_id:
            raise Unwritable("Item size has exceeded the maximum allowed size")
        return update(message, expected_version=expected_version)

    world.messages.update = failing  # type: ignore[method-assign]


def test_one_message_that_cannot_be_written_does_not_stop_the_sweep_recovering_the_others(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    sender = world.sender()
    sent = sender.submit(req(ANA, BO), "k")
    for m in sent:  # both claimed by a worker that then stopped
        world.messages.items[m.message_id] = m.model_copy(update={"status": MessageStatus.SENDING})
    world.clock.advance(STUCK_SENDING_AFTER + timedelta(minutes=1))
    break_writes_of(world, sent[0].message_id)

    recovered = sender.recover_stuck([message(world, m.message_id) for m in sent])

    assert recovered == 1
    assert message(world, sent[1].message_id).status is MessageStatus.RETRYING
    assert any(getattr(r, "message_id", None) == sent[0].message_id for r in caplog.records)


def test_one_message_that_cannot_be_written_does_not_stop_the_release_of_the_others(world: World) -> None:
    sender = world.sender()
    later = world.clock() + timedelta(minutes=1)
    sent = sender.submit(req(ANA, BO, send_at=later), "k")
    world.clock.advance(timedelta(minutes=2))
    break_writes_of(world, sent[0].message_id)

    released = sender.release_due([message(world, m.message_id) for m in sent])

    assert released == 1
    assert message(world, sent[1].message_id).status is MessageStatus.QUEUED


# -- no resend of a deleted message; no text to our own numbers ----------------------------------


def test_a_deleted_failed_message_is_not_resent_until_restored(world: World) -> None:
    sender = world.sender()
    (sent,) = sender.submit(req(ANA), "k")
    failing = failed(world, sender, sent)
    deleted = world.messages.update(
        failing.model_copy(update={"deleted_at": world.clock(), "deleted_by": "alice"}),
        expected_version=failing.version,
    )
    resender = world.resender(sender)
    alice = Caller("alice", frozenset({"default"}))

    with pytest.raises(NotResendable, match="restore it first"):
        resender.resend_one(deleted.message_id, caller=alice, by="alice")
    (result,) = resender.resend_ids([deleted.message_id], caller=alice, by="alice")
    assert result.result == "refused" and "restore it first" in (result.reason or "")
    assert message(world, sent.message_id).status is MessageStatus.FAILED
    assert world.send_queue.take() == []


@pytest.mark.parametrize("ours", [POOL, SUPPORT])
def test_a_text_to_one_of_our_own_numbers_is_refused(world: World, ours: str) -> None:
    with pytest.raises(SendRejected) as refused:
        world.sender().submit(req(ANA, ours), "k")
    (error,) = refused.value.errors
    assert error.field == "to" and ours in error.reason and "our own numbers" in error.reason
    assert world.messages.items == {}


# -- send_at in the past, and as a number -------------------------------------------------------------


def test_an_api_send_at_well_in_the_past_is_refused_and_nothing_is_stored(world: World) -> None:
    with pytest.raises(SendRejected) as refused:
        world.sender().submit(req(ANA, send_at=T0 - timedelta(hours=3)), "late-1")

    (error,) = refused.value.errors
    assert error.field == "send_at" and "3 hours in the past" in error.reason and "time zone" in error.reason
    assert world.messages.get(outbound_message_id("late-1", ANA)) is None
    assert not world.send_queue.take() and not world.carrier.sent


def test_a_send_at_a_moment_ago_is_clock_skew_and_sends_now(world: World) -> None:
    (sent,) = world.sender().submit(req(ANA, send_at=T0 - timedelta(minutes=4)), "late-2")
    assert sent.status is MessageStatus.QUEUED and [
        j.body["message_id"] for j in world.send_queue.take()
    ] == [sent.message_id]


def test_a_queued_request_that_arrives_after_its_time_sends_now_and_says_so(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.sender().handle_request(req(ANA, send_at=T0 - timedelta(days=1)), "eb:late")

    assert [t.body for t in world.carrier.sent] == ["Your order is ready."]
    assert "send_at is in the past: sending now" in caplog.text


def test_repeating_a_stored_request_after_its_time_replays_it(world: World) -> None:
    sender = world.sender()
    (first,) = sender.submit(req(ANA, send_at=T0 + timedelta(minutes=2)), "late-3")
    world.clock.advance(hours=1)

    (again,) = sender.submit(req(ANA, send_at=T0 + timedelta(minutes=2)), "late-3")

    assert again.message_id == first.message_id


def test_rescheduling_into_the_past_is_refused_and_the_time_kept(world: World) -> None:
    sender = world.sender()
    (scheduled,) = sender.submit(req(ANA, send_at=T0 + timedelta(hours=2)), "late-4")

    with pytest.raises(SendRejected) as refused:
        sender.reschedule(scheduled, T0 - timedelta(days=3))

    assert "3 days in the past" in str(refused.value)
    assert message(world, scheduled.message_id).next_attempt_at == T0 + timedelta(hours=2)


@pytest.mark.parametrize("raw", [1764320400, "1764320400", 1764320400.5, True])
def test_a_send_at_given_as_a_number_is_refused(raw: Any) -> None:
    with pytest.raises(ValidationError) as refused:
        req(ANA, send_at=raw)
    assert "send_at" in str(refused.value) and "not a number" in str(refused.value)
