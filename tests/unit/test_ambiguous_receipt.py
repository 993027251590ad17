"""A receipt echoing our id (client_ref) settles a send that got no clear answer: the carrier had the
text, so it leaves `failed` (or its pending retry) as the receipt says and is not sent again; a
resend since, or a failure with a clear reason, keeps the receipt away from the text."""

from __future__ import annotations

from datetime import datetime

import pytest

from parley.access import Caller
from parley.carriers.base import FailureKind, SendAccepted, SendFailed
from parley.domain.models import Message, MessageStatus, OurNumber, SendRequest, StatusUpdate
from parley.services.sending import NotResendable, SendService
from tests.fakes import T0, World

MEMBER = Caller("alice", frozenset({"default"}))
DEFAULT = "+15005550006"
ANA = "+14155550100"
AMBIGUOUS = SendFailed(FailureKind.AMBIGUOUS, "the carrier did not answer in time; checking before any retry")
PERMANENT = SendFailed(FailureKind.PERMANENT, "the carrier refused the text", "30007", 400)
CARRIER_ID = "0B00000012345678"


@pytest.fixture
def world() -> World:
    w = World()
    w.numbers.save(OurNumber(number=DEFAULT, carrier="fake", is_default=True))
    return w


def stored(world: World, message_id: str) -> Message:
    found = world.messages.get(message_id)
    assert found is not None
    return found


def submit(world: World, sender: SendService) -> str:
    (queued,) = sender.submit(SendRequest.model_validate({"to": [ANA], "body": "Your order is ready."}), "r1")
    return queued.message_id


def failed_ambiguous(world: World, sender: SendService) -> str:
    """A send with no answer, twice; the fake carrier can't be searched, so it ends failed for a person."""
    world.carrier.script(AMBIGUOUS)
    message_id = submit(world, sender)
    sender.deliver(message_id)
    failed = sender.deliver(message_id)
    assert failed is not None and failed.status is MessageStatus.FAILED
    assert "check with the customer" in (failed.error_reason or "")
    return message_id


def receipt(
    message_id: str,
    status: MessageStatus = MessageStatus.DELIVERED,
    *,
    carrier_id: str = CARRIER_ID,
    at: datetime = T0,
    carrier: str = "fake",
    error_code: str | None = None,
) -> StatusUpdate:
    return StatusUpdate(
        carrier=carrier,
        carrier_message_id=carrier_id,
        status=status,
        carrier_status=status.value,
        occurred_at=at,
        client_ref=message_id,
        error_code=error_code,
    )


def test_a_receipt_with_our_id_settles_a_failed_ambiguous_send(world: World) -> None:
    sender = world.sender()
    message_id = failed_ambiguous(world, sender)

    world.processor().apply_receipt(receipt(message_id, at=world.clock()))

    after = stored(world, message_id)
    assert after.status is MessageStatus.DELIVERED
    assert after.carrier_message_id == CARRIER_ID
    assert after.error_reason is None
    assert [c.status for c in after.history[-2:]] == [MessageStatus.ACCEPTED, MessageStatus.DELIVERED]
    assert "receipt shows it has the text" in (after.history[-2].detail or "")
    assert after.attempts[-1].outcome == "reconciled"
    assert not world.receipts.items
    assert [d["message_id"] for d in world.events.of("MessageDelivered")] == [message_id]
    with pytest.raises(NotResendable):
        world.resender(sender).resend_one(message_id, caller=MEMBER, by="alice")
    sender.deliver(message_id)  # a stray job for it sends nothing
    assert len(world.carrier.sent) == 1
    # A repeat of the receipt is matched by the carrier's id now, and changes nothing.
    world.processor().apply_receipt(receipt(message_id, at=world.clock()))
    assert stored(world, message_id).version == after.version


def test_a_receipt_parked_earlier_is_applied_by_the_sweep(world: World) -> None:
    sender = world.sender()
    message_id = failed_ambiguous(world, sender)
    world.receipts.park(receipt(message_id, MessageStatus.SENT, at=world.clock()))

    assert world.processor().sweep_parked() == 1

    after = stored(world, message_id)
    assert after.status is MessageStatus.SENT
    assert after.carrier_message_id == CARRIER_ID
    assert not world.receipts.items


def test_a_receipt_during_the_retry_wait_stops_the_retry(world: World) -> None:
    sender = world.sender()
    world.carrier.script(AMBIGUOUS)
    message_id = submit(world, sender)
    waiting = sender.deliver(message_id)
    assert waiting is not None and waiting.status is MessageStatus.RETRYING

    world.processor().apply_receipt(receipt(message_id, at=world.clock()))
    assert stored(world, message_id).status is MessageStatus.DELIVERED

    sender.deliver(message_id)  # the retry job comes due
    assert len(world.carrier.sent) == 1
    assert stored(world, message_id).status is MessageStatus.DELIVERED


def test_a_failure_the_receipt_reports_replaces_the_advice_to_check(world: World) -> None:
    sender = world.sender()
    message_id = failed_ambiguous(world, sender)

    world.processor(retries=False).apply_receipt(
        receipt(message_id, MessageStatus.UNDELIVERED, at=world.clock())
    )

    after = stored(world, message_id)
    assert after.status is MessageStatus.UNDELIVERED
    assert after.carrier_message_id == CARRIER_ID
    assert "check with the customer" not in (after.error_reason or "")
    assert after.error_reason == "the carrier reported the text undelivered"
    resent = world.resender(sender).resend_one(message_id, caller=MEMBER, by="alice")
    assert resent.status is MessageStatus.QUEUED


def test_a_receipt_for_the_attempt_before_a_resend_is_not_taken(world: World) -> None:
    sender = world.sender()
    message_id = failed_ambiguous(world, sender)
    before_resend = world.clock()
    world.clock.advance(minutes=10)
    world.resender(sender).resend_one(message_id, caller=MEMBER, by="alice")

    # Queued again, not yet tried: a receipt now is the earlier attempt's.
    world.processor().apply_receipt(receipt(message_id, at=before_resend))
    assert stored(world, message_id).status is MessageStatus.QUEUED
    assert stored(world, message_id).carrier_message_id is None
    assert len(world.receipts.items) == 1

    world.carrier.script(SendAccepted("NEW-1", "queued"))
    sender.deliver(message_id)
    world.processor().sweep_parked()
    after = stored(world, message_id)
    assert after.status is MessageStatus.ACCEPTED
    assert after.carrier_message_id == "NEW-1"


def test_after_a_resend_only_a_receipt_dated_since_settles_it(world: World) -> None:
    sender = world.sender()
    message_id = failed_ambiguous(world, sender)
    before_resend = world.clock()
    world.clock.advance(minutes=10)
    world.resender(sender).resend_one(message_id, caller=MEMBER, by="alice")
    world.carrier.script(AMBIGUOUS, AMBIGUOUS)
    sender.deliver(message_id)
    world.clock.advance(minutes=1)
    again = sender.deliver(message_id)
    assert again is not None and again.status is MessageStatus.FAILED

    world.processor().apply_receipt(receipt(message_id, carrier_id="OLD", at=before_resend))
    assert stored(world, message_id).status is MessageStatus.FAILED

    world.processor().apply_receipt(receipt(message_id, carrier_id="NEW", at=world.clock()))
    after = stored(world, message_id)
    assert after.status is MessageStatus.DELIVERED
    assert after.carrier_message_id == "NEW"


def test_a_clear_failure_is_not_reopened(world: World) -> None:
    sender = world.sender()
    world.carrier.script(PERMANENT)
    message_id = submit(world, sender)
    failed = sender.deliver(message_id)
    assert failed is not None and failed.status is MessageStatus.FAILED

    world.processor().apply_receipt(receipt(message_id, at=world.clock()))

    after = stored(world, message_id)
    assert after.status is MessageStatus.FAILED
    assert after.carrier_message_id is None
    assert len(world.receipts.items) == 1


def test_another_carriers_receipt_is_not_taken(world: World) -> None:
    sender = world.sender()
    message_id = failed_ambiguous(world, sender)

    world.processor().apply_receipt(receipt(message_id, carrier="other", at=world.clock()))

    assert stored(world, message_id).status is MessageStatus.FAILED
    assert stored(world, message_id).carrier_message_id is None
