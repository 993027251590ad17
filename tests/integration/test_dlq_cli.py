"""`parley dlq --stack-name`: the queues found from CloudFormation outputs, on moto."""

from __future__ import annotations

import json

import boto3
import pytest

from local import cli
from local.dlq import summary
from tests.cloudformation import cloudformation_stack

REGION = "us-east-1"
QUEUES = ("Inbound", "Send", "Retry", "Digest")
TEMPLATE = {
    "Resources": {
        **{f"{q}Queue": {"Type": "AWS::SQS::Queue"} for q in QUEUES},
        **{f"{q}DLQ": {"Type": "AWS::SQS::Queue"} for q in QUEUES},
    },
    "Outputs": {
        **{f"{q}QueueUrl": {"Value": {"Ref": f"{q}Queue"}} for q in QUEUES},
        **{f"{q}DLQUrl": {"Value": {"Ref": f"{q}DLQ"}} for q in QUEUES},
    },
}


@pytest.fixture
def outputs(moto_account: None) -> dict[str, str]:
    return cloudformation_stack("parley-prod", TEMPLATE, REGION)


def depth(url: str) -> int:
    attrs = boto3.client("sqs", region_name=REGION).get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def test_list_and_redrive_a_deployed_stack(
    outputs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    body = json.dumps({"to": ["+14155550100"], "body": "Doors at 7"})
    letter = sqs.send_message(QueueUrl=outputs["SendDLQUrl"], MessageBody=body)["MessageId"]
    target = ["--stack-name", "parley-prod", "--region", REGION]

    assert cli.main(["dlq", "list", "--queue", "send", *target]) == 0
    listed = capsys.readouterr().out
    assert "send DLQ: 1 waiting" in listed and letter in listed
    assert "+14155550100" not in listed and "+1********00" in listed
    assert depth(outputs["SendDLQUrl"]) == 1

    assert cli.main(["dlq", "redrive", *target]) == 0
    assert "1 message(s) redriven" in capsys.readouterr().out
    assert depth(outputs["SendDLQUrl"]) == 0
    (moved,) = sqs.receive_message(QueueUrl=outputs["SendQueueUrl"])["Messages"]
    assert moved["Body"] == body


def test_a_stack_without_the_outputs_is_one_clear_line(
    outputs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="old", TemplateBody=json.dumps({"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}})
    )
    assert cli.main(["dlq", "list", "--stack-name", "old", "--region", REGION]) == 1
    assert "has no InboundDLQUrl/InboundQueueUrl output" in capsys.readouterr().err


def test_summaries_mask_numbers_and_name_the_job() -> None:
    assert summary(json.dumps({"message_id": "out_1"})) == "job for message out_1"
    assert "+1********00" in summary(
        json.dumps({"event": {"kind": "inbound_message", "from_number": "+14155550100"}})
    )
    assert summary("x" * 200).endswith("…") and len(summary("x" * 200)) == 90
