"""A throttled or briefly down carrier: its Retry-After is read and waited for, and a transient failure
keeps backing off until the age limit rather than running out of attempts within minutes.

Twilio, Bandwidth, Plivo and both Vonage APIs send Retry-After with a 429 or 503; Telnyx also says when
its rate limit resets (x-ratelimit-reset, seconds). Each wait is capped at 900 s (the SQS delay limit).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import responses

from parley.carriers import aws_sms, twilio
from parley.carriers.bandwidth import BandwidthCarrier
from parley.carriers.base import Carrier, FailureKind, OutboundText, SendFailed
from parley.carriers.plivo import PlivoCarrier
from parley.carriers.telnyx import TelnyxCarrier
from parley.carriers.twilio import TwilioCarrier
from parley.carriers.vonage_messages import VonageMessagesCarrier
from parley.carriers.vonage_sms import VonageSmsCarrier
from parley.domain.models import MessageStatus, OurNumber, SendRequest
from parley.domain.retry import RetryPolicy, describe_span
from tests.fakes import World

OURS = "+15005550006"
ANA = "+14155550100"
TEXT = OutboundText(message_id="out_1", from_number=OURS, to_number=ANA, body="Campaign text")
ANY_URL = re.compile(r"https://.*")


def bandwidth() -> Carrier:
    return BandwidthCarrier(
        account_id="acct",
        username="u",
        password="p",
        application_id="app",
        callback_username="cu",
        callback_passwords=["cp"],
    )


# Each carrier with the error body it answers a throttled send with.
CARRIERS: dict[str, tuple[Callable[[], Carrier], dict[str, Any]]] = {
    "twilio": (lambda: TwilioCarrier("ACx", "tok"), {"code": 20429, "message": "Too Many Requests"}),
    "telnyx": (
        lambda: TelnyxCarrier(api_key="KEY-secret"),
        {"errors": [{"code": "10011", "title": "Too many requests"}]},
    ),
    "bandwidth": (bandwidth, {"type": "max-message-queue-size-exceeded", "description": "slow down"}),
    "plivo": (lambda: PlivoCarrier("MA1", "token"), {"api_id": "x", "error": "too many requests"}),
    "vonage_sms": (
        lambda: VonageSmsCarrier(api_key="k", api_secret="s", signature_secrets=("x",)),
        {"type": "throttled"},
    ),
    "vonage_messages": (
        lambda: VonageMessagesCarrier("key", "api-secret", ("sig-secret",)),
        {"type": "https://developer.vonage.com/api-errors#throttled", "title": "Rate Limit Hit"},
    ),
}


def send_with(name: str, status: int, headers: dict[str, str]) -> SendFailed:
    build, body = CARRIERS[name]
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, ANY_URL, status=status, json=body, headers=headers)
        outcome = build().send(TEXT)
    assert isinstance(outcome, SendFailed)
    return outcome


@pytest.mark.parametrize("name", sorted(CARRIERS))
@pytest.mark.parametrize("status", [429, 503])
def test_every_http_carrier_reads_retry_after_in_seconds(name: str, status: int) -> None:
    failed = send_with(name, status, {"Retry-After": "120"})
    assert failed.kind is not FailureKind.PERMANENT
    assert failed.retry_after == 120.0


@pytest.mark.parametrize("name", sorted(CARRIERS))
def test_every_http_carrier_reads_retry_after_as_an_http_date(name: str) -> None:
    failed = send_with(name, 429, {"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"})
    assert failed.retry_after == 900.0  # far off: capped at what SQS can delay


@pytest.mark.parametrize("name", sorted(CARRIERS))
@pytest.mark.parametrize("header", ["soon", "-30", "inf", "nan", ""])
def test_an_unreadable_retry_after_is_ignored(name: str, header: str) -> None:
    failed = send_with(name, 429, {"Retry-After": header})
    assert failed.kind is FailureKind.TRANSIENT
    assert failed.retry_after is None


@pytest.mark.parametrize("name", sorted(CARRIERS))
def test_without_retry_after_there_is_no_wait_of_the_carriers_own(name: str) -> None:
    assert send_with(name, 429, {}).retry_after is None


def test_telnyx_says_when_its_rate_limit_resets() -> None:
    failed = send_with("telnyx", 429, {"x-ratelimit-reset": "42"})
    assert failed.retry_after == 42.0
    assert send_with("telnyx", 429, {"x-ratelimit-reset": "42", "Retry-After": "7"}).retry_after == 7.0
    # Sent with every answer: only a 429 means we are waiting for it.
    assert send_with("telnyx", 503, {"x-ratelimit-reset": "42"}).retry_after is None


def test_aws_passes_on_a_retry_after_header() -> None:
    answer = {
        "Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
        "ResponseMetadata": {"HTTPStatusCode": 400, "HTTPHeaders": {"retry-after": "60"}},
    }
    failed = aws_sms._client_error(answer)
    assert (failed.kind, failed.retry_after) == (FailureKind.TRANSIENT, 60.0)
    del answer["ResponseMetadata"]["HTTPHeaders"]  # type: ignore[attr-defined]
    assert aws_sms._client_error(answer).retry_after is None


# -- Twilio's full per-sender queue -------------------------------------------------------------


def twilio_answer(code: int, message: str, headers: dict[str, str] | None = None) -> SendFailed:
    with responses.RequestsMock() as mock:
        mock.add(
            responses.POST,
            "https://api.twilio.com/2010-04-01/Accounts/ACx/Messages.json",
            status=400,
            json={"code": code, "message": message, "status": 400},
            headers=headers or {},
        )
        outcome = TwilioCarrier("ACx", "tok").send(TEXT)
    assert isinstance(outcome, SendFailed)
    return outcome


def test_twilio_21611_a_full_sender_queue_is_retried_after_a_longer_wait() -> None:
    failed = twilio_answer(21611, "This 'From' number has exceeded the maximum number of queued messages")
    assert (failed.kind, failed.error_code) == (FailureKind.TRANSIENT, "21611")
    assert failed.retry_after == 300.0
    assert "waiting at the carrier" in failed.reason
    longer = twilio_answer(21611, "queue full", {"Retry-After": "600"})
    assert longer.retry_after == 600.0  # the longer of the two


def test_twilio_63038_a_daily_limit_is_retried_after_the_longest_wait() -> None:
    failed = twilio_answer(63038, "Account exceeded the daily messages limit")
    assert (failed.kind, failed.retry_after) == (FailureKind.TRANSIENT, 900.0)
    assert twilio.classify_error("21611", None)[0] is FailureKind.TRANSIENT


def test_a_permanent_twilio_error_asks_for_no_wait() -> None:
    assert twilio_answer(21211, "Invalid 'To' Phone Number").retry_after is None


# -- the send service --------------------------------------------------------------------------


def twilio_world() -> World:
    world = World()
    world.carrier = TwilioCarrier("ACx", "tok")  # type: ignore[assignment]
    world.numbers.save(OurNumber(number=OURS, carrier="twilio", is_default=True, owner="desk"))
    return world


def test_the_retry_waits_the_carriers_retry_after_when_longer_than_the_backoff() -> None:
    world = World()
    world.numbers.save(OurNumber(number=OURS, carrier="fake", is_default=True))
    world.carrier.script(
        SendFailed(
            FailureKind.TRANSIENT,
            "the carrier is rate limiting us; it will be retried",
            None,
            429,
            retry_after=300,
        ),
        SendFailed(
            FailureKind.TRANSIENT,
            "the carrier is rate limiting us; it will be retried",
            None,
            429,
            retry_after=2,
        ),
    )
    sender = world.sender()
    (queued,) = sender.submit(SendRequest.model_validate({"to": [ANA], "body": "hi"}), "req-1")
    first = sender.deliver(queued.message_id)
    assert first is not None and first.status is MessageStatus.RETRYING
    assert world.retry_queue.jobs[-1].delay_seconds == 300
    assert first.next_attempt_at is not None
    assert (first.next_attempt_at - world.clock()).total_seconds() == 300
    world.clock.advance(seconds=300)
    second = sender.deliver(queued.message_id)
    assert second is not None and second.status is MessageStatus.RETRYING
    assert 30 <= world.retry_queue.jobs[-1].delay_seconds <= 60  # the backoff, longer than 2 s


def test_a_throttling_carrier_is_retried_until_the_age_limit_then_given_up_without_a_promise() -> None:
    """Twilio answering 429 with Retry-After: 300 for as long as we ask: every wait is at least 300 s,
    and the text is given up on only once it is four hours old, still within the attempt backstop."""
    world = twilio_world()
    policy = RetryPolicy()
    sender = world.sender(policy=policy)
    (queued,) = sender.submit(SendRequest.model_validate({"to": [ANA], "body": "Campaign text"}), "k1")
    waits: list[int] = []
    with responses.RequestsMock() as mock:
        mock.add(
            responses.POST,
            "https://api.twilio.com/2010-04-01/Accounts/ACx/Messages.json",
            status=429,
            headers={"Retry-After": "300"},
            json={"code": 20429, "message": "Too Many Requests", "status": 429},
        )
        for _ in range(policy.max_attempts):
            message = sender.deliver(queued.message_id)
            assert message is not None
            if message.status is not MessageStatus.RETRYING:
                break
            waits.append(world.retry_queue.jobs[-1].delay_seconds)
            world.clock.advance(seconds=waits[-1])
        calls = len(mock.calls)

    assert message is not None and message.status is MessageStatus.FAILED
    assert min(waits) >= 300 and max(waits) <= 900
    assert sum(waits) >= policy.max_age_seconds
    assert calls == len(waits) + 1 < policy.max_attempts
    assert message.error_reason == (
        f"gave up after {calls} attempts over {describe_span(sum(waits))}: the carrier is rate limiting us"
    )
