"""The webhook's work before the carrier gets its 2xx: verify, read, check, enqueue. Nothing else.

Standard library plus boto3 only (no pydantic, phonenumbers or requests): this runs on every
carrier webhook, often on a cold start, within deadlines as short as Telnyx's 2 seconds. The
processor turns the queued events into the pydantic models and does the business logic.

Everything the processor could never store is refused here with a 4xx (PayloadError), because a 2xx
tells the carrier to forget the event: ids and numbers beyond what the tables key on, senders that
are no phone number or sender ID, more media than any carrier attaches. What can be repaired is
repaired instead: a lone UTF-16 surrogate in a text (half of an emoji split across segments)
becomes U+FFFD, and a carrier time in the future becomes the time we received the event.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from parley.carriers.base import (
    Carrier,
    ParsedEvent,
    ParsedInbound,
    PayloadError,
    SignatureError,
    WebhookAck,
    WebhookKind,
    WebhookRequest,
)
from parley.clock import utc_now
from parley.ports import JobQueue

logger = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 256 * 1024
# Events one webhook may carry: each 10 go out in one SQS call, so 100 take ten calls, well inside a
# 10 s deadline (Bandwidth's; its callbacks batch a handful).
MAX_EVENTS_PER_WEBHOOK: Final = 100
# One queued event, serialised. SQS now takes up to 1 MiB per message, but a queue's
# MaximumMessageSize has long defaulted to 256 KiB, and ten 1 MiB records would overrun Lambda's 6 MB
# invocation payload: 256 KiB keeps every queue and batch within bounds (webhook bodies are at most
# 256 KiB, and the envelope is written as UTF-8 with the text once).
MAX_QUEUED_BYTES: Final = 256 * 1024
MAX_ID_CHARS: Final = 256  # a carrier's message id (DynamoDB keys hold 2 KB; real ids are < 64)
MAX_NUMBER_CHARS: Final = 32  # a phone number, short code or sender ID as the carrier wrote it
MAX_MEDIA: Final = 20  # attachments on one text (Twilio and Telnyx allow 10)
FUTURE_TOLERANCE: Final = timedelta(minutes=5)  # clock skew allowed to a carrier's timestamps

_SURROGATE = re.compile("[\ud800-\udfff]")
_SENDER_ID = re.compile(r"[A-Za-z0-9 ]{1,11}")
_CHANNEL = re.compile(r"[a-z]{2,16}:")  # a channel address, e.g. whatsapp:+14155550100
_SEPARATORS: Final = frozenset(" -.()/")
_LONG_TEXT: Final = 160  # a text longer than one SMS is queued once, not again inside `raw`


class WebhookTooLarge(ValueError):
    """No carrier sends webhooks this big; refusing early keeps a bad actor from filling the queue."""


@dataclass(frozen=True)
class WebhookOutcome:
    ack: WebhookAck
    events: int
    verified: bool


class WebhookIntake:
    """Verify → parse → check → enqueue (in batches of ten) → ack; no reads."""

    def __init__(
        self,
        queue: JobQueue,
        *,
        log_only: bool | Callable[[str], bool] = False,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._queue = queue
        self._log_only = log_only if callable(log_only) else (lambda _carrier: log_only)
        self._clock = clock

    def accept(
        self, carrier: Carrier, kind: WebhookKind, request: WebhookRequest, correlation_id: str
    ) -> WebhookOutcome:
        if len(request.body) > MAX_WEBHOOK_BYTES:
            raise WebhookTooLarge(f"body is {len(request.body)} bytes; the limit is {MAX_WEBHOOK_BYTES}")
        verified = True
        try:
            carrier.verify(request)
        except SignatureError as exc:
            log_only = self._log_only(carrier.name)
            count_metric("WebhookSignatureFailures", carrier.name, "kept" if log_only else "rejected")
            if not log_only:
                raise
            verified = False
            logger.warning(
                "signature check failed but verify mode is log-only; keeping the webhook",
                extra={"carrier": carrier.name, "reason": str(exc), "verification": "failed-log-only"},
            )
        events = carrier.parse(kind, request)
        if len(events) > MAX_EVENTS_PER_WEBHOOK:
            raise WebhookTooLarge(
                f"{len(events)} events in one webhook; the limit is {MAX_EVENTS_PER_WEBHOOK}"
            )
        now = self._clock()
        envelopes = [
            {"event": queued_event(event, now), "correlation_id": correlation_id, "verified": verified}
            for event in events
        ]
        for envelope in envelopes:
            size = len(queue_text(envelope).encode("utf-8"))
            if size > MAX_QUEUED_BYTES:
                raise WebhookTooLarge(
                    f"an event is {size} bytes once queued; the limit is {MAX_QUEUED_BYTES}"
                )
        if envelopes:
            self._queue.send_batch(envelopes)
        return WebhookOutcome(ack=carrier.ack(kind), events=len(events), verified=verified)


def queue_text(body: dict[str, Any]) -> str:
    """A job as the SQS adapter's `send_batch` serialises it (UTF-8, not \\u escapes)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str)


def queued_event(event: ParsedEvent, now: datetime) -> dict[str, Any]:
    """The event as it is queued, checked (PayloadError: refuse the webhook) and repaired."""
    _check_id(event.carrier_message_id, "the message id")
    wire = event.to_wire()
    if isinstance(event, ParsedInbound):
        _check_number(event.from_number, "From")
        _check_number(event.to_number, "To")
        if not plausible_sender(event.from_number):
            raise PayloadError("invalid From number: not a phone number, short code or sender ID")
        if len(event.media) > MAX_MEDIA:
            raise PayloadError(f"{len(event.media)} media attachments; the limit is {MAX_MEDIA}")
        wire["received_at"] = _bounded(event.received_at, now, event).isoformat()
        if len(event.body) > _LONG_TEXT:
            wire["raw"] = _without(event.raw, event.body)  # the text is queued once, as `body`
    else:
        if event.client_ref is not None:
            _check_id(event.client_ref, "the client reference")
        wire["occurred_at"] = _bounded(event.occurred_at, now, event).isoformat()
    repaired: dict[str, Any] = _repaired(wire)
    return repaired


def plausible_sender(value: str) -> bool:
    """A phone number (E.164, national, without "+"), a short code (3-8 digits) or an alphanumeric
    sender ID (1-11 of A-Z, a-z, 0-9 and space, at least one letter). Fullwidth forms and other
    scripts' digits count as what they stand for; the processor normalises them."""
    text = unicodedata.normalize("NFKC", value).strip()
    channel = _CHANNEL.match(text)
    if channel is not None:
        text = text[channel.end() :]
    if _SENDER_ID.fullmatch(text) and any(c.isalpha() for c in text):
        return True
    plus = text.startswith("+")
    digits: list[int] = []
    for char in text[1:] if plus else text:
        if char in _SEPARATORS:
            continue
        digit = unicodedata.decimal(char, None)
        if digit is None:
            return False
        digits.append(digit)
    if plus:  # E.164: a country code that does not start with 0, at most 15 digits
        return 7 <= len(digits) <= 15 and digits[0] != 0
    if digits[:3] == [0, 1, 1]:  # dialled from North America: 011 + E.164
        return 10 <= len(digits) <= 18
    if digits[:2] == [0, 0]:  # dialled with the international prefix 00
        return 9 <= len(digits) <= 17
    return 3 <= len(digits) <= 15  # a short code, or a number written without "+"


def _check_id(value: str, what: str) -> None:
    if not value.strip():
        raise PayloadError(f"{what} is blank")
    if len(value) > MAX_ID_CHARS:
        raise PayloadError(f"{what} is longer than {MAX_ID_CHARS} characters")


def _check_number(value: str, name: str) -> None:
    if not value.strip():
        raise PayloadError(f"{name} is blank")
    if len(value) > MAX_NUMBER_CHARS:
        raise PayloadError(f"{name} is longer than {MAX_NUMBER_CHARS} characters")


def _bounded(moment: datetime, now: datetime, event: ParsedEvent) -> datetime:
    """The carrier's time in UTC; `now` if it is in the future (past skew) or can't be expressed in UTC.

    A future time would sort the conversation first for good; a late one is real (a delayed
    delivery) and kept.
    """
    try:
        utc = moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-05:00
        utc = None
    if utc is not None and utc <= now + FUTURE_TOLERANCE:
        return utc
    logger.warning(
        "carrier time replaced by the time we received the event",
        extra={
            "carrier": event.carrier,
            "carrier_message_id": event.carrier_message_id[:64],
            "carrier_time": moment.isoformat(),
        },
    )
    return now


def _without(raw: Any, text: str) -> Any:
    """`raw` with every string equal to `text` blanked (it is the message body, queued beside it)."""
    if isinstance(raw, dict):
        return {key: _without(value, text) for key, value in raw.items()}
    if isinstance(raw, list):
        return [_without(value, text) for value in raw]
    return "" if raw == text else raw


def _repaired(value: Any) -> Any:
    """Strings made encodable as UTF-8: each lone surrogate becomes U+FFFD (the text is kept)."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value) if _SURROGATE.search(value) else value
    if isinstance(value, dict):
        return {_repaired(key): _repaired(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_repaired(item) for item in value]
    return value


def count_metric(name: str, carrier: str, outcome: str) -> None:
    """One count of `name` by carrier and outcome (see `emit_count`)."""
    emit_count(name, {"carrier": carrier, "outcome": outcome})


def emit_count(name: str, dimensions: dict[str, str], value: int = 1) -> None:
    """One CloudWatch embedded-metric-format line (a count), without loading a metrics library.

    Off where POWERTOOLS_METRICS_DISABLED is true (the local stack), like the rest of our metrics.
    """
    if os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() == "true":
        return
    record = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Parley"),
                    "Dimensions": [sorted(dimensions)],
                    "Metrics": [{"Name": name, "Unit": "Count"}],
                }
            ],
        },
        **dimensions,
        name: value,
    }
    print(json.dumps(record, separators=(",", ":")), flush=True)
