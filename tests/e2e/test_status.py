"""`parley status` against the running local stack, through the CLI as on call would run it: a failed
message, a dead letter and a digest run show up; numbers are masked; exit 3 while a DLQ holds something."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from local.process import wait_until
from parley.domain.ids import outbound_message_id
from parley.redact import mask
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

CUSTOMER = "+14155550673"


def _remove(sqs: Any, url: str, message_id: str) -> bool:
    """Take one letter out of a queue for good (whatever else is received goes back at once)."""
    for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=5).get(
        "Messages", []
    ):
        if m["MessageId"] == message_id:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            return True
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    return False


def test_status_shows_failures_dead_letters_and_the_last_digest_run(stack: Stack) -> None:
    sqs, urls = stack.sqs(), stack.queue_urls("SendQueue", "DigestDLQ")
    sent = sqs.send_message(
        QueueUrl=urls["SendQueue"], MessageBody=json.dumps({"to": ["not a number"], "body": "x"})
    )
    failed_id = outbound_message_id(f"rejected:{sent['MessageId']}", "not a number")
    wait_until(lambda: (m := stack.message_or_none(failed_id)) is not None and m["status"] == "failed")
    day = dt.datetime.now(dt.UTC).date().isoformat()
    digest = stack.cli("digest", "--day", day)
    assert digest.returncode == 0, digest.stderr
    letter = sqs.send_message(
        QueueUrl=urls["DigestDLQ"],
        MessageBody=json.dumps({"kind": "digest-day", "day": day, "customer_number": CUSTOMER}),
    )["MessageId"]
    try:
        result = stack.cli("status", "--json", "--failures", "20")
        assert result.returncode == 3, result.stderr
        assert CUSTOMER not in result.stdout and mask(CUSTOMER) in result.stdout
        report = json.loads(result.stdout)
        assert report["target"] == f"local stack at {stack.base_url}"
        assert failed_id in [f["message_id"] for f in report["recent_failures"]]
        dlq = next(q for q in report["dead_letters"] if q["name"] == "digest")
        assert letter in [m["message_id"] for m in dlq["messages"]]
        assert dlq["oldest_age_seconds"] is not None and dlq["oldest_age_seconds"] >= 0
        assert any(a.startswith("the digest DLQ holds") for a in report["attention"])
        run = report["digest"]
        assert (
            run["day"] == day and run["shards_done"] == run["shards"] and run["state"] in ("done", "failed")
        )
        assert report["local_state"] is None  # the e2e stack keeps nothing on disk

        text = stack.cli("status")
        assert text.returncode == 3 and "NEEDS ATTENTION" in text.stdout
        assert f"last digest run: {day}" in text.stdout and failed_id in text.stdout
    finally:
        assert wait_until(lambda: _remove(sqs, urls["DigestDLQ"], letter), timeout=40, interval=0.5)
    after = json.loads(stack.cli("status", "--json").stdout)
    assert not any(a.startswith("the digest DLQ holds") for a in after["attention"])
