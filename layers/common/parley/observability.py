"""Logs, metrics and traces: one correlation id per journey, masked log lines, CloudWatch EMF metrics.

Standard library only at import time: the webhook imports this on its ack path. Powertools' Logger
and Tracer are imported by the functions that use them (`function_logger`, `tracer`).

Correlation ids live in a context variable, not in powertools' formatter keys: the formatter's keys
are process-wide, and locally every function shares one process and runs on many threads. A filter
on the handlers copies the current id (and the function's name and request id) onto each record.

Masking: at INFO and above every line is scrubbed before it is written: E.164-looking numbers are
masked with `redact.mask`, values under body-like keys become their length, exception text is
scrubbed too. DEBUG lines are written as they are; they appear only where the stage's `LogLevel`
parameter is DEBUG, which is the switch for debugging (see docs/observability.md).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import time
import traceback
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from parley.redact import mask

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Tracer

    from parley.domain.models import Message
    from parley.ports import EventPublisher

logger = logging.getLogger(__name__)

# -- correlation ----------------------------------------------------------------------------------

_CONTEXT: ContextVar[dict[str, str] | None] = ContextVar("parley_log_context", default=None)


def bind_correlation_id(value: str | None) -> str | None:
    """Make `value` the correlation id of every line logged from here on in this invocation."""
    current = dict(_CONTEXT.get() or {})
    if value:
        current["correlation_id"] = value
    else:
        current.pop("correlation_id", None)
    _CONTEXT.set(current)
    return value


def correlation_id() -> str | None:
    """The journey this invocation is working on, if it is bound."""
    return (_CONTEXT.get() or {}).get("correlation_id")


def journey_id(message: Message) -> str:
    """A message's correlation id, from what is already stored with it (no extra writes):

    a reply Parley sends to a keyword carries the inbound text's id in its metadata; otherwise the
    message's request id (the send request's key, or the webhook's id for an inbound text); and a
    message stored before either existed falls back to its own id.
    """
    carried = message.metadata.get("correlation_id")
    return str(carried) if carried else (message.request_id or message.message_id)


F = TypeVar("F", bound=Callable[..., Any])


def observed(correlation: Callable[[dict[str, Any]], str | None] | None = None) -> Callable[[F], F]:
    """Decorate a Lambda handler: a fresh log context per invocation (function name, request id, and
    the correlation id `correlation` finds in the event, if given), restored when it returns."""

    def decorate(handler: F) -> F:
        @functools.wraps(handler)
        def run(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
            fields = {
                "function_name": str(getattr(context, "function_name", "") or ""),
                "function_arn": str(getattr(context, "invoked_function_arn", "") or ""),
                "function_memory_size": str(getattr(context, "memory_limit_in_mb", "") or ""),
                "function_request_id": str(getattr(context, "aws_request_id", "") or ""),
            }
            found = correlation(event) if correlation is not None and isinstance(event, dict) else None
            if found:
                fields["correlation_id"] = found
            token = _CONTEXT.set({k: v for k, v in fields.items() if v})
            try:
                return handler(event, context, *args, **kwargs)
            finally:
                _CONTEXT.reset(token)

        return run  # type: ignore[return-value]

    return decorate


def api_request_id(event: dict[str, Any]) -> str | None:
    """API Gateway's id for the request: the correlation id of a webhook's journey."""
    context = event.get("requestContext")
    value = context.get("requestId") if isinstance(context, dict) else None
    return str(value) if value else None


# -- masking --------------------------------------------------------------------------------------

# "+" then 7-15 digits, spaces/dashes/dots/brackets allowed between them; or a bare run of 10-15 digits
# not glued to a letter (carriers such as Vonage drop the "+"; ids such as `lead-14155550100` embed
# numbers). Dates and times (short runs) and ARNs' account ids (after a ":") are left alone.
_NUMBER = re.compile(r"\+\d(?:[ \-.()]{0,2}\d){6,14}(?!\d)|(?<![\dA-Za-z:])\d{10,15}(?![\dA-Za-z])")
# Extras (and nested dicts) under these keys are message text or carrier payloads: never written.
BODY_KEYS = frozenset(
    {
        "body",
        "text",
        "preview",
        "last_message_preview",
        "message_body",
        "content",
        "raw",
        "payload",
        "merge_values",
        "form",
    }
)
# What a LogRecord carries by itself; anything else on a record came in through `extra=`.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
}


def scrub_text(text: str) -> str:
    """Mask every phone-number-looking run in `text`."""
    return _NUMBER.sub(lambda m: mask(re.sub(r"[^\d+]", "", m.group(0))), text)


def scrub(value: Any, *, key: str | None = None) -> Any:
    """A copy of `value` safe for an INFO line: numbers masked, bodies reduced to their length."""
    if key is not None and key.lower() in BODY_KEYS and value not in (None, "", {}, []):
        if isinstance(value, str):
            return f"[{len(value)} chars withheld]"
        return "[withheld]"
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {k: scrub(v, key=str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub(v) for v in value]
    if isinstance(value, bool | int | float) or value is None:
        return value
    return scrub_text(str(value))


class LogContextFilter(logging.Filter):
    """On a handler: adds the invocation's correlation id and function to each record, and masks
    records at INFO and above. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_CONTEXT.get() or {}).items():
            setattr(record, key, value)
        if record.levelno >= logging.INFO and record not in _SCRUBBED:
            _scrub_record(record)
            _SCRUBBED.add(record)  # a record reaches several handlers: scrub it once
        return True


_SCRUBBED: weakref.WeakSet[logging.LogRecord] = weakref.WeakSet()


def _scrub_record(record: logging.LogRecord) -> None:
    if isinstance(record.msg, Mapping):
        record.msg = scrub(record.msg)
    else:
        try:
            text = record.getMessage()
        except (TypeError, ValueError):
            text = str(record.msg)
        record.msg, record.args = scrub_text(text), None
    for key in [k for k in vars(record) if k not in _RECORD_ATTRS]:
        setattr(record, key, scrub(getattr(record, key), key=key))
    if record.exc_info and record.exc_info[0] is not None:
        exc_type = record.exc_info[0]
        text = scrub_text("".join(traceback.format_exception(*record.exc_info)).rstrip())
        # powertools reads these extras; stdlib formatters print exc_text (exc_info is dropped so that
        # neither formats the raw exception again)
        record.exception, record.exception_name = text, exc_type.__name__
        record.exc_text, record.exc_info = text, None
    elif record.exc_text:
        record.exc_text = scrub_text(record.exc_text)


_FILTER = LogContextFilter()


def install_filter(handlers: list[logging.Handler]) -> None:
    """Attach the filter once per handler."""
    for handler in handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)


def function_logger() -> Logger:
    """The functions' powertools Logger, its handler (which the shared package's `parley.*` loggers
    reach too) and the root logger's handlers filtered as above."""
    from aws_lambda_powertools import Logger

    logger = Logger(service="parley")
    handlers = list(logger.handlers)
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):  # in Lambda, the runtime's own handler on the root too
        handlers += logging.getLogger().handlers
    install_filter(handlers)
    return logger


def tracer() -> Tracer:
    """X-Ray tracing for the workers (off where POWERTOOLS_TRACE_DISABLED is true: locally, in tests)."""
    from aws_lambda_powertools import Tracer

    return Tracer(service="parley")


# -- metrics --------------------------------------------------------------------------------------

NAMESPACE = "Parley"
# Each metric's dimension sets, Stage first in every one (alarms are built on these exact names).
DIMENSIONS: dict[str, tuple[tuple[str, ...], ...]] = {
    "WebhookReceived": (("Carrier",),),
    "WebhookRejected": (("Carrier", "Reason"),),
    "WebhookAckLatency": (("Carrier",),),
    "InboundRecovered": (("Carrier",),),
    "MessagesSent": (("Carrier",), ()),
    "MessagesFailed": (("Carrier",), ()),
    "SendRetries": (("Carrier",),),
    "MessagesSuppressed": (("Reason",),),
    "RateLimitWaits": (("Carrier",),),
    "QueueAgeSeconds": (("Queue",),),
    "DlqDepth": (("Queue",),),
    "DigestConversations": ((),),
    "DigestRecordsPosted": ((),),
    "DigestConflicts": ((),),
    "DigestRecordsFailed": ((),),
    "DigestRunIncomplete": ((),),
}


class MetricsSink(Protocol):
    """Where services report what happened; the EMF adapter turns it into CloudWatch metrics."""

    def put(self, name: str, value: float = 1, unit: str = "Count", **dimensions: str) -> None: ...


class NoMetrics:
    def put(self, name: str, value: float = 1, unit: str = "Count", **dimensions: str) -> None:
        return None


class EmfMetrics:
    """One CloudWatch embedded-metric-format line per measurement, on stdout.

    Written here rather than through powertools' Metrics: several dimension sets per metric (sends by
    carrier and in all) in one line, no per-invocation state shared between threads, and nothing heavy
    to import on the webhook's ack path. Off where POWERTOOLS_METRICS_DISABLED is true (the local stack).
    """

    def __init__(
        self,
        stage: str,
        *,
        namespace: str | None = None,
        write: Callable[[str], object] | None = None,
        enabled: bool | None = None,
    ) -> None:
        self._stage = stage
        self._namespace = namespace or os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or NAMESPACE
        self._write = write or (lambda line: print(line, flush=True))
        self._enabled = (
            enabled
            if enabled is not None
            else os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() != "true"
        )

    def put(self, name: str, value: float = 1, unit: str = "Count", **dimensions: str) -> None:
        if not self._enabled:
            return
        sets = DIMENSIONS.get(name, (tuple(sorted(dimensions)),))
        values = {"Stage": self._stage, **{k: str(v) or "none" for k, v in dimensions.items()}}
        missing = {d for s in sets for d in s} - set(values)
        for dimension in missing:  # a report without a dimension its metric needs still counts
            values[dimension] = "unknown"
        blob = {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": self._namespace,
                        "Dimensions": [["Stage", *s] for s in sets],
                        "Metrics": [{"Name": name, "Unit": unit}],
                    }
                ],
            },
            **values,
            name: value,
        }
        self._write(json.dumps(blob, separators=(",", ":")))


def emf_metrics() -> EmfMetrics:
    return EmfMetrics(os.environ.get("PARLEY_STAGE", "dev"))


@contextmanager
def timed() -> Iterator[Callable[[], float]]:
    """Milliseconds since entering, read whenever (the webhook's ack latency)."""
    started = time.perf_counter()
    yield lambda: (time.perf_counter() - started) * 1000


def queue_age_seconds(records: list[dict[str, Any]], now_ms: int | None = None) -> float | None:
    """The oldest record's time on its queue when the batch reached us (SQS's SentTimestamp)."""
    sent = [
        int(r["attributes"]["SentTimestamp"])
        for r in records
        if isinstance(r.get("attributes"), dict) and str(r["attributes"].get("SentTimestamp", "")).isdigit()
    ]
    if not sent:
        return None
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    return max(0.0, (now - min(sent)) / 1000)


def observe_batch(metrics: MetricsSink, queue: str, event: dict[str, Any]) -> None:
    """QueueAgeSeconds for an SQS batch: how long its oldest record waited (delays included)."""
    records = event.get("Records")
    age = queue_age_seconds(records) if isinstance(records, list) else None
    if age is not None:
        metrics.put("QueueAgeSeconds", age, "Seconds", Queue=queue)


# -- domain events, seen on their way out ----------------------------------------------------------

_EVENT_METRICS = {
    "MessageSent": "MessagesSent",
    "MessageFailed": "MessagesFailed",
    "MessageRetried": "SendRetries",
}


class ObservedEvents:
    """An EventPublisher that counts sends, failures and retries as they are announced, and stamps
    each event with the current correlation id so the digest (and anyone else) carries it on."""

    def __init__(self, inner: EventPublisher, metrics: MetricsSink) -> None:
        self._inner = inner
        self._metrics = metrics

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        metric = _EVENT_METRICS.get(detail_type)
        if metric is not None:
            self._metrics.put(metric, Carrier=str(detail.get("carrier") or "none"))
        current = correlation_id()
        if current and "correlation_id" not in detail:
            detail = {**detail, "correlation_id": current}
        self._inner.publish(detail_type, detail)


def suppression_reason(text: str | None) -> str:
    """A short, fixed reason for MessagesSuppressed (the stored reason names numbers)."""
    lowered = (text or "").lower()
    if "all our numbers" in lowered:
        return "opted-out"
    if "opted out" in lowered:
        return "opted-out-of-number"
    return "other"


class DlqGauges:
    """DlqDepth for each dead-letter queue, from the every-minute sweep: one GetQueueAttributes call per
    queue (after the sweep's drain, so what it shows is what the drain could not turn into failed
    messages). The digest's DLQ is not in the environment: it is found once per process from the
    digest queue's RedrivePolicy."""

    ATTRIBUTES = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")

    def __init__(
        self,
        dlqs: Mapping[str, str],
        metrics: MetricsSink,
        sqs: Any,
        *,
        redriven_from: Mapping[str, str] | None = None,
    ) -> None:
        self._dlqs = dict(dlqs)
        self._metrics = metrics
        self._sqs = sqs
        self._redriven_from = dict(redriven_from or {})  # name -> source queue URL, DLQ to find

    def _find_dlqs(self) -> None:
        for name, source in list(self._redriven_from.items()):
            try:
                attributes = self._sqs.get_queue_attributes(QueueUrl=source, AttributeNames=["RedrivePolicy"])
                arn = json.loads(attributes["Attributes"]["RedrivePolicy"])["deadLetterTargetArn"]
            except Exception:
                logger.exception("could not find the dead-letter queue", extra={"queue": name})
                continue
            self._dlqs[name] = source.rsplit("/", 1)[0] + "/" + str(arn).rsplit(":", 1)[-1]
            del self._redriven_from[name]

    def measure(self) -> dict[str, int]:
        self._find_dlqs()
        depths: dict[str, int] = {}
        for name, url in self._dlqs.items():
            try:
                found = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(self.ATTRIBUTES))
            except Exception:
                logger.exception("could not read the dead-letter queue's depth", extra={"queue": name})
                continue
            depths[name] = sum(int(found["Attributes"].get(a, 0)) for a in self.ATTRIBUTES)
            self._metrics.put("DlqDepth", depths[name], Queue=name)
        return depths
