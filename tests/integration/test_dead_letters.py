"""Dead letters on moto: real SQS redrives to real DLQs, the sweep drains them into DynamoDB."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from functions.retry import app as retry_app
from parley import wiring
from parley.adapters import aws
from parley.adapters.aws import SqsDeadLetterQueue
from parley.adapters.dynamo import DynamoMessages, DynamoNumbers
from parley.config import Settings
from parley.domain.ids import outbound_message_id
from parley.domain.models import Direction, MessageStatus, OurNumber, SendRequest
from parley.wiring import Container
from tests.integration.test_handlers import CONTEXT

REGION = "us-east-1"
OURS = "+15005550006"
ANA = "+14155550100"


@dataclass
class Queues:
    settings: Settings
    source: dict[str, str]  # inbound/send/retry -> the work queue's URL
    dlq: dict[str, str]

    def poison(self, queue: str, body: Any) -> str:
        """Put `body` on a work queue and fail it until SQS moves it to the DLQ (maxReceiveCount 1)."""
        sqs = boto3.client("sqs", region_name=REGION)
        text = body if isinstance(body, str) else json.dumps(body)
        sent = sqs.send_message(QueueUrl=self.source[queue], MessageBody=text)["MessageId"]
        for _ in range(2):  # the first receive fails (not deleted); on the next, SQS redrives it
            sqs.receive_message(QueueUrl=self.source[queue], VisibilityTimeout=0, MaxNumberOfMessages=10)
        assert self.depth(self.dlq[queue]) == 1
        return str(sent)

    def depth(self, url: str) -> int:
        attrs = boto3.client("sqs", region_name=REGION).get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


@pytest.fixture
def queues(aws_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Queues]:
    aws.client.cache_clear()
    sqs = boto3.client("sqs", region_name=REGION)
    source: dict[str, str] = {}
    dlq: dict[str, str] = {}
    for name in ("inbound", "send", "retry"):
        dlq[name] = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=dlq[name], AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        redrive = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 1})
        source[name] = sqs.create_queue(QueueName=f"{name}-work", Attributes={"RedrivePolicy": redrive})[
            "QueueUrl"
        ]
    settings = aws_settings.model_copy(
        update={
            "inbound_queue_url": source["inbound"],
            "send_queue_url": source["send"],
            "retry_queue_url": source["retry"],
            "inbound_dlq_url": dlq["inbound"],
            "send_dlq_url": dlq["send"],
            "retry_dlq_url": dlq["retry"],
        }
    )
    DynamoNumbers().save(OurNumber(number=OURS, carrier="twilio", is_default=True))
    monkeypatch.setattr(wiring, "_container", Container(settings=settings))
    yield Queues(settings, source, dlq)
    aws.client.cache_clear()


def sweep() -> dict[str, Any]:
    """The RetryFunction as its every-minute schedule invokes it."""
    result = retry_app.handler({"source": "aws.scheduler"}, CONTEXT)
    assert isinstance(result, dict) and "dead_letters" in result
    return dict(result)


def test_the_sweep_drains_every_dlq_into_the_failed_view(queues: Queues) -> None:
    app = wiring.container()
    (stored,) = app.sender.accept(SendRequest.model_validate({"to": [ANA], "body": "Hi"}), "order-1")
    queues.poison("send", {"message_id": stored[0].message_id})
    raw = queues.poison("retry", {"to": [ANA], "body": "Doors at 7"})
    inbound = queues.poison("inbound", {"event": {"kind": "inbound_message", "carrier": "twilio"}})

    assert sweep()["dead_letters"] == {"inbound": 1, "send": 1, "retry": 1}
    assert [queues.depth(url) for url in queues.dlq.values()] == [0, 0, 0]
    messages = DynamoMessages(queues.settings)
    failed = {m.message_id: m for m in messages.list_view("failed", limit=50, cursor=None).items}
    assert set(failed) >= {stored[0].message_id, outbound_message_id(f"sqs:{raw}", ANA)}
    assert "the send job failed repeatedly" in (failed[stored[0].message_id].error_reason or "")
    (inbound_record,) = [m for m in failed.values() if m.direction is Direction.INBOUND]
    assert inbound_record.metadata["dead_letter"]["sqs_message_id"] == inbound
    assert json.loads(inbound_record.metadata["dead_letter"]["payload"])["event"]["carrier"] == "twilio"

    # A second sweep finds nothing and changes nothing.
    assert sweep()["dead_letters"] == {"inbound": 0, "send": 0, "retry": 0}
    assert len(messages.list_view("failed", limit=50, cursor=None).items) == len(failed)
    again = messages.get(stored[0].message_id)
    assert again is not None and again.status is MessageStatus.FAILED


def test_a_received_letter_not_deleted_comes_back(queues: Queues) -> None:
    queues.poison("send", "garbage")
    dlq = SqsDeadLetterQueue(queues.dlq["send"], REGION, visibility_seconds=0)

    (first,) = dlq.receive(10)
    (again,) = dlq.receive(10)  # the reader stopped before deleting: the letter is still there

    assert again.message_id == first.message_id and again.body == "garbage"
    assert again.receive_count >= 2 and again.sent_at is not None
    dlq.delete(again)
    assert queues.depth(queues.dlq["send"]) == 0


def test_a_dead_letter_keeps_its_message_id_from_the_work_queue(queues: Queues) -> None:
    sent = queues.poison("inbound", "x")
    (letter,) = SqsDeadLetterQueue(queues.dlq["inbound"], REGION).receive(10)
    assert letter.message_id == sent  # ids derived from it stay stable across the move
