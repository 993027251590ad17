"""The webhook's work before the carrier gets its 2xx: verify, read, enqueue. Nothing else.

Standard library plus boto3 only (no pydantic, phonenumbers or requests): this runs on every
carrier webhook, often on a cold start, within deadlines as short as Telnyx's 2 seconds. The
processor turns the queued events into the pydantic models and does the business logic.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from parley.carriers.base import Carrier, SignatureError, WebhookAck, WebhookKind, WebhookRequest
from parley.ports import JobQueue

logger = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 256 * 1024


class WebhookTooLarge(ValueError):
    """No carrier sends webhooks this big; refusing early keeps a bad actor from filling the queue."""


@dataclass(frozen=True)
class WebhookOutcome:
    ack: WebhookAck
    events: int
    verified: bool


class WebhookIntake:
    """Verify → parse → enqueue → ack: one SQS send per event, no reads."""

    def __init__(self, queue: JobQueue, *, log_only: bool | Callable[[str], bool] = False) -> None:
        self._queue = queue
        self._log_only = log_only if callable(log_only) else (lambda _carrier: log_only)

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
        for event in events:
            self._queue.send(
                {"event": event.to_wire(), "correlation_id": correlation_id, "verified": verified}
            )
        return WebhookOutcome(ack=carrier.ack(kind), events=len(events), verified=verified)


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
