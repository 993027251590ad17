"""Resend by filter leaves out what the carrier calls permanent; a partly delivered text is in the Failed
view, resendable by id, left out of a filter unless asked for, and leaves the view when its last part
is delivered after all."""

from __future__ import annotations

from datetime import timedelta

import pytest

from parley.access import Caller
from parley.carriers.base import FailureKind, SendAccepted, SendFailed
from parley.carriers.twilio import classify_error
from parley.domain.models import Message, MessageStatus, OurNumber, SendRequest, StatusUpdate
from parley.domain.retry import RetryPolicy
from parley.domain.status import part_receipt_advances, receipt_advances, resend_allowed, view_for
from parley.services.inbound import apply_status
from parley.services.resend import PARTS_AGAIN, FailedFilter
from parley.services.sending import SendService
from tests.fakes import T0, FakeCarrier, World

MEMBER = Caller("alice", frozenset({"default"}))
OURS = "+15005550006"
LANDLINE = "+14155550100"
INVALID = "+14155550101"
AWAY = "+14155550102"
QUIET = "+14155550103"


class TwilioCodes(FakeCarrier):
    """The fake carrier, classifying error codes as Twilio's plugin does."""

    def classify(self, error_code: str | None, http_status: int | None) -> tuple[FailureKind, str]:
        return classify_error(error_code, http_status)


@pytest.fixture
def world() -> World:
    w = World()
    w.carrier = TwilioCodes("twilio")
    w.numbers.save(OurNumber(number=OURS, carrier="twilio", is_default=True))
    return w


def stored(world: World, message_id: str) -> Message:
    found = world.messages.get(message_id)
    assert found is not None, message_id
    return found


def submitted(world: World, sender: SendService, to: str, body: str = "Your order is ready.") -> Message:
    (queued,) = sender.submit(SendRequest.model_validate({"to": [to], "body": body}), f"req-{to}")
    world.send_queue.take()
    return queued


def refused_at_send(world: World, sender: SendService, to: str, failure: SendFailed) -> Message:
    queued = submitted(world, sender, to)
    world.carrier.script(failure)
    result = sender.deliver(queued.message_id)
    assert result is not None and result.status is MessageStatus.FAILED
    return result


def receive(world: World, message_id: str, update: StatusUpdate) -> None:
    """A receipt matched to its message, applied as the processor applies it (without its retries)."""
    apply_status(world.messages, world.events, message_id, update)


def undelivered(world: World, sender: SendService, to: str, code: str) -> Message:
    queued = submitted(world, sender, to)
    accepted = sender.deliver(queued.message_id)
    assert accepted is not None and accepted.carrier_message_id is not None
    receive(
        world,
        queued.message_id,
        StatusUpdate(
            carrier="twilio",
            carrier_message_id=accepted.carrier_message_id,
            status=MessageStatus.UNDELIVERED,
            carrier_status="undelivered",
            error_code=code,
            occurred_at=T0 + timedelta(seconds=1),
        ),
    )
    found = stored(world, queued.message_id)
    assert found.status is MessageStatus.UNDELIVERED and found.error_code == code
    return found


def sent_to(world: World, sender: SendService) -> list[str]:
    for job in world.send_queue.take():
        sender.deliver(job.body["message_id"])
    return [text.to_number for text in world.carrier.sent]


# -- resend by filter and permanent failures -------------------------------------------------------


def test_a_filter_leaves_out_landlines_and_invalid_numbers_and_resends_the_rest(world: World) -> None:
    sender = world.sender()
    not_mobile = refused_at_send(
        world, sender, INVALID, SendFailed(FailureKind.PERMANENT, "not a mobile number", "21614", 400)
    )
    landline = undelivered(world, sender, LANDLINE, "30006")
    unreachable = undelivered(world, sender, AWAY, "30003")  # switched off: worth another go
    no_code = refused_at_send(world, sender, QUIET, SendFailed(FailureKind.PERMANENT, "the send job failed"))
    world.carrier.sent.clear()

    done = world.resender(sender).resend_failed(FailedFilter(), caller=MEMBER, by="alice")

    results = {r.message_id: r for r in done.results}
    assert set(results) == {m.message_id for m in (not_mobile, landline, unreachable, no_code)}
    for left, words in ((not_mobile, "not a mobile number"), (landline, "landline")):
        result = results[left.message_id]
        assert (result.result, result.status) == ("refused", left.status)
        assert result.reason is not None and words in result.reason
        assert f"code {left.error_code}" in result.reason
        assert stored(world, left.message_id).status is left.status  # still in the Failed view
    assert results[unreachable.message_id].result == "resent"
    assert results[no_code.message_id].result == "resent"
    assert sorted(sent_to(world, sender)) == sorted([AWAY, QUIET])


def test_a_passing_send_failure_whose_retries_ran_out_is_resent_by_the_filter() -> None:
    """Classified as the send answer was (a code may mean something else in a receipt)."""
    world = World()  # the fake carrier calls every code permanent when asked
    world.numbers.save(OurNumber(number=OURS, carrier="fake", is_default=True))
    sender = world.sender(policy=RetryPolicy(max_attempts=1))
    busy = SendFailed(FailureKind.TRANSIENT, "the carrier had an internal error", "5", 200)
    spent = refused_at_send(world, sender, AWAY, busy)
    assert [a.outcome for a in spent.attempts] == ["transient"]

    (result,) = world.resender(sender).resend_failed(FailedFilter(), caller=MEMBER, by="alice").results

    assert (result.result, result.status) == ("resent", MessageStatus.QUEUED)


def test_ids_resend_a_permanent_failure_as_named(world: World) -> None:
    sender = world.sender()
    landline = undelivered(world, sender, LANDLINE, "30006")
    world.carrier.sent.clear()

    (result,) = world.resender(sender).resend_ids([landline.message_id], caller=MEMBER, by="alice")

    assert (result.result, result.status) == ("resent", MessageStatus.QUEUED)
    assert sent_to(world, sender) == [LANDLINE]


def test_a_failure_from_a_carrier_that_cant_be_found_is_left_out(world: World) -> None:
    sender = world.sender()
    failed = undelivered(world, sender, AWAY, "30003")
    world.messages.update(failed.model_copy(update={"carrier": "retired"}), expected_version=failed.version)
    world.carrier.sent.clear()

    (result,) = world.resender(sender).resend_failed(FailedFilter(), caller=MEMBER, by="alice").results

    assert result.result == "refused" and result.reason is not None and "can't be classified" in result.reason
    assert sent_to(world, sender) == []


def test_texts_left_out_do_not_count_against_the_batch(world: World) -> None:
    sender = world.sender()
    for i in range(120):
        landline = undelivered(world, sender, f"+1415555{1000 + i}", "30006")
    unreachable = undelivered(world, sender, AWAY, "30003")
    world.carrier.sent.clear()

    done = world.resender(sender).resend_failed(FailedFilter(), caller=MEMBER, by="alice")

    assert done.more is False and len(done.results) == 121
    assert [r.message_id for r in done.results if r.result == "resent"] == [unreachable.message_id]
    assert stored(world, landline.message_id).status is MessageStatus.UNDELIVERED


# -- partly delivered texts -------------------------------------------------------------------------


def part_receipt(sid: str, status: MessageStatus, part: int, code: str | None = None) -> StatusUpdate:
    return StatusUpdate(
        carrier="twilio",
        carrier_message_id=sid,
        status=status,
        carrier_status=status.value,
        error_code=code,
        error_message="the phone was busy" if code else None,
        part=part,
        parts=2,
        occurred_at=T0 + timedelta(seconds=part),
    )


def partly_delivered(world: World, sender: SendService, to: str = LANDLINE) -> Message:
    """A two-part text: part 1 delivered, part 2 undelivered."""
    queued = submitted(world, sender, to, body="x" * 200)
    world.carrier.script(SendAccepted("SM-long", "queued", 2))
    sender.deliver(queued.message_id)
    receive(world, queued.message_id, part_receipt("SM-long", MessageStatus.DELIVERED, 1))
    receive(world, queued.message_id, part_receipt("SM-long", MessageStatus.UNDELIVERED, 2, "30003"))
    found = stored(world, queued.message_id)
    assert found.status is MessageStatus.PARTIALLY_DELIVERED
    return found


def failed_view(world: World) -> list[str]:
    return [m.message_id for m in world.messages.list_view("failed", limit=50, cursor=None).items]


def test_the_status_machine_puts_a_partly_delivered_text_in_the_failed_view() -> None:
    assert view_for(MessageStatus.PARTIALLY_DELIVERED) == "failed"
    assert resend_allowed(MessageStatus.PARTIALLY_DELIVERED)
    assert receipt_advances(MessageStatus.PARTIALLY_DELIVERED, MessageStatus.DELIVERED)
    # a part's late delivery counts; the whole message's failure still never reopens
    assert part_receipt_advances(MessageStatus.UNDELIVERED, MessageStatus.DELIVERED)
    assert not part_receipt_advances(MessageStatus.DELIVERED, MessageStatus.UNDELIVERED)
    assert not receipt_advances(MessageStatus.UNDELIVERED, MessageStatus.DELIVERED)


def test_a_partly_delivered_text_is_in_the_failed_view_and_resent_whole_by_id(world: World) -> None:
    sender = world.sender()
    partial = partly_delivered(world, sender)
    assert failed_view(world) == [partial.message_id]
    world.carrier.sent.clear()

    (result,) = world.resender(sender).resend_ids([partial.message_id], caller=MEMBER, by="alice")

    assert (result.result, result.status, result.reason) == ("resent", MessageStatus.QUEUED, PARTS_AGAIN)
    assert failed_view(world) == []
    resent = stored(world, partial.message_id)
    assert resent.part_statuses == {} and "SM-long" in resent.superseded_carrier_ids
    assert sent_to(world, sender) == [LANDLINE]
    assert world.carrier.sent[0].body == "x" * 200


def test_one_resend_of_a_partly_delivered_text_answers_the_message(world: World) -> None:
    sender = world.sender()
    partial = partly_delivered(world, sender)

    resent = world.resender(sender).resend_one(partial.message_id, caller=MEMBER, by="alice")

    assert resent.status is MessageStatus.QUEUED and resent.resent_at is not None


def test_a_filter_leaves_out_a_partly_delivered_text_unless_asked(world: World) -> None:
    sender = world.sender()
    partial = partly_delivered(world, sender)
    resender = world.resender(sender)

    (left,) = resender.resend_failed(FailedFilter(), caller=MEMBER, by="alice").results
    assert (left.result, left.status) == ("refused", MessageStatus.PARTIALLY_DELIVERED)
    assert left.reason is not None and PARTS_AGAIN in left.reason
    assert stored(world, partial.message_id).status is MessageStatus.PARTIALLY_DELIVERED

    asked = resender.resend_failed(FailedFilter(partially_delivered=True), caller=MEMBER, by="alice")
    assert [(r.result, r.reason) for r in asked.results] == [("resent", PARTS_AGAIN)]


def test_a_late_delivery_of_the_missing_part_moves_it_to_delivered_and_out_of_the_view(world: World) -> None:
    sender = world.sender()
    partial = partly_delivered(world, sender)

    receive(world, partial.message_id, part_receipt("SM-long", MessageStatus.DELIVERED, 2))

    delivered = stored(world, partial.message_id)
    assert delivered.status is MessageStatus.DELIVERED
    assert delivered.part_statuses == {"1": MessageStatus.DELIVERED, "2": MessageStatus.DELIVERED}
    assert failed_view(world) == []


def test_a_whole_text_reported_partly_delivered_leaves_the_view_when_delivered(world: World) -> None:
    sender = world.sender()
    queued = submitted(world, sender, AWAY)
    accepted = sender.deliver(queued.message_id)
    assert accepted is not None and accepted.carrier_message_id is not None
    for status, seconds in ((MessageStatus.PARTIALLY_DELIVERED, 1), (MessageStatus.DELIVERED, 2)):
        receive(
            world,
            queued.message_id,
            StatusUpdate(
                carrier="twilio",
                carrier_message_id=accepted.carrier_message_id,
                status=status,
                carrier_status=status.value,
                occurred_at=T0 + timedelta(seconds=seconds),
            ),
        )
        in_view = queued.message_id in failed_view(world)
        assert in_view is (status is MessageStatus.PARTIALLY_DELIVERED)
    assert stored(world, queued.message_id).status is MessageStatus.DELIVERED
