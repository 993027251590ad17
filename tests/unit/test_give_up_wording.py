"""A text the send service gave up on never says it "will be retried".

Carriers word a transient failure for the moment it happens ("...; it will be retried"), which is
true while the text is retrying. Once the retry limits are spent the message is failed, and its
reason must say what happened without promising a retry that will never come.
"""

from __future__ import annotations

import pytest

from parley.carriers import telnyx, twilio
from parley.carriers.base import FailureKind, SendFailed
from parley.domain.models import MessageStatus, OurNumber, SendRequest
from parley.domain.retry import RetryPolicy
from tests.fakes import FakeLookupCarrier, World

OURS = "+15005550006"
ANA = "+14155550100"


def world_with(carrier: FakeLookupCarrier | None = None) -> World:
    world = World(carrier=carrier) if carrier is not None else World()
    world.numbers.save(OurNumber(number=OURS, carrier="fake", is_default=True))
    return world


@pytest.mark.parametrize(
    "failure",
    [
        SendFailed(FailureKind.TRANSIENT, twilio.classify_error("20429", 429)[1], "20429", 429),
        SendFailed(FailureKind.TRANSIENT, telnyx.classify_error(None, 503)[1], None, 503),
        SendFailed(FailureKind.TRANSIENT, "could not reach the carrier; it will be retried safely"),
    ],
    ids=["twilio-429", "telnyx-503", "retried-safely"],
)
def test_a_text_given_up_on_does_not_promise_a_retry(failure: SendFailed) -> None:
    assert "it will be retried" in failure.reason  # as the carrier words it while retrying
    world = world_with()
    world.carrier.script(failure, failure, failure)
    sender = world.sender(policy=RetryPolicy(max_attempts=3))
    (queued,) = sender.submit(SendRequest.model_validate({"to": [ANA], "body": "hi"}), "req-1")
    retrying = sender.deliver(queued.message_id)
    assert retrying is not None and retrying.status is MessageStatus.RETRYING
    assert retrying.error_reason == failure.reason  # true while it is retrying

    sender.deliver(queued.message_id)
    failed = sender.deliver(queued.message_id)

    assert failed is not None and failed.status is MessageStatus.FAILED
    assert failed.error_reason is not None
    assert failed.error_reason.startswith("gave up after 3 attempts over 0 seconds: ")
    assert "retried" not in failed.error_reason
    assert failed.error_reason.endswith(failure.reason.split(";")[0])
    assert "retried" not in failed.history[-1].detail  # type: ignore[operator]


def test_a_text_given_up_on_after_asking_the_carrier_does_not_promise_a_retry() -> None:
    """Out of attempts after an ambiguous one, the last pass only asks the carrier; the reason quotes
    that attempt's words, without their promise."""
    ambiguous = SendFailed(FailureKind.AMBIGUOUS, "the carrier did not answer; it will be retried", None, 502)
    carrier = FakeLookupCarrier(outcomes=[ambiguous, ambiguous])
    world = world_with(carrier)
    sender = world.sender(policy=RetryPolicy(max_attempts=2))
    (queued,) = sender.submit(SendRequest.model_validate({"to": [ANA], "body": "hi"}), "req-1")
    sender.deliver(queued.message_id)
    sender.deliver(queued.message_id)  # the last attempt allowed, ambiguous too
    failed = sender.deliver(queued.message_id)  # asks, finds nothing, gives up

    assert failed is not None and failed.status is MessageStatus.FAILED
    assert failed.error_reason == (
        "gave up after 2 attempts over 0 seconds: the carrier did not answer; "
        "the carrier has no record of the last attempt"
    )
    assert len(carrier.sent) == 2
