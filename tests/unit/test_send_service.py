"""Send: one message per recipient, sent once however often the request arrives, every failure explained."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from parley.carriers.base import FailureKind, SendAccepted, SendFailed
from parley.domain.ids import outbound_message_id
from parley.domain.keywords import Keyword
from parley.domain.models import (
    ContactRecord,
    Message,
    MessageStatus,
    OurNumber,
    SendRequest,
    StatusUpdate,
    Template,
)
from parley.domain.rate import BucketState
from parley.domain.retry import RetryPolicy
from parley.services.sending import NotCancellable, SendRejected, SendService, parse_send_record
from tests.fakes import T0, FakeLookupCarrier, World

DEFAULT = "+15005550006"
SECOND = "+15005550007"
SUPPORT = "+15005550008"
ANA = "+14155550100"
BO = "+14155550101"
CY = "+14155550102"

TRANSIENT = SendFailed(
    FailureKind.TRANSIENT, "the carrier is rate limiting us; it will be retried", "20429", 429
)
PERMANENT = SendFailed(FailureKind.PERMANENT, "the number is not a valid phone number", "21211", 400)
AMBIGUOUS = SendFailed(FailureKind.AMBIGUOUS, "the carrier did not answer in time; checking before any retry")


def numbers(world: World) -> None:
    world.numbers.save(OurNumber(number=DEFAULT, carrier="fake", is_default=True, owner="desk"))
    world.numbers.save(OurNumber(number=SECOND, carrier="fake"))
    world.numbers.save(OurNumber(number=SUPPORT, carrier="fake", team="support"))


@pytest.fixture
def world() -> World:
    w = World()
    numbers(w)
    return w


def req(*to: str, **fields: Any) -> SendRequest:
    data: dict[str, Any] = {"to": list(to) or [ANA]}
    if "template_id" not in fields:
        data["body"] = "Your order is ready."
    data.update(fields)
    return SendRequest.model_validate(data)


def message(world: World, message_id: str) -> Message:
    found = world.messages.get(message_id)
    assert found is not None, message_id
    return found


def deliver_queued(world: World, sender: SendService) -> None:
    """Play the send queue: deliver every job on it (as the send function would)."""
    for job in world.send_queue.take():
        sender.deliver(job.body["message_id"])


# -- one message per recipient, once ----------------------------------------------------------------


def test_several_recipients_make_one_message_and_one_conversation_each(world: World) -> None:
    sent = world.sender().submit(req(ANA, BO, CY), "req-1")

    assert [m.customer_number for m in sent] == [ANA, BO, CY]
    assert [m.message_id for m in sent] == [outbound_message_id("req-1", to) for to in (ANA, BO, CY)]
    assert all(m.status is MessageStatus.QUEUED for m in sent)
    assert len(world.messages.items) == 3
    for to in (ANA, BO, CY):
        conversation = world.conversations.get(to)
        assert conversation is not None
        assert (conversation.message_count, conversation.unread_count) == (1, 0)
        assert conversation.last_direction is not None and conversation.last_direction.value == "outbound"
    assert world.send_queue.bodies == [{"message_id": m.message_id} for m in sent]
    assert world.carrier.sent == []  # the API path only queues


def test_the_same_recipient_typed_twice_is_one_message(world: World) -> None:
    sent = world.sender().submit(req(ANA, "(415) 555-0100"), "req-1")
    assert len(sent) == 1


def test_a_request_delivered_twice_texts_each_person_once(world: World) -> None:
    sender = world.sender()

    first = sender.handle_request(req(ANA, BO), "eb:evt-1")
    second = sender.handle_request(req(ANA, BO), "eb:evt-1")

    assert [m.message_id for m in first] == [m.message_id for m in second]
    assert sorted(t.to_number for t in world.carrier.sent) == [ANA, BO]
    assert all(m.status is MessageStatus.ACCEPTED for m in second)
    assert len(world.messages.items) == 2


def test_an_api_retry_with_the_same_key_queues_again_but_still_sends_once(world: World) -> None:
    sender = world.sender()

    sender.submit(req(ANA), "idem-1")
    sender.submit(req(ANA), "idem-1")  # the client retried before the first was delivered
    deliver_queued(world, sender)

    assert [t.to_number for t in world.carrier.sent] == [ANA]
    assert message(world, outbound_message_id("idem-1", ANA)).status is MessageStatus.ACCEPTED


def test_a_different_request_key_is_a_different_message(world: World) -> None:
    sender = world.sender()
    one = sender.submit(req(ANA), "req-1")
    two = sender.submit(req(ANA), "req-2")
    assert one[0].message_id != two[0].message_id
    conversation = world.conversations.get(ANA)
    assert conversation is not None and conversation.message_count == 2


def test_the_stored_message_records_what_was_decided(world: World) -> None:
    (sent,) = world.sender().submit(
        req(ANA, requested_by="u-1", metadata={"order": 7}), "req-1", team="default"
    )
    stored = message(world, sent.message_id)
    assert stored.body == "Your order is ready."
    assert (stored.encoding, stored.segments) == ("GSM-7", 1)
    assert stored.our_number == DEFAULT
    assert stored.request_id == "req-1"
    assert stored.requested_by == "u-1"
    assert stored.metadata == {"order": 7}
    assert [h.status for h in stored.history] == [MessageStatus.QUEUED]


# -- choosing the sender --------------------------------------------------------------------------


def test_without_history_the_team_default_sends(world: World) -> None:
    (sent,) = world.sender().submit(req(ANA), "req-1")
    assert (sent.our_number, sent.sender_reason) == (DEFAULT, "team default")


def test_the_number_the_customer_last_talked_to_is_sticky(world: World) -> None:
    sender = world.sender()
    sender.submit(req(ANA, **{"from": SECOND}), "req-1")

    (sent,) = sender.submit(req(ANA), "req-2")

    assert sent.our_number == SECOND
    assert sent.sender_reason is not None and sent.sender_reason.startswith("sticky")


def test_an_explicit_sender_beats_the_sticky_one(world: World) -> None:
    sender = world.sender()
    sender.submit(req(ANA, **{"from": SECOND}), "req-1")

    (sent,) = sender.submit(req(ANA, **{"from": DEFAULT}), "req-2")

    assert (sent.our_number, sent.sender_reason) == (DEFAULT, "requested")


def test_an_explicit_sender_of_another_team_is_refused(world: World) -> None:
    with pytest.raises(SendRejected) as caught:
        world.sender().submit(req(ANA, **{"from": SUPPORT}), "req-1", team="sales")

    assert [(e.field, e.reason) for e in caught.value.errors] == [
        ("from", f"{SUPPORT} belongs to another team")
    ]
    assert world.messages.items == {}


def test_a_person_may_send_from_a_number_they_own_whatever_its_team(world: World) -> None:
    world.numbers.save(OurNumber(number=SUPPORT, carrier="fake", team="support", owner="u-7"))

    (sent,) = world.sender().submit(req(ANA, requested_by="u-7", **{"from": SUPPORT}), "req-1", team="sales")

    assert (sent.our_number, sent.sender_reason) == (SUPPORT, "requested")


def test_a_sticky_number_of_another_team_is_passed_over(world: World) -> None:
    sender = world.sender()
    sender.submit(req(ANA), "req-1", team="support")  # the customer last heard from SUPPORT

    (sent,) = sender.submit(req(ANA), "req-2", team="sales")

    assert (sent.our_number, sent.sender_reason) == (
        DEFAULT,
        "pool default: this team has no number of its own",
    )


def test_without_history_the_customer_owner_s_number_sends(world: World) -> None:
    world.numbers.save(OurNumber(number=SECOND, carrier="fake", owner="rep-1"))
    world.contacts.save(ContactRecord(contact_id="c1", name="Ana", phone=ANA, owner="rep-1"))

    (sent,) = world.sender().submit(req(ANA), "req-1")

    assert sent.our_number == SECOND
    assert sent.sender_reason == "the number of the customer's owner (rep-1)"


def test_each_team_defaults_to_its_own_number(world: World) -> None:
    (sent,) = world.sender().submit(req(ANA), "req-1", team="support")
    assert sent.our_number == SUPPORT
    assert sent.team == "support"


def test_an_explicit_sender_that_is_not_ours_is_rejected_naming_from(world: World) -> None:
    with pytest.raises(SendRejected) as caught:
        world.sender().submit(req(ANA, **{"from": "+15005550099"}), "req-1")

    assert [e.field for e in caught.value.errors] == ["from"]
    assert "+15005550099 is not one of our numbers" in caught.value.errors[0].reason
    assert world.messages.items == {}
    assert world.send_queue.jobs == []


def test_no_numbers_at_all_is_rejected_with_a_reason() -> None:
    world = World()
    with pytest.raises(SendRejected) as caught:
        world.sender().submit(req(ANA), "req-1")
    assert [(e.field, e.reason) for e in caught.value.errors] == [
        ("from", "no sender number is configured for this team")
    ]
    assert world.messages.items == {}


# -- templates and limits ---------------------------------------------------------------------------


def test_templates_are_filled_from_the_contact_and_the_request(world: World) -> None:
    world.templates.save(
        Template(
            template_id="ready",
            name="Ready",
            body="Hi {{first_name}}, your {{item}} is ready at {{store|the shop}}. Ref {{ref}}.",
        )
    )
    world.contacts.save(
        ContactRecord(contact_id="c1", name="Ana Silva", phone=ANA, first_name="Ana", fields={"ref": "A-1"})
    )

    (sent,) = world.sender().submit(req(ANA, template_id="ready", merge_values={"item": "bike"}), "req-1")

    assert sent.body == "Hi Ana, your bike is ready at the shop. Ref A-1."
    conversation = world.conversations.get(ANA)
    assert conversation is not None and conversation.contact_id == "c1"


def test_request_values_override_the_contact(world: World) -> None:
    world.templates.save(Template(template_id="t", name="t", body="Hi {{first_name}}"))
    world.contacts.save(ContactRecord(contact_id="c1", name="Ana Silva", phone=ANA, first_name="Ana"))

    (sent,) = world.sender().submit(
        req(ANA, template_id="t", merge_values={"first_name": "Dr. Silva"}), "req-1"
    )

    assert sent.body == "Hi Dr. Silva"


def test_a_missing_merge_field_rejects_the_whole_request_and_stores_nothing(world: World) -> None:
    world.templates.save(Template(template_id="t", name="t", body="Hi {{first_name}}, code {{code}}"))
    world.contacts.save(ContactRecord(contact_id="c1", name="Ana", phone=ANA, first_name="Ana"))

    with pytest.raises(SendRejected) as caught:
        # Ana's contact has a first name; Bo has no contact at all
        world.sender().submit(req(ANA, BO, template_id="t", merge_values={"code": "42"}), "req-1")

    (error,) = caught.value.errors
    assert error.field == "merge_values"
    assert "first_name" in error.reason and BO in error.reason
    assert world.messages.items == {}
    assert world.conversations.items == {}
    assert world.send_queue.jobs == []


def test_an_unknown_template_is_rejected(world: World) -> None:
    with pytest.raises(SendRejected) as caught:
        world.sender().submit(req(ANA, template_id="nope"), "req-1")
    assert [e.field for e in caught.value.errors] == ["template_id"]
    assert "nope" in caught.value.errors[0].reason


def test_a_text_over_the_segment_limit_is_rejected_with_its_count(world: World) -> None:
    with pytest.raises(SendRejected) as caught:
        world.sender(max_segments=2).submit(req(ANA, body="x" * 400), "req-1")  # 400 GSM-7 = 3 parts
    (error,) = caught.value.errors
    assert error.field == "body"
    assert error.reason == "the text needs 3 segments; the limit is 2"
    assert world.messages.items == {}


def test_a_text_exactly_at_the_segment_limit_is_accepted(world: World) -> None:
    (sent,) = world.sender(max_segments=2).submit(req(ANA, body="x" * 306), "req-1")
    assert sent.segments == 2


# -- delivering, failing, retrying --------------------------------------------------------------


def test_a_delivery_hands_the_carrier_the_text_and_records_the_acceptance(world: World) -> None:
    sender = world.sender()
    (queued,) = sender.submit(req(ANA), "req-1")

    delivered = sender.deliver(queued.message_id)

    assert delivered is not None and delivered.status is MessageStatus.ACCEPTED
    (text,) = world.carrier.sent
    assert (text.message_id, text.from_number, text.to_number, text.body) == (
        queued.message_id,
        DEFAULT,
        ANA,
        "Your order is ready.",
    )
    assert text.status_callback_url == "https://hooks.example.test/webhooks/fake/status"
    assert delivered.carrier_message_id == "FK000001"
    assert [h.status for h in delivered.history] == [
        MessageStatus.QUEUED,
        MessageStatus.SENDING,
        MessageStatus.ACCEPTED,
    ]
    assert [a.outcome for a in delivered.attempts] == ["accepted"]
    assert world.events.types == ["MessageSent"]


def test_a_transient_failure_is_retried_later_then_succeeds(world: World) -> None:
    world.carrier.script(TRANSIENT)
    sender = world.sender()
    (queued,) = sender.submit(req(ANA), "req-1")

    retrying = sender.deliver(queued.message_id)

    assert retrying is not None and retrying.status is MessageStatus.RETRYING
    assert retrying.error_code == "20429"
    (job,) = world.retry_queue.jobs
    assert job.body == {"message_id": queued.message_id}
    assert 15 <= job.delay_seconds <= 30  # first retry: full jitter in [base/2, base]
    assert retrying.next_attempt_at == T0 + timedelta(seconds=job.delay_seconds)

    world.clock.advance(seconds=job.delay_seconds)
    accepted = sender.deliver(job.body["message_id"])

    assert accepted is not None and accepted.status is MessageStatus.ACCEPTED
    assert [a.outcome for a in accepted.attempts] == ["transient", "accepted"]
    assert [a.number for a in accepted.attempts] == [1, 2]
    assert accepted.next_attempt_at is None
    assert len(world.carrier.sent) == 2
    assert world.events.types == ["MessageRetried", "MessageSent"]


def test_a_permanent_failure_fails_with_the_reason_and_is_not_retried(world: World) -> None:
    world.carrier.script(PERMANENT)
    sender = world.sender()
    (queued,) = sender.submit(req(ANA), "req-1")

    failed = sender.deliver(queued.message_id)

    assert failed is not None and failed.status is MessageStatus.FAILED
    assert failed.error_reason == "the number is not a valid phone number"
    assert failed.error_code == "21211"
    assert world.retry_queue.jobs == []
    (event,) = world.events.of("MessageFailed")
    assert event["error_reason"] == "the number is not a valid phone number"


def test_transient_failures_past_the_attempt_limit_give_up_with_a_reason(world: World) -> None:
    world.carrier.script(TRANSIENT, TRANSIENT, TRANSIENT)
    sender = world.sender(policy=RetryPolicy(max_attempts=3))
    (queued,) = sender.submit(req(ANA), "req-1")

    for _ in range(3):
        sender.deliver(queued.message_id)

    failed = message(world, queued.message_id)
    assert failed.status is MessageStatus.FAILED
    assert failed.error_reason is not None
    assert failed.error_reason == "gave up after 3 attempts over 0 seconds: the carrier is rate limiting us"
    assert len(failed.attempts) == 3
    assert len(world.retry_queue.jobs) == 2
    assert len(world.carrier.sent) == 3
    # and once failed, a stray retry job changes nothing
    assert sender.deliver(queued.message_id) == failed
    assert len(world.carrier.sent) == 3


def test_deliver_on_an_accepted_message_does_nothing(world: World) -> None:
    sender = world.sender()
    (queued,) = sender.submit(req(ANA), "req-1")
    accepted = sender.deliver(queued.message_id)
    writes = world.messages.updates

    again = sender.deliver(queued.message_id)

    assert again == accepted
    assert len(world.carrier.sent) == 1
    assert world.messages.updates == writes


def test_deliver_for_an_unknown_message_returns_none_and_sends_nothing(world: World) -> None:
    assert world.sender().deliver("out_missing") is None
    assert world.carrier.sent == []


def test_a_worker_that_loses_the_claim_does_not_send(world: World) -> None:
    sender = world.sender()
    (queued,) = sender.submit(req(ANA), "req-1")
    world.messages.inject_conflicts(1)  # another worker claimed it first

    sender.deliver(queued.message_id)

    assert world.carrier.sent == []


# -- ambiguous outcomes: reconcile before any retry ---------------------------------------------


def test_ambiguous_with_a_carrier_that_cannot_be_searched_fails_for_a_person_and_never_resends(
    world: World,
) -> None:
    world.carrier.script(AMBIGUOUS)
    sender = world.sender()
    (queued,) = sender.submit(req(ANA), "req-1")

    first = sender.deliver(queued.message_id)
    assert first is not None and first.status is MessageStatus.RETRYING
    second = sender.deliver(queued.message_id)

    assert second is not None and second.status is MessageStatus.FAILED
    assert second.error_reason is not None and "check with the customer" in second.error_reason
    assert len(world.carrier.sent) == 1  # the customer may have it: never sent twice
    assert world.events.types[-1] == "MessageFailed"


def test_ambiguous_then_retry_asks_the_carrier_first_and_does_not_resend_what_it_has() -> None:
    # Current behaviour: a carrier with SentLookup is searched by (to, from, body, since the first
    # attempt) whether or not a carrier id is known - after an ambiguous failure none ever is.
    carrier = FakeLookupCarrier(outcomes=[AMBIGUOUS])
    world = World(carrier=carrier)
    numbers(world)
    sender = world.sender()
    (queued,) = sender.submit(req(ANA), "req-1")
    sender.deliver(queued.message_id)
    first_attempt_at = world.clock()
    carrier.known[ANA] = SendAccepted("SM-already-there", "sent")
    world.clock.advance(seconds=30)

    reconciled = sender.deliver(queued.message_id)

    assert reconciled is not None and reconciled.status is MessageStatus.ACCEPTED
    assert reconciled.carrier_message_id == "SM-already-there"
    assert [a.outcome for a in reconciled.attempts] == ["ambiguous", "reconciled"]
    assert len(carrier.sent) == 1  # never sent twice
    ((text, since),) = carrier.lookups
    assert (text.to_number, text.from_number, text.body) == (ANA, DEFAULT, "Your order is ready.")
    assert since == first_attempt_at


def test_ambiguous_then_retry_resends_when_the_carrier_does_not_have_it() -> None:
    carrier = FakeLookupCarrier(outcomes=[AMBIGUOUS])
    world = World(carrier=carrier)
    numbers(world)
    sender = world.sender()
    (queued,) = sender.submit(req(ANA), "req-1")
    sender.deliver(queued.message_id)

    resent = sender.deliver(queued.message_id)

    assert resent is not None and resent.status is MessageStatus.ACCEPTED
    assert len(carrier.lookups) == 1
    assert len(carrier.sent) == 2


def test_an_ambiguous_last_attempt_is_asked_about_before_the_message_fails() -> None:
    carrier = FakeLookupCarrier(outcomes=[AMBIGUOUS, AMBIGUOUS])
    world = World(carrier=carrier)
    numbers(world)
    sender = world.sender(policy=RetryPolicy(max_attempts=2))
    (queued,) = sender.submit(req(ANA), "req-1")
    sender.deliver(queued.message_id)
    sender.deliver(queued.message_id)  # the second and last attempt is ambiguous too

    assert message(world, queued.message_id).status is MessageStatus.RETRYING  # not failed unasked
    failed = sender.deliver(queued.message_id)

    assert failed is not None and failed.status is MessageStatus.FAILED
    assert failed.error_reason is not None
    assert failed.error_reason.startswith("gave up after 2 attempts")
    assert failed.error_reason.endswith("the carrier has no record of the last attempt")
    assert len(carrier.sent) == 2 and len(carrier.lookups) == 2  # asked, never sent a third time


def test_an_ambiguous_last_attempt_the_carrier_has_is_reconciled_not_failed() -> None:
    carrier = FakeLookupCarrier(outcomes=[AMBIGUOUS])
    world = World(carrier=carrier)
    numbers(world)
    sender = world.sender(policy=RetryPolicy(max_attempts=1))
    (queued,) = sender.submit(req(ANA), "req-1")
    sender.deliver(queued.message_id)
    carrier.known[ANA] = SendAccepted("SM-it-went", "sent")

    reconciled = sender.deliver(queued.message_id)

    assert reconciled is not None and reconciled.status is MessageStatus.ACCEPTED
    assert [a.outcome for a in reconciled.attempts] == ["ambiguous", "reconciled"]
    assert len(carrier.sent) == 1


def test_a_failed_lookup_sends_nothing_and_leaves_the_message_retrying() -> None:
    carrier = FakeLookupCarrier(outcomes=[AMBIGUOUS])
    world = World(carrier=carrier)
    numbers(world)
    sender = world.sender()
    (queued,) = sender.submit(req(ANA), "req-1")
    sender.deliver(queued.message_id)
    carrier.lookup_error = RuntimeError("lookup timed out")

    with pytest.raises(RuntimeError):
        sender.deliver(queued.message_id)

    assert len(carrier.sent) == 1
    assert message(world, queued.message_id).status is MessageStatus.RETRYING


def test_a_transient_failure_is_retried_without_a_lookup() -> None:
    carrier = FakeLookupCarrier(outcomes=[TRANSIENT])
    world = World(carrier=carrier)
    numbers(world)
    sender = world.sender()
    (queued,) = sender.submit(req(ANA), "req-1")
    sender.deliver(queued.message_id)
    sender.deliver(queued.message_id)
    assert carrier.lookups == []
    assert len(carrier.sent) == 2


# -- receipts that raced ahead of the acceptance ----------------------------------------------------


def early_receipt(sid: str, status: MessageStatus, seconds: int) -> StatusUpdate:
    return StatusUpdate(
        carrier="fake",
        carrier_message_id=sid,
        status=status,
        carrier_status=status.value,
        occurred_at=T0 + timedelta(seconds=seconds),
    )


def test_receipts_parked_before_the_acceptance_are_applied_when_it_is_recorded(world: World) -> None:
    processor = world.processor()
    processor.apply_receipt(early_receipt("SM777", MessageStatus.DELIVERED, 2))
    processor.apply_receipt(early_receipt("SM777", MessageStatus.SENT, 1))
    world.carrier.script(SendAccepted("SM777", "queued"))
    sender = world.sender()
    (queued,) = sender.submit(req(ANA), "req-1")

    result = sender.deliver(queued.message_id)

    assert result is not None and result.status is MessageStatus.DELIVERED
    assert [h.status for h in result.history][-3:] == [
        MessageStatus.ACCEPTED,
        MessageStatus.SENT,
        MessageStatus.DELIVERED,
    ]
    assert world.receipts.all_parked(10) == []


def test_without_the_hook_parked_receipts_wait_for_the_sweep(world: World) -> None:
    world.processor().apply_receipt(early_receipt("SM777", MessageStatus.DELIVERED, 2))
    world.carrier.script(SendAccepted("SM777", "queued"))
    sender = world.sender(apply_parked=False)
    (queued,) = sender.submit(req(ANA), "req-1")

    result = sender.deliver(queued.message_id)
    assert result is not None and result.status is MessageStatus.ACCEPTED

    assert world.processor().sweep_parked() == 1
    assert message(world, queued.message_id).status is MessageStatus.DELIVERED


# -- scheduled messages -----------------------------------------------------------------------------


def test_a_message_for_later_is_scheduled_then_released_when_due(world: World) -> None:
    sender = world.sender()
    send_at = T0 + timedelta(hours=1)
    (scheduled,) = sender.submit(req(ANA, send_at=send_at.isoformat()), "req-1")

    assert scheduled.status is MessageStatus.SCHEDULED
    assert scheduled.next_attempt_at == send_at
    assert world.send_queue.jobs == []
    assert sender.deliver(scheduled.message_id) == scheduled  # a stray job does not send early
    assert world.carrier.sent == []

    world.clock.advance(minutes=59)
    assert sender.release_due([message(world, scheduled.message_id)]) == 0
    assert world.send_queue.jobs == []

    world.clock.advance(minutes=1)
    assert sender.release_due([message(world, scheduled.message_id)]) == 1

    assert message(world, scheduled.message_id).status is MessageStatus.QUEUED
    assert world.send_queue.bodies == [{"message_id": scheduled.message_id}]
    deliver_queued(world, sender)
    assert message(world, scheduled.message_id).status is MessageStatus.ACCEPTED
    assert len(world.carrier.sent) == 1


def test_a_scheduled_text_to_someone_who_opted_out_meanwhile_is_suppressed_not_sent(world: World) -> None:
    sender = world.sender()
    (scheduled,) = sender.submit(req(ANA, send_at=(T0 + timedelta(hours=1)).isoformat()), "req-1")
    world.opt_outs.record(ANA, opted_out=True, source="twilio:keyword", at=T0, detail="STOP")

    world.clock.advance(hours=1)
    assert sender.release_due([message(world, scheduled.message_id)]) == 1
    deliver_queued(world, sender)

    stored = message(world, scheduled.message_id)
    assert stored.status is MessageStatus.SUPPRESSED
    assert stored.error_reason == "the recipient has opted out of messages from all our numbers"
    assert world.carrier.sent == []


def test_send_at_in_the_past_sends_now(world: World) -> None:
    (sent,) = world.sender().submit(req(ANA, send_at=(T0 - timedelta(minutes=5)).isoformat()), "req-1")
    assert sent.status is MessageStatus.QUEUED
    assert len(world.send_queue.jobs) == 1


def test_a_send_at_without_a_time_zone_is_a_validation_error_not_a_crash(world: World) -> None:
    with pytest.raises(ValidationError) as caught:
        req(ANA, send_at="2030-01-01T09:00:00")
    assert caught.value.errors()[0]["loc"] == ("send_at",)


# -- reading send-queue records ---------------------------------------------------------------------

REQUEST = {"to": [ANA], "body": "hello"}


def test_a_message_job_record() -> None:
    job = parse_send_record(json.dumps({"message_id": "out_1"}), "sqs-1")
    assert (job.message_id, job.request, job.request_key) == ("out_1", None, None)


def test_an_eventbridge_envelope_is_keyed_by_the_event_id() -> None:
    record = {
        "version": "0",
        "id": "evt-42",
        "detail-type": "SendMessage",
        "source": "crm",
        "detail": REQUEST,
    }
    job = parse_send_record(json.dumps(record), "sqs-1")
    assert job.request is not None and job.request.to == [ANA]
    assert job.request_key == "eb:evt-42"
    assert job.message_id is None


def test_a_raw_request_is_keyed_by_the_sqs_message_id() -> None:
    job = parse_send_record(json.dumps(REQUEST), "sqs-1")
    assert job.request is not None and job.request.body == "hello"
    assert job.request_key == "sqs:sqs-1"


def test_an_explicit_idempotency_key_wins_in_both_shapes() -> None:
    raw = parse_send_record(json.dumps({**REQUEST, "idempotency_key": "mine"}), "sqs-1")
    envelope = parse_send_record(
        json.dumps(
            {"id": "evt-1", "detail-type": "SendMessage", "detail": {**REQUEST, "idempotency_key": "mine"}}
        ),
        "sqs-1",
    )
    assert raw.request_key == envelope.request_key == "mine"


def test_two_envelopes_without_an_event_id_are_not_the_same_request() -> None:
    envelope = {"detail-type": "SendMessage", "detail": REQUEST}
    one = parse_send_record(json.dumps(envelope), "sqs-1")
    two = parse_send_record(json.dumps(envelope), "sqs-2")
    assert one.request_key != two.request_key
    assert one.request_key is not None and "None" not in one.request_key


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1, 2]",
        '"a string"',
        "{}",
        json.dumps({"detail-type": "SomethingElse", "id": "e", "detail": REQUEST}),
        json.dumps({"detail-type": "SendMessage", "id": "e", "detail": {"to": [ANA]}}),
        json.dumps({"to": ["not a number"], "body": "x"}),
        json.dumps({"to": [ANA], "body": "x", "template_id": "t"}),
        json.dumps({"message_id": "out_1", "extra": True}),
    ],
)
def test_bad_records_raise(body: str) -> None:
    with pytest.raises(ValueError):
        parse_send_record(body, "sqs-1")


def test_a_message_left_sending_by_a_stopped_worker_is_recovered_by_the_sweep(world: World) -> None:
    sender = world.sender()
    (stuck,) = sender.submit(req(ANA), "req-stuck")
    (fresh,) = sender.submit(req(BO), "req-fresh")
    for m in (stuck, fresh):
        current = message(world, m.message_id)
        world.messages.update(
            current.model_copy(update={"status": MessageStatus.SENDING}), expected_version=current.version
        )
    world.clock.advance(minutes=6)
    current = message(world, fresh.message_id)  # touched recently: still in its worker's hands
    world.messages.update(current, expected_version=current.version)

    pending = [message(world, stuck.message_id), message(world, fresh.message_id)]
    assert sender.recover_stuck(pending) == 1

    recovered = message(world, stuck.message_id)
    assert recovered.status is MessageStatus.RETRYING
    assert [a.outcome for a in recovered.attempts] == ["ambiguous"]
    assert world.retry_queue.bodies == [{"message_id": stuck.message_id}]
    assert message(world, fresh.message_id).status is MessageStatus.SENDING
    assert world.carrier.sent == []  # nothing is resent before the carrier is asked


def test_a_queued_text_whose_job_was_lost_is_queued_again_by_the_sweep_and_sent_once(world: World) -> None:
    sender = world.sender()
    (lost,) = sender.submit(req(ANA), "req-lost")
    world.send_queue.take()  # the queue send failed after the write, and nobody asked again
    world.clock.advance(minutes=4)
    assert sender.recover_stuck([message(world, lost.message_id)]) == 0  # not yet: it may be on its way

    world.clock.advance(minutes=2)
    assert sender.recover_stuck([message(world, lost.message_id)]) == 1
    assert sender.recover_stuck([message(world, lost.message_id)]) == 0  # dated: not again at once
    jobs = world.send_queue.take()
    assert [j.body for j in jobs] == [{"message_id": lost.message_id}]
    for job in [*jobs, *jobs]:  # even delivered twice, it is sent once
        sender.deliver(job.body["message_id"])

    assert message(world, lost.message_id).status is MessageStatus.ACCEPTED
    assert len(world.carrier.sent) == 1


def test_a_retrying_text_whose_job_was_lost_goes_back_on_the_retry_queue_after_its_time(world: World) -> None:
    sender = world.sender()
    world.carrier.script(TRANSIENT)
    (waiting,) = sender.submit(req(ANA), "req-retry")
    deliver_queued(world, sender)
    world.retry_queue.take()  # its backoff job is lost
    due = message(world, waiting.message_id).next_attempt_at
    assert due is not None

    world.clock.set(due + timedelta(minutes=4))
    assert sender.recover_stuck([message(world, waiting.message_id)]) == 0
    world.clock.set(due + timedelta(minutes=6))
    assert sender.recover_stuck([message(world, waiting.message_id)]) == 1
    assert world.retry_queue.bodies == [{"message_id": waiting.message_id}]


def test_a_text_waiting_for_its_rate_turn_is_not_taken_for_lost(world: World) -> None:
    sender = world.sender(rate_limited=True)
    sender.submit(req(BO), "req-first")
    deliver_queued(world, sender)
    (later,) = sender.submit(req(ANA), "req-later")
    deliver_queued(world, sender)  # waits for its turn, a second away
    world.rate_limiter.buckets[DEFAULT] = BucketState(tokens=-2000.0, at=world.clock.now)
    (far,) = sender.submit(req(CY), "req-far")
    deliver_queued(world, sender)  # beyond the horizon: back in 15 minutes, nothing reserved
    world.clock.advance(minutes=10)

    pending = [message(world, later.message_id), message(world, far.message_id)]
    assert sender.recover_stuck(pending) == 1  # the first's turn passed long ago; the far one is due later
    assert world.send_queue.bodies == [{"message_id": later.message_id}]


def test_a_redelivered_request_does_not_cut_a_retry_backoff_short(world: World) -> None:
    sender = world.sender()
    world.carrier.script(TRANSIENT)
    (first,) = sender.handle_request(req(ANA), "req-backoff")
    assert first.status is MessageStatus.RETRYING

    (again,) = sender.handle_request(req(ANA), "req-backoff")

    assert again.status is MessageStatus.RETRYING
    assert len(world.carrier.sent) == 1


def test_a_carrier_saying_the_recipient_opted_out_records_it_and_later_sends_are_suppressed(
    world: World,
) -> None:
    sender = world.sender()
    world.carrier.script(
        SendFailed(FailureKind.PERMANENT, "the recipient has opted out (replied STOP)", "21610", 400, True)
    )
    (first,) = sender.handle_request(req(ANA), "req-opted-out-1")
    assert first.status is MessageStatus.FAILED
    record = world.opt_outs.get(ANA)
    assert record is not None and record.opted_out

    (second,) = sender.handle_request(req(ANA), "req-opted-out-2")

    assert second.status is MessageStatus.SUPPRESSED
    assert second.error_reason == "the recipient has opted out of messages from all our numbers"
    assert len(world.carrier.sent) == 1  # the suppressed text never reached the carrier


def test_a_lookup_that_finds_a_text_we_already_own_leaves_the_message_for_a_person() -> None:
    # Same customer, same sender, same words within minutes: the carrier's search can't tell them apart.
    carrier = FakeLookupCarrier(outcomes=[SendAccepted("FK-A", "queued"), AMBIGUOUS])
    world = World(carrier=carrier)
    numbers(world)
    sender = world.sender()
    (first,) = sender.handle_request(req(ANA, body="See you at 5"), "req-a")
    carrier.known[ANA] = SendAccepted("FK-A", "delivered")  # the search returns the first text

    (second,) = sender.handle_request(req(ANA, body="See you at 5"), "req-b")
    assert second.status is MessageStatus.RETRYING
    settled = sender.deliver(second.message_id)

    assert settled is not None and settled.status is MessageStatus.FAILED
    assert settled.carrier_message_id is None  # never claims the other message's carrier id
    assert message(world, first.message_id).status is MessageStatus.ACCEPTED
    assert len(carrier.sent) == 2  # and never sent a third time


def test_an_accepted_message_carries_no_error_from_earlier_attempts(world: World) -> None:
    world.carrier.script(TRANSIENT)
    sender = world.sender()
    (queued,) = sender.handle_request(req(ANA), "req-clear")

    accepted = sender.deliver(queued.message_id)

    assert accepted is not None and accepted.status is MessageStatus.ACCEPTED
    assert (accepted.error_code, accepted.error_reason) == (None, None)
    assert accepted.attempts[0].error_code == "20429"


def test_the_opt_out_confirmation_reaches_an_opted_out_customer_once_from_the_number_they_texted(
    world: World,
) -> None:
    world.opt_outs.record(ANA, opted_out=True, source="keyword", at=T0, detail="STOP")
    sender = world.sender()

    first = sender.send_compliance_reply(Keyword.OPT_OUT, ANA, SECOND, "in_stop_1")
    again = sender.send_compliance_reply(Keyword.OPT_OUT, ANA, SECOND, "in_stop_1")

    assert first is not None and first.status is MessageStatus.ACCEPTED
    assert again is not None and again.message_id == first.message_id
    (text,) = world.carrier.sent
    assert (text.to_number, text.from_number) == (ANA, SECOND)
    assert "Reply START" in text.body
    # An ordinary text to the same customer is still suppressed.
    (ordinary,) = sender.handle_request(req(ANA), "req-after-stop")
    assert ordinary.status is MessageStatus.SUPPRESSED


def test_a_compliance_job_on_the_send_queue_is_read() -> None:
    job_body = {"keyword": "help", "to": ANA, "our_number": DEFAULT, "reference": "in_1"}
    body = json.dumps({"compliance": job_body})
    job = parse_send_record(body, "rec-1")
    assert job.compliance is not None
    assert (job.compliance.keyword, job.compliance.reference) == (Keyword.HELP, "in_1")


def test_a_scheduled_text_can_be_cancelled_and_the_sweep_never_sends_it(world: World) -> None:
    sender = world.sender()
    (scheduled,) = sender.submit(req(ANA, send_at=(T0 + timedelta(hours=2)).isoformat()), "req-sched")
    assert scheduled.status is MessageStatus.SCHEDULED

    cancelled = sender.cancel(scheduled)
    world.clock.advance(hours=3)
    released = sender.release_due([message(world, scheduled.message_id)])

    assert cancelled.status is MessageStatus.CANCELED
    assert released == 0 and world.carrier.sent == []
    assert message(world, scheduled.message_id).status is MessageStatus.CANCELED


def test_a_text_already_with_the_carrier_cannot_be_cancelled(world: World) -> None:
    sender = world.sender()
    (sent,) = sender.handle_request(req(ANA), "req-gone")
    with pytest.raises(NotCancellable, match="accepted"):
        sender.cancel(sent)


def test_render_fills_a_template_from_the_recipients_contact_and_names_missing_fields(world: World) -> None:
    world.templates.save(Template(template_id="t", name="T", body="Hi {{first_name}}, {{when|soon}}"))
    world.contacts.save(ContactRecord(contact_id="c1", name="Ana B", first_name="Ana", phone=ANA))
    sender = world.sender()

    assert (
        sender.render(body=None, template_id="t", merge_values={}, to=ANA, team="default") == "Hi Ana, soon"
    )
    with pytest.raises(SendRejected, match="first_name"):
        sender.render(body=None, template_id="t", merge_values={}, to=BO, team="default")


# -- quiet hours ----------------------------------------------------------------------------------


def quiet_world(at_utc: datetime) -> World:
    world = World()
    numbers(world)
    world.clock.set(at_utc)
    return world


def test_a_text_due_at_night_in_the_recipients_zone_is_held_and_sent_when_it_opens() -> None:
    world = quiet_world(datetime(2026, 11, 28, 7, 0, tzinfo=UTC))  # 23:00 in Los Angeles (+1415...)
    sender = world.sender(quiet_hours="21:00-08:00")

    (held,) = sender.handle_request(req(ANA), "req-night")
    assert held.status is MessageStatus.HELD
    assert held.next_attempt_at == datetime(2026, 11, 28, 16, 0, tzinfo=UTC)
    assert world.carrier.sent == []

    world.clock.set(datetime(2026, 11, 28, 15, 59, tzinfo=UTC))
    assert sender.release_due([message(world, held.message_id)]) == 0
    world.clock.set(datetime(2026, 11, 28, 16, 0, tzinfo=UTC))
    assert sender.release_due([message(world, held.message_id)]) == 1
    assert world.send_queue.bodies[-1] == {"message_id": held.message_id}


def test_a_number_without_quiet_hours_sends_at_night_and_the_stop_confirmation_is_never_held() -> None:
    world = quiet_world(datetime(2026, 11, 28, 7, 0, tzinfo=UTC))
    world.numbers.save(OurNumber(number=SECOND, carrier="fake", quiet_hours=""))
    sender = world.sender(quiet_hours="21:00-08:00")

    (own_rule,) = sender.handle_request(req(ANA, **{"from": SECOND}), "req-own")
    confirmation = sender.send_compliance_reply(Keyword.OPT_OUT, BO, DEFAULT, "in_stop")

    assert own_rule.status is MessageStatus.ACCEPTED
    assert confirmation is not None and confirmation.status is MessageStatus.ACCEPTED


def test_a_scheduled_text_falling_due_at_night_waits_for_the_morning() -> None:
    world = quiet_world(datetime(2026, 11, 28, 1, 0, tzinfo=UTC))  # 17:00 in Los Angeles
    sender = world.sender(quiet_hours="21:00-08:00")
    send_at = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)  # 22:00 there
    (scheduled,) = sender.submit(req(ANA, send_at=send_at.isoformat()), "req-late")

    world.clock.set(send_at)
    assert sender.release_due([message(world, scheduled.message_id)]) == 0

    waiting = message(world, scheduled.message_id)
    assert waiting.status is MessageStatus.HELD
    assert waiting.next_attempt_at == datetime(2026, 11, 28, 16, 0, tzinfo=UTC)


def test_a_rejected_queued_request_becomes_failed_messages_once_without_conversations(world: World) -> None:
    sender = world.sender()
    body = json.dumps(
        {"detail-type": "SendMessage", "id": "ev-1", "detail": {"to": ["12", ANA], "body": "x"}}
    )

    first = sender.record_rejected(body, "rec-1", "to.0: '12' has the wrong number of digits")
    again = sender.record_rejected(body, "rec-1", "to.0: '12' has the wrong number of digits")

    assert [m.customer_number for m in first] == ["12", ANA]
    assert all(
        m.status is MessageStatus.FAILED and "wrong number of digits" in (m.error_reason or "") for m in first
    )
    assert again == []  # a redelivery adds nothing
    assert world.conversations.get(ANA) is None  # nothing was sent, so no conversation
    assert world.events.types.count("MessageFailed") == 2


def test_a_scheduled_text_can_be_moved_before_it_is_sent_but_not_after(world: World) -> None:
    sender = world.sender()
    (scheduled,) = sender.submit(req(ANA, send_at=(T0 + timedelta(hours=2)).isoformat()), "req-move")

    moved = sender.reschedule(scheduled, T0 + timedelta(hours=5))
    world.clock.advance(hours=3)
    assert sender.release_due([message(world, moved.message_id)]) == 0  # not yet: it moved
    world.clock.advance(hours=2)
    assert sender.release_due([message(world, moved.message_id)]) == 1

    with pytest.raises(NotCancellable, match="queued"):
        sender.reschedule(message(world, moved.message_id), T0 + timedelta(hours=9))
    with pytest.raises(ValueError, match="a year"):
        (other,) = sender.submit(req(BO, send_at=(T0 + timedelta(days=400)).isoformat()), "req-far")
        sender.reschedule(other, T0 + timedelta(days=800))
