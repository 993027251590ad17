"""Benchmarks: `make bench`.

1. Cold import of each handler module, each in a fresh interpreter, as a ratio to a baseline
   (importing boto3 and creating one client) measured in the same run, since absolute times on a
   shared machine mean little.
2. AWS calls per operation (webhook ack, processing one inbound text, one send), counted with a
   botocore `before-call` event hook on every client, against moto in-process; from the same hooks,
   DynamoDB capacity units as billed (bench/dynamo_units.py: item sizes, index projections, key
   changes) for a sent and a received text, and what a million of each cost.
3. A rate-limited burst through SendService (in-memory stores, fake carrier, simulated clock), and
   a burst in real time through `parley local` (bench/local_burst.py): the achieved rate as a ratio
   to the configured one, and that no text is dropped or sent twice; the local stack's own
   throughput, measured in the same run, is the baseline the limit must sit well inside.
4. The digest's DynamoDB units against table size (bench/digest_scale.py, in its own process, so its
   moto tables and hooks don't meet these): the same 100 active conversations in 1,000 and in 10,000,
   and 1,000 active. Alone: `python -m bench.digest_scale`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.dynamo_units import CallCounter, Charges, meter_for

ROOT = Path(__file__).resolve().parent.parent

HANDLERS = [
    "functions.inbound.webhook",
    "functions.inbound.processor",
    "functions.send.app",
    "functions.retry.app",
    "functions.digest.app",
    "functions.api.app",
]

BASELINE = "import boto3; boto3.client('sqs', region_name='us-east-1')"


def _time_import(statement: str, runs: int) -> float:
    """Median wall time of `statement` in fresh interpreters (the cold-start share we control)."""
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "PYTHONDONTWRITEBYTECODE": "0"}
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT, env=env
        )
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def cold_imports(runs: int) -> list[tuple[str, float, float]]:
    _time_import(BASELINE, 1)  # warm the OS file cache so the first row isn't penalised
    baseline = _time_import(BASELINE, runs)
    rows = [("baseline: boto3 + one client", baseline, 1.0)]
    for module in HANDLERS:
        seconds = _time_import(f"import {module}", runs)
        rows.append((module, seconds, seconds / baseline))
    return rows


# -- AWS calls per operation --------------------------------------------------------------------


# On-demand list prices, us-east-1, dollars per million request units.
WRITE_PRICE = 0.625
READ_PRICE = 0.125


class _Context:
    function_name = "bench"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 170_000  # the Send and Retry functions' timeout


def aws_calls() -> tuple[list[tuple[str, Counter[str]]], Charges, Charges]:
    counter = CallCounter()
    counter.install()
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        POWERTOOLS_LOG_LEVEL="ERROR",
        POWERTOOLS_TRACE_DISABLED="true",
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    import boto3
    from moto import mock_aws

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        urls = {n: sqs.create_queue(QueueName=f"bench-{n}")["QueueUrl"] for n in ("inbound", "send", "retry")}
        boto3.client("events", region_name="us-east-1").create_event_bus(Name="parley-bench")
        boto3.client("ssm", region_name="us-east-1").put_parameter(
            Name="/parley/bench/twilio/auth-token", Value="bench-token", Type="SecureString"
        )
        os.environ.pop("PARLEY_TWILIO_AUTH_TOKEN", None)  # a cold start reads it from SSM
        os.environ.update(
            PARLEY_INBOUND_QUEUE_URL=urls["inbound"],
            PARLEY_SEND_QUEUE_URL=urls["send"],
            PARLEY_RETRY_QUEUE_URL=urls["retry"],
            PARLEY_EVENT_BUS_NAME="parley-bench",
            PARLEY_TWILIO_ACCOUNT_SID="AC" + "0" * 32,
            PARLEY_TWILIO_AUTH_TOKEN_PARAM="/parley/bench/twilio/auth-token",
            PARLEY_PUBLIC_BASE_URL="https://bench.example",
        )
        from parley.adapters.dynamo import create_all_tables
        from parley.carriers.base import OutboundText, SendAccepted
        from parley.carriers.registry import register
        from parley.carriers.twilio import TwilioCarrier
        from parley.domain.models import OurNumber
        from parley.wiring import container

        class OfflineTwilio(TwilioCarrier):
            """Real verification and parsing; the send is answered locally (we count AWS calls only)."""

            def send(self, text: OutboundText) -> SendAccepted:
                return SendAccepted("SM" + uuid.uuid4().hex, "queued", 1)

        register(
            "twilio",
            lambda c: OfflineTwilio(c.get("twilio_account_sid"), c.secret("twilio_auth_token")),
        )
        from parley.wiring import reset_container

        reset_container()
        app = container()
        app.settings  # noqa: B018 - binds the models to this stage's tables
        create_all_tables()
        counter.meter = meter_for(boto3.client("dynamodb", region_name="us-east-1"))
        app.numbers.save(OurNumber(number="+15005550006", carrier="twilio", is_default=True))
        counter.take()

        from functions.api import app as api
        from functions.inbound import processor, webhook
        from functions.send import app as send

        rows: list[tuple[str, Counter[str]]] = []
        for label in ("webhook ack (cold: reads the auth token)", "webhook ack (warm)"):
            webhook.handler(_signed_webhook("bench-token"), _Context())
            rows.append((label, counter.take()))

        queued = sqs.receive_message(QueueUrl=urls["inbound"], MaxNumberOfMessages=10)["Messages"]
        counter.take()
        counter.meter.take()
        processor.handler(_sqs_event(queued[0]["Body"]), _Context())
        inbound = counter.meter.take()
        rows.append(("process one inbound text", counter.take()))

        api.handler(_api_send_event(), _Context())
        charges = counter.meter.take()
        rows.append(("POST /v1/messages (one recipient)", counter.take()))

        jobs = sqs.receive_message(QueueUrl=urls["send"], MaxNumberOfMessages=10)["Messages"]
        counter.take()
        send.handler(_sqs_event(jobs[0]["Body"]), _Context())
        sent = counter.meter.take()
        charges.add(sent)
        rows.append(("send one queued text", counter.take()))
    return rows, charges, inbound


# -- a rate-limited burst -------------------------------------------------------------------------


def rate_limited_burst(texts: int, rate: float) -> dict[str, float]:
    """`texts` one-segment texts from one number at `rate`/s, the retry queue played on a simulated clock."""
    import heapq
    import logging
    from datetime import timedelta

    from parley.domain.models import OurNumber, SendRequest
    from tests.fakes import World

    logging.getLogger("parley").setLevel(logging.WARNING)
    world = World()
    world.numbers.save(
        OurNumber(number="+15005550006", carrier="fake", is_default=True, rate_per_second=rate)
    )
    sender = world.sender(rate_limited=True)
    recipients = [f"+1415555{i:04d}" for i in range(texts)]
    start = world.clock()
    sent_at: list[float] = []
    deliveries = 0

    def deliver(message_id: str) -> None:
        nonlocal deliveries
        before = len(world.carrier.sent)
        sender.deliver(message_id)
        deliveries += 1
        if len(world.carrier.sent) > before:
            sent_at.append((world.clock() - start).total_seconds())

    accepted = sender.submit(
        SendRequest.model_validate({"to": recipients, "body": "Your order is ready."}), "b"
    )
    due: list[tuple[float, int, str]] = []
    seq = 0
    for job in world.send_queue.take():
        deliver(job.body["message_id"])
    while True:
        now = (world.clock() - start).total_seconds()
        for job in world.retry_queue.take():
            seq += 1
            heapq.heappush(due, (now + job.delay_seconds, seq, job.body["message_id"]))
        if not due:
            break
        at, _, message_id = heapq.heappop(due)
        world.clock.set(start + timedelta(seconds=at))
        deliver(message_id)
    statuses = Counter(m.status.value for m in world.messages.items.values())
    span = sent_at[-1] - sent_at[0]
    achieved = (len(sent_at) - rate) / span if span else float("inf")  # the first second's burst aside
    return {
        "texts": texts,
        "accepted": len(accepted),
        "sent": len(sent_at),
        "carrier_accepted": statuses["accepted"],
        "failed": statuses["failed"],
        "span_seconds": span,
        "achieved": achieved,
        "ratio": achieved / rate,
        "deliveries": deliveries,
    }


def _signed_webhook(token: str) -> dict[str, Any]:
    sid = "SM" + uuid.uuid4().hex
    params = {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": "+14155550100",
        "To": "+15005550006",
        "Body": "Is my order ready?",
        "NumMedia": "0",
        "ToCity": "",
    }
    url = "https://bench.example/webhooks/twilio/messages"
    payload = url + "".join(k + params[k] for k in sorted(params))
    signature = base64.b64encode(hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()).decode()
    return {
        "version": "2.0",
        "routeKey": "POST /webhooks/{carrier}/{kind}",
        "rawPath": "/webhooks/twilio/messages",
        "rawQueryString": "",
        "headers": {"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": signature},
        "pathParameters": {"carrier": "twilio", "kind": "messages"},
        "requestContext": {"requestId": uuid.uuid4().hex, "http": {"method": "POST"}},
        "body": base64.b64encode(urlencode(params).encode()).decode(),
        "isBase64Encoded": True,
    }


def _sqs_event(body: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": uuid.uuid4().hex,
                "receiptHandle": "bench",
                "body": body,
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench",
                "awsRegion": "us-east-1",
            }
        ]
    }


def _api_send_event() -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "POST /v1/messages",
        "rawPath": "/v1/messages",
        "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "requestId": uuid.uuid4().hex,
            "http": {"method": "POST", "path": "/v1/messages"},
            "authorizer": {"jwt": {"claims": {"sub": "bench", "team": "default"}, "scopes": []}},
            "stage": "$default",
        },
        "body": json.dumps({"to": ["+14155550100"], "body": "Yes, it's ready."}),
        "isBase64Encoded": False,
    }


# -- webhook CPU per request ----------------------------------------------------------------------


class _NullQueue:
    def __init__(self) -> None:
        self.sent = 0

    def send(self, body: dict[str, Any], *, delay_seconds: int = 0) -> None:
        json.dumps(body)  # what the SQS adapter does before the network call
        self.sent += 1

    def send_batch(self, bodies: Sequence[dict[str, Any]]) -> None:
        for body in bodies:
            self.send(body)


def webhook_cpu(requests_count: int) -> tuple[float, float]:
    """CPU seconds per webhook (verify, parse, enqueue with SQS stubbed) and per stubbed botocore call.

    Both run in this process, back to back, so the ratio holds on a noisy machine.
    """
    import time

    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        POWERTOOLS_LOG_LEVEL="WARNING",
        PARLEY_TWILIO_ACCOUNT_SID="AC" + "0" * 32,
        PARLEY_TWILIO_AUTH_TOKEN="bench-token",
        PARLEY_PUBLIC_BASE_URL="https://bench.example",
        PARLEY_INBOUND_QUEUE_URL="https://sqs.us-east-1.amazonaws.com/123456789012/bench",
    )
    from functions.inbound import webhook
    from parley import wiring

    wiring.reset_container()
    app = wiring.container()
    queue = _NullQueue()
    app.intake._queue = queue  # the one AWS call, stubbed
    events = [_signed_webhook("bench-token") for _ in range(requests_count)]
    context = _Context()
    webhook.handler(events[0], context)  # warm: carrier built, modules loaded
    start = time.thread_time()
    for event in events:
        webhook.handler(event, context)
    per_webhook = (time.thread_time() - start) / requests_count

    per_call = _botocore_call_cpu(requests_count)
    assert queue.sent == requests_count + 1
    return per_webhook, per_call


def _botocore_call_cpu(calls: int) -> float:
    """CPU of one real botocore SQS SendMessage (serialise, sign, HTTP, parse) against a local stub server.

    Measured with thread_time in the calling thread, so the server thread's work is not counted.
    """
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import boto3

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            body = b'{"MessageId":"m-1","MD5OfMessageBody":"0"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        sqs = boto3.client(
            "sqs", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{server.server_address[1]}"
        )
        url = f"http://127.0.0.1:{server.server_address[1]}/123456789012/bench"
        body = json.dumps({"event": {"body": "Is my order ready?"}})
        sqs.send_message(QueueUrl=url, MessageBody=body)  # warm: model loaded, connection open
        start = time.thread_time()
        for _ in range(calls):
            sqs.send_message(QueueUrl=url, MessageBody=body)
        return (time.thread_time() - start) / calls
    finally:
        server.shutdown()
        thread.join(timeout=5)


def _print_units(what: str, charges: Charges) -> None:
    """Where the capacity units of one operation go, and what a million of them cost."""
    print(f"\nDynamoDB units for {what}, as billed (bench/dynamo_units.py)\n")
    print(f"{'charged to':<52} {'units':>6} {'$/1M':>8}")
    for where, units in sorted(charges.writes.items()):
        print(f"{'write ' + where:<52} {units:>6.1f} {units * WRITE_PRICE:>8.3f}")
    for where, units in sorted(charges.reads.items()):
        print(f"{'read ' + where:<52} {units:>6.1f} {units * READ_PRICE:>8.3f}")
    cost = charges.write_units * WRITE_PRICE + charges.read_units * READ_PRICE
    print(f"{'total write units':<52} {charges.write_units:>6.1f}")
    print(f"{'total read units':<52} {charges.read_units:>6.1f}")
    print(f"{'cost per million, at on-demand list prices':<52} {'':>6} {cost:>8.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="fresh interpreters per import measurement")
    parser.add_argument("--requests", type=int, default=2000, help="webhooks per CPU measurement")
    args = parser.parse_args()

    print(f"Cold import, median of {args.runs} fresh interpreters, as a ratio to the baseline\n")
    print(f"{'module':<44} {'seconds':>8} {'ratio':>6}")
    for name, seconds, ratio in cold_imports(args.runs):
        print(f"{name:<44} {seconds:>8.3f} {ratio:>6.2f}")

    # The functions' metric lines (EMF, on stdout as in Lambda) are written and paid for, not shown.
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        per_webhook, per_call = webhook_cpu(args.requests)
    print("\nWebhook CPU per request (verify, parse, enqueue; SQS stubbed) vs one botocore SQS call\n")
    print(f"{'measure':<44} {'µs':>8} {'ratio':>6}")
    print(f"{'baseline: one botocore SQS SendMessage':<44} {per_call * 1e6:>8.0f} {1.0:>6.2f}")
    print(f"{'Twilio inbound webhook':<44} {per_webhook * 1e6:>8.0f} {per_webhook / per_call:>6.2f}")

    print("\nAWS calls per operation (botocore before-call hook, moto in-process)\n")
    print(f"{'operation':<44} {'calls':>5}  detail")
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        rows, sent, inbound = aws_calls()
    for label, calls in rows:
        detail = ", ".join(f"{k} x{v}" if v > 1 else k for k, v in sorted(calls.items()))
        print(f"{label:<44} {sum(calls.values()):>5}  {detail}")
    _print_units("a sent message (POST /v1/messages + the send)", sent)
    _print_units("a received text (processing one inbound webhook)", inbound)

    rate = 5.0
    burst = rate_limited_burst(60, rate)
    print(f"\nRate-limited burst: 60 one-segment texts from one number at {rate:g}/s (simulated clock)\n")
    print(f"{'measure':<44} {'value':>8}")
    for label, value in (
        ("accepted / sent / failed", f"{burst['accepted']:.0f}/{burst['sent']:.0f}/{burst['failed']:.0f}"),
        ("span, first to last send (s)", f"{burst['span_seconds']:.1f}"),
        ("achieved rate past the burst (/s)", f"{burst['achieved']:.2f}"),
        ("ratio to the configured rate", f"{burst['ratio']:.3f}"),
        ("deliver calls (re-polls while waiting)", f"{burst['deliveries']:.0f}"),
    ):
        print(f"{label:<44} {value:>8}")
    ok = abs(burst["ratio"] - 1) <= 0.05 and burst["sent"] == burst["texts"] == burst["carrier_accepted"]
    print(f"{'within 5% and nothing dropped':<44} {'yes' if ok else 'NO':>8}")

    from bench.local_burst import print_report, run_local_burst

    through_stack = run_local_burst()  # a burst in real time through `parley local`, against its baseline
    print_report(through_stack)

    sys.stdout.flush()
    digest_scale = subprocess.run([sys.executable, "-m", "bench.digest_scale"], cwd=ROOT, check=False)
    return 0 if ok and through_stack.ok and digest_scale.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
