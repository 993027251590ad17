"""Inbound: webhooks verified before anything is queued; each carrier event stored once; receipts one-way."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from parley.carriers.base import (
    ParsedEvent,
    ParsedInbound,
    ParsedMedia,
    ParsedStatus,
    PayloadError,
    SignatureError,
    WebhookKind,
    WebhookRequest,
)
from parley.carriers.config import CarrierConfig
from parley.domain.ids import inbound_message_id
from parley.domain.keywords import Keyword
from parley.domain.models import (
    CarrierEventEnvelope,
    Concat,
    ContactRecord,
    Direction,
    InboundMessage,
    Message,
    MessageStatus,
    OurNumber,
    StatusChange,
    StatusUpdate,
)
from parley.edge import (
    MAX_EVENTS_PER_WEBHOOK,
    MAX_QUEUED_BYTES,
    MAX_WEBHOOK_BYTES,
    WebhookIntake,
    WebhookTooLarge,
    queue_text,
)
from parley.ports import ConflictError, ConversationDelta
from tests.fakes import T0, World

OURS_A = "+15005550006"
OURS_B = "+15005550007"
CUSTOMER = "+14155550100"
OTHER = "+14155550199"


@pytest.fixture
def world() -> World:
    w = World()
    w.numbers.save(OurNumber(number=OURS_A, carrier="fake", team="sales", owner="ana", is_default=True))
    w.numbers.save(OurNumber(number=OURS_B, carrier="fake", team="sales", owner="bo"))
    return w


def inbound(
    sid: str = "SM1", *, frm: str = CUSTOMER, to: str = OURS_A, body: str = "hello", minutes: int = 0
) -> InboundMessage:
    return InboundMessage(
        carrier="fake",
        carrier_message_id=sid,
        from_number=frm,
        to_number=to,
        body=body,
        received_at=T0 + timedelta(minutes=minutes),
    )


def receipt(sid: str, status: MessageStatus, *, seconds: int = 0, code: str | None = None) -> StatusUpdate:
    return StatusUpdate(
        carrier="fake",
        carrier_message_id=sid,
        status=status,
        carrier_status=status.value,
        error_code=code,
        error_message="unreachable" if code else None,
        occurred_at=T0 + timedelta(seconds=seconds),
    )


def wire(event: InboundMessage | StatusUpdate) -> ParsedEvent:
    """The same event as a carrier plugin hands it to the webhook intake."""
    data = event.model_dump()
    if isinstance(event, InboundMessage):
        data["media"] = tuple(ParsedMedia(**m) for m in data["media"])
        return ParsedInbound(**data)
    return ParsedStatus(**data)


def outbound(world: World, message_id: str, *, sid: str | None, status: MessageStatus) -> Message:
    """An outbound message as the send path leaves it after the carrier accepted it."""
    message = Message(
        message_id=message_id,
        direction=Direction.OUTBOUND,
        customer_number=CUSTOMER,
        our_number=OURS_A,
        body="your order shipped",
        status=status,
        carrier="fake",
        carrier_message_id=sid,
        created_at=T0,
        updated_at=T0,
        history=[StatusChange(status=status, at=T0, source="parley")],
    )
    world.messages.items[message_id] = message
    return message


def statuses(message: Message | None) -> list[MessageStatus]:
    assert message is not None
    return [h.status for h in message.history]


# -- storing inbound texts ------------------------------------------------------------------------


def test_the_same_inbound_event_is_stored_once(world: World) -> None:
    processor = world.processor()

    first = processor.store_inbound(inbound("SM1"))
    second = processor.store_inbound(inbound("SM1"))

    assert first is not None
    assert first.message_id == inbound_message_id("fake", "SM1")
    assert second is None
    assert len(world.messages.items) == 1
    conversation = world.conversations.get(CUSTOMER)
    assert conversation is not None
    assert conversation.unread_count == 1
    assert conversation.message_count == 1
    assert world.events.types == ["MessageReceived"]


def test_a_redelivered_envelope_through_handle_is_also_stored_once(world: World) -> None:
    envelope = CarrierEventEnvelope(event=inbound("SM9"), correlation_id="req-1")
    again = CarrierEventEnvelope.model_validate_json(envelope.model_dump_json())
    processor = world.processor()

    processor.handle(envelope)
    processor.handle(again)

    assert len(world.messages.items) == 1
    conversation = world.conversations.get(CUSTOMER)
    assert conversation is not None and conversation.message_count == 1


def test_two_customers_get_two_conversations(world: World) -> None:
    processor = world.processor()
    processor.store_inbound(inbound("SM1", frm=CUSTOMER))
    processor.store_inbound(inbound("SM2", frm=OTHER))

    one, two = world.conversations.get(CUSTOMER), world.conversations.get(OTHER)
    assert one is not None and two is not None
    assert (one.message_count, two.message_count) == (1, 1)
    assert one.last_message_id == inbound_message_id("fake", "SM1")
    assert two.last_message_id == inbound_message_id("fake", "SM2")


def test_one_customer_via_two_of_our_numbers_is_one_conversation(world: World) -> None:
    processor = world.processor()
    processor.store_inbound(inbound("SM1", to=OURS_A, body="first", minutes=0))
    processor.store_inbound(inbound("SM2", to=OURS_B, body="second", minutes=1))

    assert list(world.conversations.items) == [CUSTOMER]
    conversation = world.conversations.get(CUSTOMER)
    assert conversation is not None
    assert conversation.our_numbers == [OURS_A, OURS_B]
    assert conversation.message_count == 2
    assert conversation.unread_count == 2
    assert conversation.last_our_number == OURS_B  # the sticky sender follows the latest text
    assert conversation.last_message_preview == "second"


def test_the_conversation_takes_team_and_owner_from_our_number(world: World) -> None:
    world.processor().store_inbound(inbound("SM1"))
    conversation = world.conversations.get(CUSTOMER)
    assert conversation is not None
    assert (conversation.team, conversation.owner) == ("sales", "ana")


def test_a_single_matching_contact_is_linked_and_its_owner_wins(world: World) -> None:
    world.contacts.save(ContactRecord(contact_id="c1", name="Cy", phone=CUSTOMER, owner="cy-owner"))
    world.processor().store_inbound(inbound("SM1"))
    conversation = world.conversations.get(CUSTOMER)
    assert conversation is not None
    assert (conversation.contact_id, conversation.owner) == ("c1", "cy-owner")


def test_an_ambiguous_contact_match_links_nobody(world: World) -> None:
    world.contacts.save(ContactRecord(contact_id="c1", name="Cy", phone=CUSTOMER))
    world.contacts.save(ContactRecord(contact_id="c2", name="Cy's wife", phone=CUSTOMER))
    world.processor().store_inbound(inbound("SM1"))
    conversation = world.conversations.get(CUSTOMER)
    assert conversation is not None and conversation.contact_id is None


def test_a_text_to_a_number_we_do_not_know_lands_in_the_default_team(world: World) -> None:
    world.processor().store_inbound(inbound("SM1", to="+15005550009"))
    conversation = world.conversations.get(CUSTOMER)
    assert conversation is not None and conversation.team == "default"


def test_message_received_event_describes_the_text(world: World) -> None:
    stored = world.processor().store_inbound(inbound("SM1", body="is it ready?"))
    assert stored is not None
    (detail,) = world.events.of("MessageReceived")
    assert detail["message_id"] == stored.message_id
    assert detail["direction"] == "inbound"
    assert detail["status"] == "received"
    assert detail["customer_number"] == CUSTOMER


# -- receipts -------------------------------------------------------------------------------------


def test_receipts_move_a_message_forward_and_a_late_sent_does_not_regress(world: World) -> None:
    outbound(world, "out_1", sid="SM100", status=MessageStatus.ACCEPTED)
    processor = world.processor()

    processor.apply_receipt(receipt("SM100", MessageStatus.SENT, seconds=1))
    processor.apply_receipt(receipt("SM100", MessageStatus.DELIVERED, seconds=2))
    processor.apply_receipt(receipt("SM100", MessageStatus.SENT, seconds=1))  # late duplicate

    message = world.messages.get("out_1")
    assert message is not None and message.status is MessageStatus.DELIVERED
    assert statuses(message) == [MessageStatus.ACCEPTED, MessageStatus.SENT, MessageStatus.DELIVERED]
    assert [d["message_id"] for d in world.events.of("MessageDelivered")] == ["out_1"]


def test_a_repeated_receipt_writes_nothing_and_publishes_nothing(world: World) -> None:
    outbound(world, "out_1", sid="SM100", status=MessageStatus.ACCEPTED)
    processor = world.processor()
    processor.apply_receipt(receipt("SM100", MessageStatus.DELIVERED))
    writes = world.messages.updates

    processor.apply_receipt(receipt("SM100", MessageStatus.DELIVERED))

    assert world.messages.updates == writes
    assert len(world.events.of("MessageDelivered")) == 1


def test_a_failure_receipt_records_the_carrier_reason_and_publishes_failed(world: World) -> None:
    outbound(world, "out_1", sid="SM100", status=MessageStatus.SENT)
    world.processor().apply_receipt(receipt("SM100", MessageStatus.UNDELIVERED, code="30003"))

    message = world.messages.get("out_1")
    assert message is not None
    assert (message.status, message.error_code, message.error_reason) == (
        MessageStatus.UNDELIVERED,
        "30003",
        "unreachable",
    )
    assert [d["message_id"] for d in world.events.of("MessageFailed")] == ["out_1"]


def test_a_receipt_survives_a_concurrent_writer(world: World) -> None:
    outbound(world, "out_1", sid="SM100", status=MessageStatus.ACCEPTED)
    world.messages.inject_conflicts(2)

    world.processor().apply_receipt(receipt("SM100", MessageStatus.DELIVERED))

    message = world.messages.get("out_1")
    assert message is not None and message.status is MessageStatus.DELIVERED


def test_a_message_that_never_stops_changing_raises_rather_than_dropping_the_receipt(world: World) -> None:
    outbound(world, "out_1", sid="SM100", status=MessageStatus.ACCEPTED)
    world.messages.inject_conflicts(100)

    with pytest.raises(ConflictError):
        world.processor().apply_receipt(receipt("SM100", MessageStatus.DELIVERED))


def test_a_receipt_for_an_unknown_carrier_id_is_parked_not_dropped(world: World) -> None:
    world.processor().apply_receipt(receipt("SM404", MessageStatus.DELIVERED))

    assert [u.status for u in world.receipts.parked_for("fake", "SM404")] == [MessageStatus.DELIVERED]
    assert world.messages.items == {}


def test_parked_receipts_are_applied_oldest_first_once_the_id_is_known(world: World) -> None:
    processor = world.processor()
    # they arrive out of order, before the send recorded the carrier id
    processor.apply_receipt(receipt("SM200", MessageStatus.DELIVERED, seconds=5))
    processor.apply_receipt(receipt("SM200", MessageStatus.SENT, seconds=2))
    outbound(world, "out_2", sid="SM200", status=MessageStatus.ACCEPTED)

    applied = processor.apply_parked("fake", "SM200")

    assert applied == 2
    message = world.messages.get("out_2")
    assert message is not None and message.status is MessageStatus.DELIVERED
    # oldest first: `sent` was applied before `delivered`, so it is in the history
    assert statuses(message) == [MessageStatus.ACCEPTED, MessageStatus.SENT, MessageStatus.DELIVERED]
    assert world.receipts.parked_for("fake", "SM200") == []


def test_apply_parked_for_a_still_unknown_id_keeps_the_receipts(world: World) -> None:
    processor = world.processor()
    processor.apply_receipt(receipt("SM300", MessageStatus.DELIVERED))

    assert processor.apply_parked("fake", "SM300") == 0
    assert len(world.receipts.parked_for("fake", "SM300")) == 1


def test_sweep_applies_what_it_can_and_leaves_the_rest(world: World) -> None:
    processor = world.processor()
    processor.apply_receipt(receipt("SM1", MessageStatus.SENT, seconds=1))
    processor.apply_receipt(receipt("SM1", MessageStatus.DELIVERED, seconds=2))
    processor.apply_receipt(receipt("SM2", MessageStatus.DELIVERED, seconds=3))
    outbound(world, "out_1", sid="SM1", status=MessageStatus.ACCEPTED)

    applied = processor.sweep_parked()

    assert applied == 2
    message = world.messages.get("out_1")
    assert message is not None and message.status is MessageStatus.DELIVERED
    assert world.receipts.parked_for("fake", "SM1") == []
    assert [u.carrier_message_id for u in world.receipts.all_parked(100)] == ["SM2"]


def test_receipts_never_touch_an_inbound_message(world: World) -> None:
    stored = world.processor().store_inbound(inbound("SM1"))
    assert stored is not None

    world.processor().apply_receipt(receipt("SM1", MessageStatus.DELIVERED))

    message = world.messages.get(stored.message_id)
    assert message is not None and message.status is MessageStatus.RECEIVED


# -- the webhook intake ---------------------------------------------------------------------------


def webhook(body: bytes = b"MessageSid=SM1") -> WebhookRequest:
    return WebhookRequest(
        method="POST",
        url="https://hooks.example.test/webhooks/fake/messages",
        headers={"content-type": "application/x-www-form-urlencoded"},
        body=body,
    )


def test_intake_verifies_parses_enqueues_and_acks(world: World) -> None:
    world.carrier.events = [wire(inbound("SM1"))]

    outcome = world.intake().accept(world.carrier, WebhookKind.MESSAGES, webhook(), "corr-1")

    assert (outcome.events, outcome.verified) == (1, True)
    assert outcome.ack == world.carrier.ack_response
    (body,) = world.inbound_queue.bodies
    envelope = CarrierEventEnvelope.model_validate(body)
    assert envelope.correlation_id == "corr-1"
    assert envelope.event == inbound("SM1")


def test_a_forged_signature_is_rejected_and_nothing_is_enqueued(world: World) -> None:
    world.carrier.events = [wire(inbound("SM1"))]
    world.carrier.signature_error = "signature does not match"

    with pytest.raises(SignatureError):
        world.intake().accept(world.carrier, WebhookKind.MESSAGES, webhook(), "corr-1")

    assert world.inbound_queue.jobs == []


def test_log_only_mode_keeps_the_webhook_but_says_it_was_not_verified(world: World) -> None:
    world.carrier.events = [wire(inbound("SM1"))]
    world.carrier.signature_error = "signature does not match"

    outcome = world.intake(log_only=True).accept(world.carrier, WebhookKind.MESSAGES, webhook(), "corr-1")

    assert outcome.verified is False
    assert len(world.inbound_queue.jobs) == 1


def test_an_oversized_body_is_refused_before_verification_and_nothing_is_enqueued(world: World) -> None:
    world.carrier.events = [wire(inbound("SM1"))]

    with pytest.raises(WebhookTooLarge):
        world.intake().accept(
            world.carrier, WebhookKind.MESSAGES, webhook(b"x" * (MAX_WEBHOOK_BYTES + 1)), "corr-1"
        )

    assert world.inbound_queue.jobs == []
    assert world.carrier.verified == []


def test_a_body_exactly_at_the_limit_is_accepted(world: World) -> None:
    world.carrier.events = [wire(inbound("SM1"))]
    outcome = world.intake().accept(
        world.carrier, WebhookKind.MESSAGES, webhook(b"x" * MAX_WEBHOOK_BYTES), "corr-1"
    )
    assert outcome.events == 1


def test_an_unparseable_payload_enqueues_nothing(world: World) -> None:
    world.carrier.payload_error = "MessageSid is missing"
    with pytest.raises(PayloadError):
        world.intake().accept(world.carrier, WebhookKind.MESSAGES, webhook(), "corr-1")
    assert world.inbound_queue.jobs == []


def test_intake_then_processor_end_to_end_publishes_received_and_delivered(world: World) -> None:
    outbound(world, "out_1", sid="SM500", status=MessageStatus.SENT)
    world.carrier.events = [wire(inbound("SM1")), wire(receipt("SM500", MessageStatus.DELIVERED))]

    world.intake().accept(world.carrier, WebhookKind.MESSAGES, webhook(), "corr-1")
    processor = world.processor()
    for job in world.inbound_queue.take():
        processor.handle(CarrierEventEnvelope.model_validate(job.body))

    assert world.events.types == ["MessageReceived", "MessageDelivered"]
    delivered = world.messages.get("out_1")
    assert delivered is not None and delivered.status is MessageStatus.DELIVERED


# -- long texts in parts, per-part receipts, opt-out signals ----------------------------------------


def part(n: int, total: int, body: str, *, ref: str = "ref-7", minutes: int = 0) -> InboundMessage:
    return inbound(f"PART{n}", body=body, minutes=minutes).model_copy(
        update={"concat": Concat(ref=ref, part=n, total=total)}
    )


def envelope(event: InboundMessage | StatusUpdate) -> CarrierEventEnvelope:
    return CarrierEventEnvelope(event=event, correlation_id="c")


def test_a_long_text_in_parts_is_stored_once_whole_in_part_order(world: World) -> None:
    processor = world.processor()
    for event in (part(2, 3, "world, "), part(3, 3, "again."), part(2, 3, "world, "), part(1, 3, "Hello ")):
        processor.handle(envelope(event))

    (stored,) = world.messages.items.values()
    assert stored.body == "Hello world, again."
    assert stored.segments == 3
    left = world.receipts.parts(f"fake#{CUSTOMER}#{OURS_A}#ref-7#3")
    assert sorted(left) == ["assembled#PART1", "assembled#PART2", "assembled#PART3"]  # only the marks
    assert world.conversations.get(CUSTOMER) is not None


def test_an_incomplete_long_text_waits_and_stores_nothing(world: World) -> None:
    world.processor().handle(envelope(part(1, 2, "Hello ")))
    assert world.messages.items == {}


def per_part(sid: str, n: int, status: MessageStatus, *, seconds: int = 0) -> StatusUpdate:
    return receipt(sid, status, seconds=seconds).model_copy(update={"part": n, "parts": 2})


def test_a_long_text_is_delivered_only_when_every_part_is(world: World) -> None:
    outbound(world, "out_long", sid="SMLONG", status=MessageStatus.SENT)
    processor = world.processor()

    processor.apply_receipt(per_part("SMLONG", 1, MessageStatus.DELIVERED))
    assert world.messages.items["out_long"].status is MessageStatus.SENT

    processor.apply_receipt(per_part("SMLONG", 2, MessageStatus.DELIVERED, seconds=1))
    delivered = world.messages.items["out_long"]
    assert delivered.status is MessageStatus.DELIVERED
    assert delivered.part_statuses == {"1": MessageStatus.DELIVERED, "2": MessageStatus.DELIVERED}


def test_a_long_text_with_one_failed_part_is_partially_delivered(world: World) -> None:
    outbound(world, "out_long", sid="SMLONG", status=MessageStatus.SENT)
    processor = world.processor()
    processor.apply_receipt(per_part("SMLONG", 2, MessageStatus.UNDELIVERED))
    processor.apply_receipt(per_part("SMLONG", 1, MessageStatus.DELIVERED, seconds=1))
    assert world.messages.items["out_long"].status is MessageStatus.PARTIALLY_DELIVERED


def test_a_stop_the_carrier_handled_is_recorded_as_an_opt_out_and_start_reverses_it(world: World) -> None:
    processor = world.processor()
    processor.store_inbound(inbound("SM1", body="STOP").model_copy(update={"opt_out": "STOP"}))
    record = world.opt_outs.get(CUSTOMER)
    assert record is not None and record.opted_out
    assert record.history[0].source == "fake:keyword"

    processor.store_inbound(inbound("SM2", body="START", minutes=1).model_copy(update={"opt_out": "START"}))
    record = world.opt_outs.get(CUSTOMER)
    assert record is not None and not record.opted_out
    assert [c.opted_out for c in record.history] == [True, False]


def test_a_receipt_saying_the_recipient_opted_out_is_recorded(world: World) -> None:
    outbound(world, "out_1", sid="SM500", status=MessageStatus.SENT)
    update = receipt("SM500", MessageStatus.FAILED, code="40300").model_copy(update={"opted_out": True})

    world.processor().apply_receipt(update)

    record = world.opt_outs.get(CUSTOMER)
    assert record is not None and record.opted_out
    assert record.history[-1].source == "fake:40300"


def test_receipts_for_each_parts_own_id_are_tied_to_the_message_by_our_id(world: World) -> None:
    message = outbound(world, "out_v", sid="0A01", status=MessageStatus.SENT)
    world.messages.items["out_v"] = message.model_copy(update={"carrier_part_ids": ["0A01", "0A02"]})
    processor = world.processor()

    for sid in ("0A02", "0A01"):
        processor.apply_receipt(
            receipt(sid, MessageStatus.DELIVERED).model_copy(update={"client_ref": "out_v"})
        )

    delivered = world.messages.items["out_v"]
    assert delivered.status is MessageStatus.DELIVERED
    assert delivered.part_statuses == {"1": MessageStatus.DELIVERED, "2": MessageStatus.DELIVERED}
    assert world.receipts.items == {}  # nothing parked


def test_a_client_ref_naming_a_message_of_another_carrier_id_does_not_capture_the_receipt(
    world: World,
) -> None:
    outbound(world, "out_v", sid="0A01", status=MessageStatus.SENT)
    stray = receipt("ZZ99", MessageStatus.DELIVERED).model_copy(update={"client_ref": "out_v"})

    world.processor().apply_receipt(stray)

    assert world.messages.items["out_v"].status is MessageStatus.SENT
    assert len(world.receipts.items) == 1  # parked until (if ever) that id is known


def test_log_only_can_be_set_for_one_carrier_while_others_enforce(world: World) -> None:
    world.carrier.events = [wire(inbound("SM1"))]
    world.carrier.signature_error = "signature does not match"
    intake = WebhookIntake(world.inbound_queue, log_only=lambda carrier: carrier == "fake")

    outcome = intake.accept(world.carrier, WebhookKind.MESSAGES, webhook(), "corr-1")

    assert outcome.verified is False and len(world.inbound_queue.jobs) == 1


def test_a_carrier_verify_mode_overrides_the_global_one() -> None:
    config = CarrierConfig(
        {"PARLEY_VERIFY_MODE": "enforce", "PARLEY_VONAGE_MESSAGES_VERIFY_MODE": "log-only"}
    )
    assert config.verify_log_only_for("vonage-messages") is True
    assert config.verify_log_only_for("twilio") is False


def test_carriers_listed_as_log_only_are_log_only() -> None:
    config = CarrierConfig({"PARLEY_VERIFY_LOG_ONLY_CARRIERS": "telnyx, Plivo"})
    assert [config.verify_log_only_for(c) for c in ("telnyx", "plivo", "twilio")] == [True, True, False]


# -- keywords the customer texts ------------------------------------------------------------------


def test_a_stop_opts_the_customer_out_and_asks_for_one_confirmation(world: World) -> None:
    processor = world.processor()
    stop = inbound("SMSTOP", body=" stop ")

    processor.store_inbound(stop)
    processor.store_inbound(stop)  # the carrier posts the webhook again

    record = world.opt_outs.get(CUSTOMER)
    assert record is not None and record.opted_out
    assert len(record.history) == 1 and record.history[0].source == "keyword"
    message_id = inbound_message_id("fake", "SMSTOP")
    # Asked twice with the same reference: the send path turns that into one text.
    assert set(world.compliance_replies) == {(Keyword.OPT_OUT, CUSTOMER, OURS_A, message_id)}


def test_a_stop_the_carrier_already_answered_is_recorded_but_not_answered_again(world: World) -> None:
    world.processor().store_inbound(inbound("SM1", body="STOP").model_copy(update={"opt_out": "STOP"}))
    record = world.opt_outs.get(CUSTOMER)
    assert record is not None and record.opted_out
    assert world.compliance_replies == []


def test_start_opts_back_in_and_help_is_answered_without_changing_consent(world: World) -> None:
    processor = world.processor()
    processor.store_inbound(inbound("SM1", body="STOP"))
    processor.store_inbound(inbound("SM2", body="start", minutes=1))
    processor.store_inbound(inbound("SM3", body="HELP", minutes=2))

    record = world.opt_outs.get(CUSTOMER)
    assert record is not None and not record.opted_out
    assert [c.opted_out for c in record.history] == [True, False]
    assert [r[0] for r in world.compliance_replies] == [Keyword.OPT_OUT, Keyword.OPT_IN, Keyword.HELP]


def test_an_ordinary_text_is_not_a_keyword(world: World) -> None:
    world.processor().store_inbound(inbound("SM1", body="Please don't stop the deliveries"))
    assert world.opt_outs.get(CUSTOMER) is None
    assert world.compliance_replies == []


def test_a_reply_in_a_thread_another_team_started_from_the_pool_belongs_to_that_team(world: World) -> None:
    """A team with no number of its own texts from the pool's; its customer's answer must be its own
    (visible, answerable), not the pool's team's."""
    world.numbers.save(OurNumber(number="+15005550009", carrier="fake", team="default"))
    world.conversations.fold(
        ConversationDelta(
            customer_number=OTHER,
            team="support",
            our_number="+15005550009",
            at=T0,
            message_id="out-1",
            preview="Your ticket is open",
            direction="outbound",
            unread_increment=0,
        )
    )
    world.processor().store_inbound(inbound("SM-team", frm=OTHER, to="+15005550009", minutes=1))
    stored = world.messages.get(inbound_message_id("fake", "SM-team"))
    assert stored is not None and stored.team == "support"
    assert world.conversations.items[OTHER].team == "support"

    world.processor().store_inbound(inbound("SM-first", frm="+14155550198", to="+15005550009"))
    first = world.messages.get(inbound_message_id("fake", "SM-first"))
    assert first is not None and first.team == "default"  # a first text takes our number's team


def test_two_long_texts_that_reuse_the_handsets_concat_reference_are_both_stored(world: World) -> None:
    """The reference is a small counter the phone picks and wraps: the second text is not a duplicate."""
    processor = world.processor()
    first = [part(1, 2, "First, "), part(2, 2, "one.")]
    second = [
        p.model_copy(update={"carrier_message_id": f"B{p.carrier_message_id}"})
        for p in (part(1, 2, "Second, ", minutes=5), part(2, 2, "two.", minutes=5))
    ]
    for event in (*first, *second):
        processor.handle(envelope(event))
    assert sorted(m.body for m in world.messages.items.values()) == ["First, one.", "Second, two."]
    processor.handle(envelope(second[1]))  # a redelivered last part, once the text is stored: nothing new
    assert len(world.messages.items) == 2


def test_a_failure_storing_an_assembled_text_keeps_its_parts_so_the_redelivery_stores_it(
    world: World,
) -> None:
    processor = world.processor()
    processor.handle(envelope(part(1, 2, "Hello ")))
    original = world.messages.insert_with_conversation

    def crash(*args: object, **kwargs: object) -> bool:
        raise ConflictError("the store failed")

    world.messages.insert_with_conversation = crash  # type: ignore[method-assign]
    with pytest.raises(ConflictError):
        processor.handle(envelope(part(2, 2, "again.")))
    world.messages.insert_with_conversation = original  # type: ignore[method-assign]
    processor.handle(envelope(part(2, 2, "again.")))  # SQS redelivers the last part
    (stored,) = world.messages.items.values()
    assert stored.body == "Hello again."


def test_parked_receipts_for_each_part_at_the_same_second_are_all_kept_and_applied(world: World) -> None:
    processor = world.processor()
    processor.apply_receipt(per_part("SMEARLY", 1, MessageStatus.DELIVERED))
    processor.apply_receipt(per_part("SMEARLY", 2, MessageStatus.DELIVERED))
    assert len(world.receipts.parked_for("fake", "SMEARLY")) == 2
    outbound(world, "out_early", sid="SMEARLY", status=MessageStatus.SENT)
    assert processor.apply_parked("fake", "SMEARLY") == 2
    assert world.messages.items["out_early"].status is MessageStatus.DELIVERED


def test_an_opt_out_the_carrier_reports_on_a_receipt_that_was_parked_is_recorded(world: World) -> None:
    processor = world.processor()
    refused = receipt("SMOPT", MessageStatus.FAILED, code="21610").model_copy(update={"opted_out": True})
    processor.apply_receipt(refused)  # before the send recorded the carrier's id: parked
    assert world.opt_outs.get(CUSTOMER) is None
    outbound(world, "out_opt", sid="SMOPT", status=MessageStatus.ACCEPTED)
    processor.apply_parked("fake", "SMOPT")
    recorded = world.opt_outs.get(CUSTOMER)
    assert recorded is not None and recorded.opted_out
    assert world.messages.items["out_opt"].status is MessageStatus.FAILED


def test_a_redelivered_or_late_stop_does_not_undo_a_later_start(world: World) -> None:
    processor = world.processor()
    stop = inbound("SMSTOP", body="STOP", minutes=0)
    processor.store_inbound(stop)
    processor.store_inbound(inbound("SMSTART", body="START", minutes=5))
    processor.store_inbound(stop)  # the carrier posts the STOP again
    processor.store_inbound(inbound("SMSTOP2", body="STOP", minutes=3))  # an older STOP, arriving late
    consent = world.opt_outs.get(CUSTOMER)
    assert consent is not None and not consent.opted_out
    answers = [(keyword, reference) for keyword, _, _, reference in world.compliance_replies]
    assert [k for k, _ in answers] == [Keyword.OPT_OUT, Keyword.OPT_IN]  # neither stale STOP is answered
    late_stop = inbound_message_id("fake", "SMSTOP2")
    assert late_stop not in {r for _, r in answers}  # no "you're unsubscribed" for a STOP that didn't count
    # a later carrier refusal still counts: it is newer than the START
    outbound(world, "out_after", sid="SMAFTER", status=MessageStatus.ACCEPTED)
    refused = receipt("SMAFTER", MessageStatus.FAILED, code="21610", seconds=600)
    processor.apply_receipt(refused.model_copy(update={"opted_out": True}))
    consent = world.opt_outs.get(CUSTOMER)
    assert consent is not None and consent.opted_out


def test_a_stray_part_receipt_writes_no_error_onto_a_delivered_text(world: World) -> None:
    outbound(world, "out_done", sid="SMDONE", status=MessageStatus.DELIVERED)
    stray = per_part("SMDONE", 1, MessageStatus.FAILED).model_copy(
        update={"error_code": "200", "error_message": "opted out"}
    )
    world.processor().apply_receipt(stray)
    done = world.messages.items["out_done"]
    assert (done.status, done.error_code, done.error_reason) == (MessageStatus.DELIVERED, None, None)


def test_an_unverified_event_in_log_only_mode_is_said_so_by_the_processor(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    unverified = CarrierEventEnvelope(event=inbound("SMLOG"), correlation_id="c", verified=False)
    with caplog.at_level("WARNING", logger="parley"):
        world.processor().handle(unverified)
    assert any("did not verify" in r.getMessage() for r in caplog.records)
    assert CarrierEventEnvelope.model_validate(
        {"event": inbound("SMX").model_dump(), "correlation_id": "c"}
    ).verified


# -- the intake refuses what could never be stored, and repairs what can be -----------------------

NOW = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)


def parsed(sid: str = "SM1", **changes: Any) -> ParsedInbound:
    fields: dict[str, Any] = {
        "carrier": "fake",
        "carrier_message_id": sid,
        "from_number": CUSTOMER,
        "to_number": OURS_A,
        "body": "hello",
        "received_at": NOW - timedelta(minutes=1),
    }
    return ParsedInbound(**{**fields, **changes})


def parsed_receipt(sid: str = "SM9", **changes: Any) -> ParsedStatus:
    fields: dict[str, Any] = {
        "carrier": "fake",
        "carrier_message_id": sid,
        "status": MessageStatus.DELIVERED,
        "carrier_status": "delivered",
        "occurred_at": NOW - timedelta(minutes=1),
    }
    return ParsedStatus(**{**fields, **changes})


def accept(world: World, *events: ParsedEvent) -> list[CarrierEventEnvelope]:
    """Through the intake at NOW; the envelopes as the processor reads them from the queue's JSON."""
    world.carrier.events = list(events)
    WebhookIntake(world.inbound_queue, clock=lambda: NOW).accept(
        world.carrier, WebhookKind.MESSAGES, webhook(), "corr-1"
    )
    return [CarrierEventEnvelope.model_validate_json(json.dumps(j.body)) for j in world.inbound_queue.take()]


def test_a_lone_surrogate_in_a_text_becomes_a_replacement_character_not_a_poisoned_event(
    world: World,
) -> None:
    """Half of an emoji split across segments: json.loads gives a lone surrogate, which the queue's
    JSON would carry as \\ud800, and the processor's parser refuses that for ever."""
    (envelope,) = accept(world, parsed(body="lone \ud800 surrogate", raw={"text": "lone \ud800 surrogate"}))
    assert isinstance(envelope.event, InboundMessage)
    assert envelope.event.body == "lone \ufffd surrogate"


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2099, 1, 1, tzinfo=UTC),  # pins the conversation at the top of the inbox
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5))),  # not expressible in UTC
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),
        NOW + timedelta(minutes=6),
    ],
    ids=["2099", "year-9999-minus-5h", "year-1-plus-5h", "six-minutes-ahead"],
)
def test_a_carrier_time_in_the_future_becomes_the_time_we_received_it(world: World, moment: datetime) -> None:
    inbound_envelope, receipt_envelope = accept(
        world, parsed(received_at=moment), parsed_receipt(occurred_at=moment)
    )
    assert isinstance(inbound_envelope.event, InboundMessage)
    assert isinstance(receipt_envelope.event, StatusUpdate)
    assert inbound_envelope.event.received_at == NOW
    assert receipt_envelope.event.occurred_at == NOW


def test_late_and_slightly_skewed_carrier_times_are_kept(world: World) -> None:
    late = datetime(2026, 11, 20, 9, 0, tzinfo=timezone(timedelta(hours=2)))  # a delivery days late
    skewed = NOW + timedelta(minutes=4)
    first, second = accept(world, parsed("SM1", received_at=late), parsed_receipt(occurred_at=skewed))
    assert isinstance(first.event, InboundMessage) and isinstance(second.event, StatusUpdate)
    assert (first.event.received_at, second.event.occurred_at) == (late, skewed)


@pytest.mark.parametrize(
    ("event", "words"),
    [
        (parsed("S" * 257), "message id is longer than 256"),
        (parsed_receipt("S" * 5000), "message id is longer than 256"),
        (parsed_receipt(client_ref="r" * 257), "client reference is longer"),
        (parsed(" "), "message id is blank"),
        (parsed(from_number="1" * 3000), "From is longer than 32"),
        (parsed(to_number="+1" + "4" * 31), "To is longer than 32"),
        (parsed(from_number=" "), "From is blank"),
        (parsed(to_number=" "), "To is blank"),
        (parsed(media=tuple(ParsedMedia(f"https://m.example/{i}") for i in range(21))), "21 media"),
    ],
    ids=[
        "long-id",
        "long-receipt-id",
        "long-client-ref",
        "blank-id",
        "long-from",
        "long-to",
        "blank-from",
        "blank-to",
        "media",
    ],
)
def test_ids_numbers_and_media_the_tables_cannot_hold_are_refused(
    world: World, event: ParsedEvent, words: str
) -> None:
    world.carrier.events = [event]
    with pytest.raises(PayloadError, match=words):
        world.intake().accept(world.carrier, WebhookKind.MESSAGES, webhook(), "corr-1")
    assert world.inbound_queue.jobs == []


def test_twenty_media_are_accepted(world: World) -> None:
    media = tuple(ParsedMedia(f"https://m.example/{i}") for i in range(20))
    (envelope,) = accept(world, parsed(media=media))
    assert isinstance(envelope.event, InboundMessage) and len(envelope.event.media) == 20


@pytest.mark.parametrize(
    "sender", ["+", "+abc", "+0", "+999999999999999999", "+1415555\x009701", "+1", "!!!"]
)
def test_a_from_that_is_no_number_short_code_or_sender_id_is_refused(world: World, sender: str) -> None:
    world.carrier.events = [parsed(from_number=sender)]
    with pytest.raises(PayloadError, match="invalid From number"):
        world.intake().accept(world.carrier, WebhookKind.MESSAGES, webhook(), "corr-1")
    assert world.inbound_queue.jobs == []


@pytest.mark.parametrize(
    "sender",
    [
        "+14155550100",
        "14155550100",  # no "+" (Vonage, Plivo)
        "(415) 555-0100",  # national format
        "\uff0b14155550100",  # fullwidth plus
        "+\u0661\u0664\u0661\u0665\u0665\u0665\u0665\u0660\u0661\u0660\u0660",  # Arabic-Indic digits
        "12345",  # a short code
        "262966",
        "AMAZON",  # alphanumeric sender IDs
        "Acme Bank",
        "VERIFY2FA",
        "whatsapp:+14155550100",
    ],
)
def test_real_senders_are_accepted(world: World, sender: str) -> None:
    (envelope,) = accept(world, parsed(from_number=sender))
    assert isinstance(envelope.event, InboundMessage)


def test_a_long_text_is_queued_once_not_again_inside_raw(world: World) -> None:
    text = "\U0001f600" * 64_000  # 256 KB of UTF-8: within the webhook limit
    (envelope,) = accept(world, parsed(body=text, raw={"data": {"payload": {"text": text, "id": "SM1"}}}))
    assert isinstance(envelope.event, InboundMessage) and envelope.event.body == text
    assert envelope.event.raw == {"data": {"payload": {"text": "", "id": "SM1"}}}
    assert len(queue_text(envelope.model_dump(mode="json")).encode()) < MAX_QUEUED_BYTES


def test_an_event_too_big_for_the_queue_is_refused_with_a_reason(world: World) -> None:
    world.carrier.events = [parsed(body="\U0001f600" * 300_000)]  # 1.2 MB once queued
    with pytest.raises(WebhookTooLarge, match="once queued"):
        world.intake().accept(world.carrier, WebhookKind.MESSAGES, webhook(), "corr-1")
    assert world.inbound_queue.jobs == []


def test_events_are_queued_in_one_batch_call_and_too_many_are_refused(world: World) -> None:
    receipts = [parsed_receipt(f"SM{i}") for i in range(MAX_EVENTS_PER_WEBHOOK)]
    accept(world, *receipts)
    assert world.inbound_queue.batches == [MAX_EVENTS_PER_WEBHOOK]

    world.carrier.events = [*receipts, parsed_receipt("one-more")]
    with pytest.raises(WebhookTooLarge, match="events in one webhook"):
        world.intake().accept(world.carrier, WebhookKind.MESSAGES, webhook(), "corr-1")
    assert world.inbound_queue.jobs == []
