"""A text the send service gave up on never says it "will be retried".

Carriers word a transient failure for the moment it happens ("...; it will be retried"), which is
true while the text is retrying. Once the retry limits are spent the message is failed, and its
reason must say what happened without promising a retry that will never come.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from types import ModuleType

import pytest

from parley.carriers import aws_sms, bandwidth, http, plivo, telnyx, twilio, vonage_messages, vonage_sms
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


# -- every carrier's wording ----------------------------------------------------------------------

CARRIER_MODULES = (aws_sms, bandwidth, plivo, telnyx, twilio, vonage_messages, vonage_sms, http)
RETRY_WORDS = re.compile(r"retr(y|ies|ied|ying)", re.IGNORECASE)


def _tables(module: ModuleType) -> list[tuple[FailureKind, str]]:
    found: list[tuple[FailureKind, str]] = []
    for value in vars(module).values():
        if isinstance(value, dict):
            found += [
                v
                for v in value.values()
                if isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], FailureKind)
            ]
    return found


def _classified(module: ModuleType) -> list[tuple[FailureKind, str]]:
    classify = getattr(module, "classify_error", None) or getattr(module, "classify", None)
    if classify is None:
        return []
    return [
        classify(None, status) for status in (400, 401, 403, 404, 408, 409, 422, 425, 429, 500, 502, 503, 504)
    ]


def _literals(module: ModuleType) -> list[str]:
    """Every string in the module's code but its docstrings, an f-string's fields written as "X"."""
    tree = ast.parse(Path(module.__file__ or "").read_text(encoding="utf-8"))
    skipped = {  # docstrings, and the pieces of f-strings (taken whole below)
        id(child)
        for node in ast.walk(tree)
        for child in (
            [node.value]
            if isinstance(node, ast.Expr)
            else node.values
            if isinstance(node, ast.JoinedStr)
            else []
        )
    }
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            found.append(
                "".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)  # type: ignore[misc]
            )
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skipped:
            found.append(node.value)
    return found


def retryable_wording() -> list[str]:
    """Every reason a carrier gives a failure that is retried, as it words it while retrying."""
    reasons = {
        reason
        for module in CARRIER_MODULES
        for kind, reason in _tables(module) + _classified(module)
        if kind is not FailureKind.PERMANENT
    }
    # Reasons written inline where a SendFailed is made (network failures, missing credentials, ...).
    reasons |= {
        text
        for module in CARRIER_MODULES
        for text in _literals(module)
        if "; " in text and RETRY_WORDS.search(text) and "\n" not in text
    }
    return sorted(reasons)


def test_the_wording_collected_covers_the_promises_carriers_make() -> None:
    reasons = retryable_wording()
    assert any(r.endswith("; will retry") for r in reasons)  # Bandwidth's 5xx
    assert any(r.endswith("; it will be retried later") for r in reasons)
    assert any(r.endswith("; checking before any retry") for r in reasons)
    assert any("with fresh ones" in r for r in reasons)  # AWS credentials
    assert sum(1 for r in reasons if RETRY_WORDS.search(r)) > 40


@pytest.mark.parametrize("reason", retryable_wording())
def test_no_carriers_retry_wording_survives_giving_up(reason: str) -> None:
    """Out of attempts on a transient failure, or after an ambiguous one the carrier has no record of:
    whatever the carrier's words, the failed text's reason keeps them but promises nothing."""
    for kind in (FailureKind.TRANSIENT, FailureKind.AMBIGUOUS):
        failure = SendFailed(kind, reason, None, 503)
        carrier = FakeLookupCarrier(outcomes=[failure])
        world = world_with(carrier)
        sender = world.sender(policy=RetryPolicy(max_attempts=1))
        (queued,) = sender.submit(SendRequest.model_validate({"to": [ANA], "body": "hi"}), "req-1")
        message = sender.deliver(queued.message_id)
        if kind is FailureKind.AMBIGUOUS:  # one more pass asks the carrier, which has nothing
            message = sender.deliver(queued.message_id)
        assert message is not None and message.status is MessageStatus.FAILED
        assert message.error_reason is not None
        assert message.error_reason.startswith("gave up after 1 attempts over 0 seconds: ")
        assert reason.split(";")[0].strip() in message.error_reason
        assert not RETRY_WORDS.search(message.error_reason), message.error_reason
        assert not RETRY_WORDS.search(message.history[-1].detail or "")


def test_a_bandwidth_503_given_up_on_does_not_say_it_will_retry() -> None:
    failure = SendFailed(
        FailureKind.TRANSIENT, bandwidth.classify_error("internal-server-error", 503)[1], None, 503
    )
    assert failure.reason.endswith("; will retry")
    world = world_with()
    world.carrier.script(failure, failure)
    sender = world.sender(policy=RetryPolicy(max_attempts=2))
    (queued,) = sender.submit(SendRequest.model_validate({"to": [ANA], "body": "hi"}), "req-1")
    sender.deliver(queued.message_id)
    failed = sender.deliver(queued.message_id)
    assert failed is not None and failed.error_reason == (
        "gave up after 2 attempts over 0 seconds: "
        "Bandwidth had a temporary problem and did not send it (HTTP 503)"
    )
