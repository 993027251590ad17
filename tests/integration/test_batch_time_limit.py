"""The send and retry functions stop taking records when the time left can't cover one more
worst-case send: the rest come back as batch item failures, untried, instead of the invocation
running out of time and every record of the batch coming back with its receive count raised."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from functions.retry import app as retry_app
from functions.send import app as send_app
from parley.batching import worst_case_send_seconds
from tests.integration.test_handlers import REGION, Stack
from tests.integration.test_handlers import stack as stack  # noqa: F401 - the moto stack fixture


class SlowInvocation:
    """A Lambda context whose clock each record's handling moves on by a worst-case send."""

    function_name = "parley-test"
    memory_limit_in_mb = 256
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:parley-test"
    aws_request_id = "00000000-0000-0000-0000-000000000002"

    def __init__(self, timeout_seconds: float) -> None:
        self.left = timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return int(self.left * 1000)


def _event(n: int) -> dict[str, Any]:
    record = {
        "receiptHandle": "r",
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1714986000000"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:send",
        "awsRegion": REGION,
    }
    return {
        "Records": [
            {**record, "messageId": f"m{i}", "body": f'{{"message_id": "msg-{i}"}}'} for i in range(n)
        ]
    }


@pytest.mark.parametrize("function", [send_app, retry_app], ids=["send", "retry"])
def test_a_batch_of_slow_sends_leaves_what_it_has_no_time_for_untried(
    stack: Stack,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    function: Any,
) -> None:
    worst = worst_case_send_seconds(stack.settings.carrier_timeout_seconds)
    context = SlowInvocation(timeout_seconds=2.5 * worst)
    tried: list[str] = []

    def slow(record: SQSRecord) -> None:  # the carrier holds every answer to its timeout
        tried.append(record.message_id)
        context.left -= worst

    monkeypatch.setattr(function, "process", slow)
    response = function.handler(_event(5), context)

    assert tried == ["m0", "m1"]
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == ["m2", "m3", "m4"]
