"""A send or retry batch stops taking records when the time left can't cover one more worst-case
send: the rest are reported as batch item failures, untried, so they come back with nothing recorded."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from parley.batching import TimedBatchProcessor, worst_case_send_seconds


class Context:
    """Each record handled uses `per_record` seconds of the invocation's `timeout`."""

    def __init__(self, timeout: float) -> None:
        self.left = timeout

    def get_remaining_time_in_millis(self) -> int:
        return int(self.left * 1000)


def _event(n: int) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": f"r{i}",
                "body": f'{{"message_id": "msg-{i}"}}',
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:send",
                "awsRegion": "us-east-1",
            }
            for i in range(n)
        ]
    }


def test_records_without_time_for_a_worst_case_send_are_left_untried_for_the_queue() -> None:
    worst = worst_case_send_seconds(10.0)
    assert worst >= 2 * 10.0  # a search and a send, each up to the carrier's read timeout
    context = Context(timeout=3 * worst + 1)
    tried: list[str] = []

    def slow(record: SQSRecord) -> None:  # every send as slow as it may be
        tried.append(record.message_id)
        context.left -= worst

    response = process_partial_response(
        event=_event(5), record_handler=slow, processor=TimedBatchProcessor(worst), context=context
    )

    assert tried == ["m0", "m1", "m2"]
    assert response == {"batchItemFailures": [{"itemIdentifier": "m3"}, {"itemIdentifier": "m4"}]}


def test_the_first_record_is_always_taken_and_a_quick_batch_is_taken_whole() -> None:
    worst = worst_case_send_seconds(10.0)
    tried: list[str] = []
    processor = TimedBatchProcessor(worst)

    def quick(record: SQSRecord) -> None:
        tried.append(record.message_id)

    short = process_partial_response(
        event=_event(3), record_handler=quick, processor=processor, context=Context(timeout=1)
    )
    assert tried == ["m0"] and [f["itemIdentifier"] for f in short["batchItemFailures"]] == ["m1", "m2"]

    tried.clear()
    whole = process_partial_response(
        event=_event(5), record_handler=quick, processor=processor, context=Context(timeout=170)
    )
    assert tried == ["m0", "m1", "m2", "m3", "m4"] and whole == {"batchItemFailures": []}


def test_the_send_and_retry_functions_fit_a_whole_batch_of_worst_case_sends() -> None:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    with open("template.yaml") as f:
        resources = yaml.load(f, Loader=Loader)["Resources"]  # noqa: S506 - a SafeLoader subclass
    worst = worst_case_send_seconds(10.0)
    for name, queue in (("SendFunction", "SendQueue"), ("RetryFunction", "RetryQueue")):
        props = resources[name]["Properties"]
        batch = props["Events"]["Queue"]["Properties"]["BatchSize"]
        # every record of a batch starts with a worst-case send's time still left
        assert props["Timeout"] - (batch - 1) * worst >= worst, name
        assert props["Timeout"] <= resources[queue]["Properties"]["VisibilityTimeout"], name
