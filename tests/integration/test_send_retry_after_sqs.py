"""The send function against moto, with Twilio (a local HTTP server) throttling: the carrier's
Retry-After becomes the retry job's SQS delay, so the retry queue holds the job back that long.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest

from functions.send import app as send_app
from parley import wiring
from parley.adapters.dynamo import DynamoMessages
from parley.domain.models import MessageStatus
from tests.integration.test_handlers import CONTEXT, CUSTOMER, REGION, Stack, post_json, sqs_event
from tests.integration.test_handlers import stack as stack  # noqa: F401 - the moto stack fixture


class Twilio(ThreadingHTTPServer):
    """Answers every send with `status`, `body` and `headers`; counts the sends."""

    def __init__(self, status: int, body: dict[str, object], headers: dict[str, str]) -> None:
        self.status, self.body, self.headers, self.sends = status, body, headers, 0
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: Twilio

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.sends += 1
        payload = json.dumps(self.server.body).encode()
        self.send_response(self.server.status)
        for name, value in {**self.server.headers, "Content-Type": "application/json"}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        pass


@pytest.fixture
def twilio(request: pytest.FixtureRequest, stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Twilio]:  # noqa: F811
    status, body, headers = request.param
    server = Twilio(status, body, headers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("PARLEY_TWILIO_API_BASE", f"http://127.0.0.1:{server.server_address[1]}")
    wiring.reset_container()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


Answer = tuple[int, dict[str, object], dict[str, str]]
THROTTLED: Answer = (
    429,
    {"code": 20429, "message": "Too Many Requests", "status": 429},
    {"Retry-After": "300"},
)
QUEUE_FULL: Answer = (
    400,
    {"code": 21611, "message": "This 'From' number has exceeded the maximum number of queued messages"},
    {},
)


def send_once(stack: Stack) -> str:  # noqa: F811
    status, body = post_json("/v1/messages", {"to": [CUSTOMER], "body": "Campaign text"})
    assert status == 202
    records = stack.queue_messages(stack.settings.send_queue_url)
    assert send_app.handler(sqs_event(records, queue="send"), CONTEXT) == {"batchItemFailures": []}
    message_id: str = body["messages"][0]["message_id"]
    return message_id


def held_back(stack: Stack) -> tuple[int, int]:  # noqa: F811
    """(visible, delayed) jobs on the retry queue."""
    attrs = boto3.client("sqs", region_name=REGION).get_queue_attributes(
        QueueUrl=stack.settings.retry_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesDelayed"])


@pytest.mark.parametrize(
    ("twilio", "wait", "code"), [(THROTTLED, 300, "20429"), (QUEUE_FULL, 300, "21611")], indirect=["twilio"]
)
def test_the_carriers_wait_becomes_the_retry_jobs_delay(
    stack: Stack,  # noqa: F811
    twilio: Twilio,
    wait: int,
    code: str,
) -> None:
    message_id = send_once(stack)

    message = DynamoMessages(stack.settings).get(message_id)
    assert message is not None and message.status is MessageStatus.RETRYING
    assert message.error_code == code
    assert message.next_attempt_at is not None
    assert wait <= (message.next_attempt_at - message.attempts[-1].at).total_seconds() <= 900
    assert twilio.sends == 1
    assert held_back(stack) == (0, 1)  # the job is on the queue, held back
    assert stack.queue_messages(stack.settings.retry_queue_url) == []
