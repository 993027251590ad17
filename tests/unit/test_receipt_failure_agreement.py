"""One answer per failure code: a code a receipt retries is one a bulk resend sends again, whichever
carrier reported it; and a deleted text is never sent again by a receipt."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from parley.access import Caller
from parley.carriers import bandwidth, plivo, twilio, vonage_messages, vonage_sms
from parley.carriers.base import FailureKind, ParsedStatus
from parley.carriers.twilio import TwilioCarrier
from parley.domain.models import (
    Attempt,
    Direction,
    Message,
    MessageStatus,
    OurNumber,
    SendRequest,
    StatusUpdate,
)
from parley.services.resend import FailedFilter, ResendService
from tests.fakes import World
from tests.unit import test_receipt_retry as receipts

ADMIN = Caller(user="ana", teams=frozenset({"default"}), admin=True)
NOW = datetime(2026, 11, 28, tzinfo=UTC)

Classify = Callable[[str | None, int | None], tuple[FailureKind, str]]
CLASSIFY: dict[Callable[[str], ParsedStatus], Classify] = {
    receipts.bandwidth: bandwidth.classify_error,
    receipts.plivo: plivo.classify_error,
    receipts.twilio: twilio.classify_error,
    receipts.vonage: vonage_sms.classify,
    receipts.vonage_messages: vonage_messages.classify_error,
}
CODES = [(p, c) for p, c in receipts.PASSING + receipts.LASTING if p in CLASSIFY]


@pytest.mark.parametrize(("parse", "code"), CODES)
def test_a_receipt_retries_exactly_the_codes_a_bulk_resend_counts_as_passing(
    parse: Callable[[str], ParsedStatus], code: str
) -> None:
    kind, _ = CLASSIFY[parse](code, None)
    assert parse(code).retryable is (kind is FailureKind.TRANSIENT)


def test_twilio_30001_is_passing_for_a_receipt_and_for_the_bulk_filter() -> None:
    carrier = TwilioCarrier("AC1", "tok")
    assert receipts.twilio("30001").retryable is True
    assert carrier.classify("30001", None) == (
        FailureKind.TRANSIENT,
        "Twilio's queue for our number overflowed before the text went out",
    )
    message = Message(
        message_id="m1",
        direction=Direction.OUTBOUND,
        customer_number="+14155550100",
        our_number="+15005550006",
        body="hi",
        status=MessageStatus.UNDELIVERED,
        carrier="twilio",
        created_at=NOW,
        updated_at=NOW,
        error_code="30001",
        error_reason="gave up after 9 attempts over 4 hours: Twilio's queue for our number overflowed",
        attempts=[Attempt(number=1, at=NOW, outcome="accepted", error_code="30001")],
    )
    world = World()
    service = ResendService(
        messages=world.messages, views=world.messages, sender=world.sender(), carriers=lambda _: carrier
    )
    assert service._left_out(message, FailedFilter()) is None


def test_a_send_answer_with_a_receipt_only_code_is_still_read_by_its_http_status() -> None:
    assert twilio.classify_error("30001", 400)[0] is FailureKind.PERMANENT


# -- a deleted text ---------------------------------------------------------------------------------


def test_a_passing_receipt_failure_for_a_deleted_text_leaves_it_failed_and_deleted() -> None:
    world = World()
    world.numbers.save(OurNumber(number="+15005550006", carrier="fake", is_default=True))
    sender = world.sender()
    (queued,) = sender.submit(SendRequest.model_validate({"to": ["+14155550100"], "body": "Hi"}), "k")
    sent = sender.deliver(queued.message_id)
    assert sent is not None and sent.carrier_message_id
    world.send_queue.jobs.clear()
    deleted = world.messages.update(
        sent.model_copy(update={"deleted_at": world.clock(), "deleted_by": "ana"}),
        expected_version=sent.version,
    )

    world.processor().apply_receipt(
        StatusUpdate(
            carrier="fake",
            carrier_message_id=sent.carrier_message_id,
            status=MessageStatus.UNDELIVERED,
            carrier_status="undelivered",
            error_code="4702",
            error_message="the recipient's phone is unavailable",
            retryable=True,
        )
    )

    after = world.messages.get(sent.message_id)
    assert after is not None
    assert after.status is MessageStatus.UNDELIVERED
    assert after.deleted_at == deleted.deleted_at
    assert world.retry_queue.jobs == [] and len(world.carrier.sent) == 1
    assert after.error_reason is not None and "trying again" not in after.error_reason
