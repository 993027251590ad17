"""`parley status --stack-name`: a deployed stack's health read through CloudFormation, SQS and DynamoDB
(moto), the way on call would read it with their own credentials."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from local import cli
from local.status import ATTENTION_EXIT
from parley.redact import mask
from tests.cloudformation import cloudformation_stack

REGION = "us-east-1"
QUEUES = ("Inbound", "Send", "Retry", "Digest")
CUSTOMER = "+14155550177"
MASKED = mask(CUSTOMER)  # +1, stars, 77


def _table(key: str, *indexes: tuple[str, str, str]) -> dict[str, Any]:
    attributes = {key, *(a for _, h, r in indexes for a in (h, r))}
    properties: dict[str, Any] = {
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in sorted(attributes)],
    }
    if indexes:
        properties["GlobalSecondaryIndexes"] = [
            {
                "IndexName": name,
                "KeySchema": [
                    {"AttributeName": h, "KeyType": "HASH"},
                    {"AttributeName": r, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
            for name, h, r in indexes
        ]
    return {"Type": "AWS::DynamoDB::Table", "Properties": properties}


TEMPLATE = {
    "Resources": {
        **{f"{q}Queue": {"Type": "AWS::SQS::Queue"} for q in QUEUES},
        **{f"{q}DLQ": {"Type": "AWS::SQS::Queue"} for q in QUEUES},
        "MessagesTable": _table("message_id", ("by-view", "view", "created_at")),
        "DigestsTable": _table("digest_key"),
    },
    "Outputs": {
        **{f"{q}QueueUrl": {"Value": {"Ref": f"{q}Queue"}} for q in QUEUES},
        **{f"{q}DLQUrl": {"Value": {"Ref": f"{q}DLQ"}} for q in QUEUES},
    },
}
TARGET = ["--stack-name", "parley-prod", "--region", REGION]


@pytest.fixture
def deployed(moto_account: None) -> dict[str, str]:
    """The stack's outputs and its tables' physical names."""
    return cloudformation_stack("parley-prod", TEMPLATE, REGION)


def failed_message(table: str, message_id: str, at: datetime, reason: str) -> None:
    doc = {
        "direction": "outbound",
        "our_number": "+15005550006",
        "carrier": "twilio",
        "error_code": "30007",
        "error_reason": reason,
        "updated_at": at.isoformat(),
    }
    boto3.client("dynamodb", region_name=REGION).put_item(
        TableName=table,
        Item={
            "message_id": {"S": message_id},
            "customer_number": {"S": CUSTOMER},
            "created_at": {"S": at.isoformat()},
            "view": {"S": "failed"},
            "status": {"S": "failed"},
            "doc": {"S": json.dumps(doc)},
        },
    )


def digest_run(table: str, day: str, started: datetime, *, shards: int, done: int, failed: int = 0) -> None:
    item: dict[str, Any] = {
        "digest_key": {"S": f"run#{day}"},
        "started_at": {"S": started.isoformat()},
        "shards": {"N": str(shards)},
        "shards_done": {"N": str(done)},
        "n_conversations": {"N": "12"},
        "n_created": {"N": "9"},
        "n_updated": {"N": "2"},
    }
    if failed:
        item["n_failed"] = {"N": str(failed)}
        item["failures"] = {
            "S": json.dumps([{"customer_number": CUSTOMER, "day": day, "reason": "CRM said 500"}])
        }
    boto3.client("dynamodb", region_name=REGION).put_item(TableName=table, Item=item)


def test_a_quiet_stack_is_all_clear(deployed: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime.now(UTC)
    digest_run(deployed["DigestsTable"], (now - timedelta(days=1)).date().isoformat(), now, shards=4, done=4)

    assert cli.main(["status", *TARGET]) == 0
    out = capsys.readouterr().out
    assert "stack parley-prod (us-east-1)" in out and "recent failures: none" in out
    assert f"last digest run: {(now - timedelta(days=1)).date()} done, 4/4 shards" in out
    assert "11 records posted" in out and out.rstrip().endswith("all clear")


def test_dead_letters_failures_and_a_failed_digest_need_attention(
    deployed: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    sqs.send_message(QueueUrl=deployed["SendQueueUrl"], MessageBody=json.dumps({"message_id": "out_waiting"}))
    letter = sqs.send_message(
        QueueUrl=deployed["SendDLQUrl"], MessageBody=json.dumps({"to": [CUSTOMER], "body": "Doors at 7"})
    )["MessageId"]
    now = datetime.now(UTC)
    failed_message(deployed["MessagesTable"], "out_old", now - timedelta(hours=2), "older")
    failed_message(deployed["MessagesTable"], "out_new", now, f"carrier refused {CUSTOMER}")
    day = now.date().isoformat()
    digest_run(
        deployed["DigestsTable"],
        (now - timedelta(days=3)).date().isoformat(),
        now - timedelta(days=2),
        shards=1,
        done=1,
    )
    digest_run(deployed["DigestsTable"], day, now - timedelta(minutes=5), shards=4, done=4, failed=1)

    boto3.client("cloudwatch", region_name=REGION).put_metric_data(  # what SQS reports every minute
        Namespace="AWS/SQS",
        MetricData=[
            {
                "MetricName": "ApproximateAgeOfOldestMessage",
                "Dimensions": [{"Name": "QueueName", "Value": deployed["SendDLQUrl"].rsplit("/", 1)[1]}],
                "Timestamp": now - timedelta(minutes=1),
                "Value": 420.0,
            }
        ],
    )

    assert cli.main(["status", *TARGET, "--json"]) == ATTENTION_EXIT
    printed = capsys.readouterr().out
    assert CUSTOMER not in printed  # masked everywhere: the letter's summary, the failures, the digest's
    report = json.loads(printed)
    send = next(q for q in report["queues"] if q["name"] == "send")
    assert (send["visible"], send["in_flight"]) == (1, 0)
    send_dlq = next(q for q in report["dead_letters"] if q["name"] == "send")
    assert send_dlq["visible"] == 1 and [m["message_id"] for m in send_dlq["messages"]] == [letter]
    assert send_dlq["oldest_age_seconds"] == 420 and send["oldest_age_seconds"] is None  # no datapoint
    assert [f["message_id"] for f in report["recent_failures"]] == ["out_new", "out_old"]
    newest = report["recent_failures"][0]
    assert newest["customer"] == MASKED and newest["error_code"] == "30007"
    assert newest["reason"] == f"carrier refused {MASKED}"
    assert report["digest"]["day"] == day and report["digest"]["state"] == "failed"
    assert report["attention"] == [
        "the send DLQ holds 1 message(s): `parley dlq list --queue send`",
        f"the digest of {day} failed for 1 record(s)",
    ]
    # the peek put the letter back: the DLQ still holds it, visible
    attrs = sqs.get_queue_attributes(QueueUrl=deployed["SendDLQUrl"], AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "1"

    assert cli.main(["status", *TARGET, "--failures", "1"]) == ATTENTION_EXIT
    text = capsys.readouterr().out
    assert CUSTOMER not in text and MASKED in text
    assert "out_new" in text and "out_old" not in text
    assert "NEEDS ATTENTION" in text and "the send DLQ holds 1 message(s)" in text
    assert "7 min" in text  # the DLQ's oldest letter, from CloudWatch


def test_a_run_that_stopped_part_way_needs_attention_one_still_going_does_not(
    deployed: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    now, table = datetime.now(UTC), deployed["DigestsTable"]
    day = (now - timedelta(days=1)).date().isoformat()
    digest_run(table, day, now - timedelta(minutes=10), shards=8, done=3)
    assert cli.main(["status", *TARGET, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["digest"]["state"] == "running"

    digest_run(table, day, now - timedelta(hours=3), shards=8, done=3)
    assert cli.main(["status", *TARGET, "--json"]) == ATTENTION_EXIT
    report = json.loads(capsys.readouterr().out)
    assert report["digest"]["state"] == "stalled"
    assert report["attention"] == [
        f"the digest of {day} stopped at 3/8 shards (started {(now - timedelta(hours=3)).isoformat()})"
    ]


def test_bad_arguments_and_a_missing_stack_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "--failures", "-1"]) == 2
    assert cli.main(["status", "--region", REGION]) == 2
    assert "--region goes with --stack-name" in capsys.readouterr().err
    assert cli.main(["status", "--url", "http://127.0.0.1:9"]) == 1
    assert "is `make dev` running?" in capsys.readouterr().err
