"""Failures that lose nothing (issue 5): faults at the carrier and in AWS, each scenario ending with the books
balanced (tests/e2e/accounting.py): every text sent ends delivered, failed or suppressed, the carrier has one
text per message it accepted, and nothing went to a dead-letter queue unseen.

Carrier faults go to the simulator (`/_sim/twilio/_faults`), AWS faults to the local stack (`/_local/faults`,
local/faults.py). Each test uses its own customer numbers (+1415555 07xx; the bulk test +1415555 7000-7199)
and its fixtures clear every fault, put the clock back and restore queue settings, whatever happened.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from local.process import wait_until
from tests.e2e.accounting import count_check, dlq_depths, queue_depths
from tests.e2e.conftest import Stack, queues_tuned

pytestmark = pytest.mark.e2e

# The seeded number with a rate of 5 a second (a long code sends 1): a single text never waits for its turn,
# so the send function's first Messages write is the claim.
FAST_NUMBER = "+14155550161"
STUCK_AFTER_SECONDS = 6 * 60  # past services/sending.py's STUCK_SENDING_AFTER (5 minutes)
SHORT_VISIBILITY = 2  # seconds; the template's 180 would make a crashed job wait three minutes

AddFault = Callable[[dict[str, Any]], dict[str, Any]]
MoveClock = Callable[[dict[str, Any]], dict[str, Any]]


# ----------------------------------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture(scope="module")
def short_visibility(stack: Stack) -> Iterator[None]:
    """A job a function failed comes back after SHORT_VISIBILITY s instead of the template's 180."""
    with queues_tuned(
        stack, lambda _lid, _now: {"VisibilityTimeout": str(SHORT_VISIBILITY)}, "SendQueue", "RetryQueue"
    ):
        yield


@pytest.fixture
def dead_before(stack: Stack) -> dict[str, int]:
    """The DLQs' depths before the scenario: count_check's baseline."""
    return dlq_depths(stack)


def send(stack: Stack, to: list[str], body: str, *, from_number: str | None = None) -> list[str]:
    request: dict[str, Any] = {"to": to, "body": body}
    if from_number is not None:
        request["from"] = from_number
    response = requests.post(
        stack.url("/v1/messages"),
        json=request,
        headers={"Authorization": f"Bearer {stack.token}"},
        timeout=120,  # a 100-recipient request takes seconds on a small machine
    )
    assert response.status_code == 202, response.text
    return [str(m["message_id"]) for m in response.json()["messages"]]


def active_aws_faults(stack: Stack) -> list[dict[str, Any]]:
    response = requests.get(stack.url("/_local/faults"), timeout=10)
    assert response.status_code == 200, response.text
    faults: list[dict[str, Any]] = response.json()["faults"]
    return faults


def outcomes(message: dict[str, Any]) -> list[str]:
    return [str(a["outcome"]) for a in message["attempts"]]


# ----------------------------------------------------------------------------------------------------
# carrier faults


@pytest.mark.parametrize(
    ("kind", "customer", "failed_as"),
    [
        ("500", "+14155550700", "ambiguous"),  # Twilio may have created it: looked up before each resend
        ("429", "+14155550701", "transient"),  # Twilio did not process it
        ("timeout", "+14155550702", "ambiguous"),  # held past our 2 s read timeout, nothing created
    ],
)
def test_transient_carrier_failures_are_retried_and_delivered_once(
    stack: Stack,
    carrier_fault: AddFault,
    dead_before: dict[str, int],
    kind: str,
    customer: str,
    failed_as: str,
) -> None:
    carrier_fault({"kind": kind, "count": 2, "to": customer, "hold_seconds": 3})

    (message_id,) = send(stack, [customer], f"Carrier {kind} twice, then fine", from_number=FAST_NUMBER)

    books = count_check(stack, [message_id], baseline=dead_before)
    assert books.delivered == 1 and books.carrier_texts == 1
    assert outcomes(books.messages[0]) == [failed_as, failed_as, "accepted"]


def test_a_timeout_after_the_carrier_accepted_is_reconciled_not_resent(
    stack: Stack, carrier_fault: AddFault, dead_before: dict[str, int]
) -> None:
    customer = "+14155550703"
    carrier_fault({"kind": "timeout_after_accept", "count": 1, "to": customer, "hold_seconds": 3})

    (message_id,) = send(stack, [customer], "Accepted, but the answer never came", from_number=FAST_NUMBER)

    books = count_check(stack, [message_id], baseline=dead_before)
    assert books.delivered == 1 and books.carrier_texts == 1
    assert outcomes(books.messages[0]) == ["ambiguous", "reconciled"]


# ----------------------------------------------------------------------------------------------------
# AWS faults


@pytest.mark.parametrize(
    ("customer", "fault"),
    [
        ("+14155550704", {"error": "crash"}),
        # Throttled past pynamodb's 4 attempts: the write raises, the job fails, the status is never written.
        ("+14155550705", {"error": "ProvisionedThroughputExceededException", "count": 4}),
    ],
    ids=["crash", "throttled-past-sdk-retries"],
)
@pytest.mark.usefixtures("short_visibility")
def test_a_send_that_dies_after_the_carrier_call_is_reconciled_not_resent(
    stack: Stack,
    aws_fault: AddFault,
    move_clock: MoveClock,
    dead_before: dict[str, int],
    customer: str,
    fault: dict[str, Any],
) -> None:
    """The send function's first Messages write claims the text (`sending`), the carrier call follows, the
    second records the acceptance: that one fails, so the function ends with the text at the carrier and
    `sending` stored. The job comes back and finds the text `sending` (not its to resend); the sweep then
    finds it stuck, and the retry asks the carrier before anything is sent again."""
    aws_fault(
        {
            "service": "dynamodb",
            "operation": "PutItem",
            "table": "MessagesTable",
            "function": "SendFunction",
            "match": customer,
            "skip": 1,  # the claim
            **fault,
        }
    )

    (message_id,) = send(stack, [customer], "Sent, then the function died", from_number=FAST_NUMBER)

    wait_until(lambda: not active_aws_faults(stack), timeout=30)  # the fault fired (all of it)
    wait_until(lambda: not any(queue_depths(stack)[q] for q in ("SendQueue", "RetryQueue")), timeout=30)
    stuck = stack.message(message_id)
    assert stuck["status"] == "sending" and stuck["attempts"] == []
    assert len(stack.sim_messages(customer)) == 1  # the carrier has it

    move_clock({"advance_seconds": STUCK_AFTER_SECONDS})
    assert stack.fire("Sweep")["recovered"] >= 1

    books = count_check(stack, [message_id], baseline=dead_before)
    assert books.delivered == 1 and books.carrier_texts == 1
    assert outcomes(books.messages[0]) == ["ambiguous", "reconciled"]


@pytest.mark.usefixtures("short_visibility")
def test_a_throttled_claim_write_fails_the_job_which_comes_back_and_sends_once(
    stack: Stack, aws_fault: AddFault, dead_before: dict[str, int]
) -> None:
    customer = "+14155550706"
    aws_fault(
        {
            "service": "dynamodb",
            "operation": "PutItem",
            "table": "MessagesTable",
            "function": "SendFunction",
            "match": customer,
            "error": "ProvisionedThroughputExceededException",
            "count": 4,  # every attempt pynamodb makes: the claim raises before the carrier is called
        }
    )

    (message_id,) = send(stack, [customer], "Throttled before the carrier call", from_number=FAST_NUMBER)

    books = count_check(stack, [message_id], baseline=dead_before)
    assert books.delivered == 1 and books.carrier_texts == 1
    assert outcomes(books.messages[0]) == ["accepted"]
    assert not active_aws_faults(stack)  # it fired four times


def test_a_throttled_status_write_is_retried_by_the_sdk_and_the_status_is_right(
    stack: Stack, aws_fault: AddFault, dead_before: dict[str, int]
) -> None:
    customer = "+14155550707"
    aws_fault(
        {
            "service": "dynamodb",
            "operation": "PutItem",
            "table": "MessagesTable",
            "function": "SendFunction",
            "match": customer,
            "skip": 1,  # the claim goes through; the write recording the acceptance is throttled
            "error": "ProvisionedThroughputExceededException",
            "count": 3,  # within pynamodb's 4 attempts: the SDK retries it away
        }
    )

    (message_id,) = send(stack, [customer], "Throttled status write", from_number=FAST_NUMBER)

    books = count_check(stack, [message_id], baseline=dead_before)
    assert books.delivered == 1 and books.carrier_texts == 1
    assert outcomes(books.messages[0]) == ["accepted"]
    assert not active_aws_faults(stack)


# ----------------------------------------------------------------------------------------------------
# many texts, many faults


BULK_COUNT = int(os.environ.get("PARLEY_E2E_BULK_COUNT", "200"))


def test_a_bulk_send_with_random_transient_faults_delivers_or_fails_each_text_once(
    stack: Stack, carrier_fault: AddFault, dead_before: dict[str, int]
) -> None:
    """BULK_COUNT texts in requests of up to 100 from the 5-a-second number; a seeded 30% of the recipients
    meet 1 to 3 carrier 500s or 429s (retried, then delivered), and a tenth of those meet 5 (the retry
    limit: failed). Every text ends delivered or failed, and the carrier has each delivered one once.

    Measured on the 2-core dev machine: 200 texts take about 95 s (two 100-recipient requests 25 s, then
    the number's rate and the doomed texts' backoff); PARLEY_E2E_BULK_COUNT sets a smaller count for a
    quicker local run."""
    rng = random.Random(20261128)
    recipients = [f"+1415555{7000 + i:04d}" for i in range(BULK_COUNT)]
    faulted = rng.sample(recipients, k=round(BULK_COUNT * 0.3))
    doomed = set(faulted[: max(1, len(faulted) // 10)])
    for to in faulted:
        kind = rng.choice(["500", "429"])
        carrier_fault({"kind": kind, "count": 5 if to in doomed else rng.randint(1, 3), "to": to})

    message_ids: list[str] = []
    began = time.monotonic()
    for start in range(0, BULK_COUNT, 100):
        message_ids += send(
            stack, recipients[start : start + 100], "Bulk under fire", from_number=FAST_NUMBER
        )
    assert len(message_ids) == BULK_COUNT

    posted = time.monotonic()
    books = count_check(stack, message_ids, baseline=dead_before, timeout=240)
    print(f"requests took {posted - began:.1f} s")
    print(f"{BULK_COUNT} texts settled {time.monotonic() - posted:.1f} s after the last request")
    by_recipient = {m["customer_number"]: m for m in books.messages}
    assert {n for n, m in by_recipient.items() if m["status"] == "failed"} == doomed
    assert books.delivered == BULK_COUNT - len(doomed)
    assert books.carrier_texts == books.delivered
    for number in doomed:
        assert len(by_recipient[number]["attempts"]) == 5
        assert "gave up after 5 attempts" in by_recipient[number]["error_reason"]


# ----------------------------------------------------------------------------------------------------
# the queue refuses the send job


def test_a_send_job_the_queue_refused_is_answered_503_and_the_sweep_sends_the_text_once(
    stack: Stack, aws_fault: AddFault, move_clock: MoveClock, dead_before: dict[str, int]
) -> None:
    """The API stored the text, then SQS failed past the SDK's retries: the caller hears 503 (safe to
    ask again); a caller who never does still has the text sent, once, when the sweep finds it."""
    customer = "+14155550708"
    aws_fault(
        {
            "service": "sqs",
            "operation": "SendMessage",
            "queue": "SendQueue",
            "function": "ApiFunction",
            "error": "ServiceUnavailable",
            "status": 503,
            "count": 10,  # more than the SDK's attempts
        }
    )
    request = {"to": [customer], "body": "Queued while SQS was down", "from": FAST_NUMBER}

    refused = stack.api("POST", "/v1/messages", json={**request, "idempotency_key": "sqs-down-708"})

    assert refused.status_code == 503, refused.text
    assert "send the same request again" in refused.json()["error"]
    stack.control("DELETE", "/_local/faults")
    (message_id,) = [
        m["message_id"] for m in stack.api("GET", f"/v1/conversations/{customer}/messages").json()["messages"]
    ]
    assert stack.message(message_id)["status"] == "queued"  # stored, its job lost

    move_clock({"advance_seconds": 6 * 60})
    assert stack.fire("Sweep")["recovered"] >= 1

    books = count_check(stack, [message_id], baseline=dead_before)
    assert books.delivered == 1 and books.carrier_texts == 1
