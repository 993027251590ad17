"""Dead letters: every letter a queue gave up on becomes a failed message a person sees, once."""

from __future__ import annotations

import json
from typing import Any

import pytest

from parley.domain.ids import outbound_message_id
from parley.domain.models import (
    Attempt,
    CarrierEventEnvelope,
    Direction,
    InboundMessage,
    Message,
    MessageStatus,
    OurNumber,
    SendRequest,
)
from parley.services.dead_letters import dead_letter_id
from tests.fakes import T0, World

OURS = "+15005550006"
ANA = "+14155550100"
BO = "+14155550101"


@pytest.fixture
def world() -> World:
    w = World()
    w.numbers.save(OurNumber(number=OURS, carrier="fake", is_default=True))
    return w


def failed_view(world: World) -> list[Message]:
    return world.messages.list_view("failed", limit=100, cursor=None).items


def stored(world: World, message_id: str) -> Message:
    found = world.messages.get(message_id)
    assert found is not None, message_id
    return found


def queued_message(world: World, key: str = "req-1", to: str = ANA) -> Message:
    (message,) = world.sender().accept(SendRequest.model_validate({"to": [to], "body": "Hi"}), key)
    return message[0]


def put(world: World, queue: str, body: Any, **fields: Any) -> str:
    text = body if isinstance(body, str) else json.dumps(body)
    return world.dead_letter_queues[queue].put(text, **fields).message_id


def depths(world: World) -> dict[str, int]:
    return {name: q.depth for name, q in world.dead_letter_queues.items()}


# -- send and retry jobs naming a message ----------------------------------------------------------


def test_a_dead_send_job_fails_its_queued_message_with_the_reason_and_empties_the_dlq(world: World) -> None:
    message = queued_message(world)
    put(world, "send", {"message_id": message.message_id})

    assert world.dead_letters().drain() == {"inbound": 0, "send": 1, "retry": 0}

    failed = stored(world, message.message_id)
    assert failed.status is MessageStatus.FAILED
    assert failed.error_reason is not None
    assert failed.error_reason.startswith("the send job failed repeatedly and was set aside: it was queued")
    assert [m.message_id for m in failed_view(world)] == [message.message_id]
    assert depths(world) == {"inbound": 0, "send": 0, "retry": 0}
    assert [d["message_id"] for d in world.events.of("MessageFailed")] == [message.message_id]
    assert world.dead_letter_counts == [("send", 1)]


def test_the_same_dead_letter_drained_twice_changes_nothing_the_second_time(world: World) -> None:
    message = queued_message(world)
    put(world, "send", {"message_id": message.message_id}, message_id="sqs-1")
    world.dead_letters().drain()
    first = stored(world, message.message_id)

    put(world, "send", {"message_id": message.message_id}, message_id="sqs-1")  # delivered again
    assert world.dead_letters().drain()["send"] == 1

    assert stored(world, message.message_id) == first
    assert len(failed_view(world)) == 1
    assert len(world.events.of("MessageFailed")) == 1


def test_a_dead_retry_job_names_the_last_carrier_error(world: World) -> None:
    message = queued_message(world)
    world.messages.update(
        message.model_copy(
            update={
                "status": MessageStatus.RETRYING,
                "error_reason": "the carrier answered 503",
                "attempts": [Attempt(number=1, at=T0, outcome="transient")],
            }
        ),
        expected_version=message.version,
    )
    put(world, "retry", {"message_id": message.message_id})

    world.dead_letters().drain()

    failed = stored(world, message.message_id)
    assert failed.status is MessageStatus.FAILED
    assert failed.error_reason == (
        "the retry job failed repeatedly and was set aside: it was retrying; 1 carrier attempt(s);"
        " last error: the carrier answered 503"
    )
    assert failed.next_attempt_at is None


def test_a_message_left_sending_fails_with_a_warning_that_the_carrier_may_have_it(world: World) -> None:
    message = queued_message(world)
    world.messages.update(
        message.model_copy(update={"status": MessageStatus.SENDING}), expected_version=message.version
    )
    put(world, "send", {"message_id": message.message_id})

    world.dead_letters().drain()

    reason = stored(world, message.message_id).error_reason or ""
    assert "it was sending" in reason
    assert reason.endswith("check with the customer before resending")


@pytest.mark.parametrize(
    "status",
    [MessageStatus.DELIVERED, MessageStatus.ACCEPTED, MessageStatus.CANCELED, MessageStatus.SCHEDULED],
)
def test_a_dead_job_for_a_message_that_is_not_waiting_on_it_changes_nothing(
    world: World, status: MessageStatus
) -> None:
    message = queued_message(world)
    world.messages.update(message.model_copy(update={"status": status}), expected_version=message.version)
    before = stored(world, message.message_id)
    put(world, "retry", {"message_id": message.message_id})

    assert world.dead_letters().drain()["retry"] == 1

    assert stored(world, message.message_id) == before
    assert world.events.of("MessageFailed") == []
    assert depths(world)["retry"] == 0


def test_a_job_naming_a_message_never_stored_becomes_a_failed_record(world: World) -> None:
    letter = put(world, "send", {"message_id": "out_missing"})

    world.dead_letters().drain()

    record = stored(world, dead_letter_id("send", f"sqs:{letter}"))
    assert record.status is MessageStatus.FAILED
    assert record.error_reason is not None and "out_missing" in record.error_reason
    assert record.metadata["dead_letter"]["queue"] == "send"
    assert [m.message_id for m in failed_view(world)] == [record.message_id]


# -- send requests ---------------------------------------------------------------------------------


def test_a_raw_request_that_never_became_messages_fails_once_per_recipient(world: World) -> None:
    body = {"to": [ANA, BO], "body": "Doors at 7"}
    letter = put(world, "send", body)

    world.dead_letters().drain()

    for to in (ANA, BO):  # the ids the send itself would have used: a late send can't add a second
        message = stored(world, outbound_message_id(f"sqs:{letter}", to))
        assert message.status is MessageStatus.FAILED
        assert message.body == "Doors at 7"
        assert message.error_reason == (
            "the send request was rejected: the send job failed repeatedly and was set aside"
        )
        assert json.loads(message.metadata["dead_letter"]["payload"]) == body
    assert len(failed_view(world)) == 2

    put(world, "send", body, message_id=letter)
    world.dead_letters().drain()
    assert len(failed_view(world)) == 2


def test_a_request_stored_before_its_handler_died_fails_its_waiting_messages(world: World) -> None:
    message = queued_message(world, key="order-7")
    put(world, "send", {"to": [ANA, BO], "body": "Hi", "idempotency_key": "order-7"})

    world.dead_letters().drain()

    assert stored(world, message.message_id).status is MessageStatus.FAILED
    other = stored(world, outbound_message_id("order-7", BO))  # the recipient it never reached
    assert other.status is MessageStatus.FAILED
    assert {m.message_id for m in failed_view(world)} == {message.message_id, other.message_id}


def test_an_eventbridge_request_it_could_not_deliver_says_so(world: World) -> None:
    envelope = {
        "id": "evt-1",
        "detail-type": "SendMessage",
        "source": "orders",
        "detail": {"to": [ANA], "body": "Shipped", "metadata": {"order": "42"}},
    }
    put(world, "send", envelope, attributes={"ERROR_CODE": "SQS", "ERROR_MESSAGE": "Access denied"})

    world.dead_letters().drain()

    message = stored(world, outbound_message_id("eb:evt-1", ANA))
    assert message.error_reason is not None
    assert "EventBridge could not deliver the send request to the send queue" in message.error_reason
    assert "Access denied" in message.error_reason
    assert message.metadata["order"] == "42"
    assert message.metadata["dead_letter"]["attributes"]["ERROR_CODE"] == "SQS"


def test_an_unreadable_send_record_still_becomes_a_visible_failure(world: World) -> None:
    letter = put(world, "send", "not json at all")

    world.dead_letters().drain()

    (record,) = failed_view(world)
    assert record.message_id == outbound_message_id(f"rejected:{letter}", "(no recipient)")
    assert record.error_reason is not None and "not a valid send request" in record.error_reason


def test_a_keyword_answer_that_could_not_be_sent_is_failed_for_its_customer(world: World) -> None:
    job = {"compliance": {"keyword": "opt_out", "to": ANA, "our_number": OURS, "reference": "in_abc"}}
    put(world, "send", job)

    world.dead_letters().drain()

    message = stored(world, outbound_message_id("compliance:in_abc", ANA))
    assert message.status is MessageStatus.FAILED
    assert message.customer_number == ANA and message.our_number == OURS
    assert message.body == "(the answer to STOP)"
    assert message.metadata["compliance"] == "opt_out"
    assert message.error_reason is not None and "legally required answer" in message.error_reason


def test_a_malformed_keyword_job_is_still_visible(world: World) -> None:
    put(world, "send", {"compliance": {"keyword": "opt_out"}})

    world.dead_letters().drain()

    (record,) = failed_view(world)
    assert record.customer_number == "(no recipient)"


# -- inbound ---------------------------------------------------------------------------------------


def envelope(**event: Any) -> dict[str, Any]:
    base = {
        "kind": "inbound_message",
        "carrier": "twilio",
        "carrier_message_id": "SM1",
        "from_number": ANA,
        "to_number": OURS,
        "body": "Is my order ready?",
    }
    return {"event": {**base, **event}, "correlation_id": "req-9"}


def test_an_inbound_event_the_processor_could_not_read_is_a_failed_inbound_record(world: World) -> None:
    body = envelope(received_at="not a time")
    put(world, "inbound", body)

    assert world.dead_letters().drain()["inbound"] == 1

    (record,) = failed_view(world)
    assert record.direction is Direction.INBOUND
    assert record.customer_number == ANA and record.our_number == OURS and record.carrier == "twilio"
    assert record.body == "Is my order ready?"
    assert record.error_reason is not None
    assert record.error_reason.startswith(
        "an inbound text from twilio (carrier id SM1) could not be processed after repeated attempts"
    )
    assert "event.inbound_message.received_at" in record.error_reason
    assert json.loads(record.metadata["dead_letter"]["payload"]) == body  # kept, to send back later
    assert "payload" not in world.events.of("MessageFailed")[0]["metadata"]["dead_letter"]
    assert depths(world)["inbound"] == 0


def test_the_same_carrier_event_set_aside_twice_is_one_record(world: World) -> None:
    put(world, "inbound", envelope(received_at="x"))
    put(world, "inbound", {**envelope(received_at="x"), "correlation_id": "carrier-retry"})

    world.dead_letters().drain()

    assert len(failed_view(world)) == 1
    assert depths(world)["inbound"] == 0


def test_a_valid_event_the_processor_kept_failing_on_names_its_correlation_id(world: World) -> None:
    event = InboundMessage(
        carrier="twilio", carrier_message_id="SM2", from_number=ANA, to_number=OURS, body="hello"
    )
    body = CarrierEventEnvelope(event=event, correlation_id="req-77").model_dump_json()
    put(world, "inbound", body)

    world.dead_letters().drain()

    (record,) = failed_view(world)
    assert record.error_reason is not None and "correlation id req-77" in record.error_reason
    assert record.message_id != "in_"  # never the id the real message would take


def test_inbound_garbage_is_kept_visible_too(world: World) -> None:
    put(world, "inbound", "\x00garbage")

    world.dead_letters().drain()

    (record,) = failed_view(world)
    assert record.customer_number == "(unknown)"
    assert record.error_reason is not None and record.error_reason.endswith("it is not JSON")
    assert record.metadata["dead_letter"]["payload"] == "\x00garbage"


def test_a_receipt_that_could_not_be_applied_is_visible(world: World) -> None:
    put(world, "inbound", {"event": {"kind": "status_update", "carrier": "telnyx"}, "correlation_id": "c"})

    world.dead_letters().drain()

    (record,) = failed_view(world)
    assert record.error_reason is not None and record.error_reason.startswith(
        "a delivery receipt from telnyx"
    )


# -- the drain itself ------------------------------------------------------------------------------


def test_a_letter_is_deleted_only_after_it_is_stored(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    put(world, "inbound", "garbage")
    real_insert = world.messages.insert
    calls = {"n": 0}

    def flaky_insert(message: Message) -> bool:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("DynamoDB is throttling")
        return real_insert(message)

    monkeypatch.setattr(world.messages, "insert", flaky_insert)

    assert world.dead_letters().drain()["inbound"] == 0
    assert depths(world)["inbound"] == 1 and failed_view(world) == []

    world.dead_letter_queues["inbound"].expire()  # its visibility timeout passes
    assert world.dead_letters().drain()["inbound"] == 1
    assert len(failed_view(world)) == 1 and depths(world)["inbound"] == 0


def test_one_unreadable_queue_does_not_stop_the_others(world: World) -> None:
    world.dead_letter_queues["inbound"].fail_receive = True
    put(world, "retry", "garbage")

    assert world.dead_letters().drain() == {"inbound": 0, "send": 0, "retry": 1}


def test_each_run_is_bounded_and_a_backlog_drains_over_several(world: World) -> None:
    for n in range(5):
        put(world, "send", {"message_id": f"out_{n}"})

    service = world.dead_letters(per_queue=2)
    assert service.drain()["send"] == 2
    assert service.drain()["send"] == 2
    assert service.drain()["send"] == 1
    assert len(failed_view(world)) == 5


def test_two_receipts_for_one_text_set_aside_are_two_records(world: World) -> None:
    for status in ("sent", "delivered"):
        event = {"kind": "status_update", "carrier": "twilio", "carrier_message_id": "SM5", "status": status}
        put(world, "inbound", {"event": event, "correlation_id": status})

    world.dead_letters().drain()

    assert len(failed_view(world)) == 2
