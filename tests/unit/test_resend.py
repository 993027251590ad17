"""Resend from the Failed view: the same message back through every send rule, once, for its own team;
and the retry limits by attempts and by total age."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from parley.access import Caller
from parley.carriers.base import FailureKind, SendAccepted, SendFailed
from parley.domain.models import Message, MessageStatus, OurNumber, SendRequest, StatusUpdate
from parley.domain.retry import RetryPolicy, describe_span
from parley.domain.status import receipt_advances
from parley.services.inbound import apply_status
from parley.services.inbox import NotFound
from parley.services.resend import MAX_BATCH, MAX_FILTER_RESENDS, MAX_PAGES, FailedFilter, ResendService
from parley.services.sending import NotResendable, SendService
from tests.fakes import T0, FakeLookupCarrier, World

MEMBER = Caller("alice", frozenset({"default"}))
OUTSIDER = Caller("bob", frozenset({"support"}))

DEFAULT = "+15005550006"
SECOND = "+15005550007"
SUPPORT = "+15005550008"
ANA = "+14155550100"
BO = "+14155550101"
CY = "+14155550102"
PERMANENT = SendFailed(FailureKind.PERMANENT, "the carrier refused the text", "30007", 400)
TRANSIENT = SendFailed(FailureKind.TRANSIENT, "the carrier answered 503", "20503", 503)
# A failure with no carrier code, which a resend by filter takes (a coded permanent one it leaves out).
UNCODED = SendFailed(FailureKind.PERMANENT, "the carrier refused the text", None, 400)


@pytest.fixture
def world() -> World:
    w = World()
    w.numbers.save(OurNumber(number=DEFAULT, carrier="fake", is_default=True))
    w.numbers.save(OurNumber(number=SECOND, carrier="fake"))
    w.numbers.save(OurNumber(number=SUPPORT, carrier="fake", team="support", is_default=True))
    return w


def stored(world: World, message_id: str) -> Message:
    found = world.messages.get(message_id)
    assert found is not None, message_id
    return found


def failed_text(
    world: World,
    sender: SendService,
    to: str = ANA,
    *,
    key: str = "req-1",
    failure: SendFailed = PERMANENT,
    **fields: str,
) -> Message:
    """A text the carrier refused for good: it ends failed, in the Failed view."""
    team = fields.pop("team", "default")
    request = SendRequest.model_validate({"to": [to], "body": "Your order is ready.", **fields})
    (queued,) = sender.submit(request, key, team=team)
    world.send_queue.take()
    world.carrier.script(failure)
    result = sender.deliver(queued.message_id)
    assert result is not None and result.status is MessageStatus.FAILED
    return result


def undelivered_text(world: World, sender: SendService, to: str = ANA, *, key: str = "req-1") -> Message:
    """A text the carrier accepted, then reported undelivered in a receipt."""
    (queued,) = sender.submit(SendRequest.model_validate({"to": [to], "body": "hi"}), key)
    world.send_queue.take()
    accepted = sender.deliver(queued.message_id)
    assert accepted is not None and accepted.carrier_message_id is not None
    world.processor().apply_receipt(receipt(accepted.carrier_message_id, MessageStatus.UNDELIVERED))
    return stored(world, queued.message_id)


def receipt(sid: str, status: MessageStatus, seconds: int = 1) -> StatusUpdate:
    return StatusUpdate(
        carrier="fake",
        carrier_message_id=sid,
        status=status,
        carrier_status=status.value,
        error_code="30003" if status is MessageStatus.UNDELIVERED else None,
        occurred_at=T0 + timedelta(seconds=seconds),
    )


def deliver_queued(world: World, sender: SendService) -> list[Message | None]:
    return [sender.deliver(job.body["message_id"]) for job in world.send_queue.take()]


# -- one message ------------------------------------------------------------------------------------


def test_a_failed_text_goes_back_to_queued_as_the_same_message_and_then_out(world: World) -> None:
    sender = world.sender()
    failed = failed_text(world, sender)
    world.clock.advance(minutes=10)

    resent = world.resender(sender).resend_one(failed.message_id, caller=MEMBER, by="alice")

    assert resent.message_id == failed.message_id
    assert resent.status is MessageStatus.QUEUED
    assert resent.attempts == failed.attempts  # kept
    assert resent.history[: len(failed.history)] == failed.history
    entry = resent.history[-1]
    assert entry.status is MessageStatus.QUEUED
    assert entry.detail == "resent by alice (was: the carrier refused the text)"
    assert resent.error_code is None and resent.error_reason is None
    assert resent.resent_at == world.clock()
    assert world.send_queue.bodies == [{"message_id": failed.message_id}]
    (event,) = world.events.of("MessageResent")
    assert event["message_id"] == failed.message_id and event["resent_by"] == "alice"

    (delivered,) = deliver_queued(world, sender)
    assert delivered is not None and delivered.status is MessageStatus.ACCEPTED
    assert [a.outcome for a in delivered.attempts] == ["permanent", "accepted"]
    assert len(world.carrier.sent) == 2


def test_an_undelivered_text_is_resent_too(world: World) -> None:
    sender = world.sender()
    undelivered = undelivered_text(world, sender)
    assert undelivered.status is MessageStatus.UNDELIVERED

    resent = world.resender(sender).resend_one(undelivered.message_id, caller=MEMBER, by="alice")
    assert resent.status is MessageStatus.QUEUED
    assert resent.carrier_message_id is None
    assert resent.superseded_carrier_ids == [undelivered.carrier_message_id]


@pytest.mark.parametrize("status", [MessageStatus.DELIVERED, MessageStatus.SENT, MessageStatus.CANCELED])
def test_a_text_that_is_not_failed_is_refused_with_its_status(world: World, status: MessageStatus) -> None:
    sender = world.sender()
    (queued,) = sender.submit(SendRequest.model_validate({"to": [ANA], "body": "hi"}), "req-1")
    current = stored(world, queued.message_id)
    world.messages.update(current.model_copy(update={"status": status}), expected_version=current.version)
    world.send_queue.take()

    with pytest.raises(NotResendable, match=f"the message is not failed: it is {status.value}"):
        world.resender(sender).resend_one(queued.message_id, caller=MEMBER, by="alice")
    assert world.send_queue.jobs == []
    assert world.events.of("MessageResent") == []


def test_the_receipt_state_machine_still_never_reopens_a_failure() -> None:
    for final in (MessageStatus.FAILED, MessageStatus.UNDELIVERED):
        for reported in MessageStatus:
            assert not receipt_advances(final, reported)


def test_another_teams_message_is_not_found(world: World) -> None:
    sender = world.sender()
    failed = failed_text(world, sender)

    with pytest.raises(NotFound, match=f"no message with id {failed.message_id}"):
        world.resender(sender).resend_one(failed.message_id, caller=OUTSIDER, by="bob")
    with pytest.raises(NotFound):
        world.resender(sender).resend_one("out_nope", caller=MEMBER, by="bob")
    assert stored(world, failed.message_id).status is MessageStatus.FAILED


def test_a_rejected_request_with_no_sender_is_refused(world: World) -> None:
    sender = world.sender()
    (rejected,) = sender.record_rejected('{"to": ["+1"], "body": "hi"}', "rec-1", "bad number")

    (result,) = world.resender(sender).resend_ids([rejected.message_id], caller=MEMBER, by="alice")
    assert result.result == "refused"
    assert result.reason is not None and "send it again instead" in result.reason


# -- the send rules, again --------------------------------------------------------------------------


def test_an_opted_out_recipient_makes_the_resend_suppressed(world: World) -> None:
    sender = world.sender()
    failed = failed_text(world, sender)
    world.opt_outs.record(ANA, opted_out=True, source="fake:keyword", at=T0, detail="STOP")

    (result,) = world.resender(sender).resend_ids([failed.message_id], caller=MEMBER, by="alice")

    assert result.result == "resent"
    assert result.status is MessageStatus.SUPPRESSED
    assert result.reason == "the recipient has opted out of messages from all our numbers"
    message = stored(world, failed.message_id)
    assert [h.status for h in message.history][-2:] == [MessageStatus.QUEUED, MessageStatus.SUPPRESSED]
    assert world.send_queue.jobs == []
    assert len(world.carrier.sent) == 1


def test_an_opt_out_after_the_resend_is_caught_when_it_is_delivered(world: World) -> None:
    sender = world.sender()
    failed = failed_text(world, sender)
    world.resender(sender).resend_one(failed.message_id, caller=MEMBER, by="alice")
    world.opt_outs.record(ANA, opted_out=True, source="fake:keyword", at=T0, detail="STOP")

    (result,) = deliver_queued(world, sender)
    assert result is not None and result.status is MessageStatus.SUPPRESSED
    assert len(world.carrier.sent) == 1


def test_quiet_hours_hold_a_resent_text_until_they_end(world: World) -> None:
    sender = world.sender(quiet_hours="21:00-08:00")
    world.clock.set(datetime(2026, 11, 28, 1, 0, tzinfo=UTC))  # 17:00 in Los Angeles
    failed = failed_text(world, sender)
    world.clock.set(datetime(2026, 11, 28, 7, 0, tzinfo=UTC))  # 23:00 there

    (result,) = world.resender(sender).resend_ids([failed.message_id], caller=MEMBER, by="alice")

    assert (result.result, result.status) == ("resent", MessageStatus.HELD)
    held = stored(world, failed.message_id)
    assert held.next_attempt_at == datetime(2026, 11, 28, 16, 0, tzinfo=UTC)
    assert world.send_queue.jobs == []
    world.clock.set(datetime(2026, 11, 28, 16, 0, tzinfo=UTC))
    assert sender.release_due([held]) == 1
    assert world.send_queue.bodies == [{"message_id": failed.message_id}]


def test_a_resent_text_waits_its_turn_at_the_senders_rate(world: World) -> None:
    world.numbers.save(OurNumber(number=DEFAULT, carrier="fake", is_default=True, rate_per_second=1.0))
    first = failed_text(world, world.sender(), ANA, key="req-1")
    second = failed_text(world, world.sender(), BO, key="req-2")
    sender = world.sender(rate_limited=True)
    world.resender(sender).resend_ids([first.message_id, second.message_id], caller=MEMBER, by="a")

    results = deliver_queued(world, sender)
    statuses = [r.status if r else None for r in results]
    assert statuses == [MessageStatus.ACCEPTED, MessageStatus.QUEUED]  # the second waits for its turn
    assert len(world.retry_queue.jobs) == 1


# -- many -------------------------------------------------------------------------------------------


def test_bulk_by_ids_answers_per_message_in_order(world: World) -> None:
    sender = world.sender()
    failed = failed_text(world, sender, ANA, key="req-1")
    (delivered,) = sender.submit(SendRequest.model_validate({"to": [BO], "body": "hi"}), "req-2")
    deliver_queued(world, sender)
    other_team = failed_text(world, sender, CY, key="req-3", team="support")

    results = world.resender(sender).resend_ids(
        [failed.message_id, "out_unknown", delivered.message_id, other_team.message_id],
        caller=MEMBER,
        by="alice",
    )

    assert [(r.message_id, r.result) for r in results] == [
        (failed.message_id, "resent"),
        ("out_unknown", "refused"),
        (delivered.message_id, "refused"),
        (other_team.message_id, "refused"),
    ]
    assert results[1].reason == "no message with id out_unknown"
    assert results[2].reason == "the message is not failed: it is accepted"
    assert results[3].reason == f"no message with id {other_team.message_id}"  # not told it exists
    assert stored(world, other_team.message_id).status is MessageStatus.FAILED
    assert world.send_queue.bodies == [{"message_id": failed.message_id}]


def test_bulk_by_ids_refuses_an_empty_or_oversized_batch(world: World) -> None:
    resender = world.resender()
    with pytest.raises(ValueError, match="at least one"):
        resender.resend_ids([], caller=MEMBER, by="a")
    with pytest.raises(ValueError, match=f"at most {MAX_BATCH}"):
        resender.resend_ids([f"out_{i}" for i in range(MAX_BATCH + 1)], caller=MEMBER, by="a")


def test_bulk_by_filter_resends_the_teams_failed_texts_from_one_number_since_a_time(world: World) -> None:
    sender = world.sender()
    old = failed_text(world, sender, ANA, key="req-old", failure=UNCODED)
    world.clock.advance(hours=30)
    since = world.clock() - timedelta(hours=24)
    recent = [failed_text(world, sender, to, key=f"req-{to}", failure=UNCODED) for to in (BO, CY)]
    other_number = failed_text(
        world, sender, "+14155550103", key="req-x", failure=UNCODED, **{"from": SECOND}
    )
    other_team = failed_text(world, sender, "+14155550104", key="req-y", failure=UNCODED, team="support")

    done = world.resender(sender).resend_failed(
        FailedFilter(our_number=DEFAULT, since=since), caller=MEMBER, by="alice"
    )
    results = done.results

    assert (done.more, done.cursor) == (False, None)
    assert {r.message_id for r in results} == {m.message_id for m in recent}
    assert all(r.result == "resent" and r.status is MessageStatus.QUEUED for r in results)
    for untouched in (old, other_number, other_team):
        assert stored(world, untouched.message_id).status is MessageStatus.FAILED


def test_bulk_by_filter_takes_at_most_a_batch_and_says_there_is_more(world: World) -> None:
    sender = world.sender()
    messages = [
        failed_text(world, sender, ANA, key=f"req-{i}", failure=UNCODED)
        for i in range(MAX_FILTER_RESENDS + 3)
    ]

    resender = world.resender(sender)
    first = resender.resend_failed(FailedFilter(), caller=MEMBER, by="alice")
    assert len(first.results) == MAX_FILTER_RESENDS and first.more is True
    assert first.cursor is not None
    # those resent have left the view: calling again from the top finds the rest, as with the cursor
    rest = resender.resend_failed(FailedFilter(), caller=MEMBER, by="alice")
    assert len(rest.results) == 3 and (rest.more, rest.cursor) == (False, None)
    assert {r.message_id for r in first.results + rest.results} == {m.message_id for m in messages}


class CountingViews:
    """The Failed view, counting the pages read."""

    def __init__(self, world: World) -> None:
        self.world, self.pages = world, 0

    def list_view(self, view: str, **kwargs: object) -> object:
        self.pages += 1
        return self.world.messages.list_view(view, **kwargs)  # type: ignore[arg-type]


def test_bulk_by_filter_reads_a_bounded_number_of_pages_and_goes_on_from_its_cursor(world: World) -> None:
    """A team with few failures among many of other teams' does not read the whole view in one call."""
    sender = world.sender()
    mine = failed_text(world, sender, ANA, key="req-mine", failure=UNCODED)  # the oldest: last in the view
    later = mine.created_at + timedelta(seconds=1)
    for i in range(MAX_PAGES * 100 + 50):
        other = {"message_id": f"out_other_{i:05d}", "team": "support", "created_at": later}
        world.messages.insert(mine.model_copy(update=other))
    views = CountingViews(world)
    resender = ResendService(
        messages=world.messages,
        views=views,  # type: ignore[arg-type]
        sender=sender,
        carriers=world.carriers,
    )

    first = resender.resend_failed(FailedFilter(), caller=MEMBER, by="alice")
    assert (first.results, first.more, views.pages) == ([], True, MAX_PAGES)
    assert first.cursor is not None
    rest = resender.resend_failed(FailedFilter(), caller=MEMBER, by="alice", cursor=first.cursor)
    assert [r.message_id for r in rest.results] == [mine.message_id] and rest.more is False
    assert views.pages <= 2 * MAX_PAGES


# -- once -------------------------------------------------------------------------------------------


def test_two_resends_while_the_first_is_on_its_way_send_it_once(world: World) -> None:
    sender = world.sender()
    failed = failed_text(world, sender)
    resender = world.resender(sender)

    (first,) = resender.resend_ids([failed.message_id], caller=MEMBER, by="alice")
    (second,) = resender.resend_ids([failed.message_id], caller=MEMBER, by="bob")
    again = resender.resend_one(failed.message_id, caller=MEMBER, by="carol")

    assert (first.result, first.reason) == ("resent", None)
    assert (second.result, second.reason) == ("resent", "already resent; it is on its way")
    assert again.status is MessageStatus.QUEUED
    assert len(world.send_queue.jobs) == 3  # a repeat queues the job again, in case it went missing
    assert len(world.events.of("MessageResent")) == 1
    deliver_queued(world, sender)
    assert len(world.carrier.sent) == 2  # the failed attempt, and one resend


def test_a_resend_that_loses_a_race_to_another_resends_once(world: World) -> None:
    sender = world.sender()
    failed = failed_text(world, sender)
    resender = world.resender(sender)
    resender.resend_one(failed.message_id, caller=MEMBER, by="alice")  # the other caller won

    # This caller read the message while it was still failed: its write loses and it looks again.
    stale = failed
    result, resent_now = sender.resend(stale, by="bob")
    assert resent_now is False and result.status is MessageStatus.QUEUED
    assert len(world.send_queue.jobs) == 1


def test_a_message_resent_and_failed_again_can_be_resent_again(world: World) -> None:
    sender = world.sender()
    failed = failed_text(world, sender)
    resender = world.resender(sender)
    resender.resend_one(failed.message_id, caller=MEMBER, by="alice")
    world.carrier.script(PERMANENT)
    deliver_queued(world, sender)
    assert stored(world, failed.message_id).status is MessageStatus.FAILED

    again = resender.resend_one(failed.message_id, caller=MEMBER, by="alice")
    assert again.status is MessageStatus.QUEUED
    assert len(world.events.of("MessageResent")) == 2


# -- late receipts for the earlier attempt ----------------------------------------------------------


def test_a_late_receipt_for_the_earlier_attempt_does_not_touch_the_resent_text(world: World) -> None:
    sender = world.sender()
    undelivered = undelivered_text(world, sender)
    old_sid = undelivered.carrier_message_id
    assert old_sid is not None
    world.resender(sender).resend_one(undelivered.message_id, caller=MEMBER, by="alice")
    processor = world.processor()

    # While the resend waits in the queue: the old id still finds the message, and is ignored.
    processor.apply_receipt(receipt(old_sid, MessageStatus.UNDELIVERED, 5))
    assert stored(world, undelivered.message_id).status is MessageStatus.QUEUED
    assert world.receipts.all_parked(10) == []

    world.carrier.script(SendAccepted("FK-NEW", "queued"))
    deliver_queued(world, sender)
    processor.apply_receipt(receipt("FK-NEW", MessageStatus.DELIVERED, 8))
    # After the new attempt: an old receipt can't move the new attempt's status.
    processor.apply_receipt(receipt(old_sid, MessageStatus.UNDELIVERED, 9))
    processor.sweep_parked()

    final = stored(world, undelivered.message_id)
    assert final.status is MessageStatus.DELIVERED
    assert final.carrier_message_id == "FK-NEW"
    assert final.superseded_carrier_ids == [old_sid]


# -- retry limits: attempts and total age ------------------------------------------------------------


def test_the_policy_stops_at_the_attempt_limit_or_the_age_limit() -> None:
    policy = RetryPolicy(max_attempts=5, max_age_seconds=3600)
    assert policy.should_retry(4, 3599)
    assert not policy.should_retry(5, 0)
    assert not policy.should_retry(1, 3600)
    assert RetryPolicy().max_age_seconds == 4 * 3600


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 seconds"), (45, "45 seconds"), (600, "10 minutes"), (7200, "2 hours"), (9000, "2.5 hours")],
)
def test_spans_read_plainly(seconds: float, text: str) -> None:
    assert describe_span(seconds) == text


def test_a_transient_failure_past_the_age_limit_ends_failed_with_a_plain_reason(world: World) -> None:
    sender = world.sender(policy=RetryPolicy(max_attempts=50, max_age_seconds=3 * 3600))
    (queued,) = sender.submit(SendRequest.model_validate({"to": [ANA], "body": "hi"}), "req-1")
    for _ in range(3):
        world.carrier.script(TRANSIENT)
        result = sender.deliver(queued.message_id)
        assert result is not None and result.status is MessageStatus.RETRYING
        world.clock.advance(hours=1)
    world.carrier.script(TRANSIENT)
    failed = sender.deliver(queued.message_id)

    assert failed is not None and failed.status is MessageStatus.FAILED
    assert failed.error_reason == "gave up after 4 attempts over 3 hours: the carrier answered 503"
    assert failed.history[-1].detail == failed.error_reason
    assert world.events.of("MessageFailed")[-1]["error_reason"] == failed.error_reason
    assert [m.message_id for m in world.messages.list_view("failed", limit=10, cursor=None).items] == [
        queued.message_id
    ]


def test_the_age_counts_from_the_first_attempt_not_from_when_the_text_was_scheduled(world: World) -> None:
    sender = world.sender(policy=RetryPolicy(max_age_seconds=3600))
    request = SendRequest.model_validate(
        {"to": [ANA], "body": "hi", "send_at": (world.clock() + timedelta(days=2)).isoformat()}
    )
    (scheduled,) = sender.submit(request, "req-1")
    world.clock.advance(days=2)
    sender.release_due([stored(world, scheduled.message_id)])
    world.carrier.script(TRANSIENT)

    (result,) = deliver_queued(world, sender)
    assert result is not None and result.status is MessageStatus.RETRYING


def test_a_resent_text_gets_a_fresh_round_of_attempts_and_age(world: World) -> None:
    policy = RetryPolicy(max_attempts=2, max_age_seconds=3600)
    sender = world.sender(policy=policy)
    (queued,) = sender.submit(SendRequest.model_validate({"to": [ANA], "body": "hi"}), "req-1")
    world.send_queue.take()
    world.carrier.script(TRANSIENT, TRANSIENT)
    sender.deliver(queued.message_id)
    failed = sender.deliver(queued.message_id)
    assert failed is not None and failed.status is MessageStatus.FAILED
    assert failed.error_reason is not None and failed.error_reason.startswith("gave up after 2 attempts")
    world.clock.advance(hours=5)

    world.resender(sender).resend_one(queued.message_id, caller=MEMBER, by="alice")
    world.carrier.script(TRANSIENT)
    (retrying,) = deliver_queued(world, sender)
    assert retrying is not None and retrying.status is MessageStatus.RETRYING  # 1 of 2, not 3 of 2
    world.carrier.script(TRANSIENT)
    gave_up = sender.deliver(queued.message_id)
    assert gave_up is not None and gave_up.status is MessageStatus.FAILED
    assert gave_up.error_reason == "gave up after 2 attempts over 0 seconds: the carrier answered 503"
    assert len(gave_up.attempts) == 4


def test_the_resend_service_can_be_built_from_the_world(world: World) -> None:
    assert isinstance(world.resender(), ResendService)


def test_a_text_left_for_a_person_after_an_ambiguous_send_goes_out_when_they_resend_it(world: World) -> None:
    sender = world.sender()
    (queued,) = sender.submit(SendRequest.model_validate({"to": [ANA], "body": "hi"}), "req-1")
    world.send_queue.take()
    world.carrier.script(SendFailed(FailureKind.AMBIGUOUS, "the carrier did not answer in time"))
    sender.deliver(queued.message_id)
    (job,) = world.retry_queue.take()
    left = sender.deliver(job.body["message_id"])  # the fake carrier can't be searched
    assert left is not None and left.status is MessageStatus.FAILED
    assert left.error_reason is not None and "check with the customer" in left.error_reason
    assert len(world.carrier.sent) == 1

    world.resender(sender).resend_one(queued.message_id, caller=MEMBER, by="alice")
    (result,) = deliver_queued(world, sender)

    assert result is not None and result.status is MessageStatus.ACCEPTED
    assert len(world.carrier.sent) == 2


def test_a_receipt_matched_just_before_a_resend_is_not_applied_after_it(world: World) -> None:
    sender = world.sender()
    undelivered = undelivered_text(world, sender)
    assert undelivered.carrier_message_id is not None
    late = receipt(undelivered.carrier_message_id, MessageStatus.UNDELIVERED, 5)
    world.resender(sender).resend_one(undelivered.message_id, caller=MEMBER, by="alice")

    # The processor had matched the receipt to the message before the resend, and applies it now.
    result = apply_status(world.messages, world.events, undelivered.message_id, late)
    assert result is not None and result.status is MessageStatus.QUEUED
    assert stored(world, undelivered.message_id).status is MessageStatus.QUEUED


def test_an_ambiguous_attempt_after_a_resend_is_not_matched_to_the_text_before_it() -> None:
    carrier = FakeLookupCarrier()
    world = World(carrier=carrier)
    world.numbers.save(OurNumber(number=DEFAULT, carrier="fake", is_default=True))
    sender = world.sender()
    undelivered = undelivered_text(world, sender)
    old_sid = undelivered.carrier_message_id
    assert old_sid is not None
    carrier.known[ANA] = SendAccepted(old_sid, "undelivered")  # the carrier still lists the first text
    world.clock.advance(minutes=10)
    world.resender(sender).resend_one(undelivered.message_id, caller=MEMBER, by="alice")
    world.carrier.script(SendFailed(FailureKind.AMBIGUOUS, "the carrier did not answer in time"))
    deliver_queued(world, sender)

    checked = sender.deliver(undelivered.message_id)  # the retry asks the carrier first

    ((_, since),) = carrier.lookups
    assert since >= T0 + timedelta(minutes=10)  # from the resend on, not from the first round
    # The search leaves out the text before the resend: nothing else found, so the text goes again.
    assert checked is not None and checked.carrier_message_id not in (None, old_sid)
    assert checked.status is MessageStatus.ACCEPTED
    assert len(carrier.sent) == 3
