"""A delivery receipt that reports a passing failure: the text is sent again within the limits of a
failed send, once, and a reason never promises a retry that won't happen."""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import urlencode

import pytest

from parley.carriers.bandwidth import BandwidthCarrier
from parley.carriers.base import ParsedStatus, WebhookKind, WebhookRequest
from parley.carriers.plivo import PlivoCarrier
from parley.carriers.telnyx import TelnyxCarrier
from parley.carriers.twilio import TwilioCarrier
from parley.carriers.vonage_messages import VonageMessagesCarrier
from parley.carriers.vonage_sms import VonageSmsCarrier
from parley.domain.models import Message, MessageStatus, OurNumber, SendRequest, StatusUpdate
from parley.domain.retry import RetryPolicy
from parley.services.inbound import InboundProcessor
from tests.fakes import World

FORM = {"content-type": "application/x-www-form-urlencoded"}
JSON = {"content-type": "application/json"}
PROMISES = ("retried", "retry", "trying again", "sent again")


def _form(carrier: object, fields: dict[str, str]) -> ParsedStatus:
    request = WebhookRequest("POST", "https://hooks.example.test/status", FORM, urlencode(fields).encode())
    (event,) = carrier.parse(WebhookKind.STATUS, request)  # type: ignore[attr-defined]
    assert isinstance(event, ParsedStatus)
    return event


def _json(carrier: object, kind: WebhookKind, body: object) -> ParsedStatus:
    request = WebhookRequest("POST", "https://hooks.example.test/status", JSON, json.dumps(body).encode())
    (event,) = carrier.parse(kind, request)  # type: ignore[attr-defined]
    assert isinstance(event, ParsedStatus)
    return event


def bandwidth(code: str) -> ParsedStatus:
    carrier = BandwidthCarrier(
        account_id="a",
        username="u",
        password="p",
        application_id="app",
        callback_username="cu",
        callback_passwords=["cp"],
    )
    message = {"id": "bw-1", "direction": "out", "to": ["+14155550100"], "from": "+15005550006", "text": ""}
    event = {
        "type": "message-failed",
        "time": "2026-11-28T20:00:00Z",
        "description": "x",
        "to": "+14155550100",
        "errorCode": int(code),
        "message": {**message, "segmentCount": 1, "time": "2026-11-28T20:00:00Z", "applicationId": "app"},
    }
    return _json(carrier, WebhookKind.EVENTS, [event])


def plivo(code: str) -> ParsedStatus:
    fields = {"MessageUUID": "pl-1", "Status": "undelivered", "ErrorCode": code}
    return _form(PlivoCarrier("MAxx", "tok"), {**fields, "To": "14155550100", "From": "15005550006"})


def twilio(code: str) -> ParsedStatus:
    fields = {"MessageSid": "SM1", "MessageStatus": "undelivered", "ErrorCode": code}
    return _form(TwilioCarrier("AC1", "tok"), {**fields, "To": "+14155550100", "From": "+15005550006"})


def vonage(code: str) -> ParsedStatus:
    fields = {"messageId": "v-1", "status": "failed", "err-code": code, "msisdn": "14155550100"}
    carrier = VonageSmsCarrier(api_key="k", api_secret="s", signature_secrets=())
    return _form(carrier, {**fields, "to": "15005550006"})


def vonage_messages(code: str) -> ParsedStatus:
    body = {
        "message_uuid": "vm-1",
        "to": "14155550100",
        "from": "15005550006",
        "timestamp": "2026-11-28T04:05:31Z",
        "status": "rejected",
        "channel": "sms",
        "error": {"type": f"https://developer.vonage.com/api-errors/messages#{code}", "title": int(code)},
    }
    return _json(VonageMessagesCarrier("k", "s"), WebhookKind.STATUS, body)


def telnyx(code: str) -> ParsedStatus:
    payload = {
        "id": "tx-1",
        "to": [{"phone_number": "+14155550100", "status": "delivery_failed"}],
        "from": {"phone_number": "+15005550006"},
        "errors": [{"code": code}],
    }
    body = {
        "data": {"event_type": "message.finalized", "occurred_at": "2026-11-28T20:00:00Z", "payload": payload}
    }
    return _json(TelnyxCarrier(), WebhookKind.EVENTS, body)


PASSING = [
    (bandwidth, "4780"),
    (bandwidth, "4781"),
    (bandwidth, "4785"),
    (bandwidth, "4702"),
    (bandwidth, "5620"),
    (plivo, "20"),
    (plivo, "80"),
    (twilio, "30001"),
    (twilio, "30003"),
    (vonage, "2"),
    (vonage, "7"),
    (vonage, "8"),
    (vonage_messages, "1180"),
    (vonage_messages, "1230"),
]
LASTING = [
    (bandwidth, "4720"),
    (plivo, "50"),
    (twilio, "30006"),
    (vonage, "3"),
    (vonage_messages, "1190"),
    (telnyx, "40001"),
]


@pytest.mark.parametrize(("parse", "code"), PASSING)
def test_a_passing_failure_in_a_receipt_is_retryable_and_promises_nothing(parse, code) -> None:  # type: ignore[no-untyped-def]
    event = parse(code)
    assert event.status in (MessageStatus.FAILED, MessageStatus.UNDELIVERED)
    assert event.error_code == code
    assert event.retryable is True
    assert event.error_message and not any(p in event.error_message for p in PROMISES), event.error_message


@pytest.mark.parametrize(("parse", "code"), LASTING)
def test_a_lasting_failure_in_a_receipt_is_not_retryable(parse, code) -> None:  # type: ignore[no-untyped-def]
    event = parse(code)
    assert event.retryable is False
    assert event.error_message and not any(p in event.error_message for p in PROMISES), event.error_message


def test_telnyx_receipt_failures_are_not_retried_and_promise_nothing() -> None:
    # Telnyx answers a repeated Idempotency-Key with the first send's answer: a retry sends nothing.
    event = telnyx("40006")
    assert event.retryable is False
    assert event.error_message == "the recipient's carrier is unavailable"


def test_the_wire_form_carries_retryable_to_the_processor() -> None:
    update = StatusUpdate.model_validate(bandwidth("4780").to_wire())
    assert update.retryable is True


# -- the processor ---------------------------------------------------------------------------------


def _world() -> World:
    world = World()
    world.numbers.save(OurNumber(number="+15005550006", carrier="fake", is_default=True, owner="desk"))
    return world


def _sent(world: World, policy: RetryPolicy | None = None) -> Message:
    sender = world.sender(policy=policy)
    (queued,) = sender.submit(SendRequest.model_validate({"to": ["+14155550100"], "body": "Hi"}), "k")
    sent = sender.deliver(queued.message_id)
    assert sent is not None and sent.carrier_message_id
    world.send_queue.jobs.clear()
    return sent


def _failure(carrier_message_id: str, *, retryable: bool = True, code: str = "4702") -> StatusUpdate:
    return StatusUpdate(
        carrier="fake",
        carrier_message_id=carrier_message_id,
        status=MessageStatus.UNDELIVERED,
        carrier_status="undelivered",
        error_code=code,
        error_message="the recipient's phone is unavailable (switched off, out of coverage or full)",
        retryable=retryable,
    )


def _delivered(carrier_message_id: str) -> StatusUpdate:
    return StatusUpdate(
        carrier="fake",
        carrier_message_id=carrier_message_id,
        status=MessageStatus.DELIVERED,
        carrier_status="delivered",
    )


def _failed_view(world: World) -> list[str]:
    return [m.message_id for m in world.messages.list_view("failed", limit=50, cursor=None).items]


def test_a_passing_receipt_failure_is_retried_once_and_the_text_ends_delivered() -> None:
    world = _world()
    sent = _sent(world)
    processor = world.processor()

    processor.apply_receipt(_failure(sent.carrier_message_id or ""))

    retrying = world.messages.get(sent.message_id)
    assert retrying is not None
    assert retrying.status is MessageStatus.RETRYING
    assert retrying.error_code == "4702"
    assert retrying.error_reason and "trying again in" in retrying.error_reason
    assert retrying.superseded_carrier_ids == [sent.carrier_message_id]
    assert retrying.attempts[-1].error_code == "4702"
    assert sent.message_id not in _failed_view(world)
    (job,) = world.retry_queue.jobs
    assert job.body == {"message_id": sent.message_id} and 1 <= job.delay_seconds <= 30
    assert retrying.next_attempt_at == world.clock() + timedelta(seconds=job.delay_seconds)
    assert [name for name, _ in world.events.events][-1] == "MessageRetried"

    # the carrier sends the same receipt again: nothing more happens
    processor.apply_receipt(_failure(sent.carrier_message_id or ""))
    assert len(world.retry_queue.jobs) == 1
    assert world.messages.get(sent.message_id) == retrying

    world.clock.advance(seconds=job.delay_seconds)
    resent = world.sender().deliver(sent.message_id)
    assert resent is not None and resent.status is MessageStatus.ACCEPTED
    assert resent.carrier_message_id not in (None, sent.carrier_message_id)
    assert len(world.carrier.sent) == 2
    assert resent.error_code is None and resent.error_reason is None

    # a late receipt for the first attempt can't touch the second
    processor.apply_receipt(_failure(sent.carrier_message_id or ""))
    processor.apply_receipt(_delivered(resent.carrier_message_id or ""))
    done = world.messages.get(sent.message_id)
    assert done is not None and done.status is MessageStatus.DELIVERED
    assert len(world.retry_queue.jobs) == 1 and len(world.carrier.sent) == 2


def test_a_failure_receipt_after_delivery_changes_nothing() -> None:
    world = _world()
    sent = _sent(world)
    processor = world.processor()
    processor.apply_receipt(_delivered(sent.carrier_message_id or ""))

    processor.apply_receipt(_failure(sent.carrier_message_id or ""))

    after = world.messages.get(sent.message_id)
    assert after is not None and after.status is MessageStatus.DELIVERED
    assert world.retry_queue.jobs == []


def test_a_failure_receipt_for_an_attempt_a_person_resent_schedules_nothing() -> None:
    world = _world()
    sent = _sent(world)
    processor = world.processor()
    processor.apply_receipt(_failure(sent.carrier_message_id or "", retryable=False, code="4720"))
    failed = world.messages.get(sent.message_id)
    assert failed is not None and failed.status is MessageStatus.UNDELIVERED
    world.sender().resend(failed, by="ana")

    processor.apply_receipt(_failure(sent.carrier_message_id or ""))

    after = world.messages.get(sent.message_id)
    assert after is not None and after.status is MessageStatus.QUEUED
    assert world.retry_queue.jobs == []


def test_a_lasting_receipt_failure_stays_failed_without_a_promise() -> None:
    world = _world()
    sent = _sent(world)

    world.processor().apply_receipt(_failure(sent.carrier_message_id or "", retryable=False, code="4720"))

    after = world.messages.get(sent.message_id)
    assert after is not None and after.status is MessageStatus.UNDELIVERED
    assert after.error_reason and not any(p in after.error_reason for p in PROMISES)
    assert world.retry_queue.jobs == [] and sent.message_id in _failed_view(world)


def test_past_the_attempt_limit_the_failure_says_it_gave_up() -> None:
    world = _world()
    policy = RetryPolicy(max_attempts=2)
    sent = _sent(world, policy)
    processor = world.processor(policy=policy)
    processor.apply_receipt(_failure(sent.carrier_message_id or ""))
    second = world.sender(policy=policy).deliver(sent.message_id)
    assert second is not None and second.carrier_message_id

    processor.apply_receipt(_failure(second.carrier_message_id or ""))

    after = world.messages.get(sent.message_id)
    assert after is not None and after.status is MessageStatus.UNDELIVERED
    assert after.error_reason == (
        "gave up after 2 attempts over 0 seconds: "
        "the recipient's phone is unavailable (switched off, out of coverage or full)"
    )
    assert len(world.retry_queue.jobs) == 1 and len(world.carrier.sent) == 2
    assert sent.message_id in _failed_view(world)
    assert [name for name, _ in world.events.events][-1] == "MessageFailed"


def test_past_the_age_limit_the_failure_is_final() -> None:
    world = _world()
    sent = _sent(world)
    world.clock.advance(hours=5)

    world.processor().apply_receipt(_failure(sent.carrier_message_id or ""))

    after = world.messages.get(sent.message_id)
    assert after is not None and after.status is MessageStatus.UNDELIVERED
    assert after.error_reason and after.error_reason.startswith("gave up after 1 attempts over 5 hours: ")
    assert world.retry_queue.jobs == []


def test_a_receipt_parked_before_the_send_recorded_its_id_is_retried_once() -> None:
    world = _world()
    sender = world.sender(apply_parked=False)
    (queued,) = sender.submit(SendRequest.model_validate({"to": ["+14155550100"], "body": "Hi"}), "k")
    processor = world.processor()
    processor.apply_receipt(_failure("FK000001"))  # before the send wrote the carrier's id
    processor.apply_receipt(_failure("FK000001"))
    sender.deliver(queued.message_id)

    assert processor.apply_parked("fake", "FK000001") == 2

    after = world.messages.get(queued.message_id)
    assert after is not None and after.status is MessageStatus.RETRYING
    assert len(world.retry_queue.jobs) == 1


def test_without_a_retry_queue_the_failure_is_applied_as_reported() -> None:
    world = _world()
    sent = _sent(world)
    processor: InboundProcessor = world.processor(retries=False)

    processor.apply_receipt(_failure(sent.carrier_message_id or ""))

    after = world.messages.get(sent.message_id)
    assert after is not None and after.status is MessageStatus.UNDELIVERED
    assert world.retry_queue.jobs == []


def test_two_copies_of_a_receipt_at_once_schedule_one_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    world = _world()
    sent = _sent(world)
    processor = world.processor()
    update = _failure(sent.carrier_message_id or "")
    real = world.messages.update
    raced: list[bool] = []

    def racing(message: Message, *, expected_version: int) -> Message:
        if not raced:  # the other copy is applied between this one's read and its write
            raced.append(True)
            processor.apply_receipt(update)
        return real(message, expected_version=expected_version)

    monkeypatch.setattr(world.messages, "update", racing)
    processor.apply_receipt(update)

    after = world.messages.get(sent.message_id)
    assert after is not None and after.status is MessageStatus.RETRYING
    assert len(world.retry_queue.jobs) == 1
    assert [h.status for h in after.history].count(MessageStatus.RETRYING) == 1
