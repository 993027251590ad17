"""Dead letters on the local stack (issue 5): a poison message on each work queue goes to its DLQ the way
SQS moves it (maxReceiveCount), one fired sweep turns each into a failed message with the reason and empties
the DLQs, and `parley dlq list|redrive` show and move what sits there.

The template's queues keep a message 180 s per failed try and give up after 5; for this module they are set
(on moto, as one could on AWS) to 1 s and 1 try, and put back afterwards.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from local.process import wait_until
from parley.domain.ids import outbound_message_id
from parley.redact import mask
from parley.services.dead_letters import dead_letter_id
from tests.e2e.accounting import queue_depths, work_drained
from tests.e2e.conftest import Stack, queues_tuned

pytestmark = pytest.mark.e2e

OUR_NUMBER = "+15005550006"
WORK = {"inbound": "InboundQueue", "send": "SendQueue", "retry": "RetryQueue"}
DLQ = {"inbound": "InboundDLQ", "send": "SendDLQ", "retry": "RetryDLQ"}


def _urls(stack: Stack) -> dict[str, str]:
    return stack.queue_urls(*WORK.values(), *DLQ.values())


@pytest.fixture(scope="module")
def give_up_fast(stack: Stack) -> Iterator[None]:
    """Each work queue: a failed message back after 1 s, to its DLQ after one failed try."""
    wait_until(lambda: work_drained(stack), timeout=60)  # nothing of other tests' is dead-lettered by this

    def one_quick_try(_lid: str, now: dict[str, str]) -> dict[str, str]:
        redrive = {**json.loads(now["RedrivePolicy"]), "maxReceiveCount": 1}
        return {"VisibilityTimeout": "1", "RedrivePolicy": json.dumps(redrive)}

    with queues_tuned(stack, one_quick_try, *WORK.values()):
        yield


def _depth(stack: Stack, lid: str) -> int:
    return queue_depths(stack)[lid]


def test_a_poison_message_on_each_queue_ends_in_the_failed_view_after_one_sweep(
    stack: Stack, give_up_fast: None
) -> None:
    sqs, urls = stack.sqs(), _urls(stack)
    stack.fire("Sweep")  # whatever earlier tests left in the DLQs is recorded now, not counted below
    customer = "+14155550650"
    tag = uuid.uuid4().hex[:10]
    # The processor can't read it (a received_at that is no time): the inbound function fails each try.
    inbound_event = {
        "kind": "inbound_message",
        "carrier": "twilio",
        "carrier_message_id": f"SMdead{tag}",
        "from_number": customer,
        "to_number": OUR_NUMBER,
        "body": "Is my order ready?",
        "received_at": "not a time",
    }
    sqs.send_message(
        QueueUrl=urls["InboundQueue"],
        MessageBody=json.dumps({"event": inbound_event, "correlation_id": f"e2e-{tag}"}),
    )
    # A keyword answer without the number to send it from: the send function fails on it each try.
    send_job = {"compliance": {"keyword": "help", "to": customer, "reference": f"dead-{tag}"}}
    sqs.send_message(QueueUrl=urls["SendQueue"], MessageBody=json.dumps(send_job))
    # A retry job of no shape the retry function knows.
    retry_letter = sqs.send_message(QueueUrl=urls["RetryQueue"], MessageBody=json.dumps({"job": tag}))

    wait_until(lambda: all(_depth(stack, DLQ[q]) >= 1 for q in DLQ), timeout=30)
    wait_until(lambda: work_drained(stack), timeout=30)

    drained = stack.fire("Sweep")["dead_letters"]

    assert drained == {"inbound": 1, "send": 1, "retry": 1}
    assert {q: _depth(stack, DLQ[q]) for q in DLQ} == {"inbound": 0, "send": 0, "retry": 0}

    inbound = stack.message_or_none(dead_letter_id("inbound", f"twilio#inbound_message#SMdead{tag}"))
    assert inbound is not None
    assert inbound["status"] == "failed" and inbound["direction"] == "inbound"
    assert inbound["customer_number"] == customer and inbound["body"] == "Is my order ready?"
    assert inbound["error_reason"].startswith(f"an inbound text from twilio (carrier id SMdead{tag})")
    assert "received_at" in inbound["error_reason"]
    assert json.loads(inbound["metadata"]["dead_letter"]["payload"])["event"] == inbound_event

    answer = stack.message_or_none(outbound_message_id(f"compliance:dead-{tag}", customer))
    assert answer is not None and answer["status"] == "failed"
    assert "the send job failed repeatedly and was set aside" in answer["error_reason"]
    assert "legally required answer" in answer["error_reason"]

    retry = stack.message_or_none(
        outbound_message_id(f"rejected:{retry_letter['MessageId']}", "(no recipient)")
    )
    assert retry is not None and retry["status"] == "failed"
    assert "the retry job failed repeatedly and was set aside" in retry["error_reason"]

    # A second sweep has nothing to add.
    assert stack.fire("Sweep")["dead_letters"] == {"inbound": 0, "send": 0, "retry": 0}


def test_parley_dlq_lists_dead_letters_with_numbers_masked_and_redrives_them(stack: Stack) -> None:
    sqs, urls = stack.sqs(), _urls(stack)
    customer = "+14155550651"
    key = f"dlq-redrive-{uuid.uuid4().hex}"
    request = {"to": [customer], "body": "Your table is ready", "idempotency_key": key}
    # As SQS leaves it after the send function gave up on it (say, while DynamoDB was unavailable).
    letter = sqs.send_message(QueueUrl=urls["SendDLQ"], MessageBody=json.dumps(request))["MessageId"]
    # A retry job for a message that is gone: harmless when sent back (the retry function skips it).
    other = sqs.send_message(QueueUrl=urls["RetryDLQ"], MessageBody=json.dumps({"message_id": "out_gone"}))

    listed = stack.cli("dlq", "list")
    assert listed.returncode == 0, listed.stderr
    assert "send DLQ: 1 waiting" in listed.stdout
    assert letter in listed.stdout and other["MessageId"] in listed.stdout
    assert customer not in listed.stdout and mask(customer) in listed.stdout
    assert "Your table is ready" in listed.stdout
    assert _depth(stack, "SendDLQ") == 1  # listing moved nothing and hid nothing for long

    unknown = stack.cli("dlq", "redrive", "--queue", "send", "--id", "no-such-letter")
    assert unknown.returncode == 1 and "not found" in unknown.stderr

    moved = stack.cli("dlq", "redrive", "--queue", "send", "--id", letter)
    assert moved.returncode == 0, moved.stderr
    assert "1 message(s) redriven" in moved.stdout

    message_id = outbound_message_id(key, customer)
    wait_until(lambda: stack.message_or_none(message_id))  # back on the send queue, and this time it went
    stack.wait_status(message_id, "delivered")
    assert len(stack.sim_messages(customer)) == 1
    assert _depth(stack, "SendDLQ") == 0
    assert _depth(stack, "RetryDLQ") == 1  # not asked for: left where it was

    everything = stack.cli("dlq", "redrive", "--queue", "retry")
    assert everything.returncode == 0, everything.stderr
    wait_until(lambda: _depth(stack, "RetryDLQ") == 0 and _depth(stack, "RetryQueue") == 0)
