"""Logs (correlation ids, masking), EMF metrics and the sweep's DLQ gauges (parley.observability)."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools import Logger

from parley.domain.keywords import Keyword
from parley.domain.models import Direction, Message, MessageStatus, OurNumber, SendRequest
from parley.observability import (
    DlqGauges,
    EmfMetrics,
    LogContextFilter,
    ObservedEvents,
    bind_correlation_id,
    correlation_id,
    install_filter,
    journey_id,
    observe_batch,
    observed,
    queue_age_seconds,
    scrub_text,
    suppression_reason,
)
from parley.ports import DigestRun
from tests.fakes import RecordingPublisher, World

CUSTOMER = "+14155550123"
OURS = "+15005550006"
BODY = "Meet me at the blue door at seven"


class Recorder:
    """A MetricsSink that keeps what it was told."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, float, str, dict[str, str]]] = []

    def put(self, name: str, value: float = 1, unit: str = "Count", **dimensions: str) -> None:
        self.seen.append((name, value, unit, dimensions))

    def names(self) -> list[str]:
        return [name for name, *_ in self.seen]


@pytest.fixture(autouse=True)
def no_journey() -> Iterator[None]:
    """Each test starts and ends with no correlation id bound (the services bind one as they work)."""
    bind_correlation_id(None)
    yield
    bind_correlation_id(None)


@pytest.fixture
def lines() -> Iterator[tuple[Logger, io.StringIO]]:
    """A powertools Logger writing JSON lines to a buffer, with the filter on its handler."""
    buffer = io.StringIO()
    # a service of its own per test: powertools configures a service's stdlib logger once
    service = f"obs-test-{uuid.uuid4().hex[:8]}"
    logger = Logger(service=service, logger_handler=logging.StreamHandler(buffer), level="DEBUG")
    install_filter(list(logger.handlers))
    yield logger, buffer


def written(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


# -- masking ---------------------------------------------------------------------------------------


def test_numbers_inside_text_are_masked_and_dates_times_and_short_numbers_are_not() -> None:
    text = f"texted {CUSTOMER} and 14155550199 from +1 415-555-0100 on 2026-11-28 12:30:01, try 3 of 40310"
    scrubbed = scrub_text(text + " as lead-14155550177 (SMa1234567890b)")
    assert CUSTOMER not in scrubbed and "14155550199" not in scrubbed and "555-0100" not in scrubbed
    assert "+1********23" in scrubbed and "14*******99" in scrubbed and "lead-14*******77" in scrubbed
    assert "SMa1234567890b" in scrubbed  # digits glued to letters are an id, not a number
    assert (
        scrub_text("arn:aws:lambda:us-east-1:123456789012:function:f")
        == "arn:aws:lambda:us-east-1:123456789012:function:f"
    )
    assert "2026-11-28 12:30:01" in scrubbed and "try 3 of 40310" in scrubbed


def test_an_info_line_masks_numbers_in_the_message_args_and_extras_and_withholds_bodies(
    lines: tuple[Logger, io.StringIO],
) -> None:
    logger, buffer = lines
    logger.info(
        "sent %s to %s",
        "a text",
        CUSTOMER,
        extra={"to": CUSTOMER, "body": BODY, "detail": {"from": OURS, "text": BODY, "n": [CUSTOMER]}},
    )
    (line,) = written(buffer)
    raw = json.dumps(line)
    assert CUSTOMER not in raw and OURS not in raw and BODY not in raw
    assert line["message"] == "sent a text to +1********23"
    assert line["to"] == "+1********23"
    assert line["body"] == f"[{len(BODY)} chars withheld]"
    withheld = f"[{len(BODY)} chars withheld]"
    assert line["detail"] == {"from": "+1********06", "text": withheld, "n": ["+1********23"]}


def test_an_exception_s_message_and_traceback_are_masked(lines: tuple[Logger, io.StringIO]) -> None:
    logger, buffer = lines
    try:
        raise ValueError(f"{CUSTOMER} is not a mobile number")
    except ValueError:
        logger.exception("could not send")
    (line,) = written(buffer)
    assert CUSTOMER not in json.dumps(line)
    assert "+1********23 is not a mobile number" in line["exception"]
    assert line["exception_name"] == "ValueError"


def test_an_error_through_a_plain_stdlib_handler_is_masked_too() -> None:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(LogContextFilter())
    log = logging.getLogger("obs-test-plain")
    log.addHandler(handler)
    log.propagate = False
    try:
        raise RuntimeError(f"carrier refused {CUSTOMER}")
    except RuntimeError:
        log.exception("send to %s failed", CUSTOMER)
    assert CUSTOMER not in buffer.getvalue()
    assert "carrier refused +1********23" in buffer.getvalue()


def test_debug_lines_are_written_as_they_are(lines: tuple[Logger, io.StringIO]) -> None:
    logger, buffer = lines
    logger.debug("raw payload", extra={"body": BODY, "to": CUSTOMER})
    (line,) = written(buffer)
    assert line["body"] == BODY and line["to"] == CUSTOMER


# -- correlation -----------------------------------------------------------------------------------


class Context:
    function_name = "parley-dev-SendFunction"
    aws_request_id = "req-123"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:parley-dev-SendFunction"
    memory_limit_in_mb = 512


def test_the_handler_s_invocation_binds_function_and_correlation_and_forgets_them_after(
    lines: tuple[Logger, io.StringIO],
) -> None:
    logger, buffer = lines

    @observed(correlation=lambda event: event.get("id"))
    def handler(event: dict[str, Any], context: Any) -> str | None:
        logger.info("working")
        bind_correlation_id("later-journey")
        logger.info("still working")
        return correlation_id()

    assert handler({"id": "webhook-1"}, Context()) == "later-journey"
    first, second = written(buffer)
    assert first["correlation_id"] == "webhook-1" and second["correlation_id"] == "later-journey"
    assert first["function_name"] == "parley-dev-SendFunction" and first["function_request_id"] == "req-123"
    assert correlation_id() is None


def message(**fields: Any) -> Message:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    base: dict[str, Any] = {
        "message_id": "msg-1",
        "direction": Direction.OUTBOUND,
        "customer_number": CUSTOMER,
        "our_number": OURS,
        "body": BODY,
        "status": MessageStatus.QUEUED,
        "carrier": "fake",
        "created_at": now,
        "updated_at": now,
    }
    return Message.model_validate({**base, **fields})


def test_a_message_s_journey_is_its_carried_id_else_its_request_id_else_its_own_id() -> None:
    assert journey_id(message(request_id="key-1", metadata={"correlation_id": "webhook-9"})) == "webhook-9"
    assert journey_id(message(request_id="key-1")) == "key-1"
    assert journey_id(message()) == "msg-1"


@pytest.fixture
def world() -> World:
    w = World()
    w.numbers.save(OurNumber(number=OURS, carrier="fake", is_default=True))
    return w


def test_a_send_binds_its_request_key_and_every_event_carries_it(world: World) -> None:
    recorder = Recorder()
    sender = world.sender(metrics=recorder)
    (queued,) = sender.submit(SendRequest.model_validate({"to": [CUSTOMER], "body": BODY}), "req-key-7")
    bind_correlation_id(None)
    sender.deliver(queued.message_id)  # a later invocation: the message brings its journey back

    assert correlation_id() == "req-key-7"
    (sent,) = world.events.of("MessageSent")
    assert sent["correlation_id"] == "req-key-7"
    assert ("MessagesSent", 1, "Count", {"Carrier": "fake"}) in recorder.seen


def test_a_keyword_reply_keeps_the_inbound_text_s_journey(world: World) -> None:
    sender = world.sender()
    reply = sender.send_compliance_reply(Keyword.HELP, CUSTOMER, OURS, "in-1", correlation_id="webhook-42")
    assert reply is not None and journey_id(reply) == "webhook-42"
    bind_correlation_id(None)
    sender.deliver(reply.message_id)
    assert correlation_id() == "webhook-42"


def test_suppressions_and_rate_limit_waits_are_counted_with_short_reasons(world: World) -> None:
    recorder = Recorder()
    world.opt_outs.record(CUSTOMER, opted_out=True, source="fake:keyword", at=world.clock(), detail="STOP")
    world.sender(metrics=recorder).submit(SendRequest.model_validate({"to": [CUSTOMER], "body": BODY}), "k-1")
    assert ("MessagesSuppressed", 1, "Count", {"Reason": "opted-out"}) in recorder.seen
    assert suppression_reason(f"the recipient has opted out of messages from {OURS}") == "opted-out-of-number"


# -- metrics ---------------------------------------------------------------------------------------


def emitted(stage: str = "prod") -> tuple[EmfMetrics, list[dict[str, Any]]]:
    out: list[dict[str, Any]] = []
    metrics = EmfMetrics(
        stage, namespace="Parley", write=lambda line: out.append(json.loads(line)), enabled=True
    )
    return metrics, out


def test_sends_and_failures_are_emitted_by_carrier_and_in_all() -> None:
    metrics, out = emitted()
    metrics.put("MessagesSent", Carrier="twilio")
    (blob,) = out
    (directive,) = blob["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Parley"
    assert directive["Dimensions"] == [["Stage", "Carrier"], ["Stage"]]
    assert directive["Metrics"] == [{"Name": "MessagesSent", "Unit": "Count"}]
    assert blob["Stage"] == "prod" and blob["Carrier"] == "twilio" and blob["MessagesSent"] == 1


@pytest.mark.parametrize(
    ("name", "dimensions", "expected"),
    [
        ("WebhookRejected", {"Carrier": "telnyx", "Reason": "signature"}, [["Stage", "Carrier", "Reason"]]),
        ("WebhookAckLatency", {"Carrier": "telnyx"}, [["Stage", "Carrier"]]),
        ("MessagesSuppressed", {"Reason": "opted-out"}, [["Stage", "Reason"]]),
        ("DlqDepth", {"Queue": "send"}, [["Stage", "Queue"]]),
        ("DigestRunIncomplete", {}, [["Stage"]]),
    ],
)
def test_each_metric_has_its_dimension_sets_with_stage_first(
    name: str, dimensions: dict[str, str], expected: list[list[str]]
) -> None:
    metrics, out = emitted()
    metrics.put(name, 3, **dimensions)
    assert out[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == expected
    assert out[0][name] == 3 and all(out[0][d] for dims in expected for d in dims)


def test_a_missing_dimension_is_filled_in_and_disabled_metrics_write_nothing() -> None:
    metrics, out = emitted()
    metrics.put("SendRetries")
    assert out[0]["Carrier"] == "unknown"
    silent: list[str] = []
    EmfMetrics("prod", write=silent.append, enabled=False).put("MessagesSent", Carrier="x")
    assert silent == []


def test_published_events_are_counted_and_stamped_with_the_journey() -> None:
    recorder, bus = Recorder(), RecordingPublisher()
    events = ObservedEvents(bus, recorder)
    bind_correlation_id("journey-5")
    events.publish("MessageFailed", {"message_id": "m", "carrier": "plivo"})
    events.publish("MessageRetried", {"message_id": "m", "carrier": "plivo"})
    events.publish("MessageReceived", {"message_id": "n", "carrier": "plivo", "correlation_id": "own"})
    bind_correlation_id(None)
    assert recorder.seen == [
        ("MessagesFailed", 1, "Count", {"Carrier": "plivo"}),
        ("SendRetries", 1, "Count", {"Carrier": "plivo"}),
    ]
    assert [d["correlation_id"] for _, d in bus.events] == ["journey-5", "journey-5", "own"]


def test_a_batch_reports_how_long_its_oldest_record_waited() -> None:
    records = [{"attributes": {"SentTimestamp": "1000"}}, {"attributes": {"SentTimestamp": "4000"}}]
    assert queue_age_seconds(records, now_ms=61_000) == 60.0
    assert queue_age_seconds([{"attributes": {}}]) is None
    recorder = Recorder()
    observe_batch(recorder, "send", {"Records": [{"attributes": {"SentTimestamp": "1"}}]})
    ((name, age, unit, dims),) = recorder.seen
    assert (name, unit, dims) == ("QueueAgeSeconds", "Seconds", {"Queue": "send"}) and age > 0


class FakeSqs:
    def __init__(self, depths: dict[str, tuple[int, int]], redrive: dict[str, str]) -> None:
        self.depths, self.redrive = depths, redrive
        self.calls: list[str] = []

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:  # noqa: N803
        self.calls.append(QueueUrl)
        if AttributeNames == ["RedrivePolicy"]:
            policy = {"deadLetterTargetArn": self.redrive[QueueUrl]}
            return {"Attributes": {"RedrivePolicy": json.dumps(policy)}}
        visible, in_flight = self.depths[QueueUrl]
        return {
            "Attributes": {
                "ApproximateNumberOfMessages": str(visible),
                "ApproximateNumberOfMessagesNotVisible": str(in_flight),
            }
        }


def test_the_sweep_reports_each_dlq_s_depth_finding_the_digest_s_from_its_redrive_policy() -> None:
    base = "https://sqs.us-east-1.amazonaws.com/123456789012"
    sqs = FakeSqs(
        {f"{base}/send-dlq": (2, 1), f"{base}/digest-dlq-ABC": (0, 0)},
        {f"{base}/digest": "arn:aws:sqs:us-east-1:123456789012:digest-dlq-ABC"},
    )
    recorder = Recorder()
    digest = {"digest": f"{base}/digest"}
    gauges = DlqGauges({"send": f"{base}/send-dlq"}, recorder, sqs, redriven_from=digest)
    assert gauges.measure() == {"send": 3, "digest": 0}
    assert gauges.measure() == {"send": 3, "digest": 0}
    assert sqs.calls.count(f"{base}/digest") == 1  # the redrive policy is read once per process
    assert ("DlqDepth", 3, "Count", {"Queue": "send"}) in recorder.seen


class Progress:
    def __init__(self, run: DigestRun | None) -> None:
        self.run = run

    def progress(self, day: date) -> DigestRun | None:
        return self.run if self.run is not None and self.run.day == day.isoformat() else None


@pytest.mark.parametrize(
    ("started_hours_ago", "done", "expected"),
    [(3, False, 1), (1, False, 0), (3, True, 0), (None, False, 0)],
)
def test_digest_run_incomplete_is_one_only_for_yesterday_s_run_started_over_two_hours_ago_and_not_done(
    started_hours_ago: int | None, done: bool, expected: int
) -> None:
    from parley.services.digest_jobs import DigestJobs

    now = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    run = None
    if started_hours_ago is not None:
        started = now - timedelta(hours=started_hours_ago)
        run = DigestRun(day="2026-03-01", shards=4, started_at=started, shards_done=4 if done else 2)
    counted: list[tuple[str, int]] = []
    record = lambda name, value: counted.append((name, value))  # noqa: E731
    jobs = DigestJobs(Progress(run), None, timezone="UTC", lookback_days=0, count=record)  # type: ignore[arg-type]
    jobs.check_overdue(now)
    assert counted == [("DigestRunIncomplete", expected)]


def test_the_webhook_counts_what_it_received_and_why_it_rejected_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import functions.inbound.webhook as webhook
    from parley.edge import MAX_WEBHOOK_BYTES
    from parley.wiring import reset_container

    recorder = Recorder()
    monkeypatch.setattr(webhook, "metrics", recorder)
    # a queue that is never reached: both requests are refused before anything is enqueued
    monkeypatch.setenv("PARLEY_INBOUND_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/inbound")
    reset_container()

    def event(carrier: str, body: str) -> dict[str, Any]:
        return {
            "rawPath": f"/webhooks/{carrier}/messages",
            "pathParameters": {"carrier": carrier, "kind": "messages"},
            "requestContext": {"requestId": "req-1", "http": {"method": "POST"}},
            "headers": {"content-type": "application/x-www-form-urlencoded"},
            "body": body,
            "isBase64Encoded": False,
        }

    assert webhook.handler(event("nope", "a=b"), Context())["statusCode"] == 404
    assert webhook.handler(event("twilio", "a" * (MAX_WEBHOOK_BYTES + 1)), Context())["statusCode"] == 413
    assert [(n, d) for n, _, _, d in recorder.seen if n != "WebhookAckLatency"] == [
        ("WebhookRejected", {"Carrier": "unknown", "Reason": "unknown-path"}),
        ("WebhookRejected", {"Carrier": "twilio", "Reason": "too-large"}),
        ("WebhookReceived", {"Carrier": "twilio"}),
    ]
    ((_, latency, unit, dims),) = [s for s in recorder.seen if s[0] == "WebhookAckLatency"]
    assert unit == "Milliseconds" and dims == {"Carrier": "twilio"} and latency >= 0
    reset_container()
